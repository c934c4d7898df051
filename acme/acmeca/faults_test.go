package acmeca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
	acmeproto "github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/internal/testfs"
)

// selfSigned is an Issuer that signs its own certificates, for the
// lineage a failed issuance must leave alone.
type selfSigned struct{}

func (selfSigned) Name() string { return "self-signed test issuer" }

func (selfSigned) Issue(_ context.Context, req acme.Request, key crypto.Signer) (*acme.Issued, error) {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: req.Domains(),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &acme.Issued{Chain: []*x509.Certificate{c}, Key: key, Issuer: "self"}, nil
}

// faultCase issues against a misbehaving CA over an existing lineage
// and checks the outcome: the Kind, words in the message, a bound on
// the time, and the lineage and its state directory untouched (but for
// the account directory and lock files).
type faultCase struct {
	cfg   func(*Config)
	kind  Kind
	words []string
	// remedy is the setting the advice names (RemedyNone: none).
	remedy   Remedy
	maxTime  time.Duration
	attempts int
}

func runFault(t *testing.T, directory string, solver acmez.Solver, fc faultCase) *Error {
	t.Helper()
	state := t.TempDir()
	store := acme.DiskStore{Dir: state}
	if _, err := acme.Obtain(context.Background(), store, selfSigned{}, hostRequest(t)); err != nil {
		t.Fatal(err)
	}
	before := testfs.Snapshot(t, state+"/live")
	beforeArchive := testfs.Snapshot(t, state+"/archive")
	cfg := Config{Directory: directory, StateDir: state, AgreeTOS: true,
		Solvers:  map[string]acmez.Solver{acmeproto.ChallengeTypeHTTP01: solver},
		Attempts: 3, Backoff: 10 * time.Millisecond, Timeout: 30 * time.Second, PollInterval: 20 * time.Millisecond, PollTimeout: 5 * time.Second}
	if fc.cfg != nil {
		fc.cfg(&cfg)
	}
	iss := mustIssuer(t, cfg)
	start := time.Now()
	_, err := acme.Obtain(context.Background(), store, iss, hostRequest(t))
	took := time.Since(start)
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if ae.Kind != fc.kind {
		t.Errorf("kind %d; want %d", ae.Kind, fc.kind)
	}
	if ae.Remedy() != fc.remedy {
		t.Errorf("remedy %d; want %d", ae.Remedy(), fc.remedy)
	}
	msg := err.Error()
	if flagName.MatchString(msg) {
		t.Errorf("message names a flag (the command line adds those): %s", msg)
	}
	for _, w := range append([]string{DisplayName(iss.Directory()), iss.Directory(), "ordering a certificate for example.org", "nothing was written"}, fc.words...) {
		if !strings.Contains(msg, w) {
			t.Errorf("message lacks %q: %s", w, msg)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message is not one line: %q", msg)
	}
	if fc.attempts != 0 && ae.Attempts != fc.attempts {
		t.Errorf("%d attempts; want %d", ae.Attempts, fc.attempts)
	}
	if took > fc.maxTime {
		t.Errorf("took %v; want under %v", took, fc.maxTime)
	}
	if d := diffSnap(before, testfs.Snapshot(t, state+"/live")); d != nil {
		t.Errorf("live changed: %q", d)
	}
	if d := diffSnap(beforeArchive, testfs.Snapshot(t, state+"/archive")); d != nil {
		t.Errorf("archive changed: %q", d)
	}
	return ae
}

func diffSnap(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// TestFaultUnreachable: nothing listens at the directory. Retried with
// backoff, then reported as unreachable.
func TestFaultUnreachable(t *testing.T) {
	dir := fmt.Sprintf("http://127.0.0.1:%d/dir", closedPort(t))
	ae := runFault(t, dir, acmecatest.NewHTTP01(t), faultCase{kind: KindUnreachable, attempts: 3, maxTime: 10 * time.Second,
		words: []string{"cannot reach the CA", "connection refused", "(3 attempts)", "check the CA's directory URL"}, remedy: RemedyDirectory})
	if !ae.Temporary() {
		t.Error("an unreachable CA is not Temporary")
	}
}

// TestFaultServerErrors: every answer is a 500. acmez retries each GET
// three times, this Issuer three attempts: nine directory requests.
func TestFaultServerErrors(t *testing.T) {
	f := acmecatest.StartFakeCA(t, func(w http.ResponseWriter, r *http.Request) bool {
		acmecatest.Problem(w, 500, "serverInternal", "the database is on fire")
		return true
	})
	ae := runFault(t, f.Directory(), acmecatest.NewHTTP01(t), faultCase{kind: KindServer, attempts: 3, maxTime: 10 * time.Second,
		words: []string{"the CA answered with server errors", "HTTP 500 serverInternal (the database is on fire)", "run again later"}})
	if n := f.Count("GET", "/dir"); n != 9 {
		t.Errorf("%d directory requests; want 9 (3 attempts of 3)", n)
	}
	if !ae.Temporary() {
		t.Error("server errors are not Temporary")
	}
}

// TestFaultBadNonceStorm: every POST is refused with badNonce. acmez
// tries ten nonces; the Issuer does not start over.
func TestFaultBadNonceStorm(t *testing.T) {
	f := acmecatest.StartFakeCA(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		acmecatest.Problem(w, 400, "badNonce", "JWS has an invalid anti-replay nonce")
		return true
	})
	runFault(t, f.Directory(), acmecatest.NewHTTP01(t), faultCase{kind: KindBadNonce, attempts: 1, maxTime: 10 * time.Second,
		words: []string{"rejected every anti-replay nonce", "a proxy, a load balancer"}})
	if n := f.Count("POST", "/acct"); n != 10 {
		t.Errorf("%d new-account requests; want acmez's 10", n)
	}
}

// TestFaultRateLimited: the new order is refused with rateLimited and a
// Retry-After of an hour: one request, reported with the time to retry.
func TestFaultRateLimited(t *testing.T) {
	f := acmecatest.StartFakeCA(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/order" {
			return false
		}
		w.Header().Set("Retry-After", "3600")
		acmecatest.Problem(w, 429, "rateLimited", "too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s")
		return true
	})
	ae := runFault(t, f.Directory(), acmecatest.NewHTTP01(t), faultCase{kind: KindRateLimited, attempts: 1, maxTime: 5 * time.Second,
		words: []string{"rate-limiting", "too many certificates (5)", "the CA asks not to retry before", "(in 1h0m0s)", "run again after that time"}, remedy: RemedyStaging})
	if n := f.Count("POST", "/order"); n != 1 {
		t.Errorf("%d new-order requests; a rate limit must not be hammered", n)
	}
	if d := time.Until(ae.RetryAfter()); d < 59*time.Minute || d > time.Hour {
		t.Errorf("RetryAfter in %v; want an hour", d)
	}
	// renew reads the Retry-After through acme.RetryAfter and leaves the
	// CA alone until then.
	if got, ok := acme.RetryAfter(ae); !ok || !got.Equal(ae.RetryAt) {
		t.Errorf("acme.RetryAfter = %v, %v", got, ok)
	}
}

// TestFaultRetryAfter: a 503 with a Retry-After within MaxRetryWait is
// waited for and retried; one beyond it is reported at once.
func TestFaultRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		retryAfter string
		attempts   int
		minTime    time.Duration
	}{
		{"1", 3, 1500 * time.Millisecond},
		{"120", 1, 0},
	} {
		t.Run(tc.retryAfter, func(t *testing.T) {
			f := acmecatest.StartFakeCA(t, func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/order" {
					return false
				}
				w.Header().Set("Retry-After", tc.retryAfter)
				acmecatest.Problem(w, 503, "serverInternal", "down for maintenance")
				return true
			})
			start := time.Now()
			ae := runFault(t, f.Directory(), acmecatest.NewHTTP01(t), faultCase{kind: KindServer, attempts: tc.attempts, maxTime: 10 * time.Second,
				words: []string{"down for maintenance", "the CA asks not to retry before"}})
			if time.Since(start) < tc.minTime {
				t.Errorf("took %v: the Retry-After was not waited for", time.Since(start))
			}
			if ae.RetryAt.IsZero() {
				t.Error("no RetryAt")
			}
		})
	}
}

// TestFaultChallengeNeverValidates: the authorization stays pending;
// the poll timeout ends it, the solver is cleaned up.
func TestFaultChallengeNeverValidates(t *testing.T) {
	f := acmecatest.StartFakeCA(t, nil)
	h := acmecatest.NewHTTP01(t)
	runFault(t, f.Directory(), h, faultCase{kind: KindChallenge, attempts: 1, maxTime: 10 * time.Second,
		cfg:   func(c *Config) { c.PollTimeout = time.Second },
		words: []string{"could not validate control of the names", "authorization took too long", "http-01: port 80 of every name"}})
	if n := f.Count("POST", "/chall/1"); n != 1 {
		t.Errorf("challenge answered %d times", n)
	}
}

// TestFaultChallengeRefused: pebble validates and gets a 404.
func TestFaultChallengeRefused(t *testing.T) {
	h := acmecatest.NewHTTP01(t)
	h.SetSilent(true)
	p := acmecatest.StartPebble(t, acmecatest.PebbleOptions{HTTPPort: h.Port})
	runFault(t, p.Directory, h, faultCase{kind: KindChallenge, attempts: 1, maxTime: 10 * time.Second,
		cfg:   func(c *Config) { c.TrustRoots = p.Roots() },
		words: []string{"could not validate control of the names", "example.org", "404", "http-01: port 80"}})
}

// TestFaultTimeout: the CA accepts the connection and never answers the
// order; the overall timeout ends the issuance.
func TestFaultTimeout(t *testing.T) {
	release := make(chan struct{})
	f := acmecatest.StartFakeCA(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/order" {
			return false
		}
		io.Copy(io.Discard, r.Body) // so that the server notices the client leaving
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	})
	t.Cleanup(func() { close(release) }) // before the server's Close, which waits for the handler
	runFault(t, f.Directory(), acmecatest.NewHTTP01(t), faultCase{kind: KindTimeout, attempts: 1, maxTime: 10 * time.Second,
		cfg:   func(c *Config) { c.Timeout = 2 * time.Second },
		words: []string{"out of time", "did not finish within 2s", "allow more time"}, remedy: RemedyTimeout})
}

// TestFaultUntrusted: pebble's HTTPS certificate without its root
// trusted.
func TestFaultUntrusted(t *testing.T) {
	h := acmecatest.NewHTTP01(t)
	p := acmecatest.StartPebble(t, acmecatest.PebbleOptions{HTTPPort: h.Port})
	runFault(t, p.Directory, h, faultCase{kind: KindUntrusted, attempts: 1, maxTime: 10 * time.Second,
		words: []string{"HTTPS certificate is not trusted", "trust its root"}, remedy: RemedyTrustRoot})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"soon", time.Time{}},
		{"-5", time.Time{}},
		{"120", now.Add(2 * time.Minute)},
		{"99999999999", now.Add(maxRetryAfter)},
		{"Sun, 01 Mar 2026 13:00:00 GMT", now.Add(time.Hour)},
		{"Sun, 01 Mar 2026 11:00:00 GMT", now},
	} {
		if got := parseRetryAfter(tc.in, now); !got.Equal(tc.want) {
			t.Errorf("parseRetryAfter(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseDirectory(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"letsencrypt", LetsEncrypt, ""},
		{"LetsEncrypt-Staging", LetsEncryptStaging, ""},
		{"zerossl", ZeroSSL, ""},
		{"https://ca.example.org/acme/directory", "https://ca.example.org/acme/directory", ""},
		{"HTTPS://CA.Example.org:8443/dir", "https://ca.example.org:8443/dir", ""},
		{"http://127.0.0.1:14000/dir", "http://127.0.0.1:14000/dir", ""},
		{"http://localhost/dir", "http://localhost/dir", ""},
		{"http://[::1]:80/dir", "http://[::1]:80/dir", ""},
		{"letsencrypt-prod", "", `unknown CA "letsencrypt-prod": use local, letsencrypt, letsencrypt-staging, zerossl, or an ACME directory URL`},
		{"http://ca.example.org/dir", "", "plain http to ca.example.org"},
		{"ftp://ca.example.org/dir", "", `scheme "ftp" is not https`},
		{"https://", "", "has no host"},
		{"https://:443/dir", "", "has no host"},
		{"https://user:pw@ca.example.org/dir", "", "carries credentials"},
		{"https://ca.example.org:99999/dir", "", "bad port"},
		{"https://ca example.org/dir", "", "malformed"},
	} {
		got, err := ParseDirectory(tc.in)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("ParseDirectory(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseDirectory(%q) error %v; want one containing %q", tc.in, err, tc.err)
		}
	}
	if !IsPublic(LetsEncrypt) || !IsPublic(ZeroSSL) || IsPublic("https://127.0.0.1:14000/dir") {
		t.Error("IsPublic")
	}
}

func TestCheckEmailAndEAB(t *testing.T) {
	for _, ok := range []string{"", "admin@example.org", "a.b+c@mail.example.org"} {
		if err := CheckEmail(ok); err != nil {
			t.Errorf("CheckEmail(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"admin", "admin@", "@example.org", "mailto:admin@example.org", "a@b@c", "admin@localhost", "a b@example.org", "a@example.org,b@example.org"} {
		if err := CheckEmail(bad); err == nil {
			t.Errorf("CheckEmail(%q) accepted it", bad)
		}
	}
	if err := CheckEAB("kid", "c2VjcmV0"); err != nil {
		t.Error(err)
	}
	for _, bad := range [][2]string{{"kid", ""}, {"", "c2VjcmV0"}, {"kid", "not base64!"}} {
		if err := CheckEAB(bad[0], bad[1]); err == nil {
			t.Errorf("CheckEAB(%q) accepted it", bad)
		}
	}
}

// flagName matches a command-line flag in a message: "--" and a letter
// at the start of a word. A CA's message may quote a URL whose challenge
// token holds "--" (base64url).
var flagName = regexp.MustCompile("(^|[\\s(`'\"])--[a-z]")
