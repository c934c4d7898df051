package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	acmeproto "github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/testfs"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// publicPebble is pebble in-process, validating http-01 on a loopback
// port that 'issue --http-listen' answers on, and its roots in a
// --trust-root file.
type publicPebble struct {
	*acmecatest.Pebble
	listen    string // --http-listen
	trustRoot string
}

func startPublicPebble(t *testing.T, o acmecatest.PebbleOptions) *publicPebble {
	t.Helper()
	port := testtool.FreePort(t)
	o.HTTPPort = port
	p := acmecatest.StartPebble(t, o)
	root := filepath.Join(t.TempDir(), "pebble-roots.pem")
	if err := os.WriteFile(root, p.RootsPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return &publicPebble{Pebble: p, listen: "127.0.0.1:" + strconv.Itoa(port), trustRoot: root}
}

// args are the issue flags for this pebble.
func (p *publicPebble) args(extra ...string) []string {
	return append([]string{"--ca", p.Directory, "--trust-root", p.trustRoot, "--http-listen", p.listen}, extra...)
}

// TestPublicPebble runs 'issue' against pebble (serverAuth only, like
// Let's Encrypt since 2026, with ARI): bundle issuance with the output's
// identities, clientAuth finding and DNS-ID note; the stored request;
// a second run on the stored account with --reuse-key sending
// "replaces"; lifecycle.OpenIssuer rebuilding the Issuer from the stored request
// for renew; --split; --json.
func TestPublicPebble(t *testing.T) {
	p := startPublicPebble(t, acmecatest.PebbleOptions{})
	state := filepath.Join(t.TempDir(), "state")
	base := []string{"--state-dir", state, "issue", "example.org", "--component", "conference.example.org"}

	start := time.Now()
	code, out, errs := runCLI(t, nil, append(base, p.args("--email", "admin@example.org", "--agree-tos")...)...)
	t.Logf("issue took %v\n%s", time.Since(start).Round(time.Millisecond), out)
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		`^Issued example.org \(version 1\) by ACME CA 127\.0\.0\.1:\d+ \(` + regexp.QuoteMeta(p.Directory) + `\)$`,
		`^  key       ECDSA P-256, new$`,
		`^    identities  dNSName example.org$`,
		`^    identities  dNSName conference.example.org$`,
		`^    check       xmpp-client valid, xmpp-server valid$`,
		`^    check       xmpp-server valid$`,
		// The finding for the missing clientAuth, naming the peers that
		// refuse it and the dialback fallback, for every s2s name.
		`^      xmpp-server warning: no clientAuth extended key usage \(Let's Encrypt stopped issuing it in 2026\): .*ejabberd before 25.07, Prosody 13.0.0 \(fixed in 13.0.1\) and Metronome refuse, so those connections fall back to Server Dialback \(XEP-0220\) where offered; Prosody 0.12 accepts it \(it does not check the EKU\)$`,
		`^  note: the CA certified DNS names only \(no SRV-ID, no XmppAddr\), as every public CA does: .*POSH or DANE.*--ca local`,
		`^Peers must trust the private CA's root, as this host does with --trust-root ` + regexp.QuoteMeta(p.trustRoot) + `$`,
	} {
		if !regexp.MustCompile(`(?m)` + want).MatchString(out) {
			t.Errorf("output lacks %s", want)
		}
	}
	if n := strings.Count(out, "xmpp-server warning: no clientAuth"); n != 2 {
		t.Errorf("%d clientAuth findings; want one per s2s name (2)", n)
	}
	if strings.Contains(out, "xmppcert ca root") {
		t.Error("the output sends the operator to the local CA's root")
	}

	// What renewal needs is stored, and no secret.
	store := acme.DiskStore{Dir: state}
	l, err := store.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Request.ACME
	if l.Request.CA != p.Directory || a == nil || a.Directory != p.Directory || a.Email != "admin@example.org" ||
		a.TrustRoot != p.trustRoot || a.Challenges.HTTPListen != p.listen || l.Request.Days != 0 {
		t.Errorf("stored request %+v, acme %+v", l.Request, a)
	}

	// Again, with the stored account (no --agree-tos, no --email) and the
	// key kept: the order says which certificate it replaces.
	code, out, errs = runCLI(t, nil, append(base, p.args("--reuse-key")...)...)
	if code != exitOK {
		t.Fatalf("second issue: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "Issued example.org (version 2)") || !strings.Contains(out, "ECDSA P-256, reused") {
		t.Errorf("second issue:\n%s", out)
	}
	orders := p.Orders()
	if p.NewAccounts() != 1 || len(orders) != 2 || orders[0].Replaces != "" || orders[1].Replaces == "" || orders[1].Status != http.StatusCreated {
		t.Errorf("%d accounts, orders %+v; want one account, the second order replacing the first certificate", p.NewAccounts(), orders)
	}

	// renew gets its Issuer from the stored request alone.
	l2, err := store.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}
	iss, _, release, err := lifecycle.OpenIssuer(state, l2.Request, lifecycle.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	adv, ok := iss.(acme.RenewalAdvisor)
	if !ok {
		t.Fatalf("%T is not a RenewalAdvisor", iss)
	}
	w, err := adv.RenewalWindow(context.Background(), l2.Chain[0])
	if err != nil || !w.Start.After(l2.Chain[0].NotBefore) || !w.End.Before(l2.Chain[0].NotAfter.Add(time.Second)) {
		t.Errorf("renewal window %+v, %v", w, err)
	}
	got, err := acme.Obtain(context.Background(), store, iss, l2.Request)
	if err != nil || got.Version != 3 {
		t.Fatalf("issuing from the stored request: %v", err)
	}
	release()

	// renew: not due in pebble's ARI window; --force renews with the
	// stored settings and account, sending "replaces".
	code, out, errs = runCLI(t, nil, "--state-dir", state, "renew")
	t.Logf("renew:\n%s%s", out, errs)
	if code != exitOK || p.NewAccounts() != 1 || len(p.Orders()) != 3 {
		t.Errorf("renew with nothing due: exit %d, %d orders\n%s%s", code, len(p.Orders()), out, errs)
	}
	code, out, errs = runCLI(t, nil, "--state-dir", state, "renew", "--force")
	t.Logf("renew --force:\n%s%s", out, errs)
	orders = p.Orders()
	current, _ := store.Load("example.org")
	certID, _ := acmeproto.ARIUniqueIdentifier(got.Chain[0])
	if code != exitOK || len(orders) != 4 || orders[3].Replaces != certID || orders[3].Status != http.StatusCreated || current.Version != 4 {
		t.Errorf("renew --force: exit %d, orders %+v\n%s%s", code, orders, out, errs)
	}

	// --split: one lineage per name, each certificate for its name only;
	// --json gives one result per lineage.
	split := filepath.Join(t.TempDir(), "split")
	code, out, errs = runCLI(t, nil, append([]string{"--state-dir", split, "issue", "example.org", "--component", "conference.example.org", "--split", "--json"},
		p.args("--agree-tos")...)...)
	if code != exitOK {
		t.Fatalf("--split: exit %d\n%s%s", code, out, errs)
	}
	var results []struct {
		Lineage string `json:"lineage"`
		Names   []struct {
			Domain string `json:"domain"`
		} `json:"names"`
	}
	if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != 2 {
		t.Fatalf("--split --json: %v\n%s", err, out)
	}
	for i, name := range []string{"example.org", "conference.example.org"} {
		l, err := (acme.DiskStore{Dir: split}).Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Chain[0].DNSNames) != 1 || l.Chain[0].DNSNames[0] != name || len(l.Request.Names) != 1 {
			t.Errorf("lineage %s: names %q", name, l.Chain[0].DNSNames)
		}
		if results[i].Lineage != filepath.Join(split, "live", name) || results[i].Names[0].Domain != name {
			t.Errorf("result %d: %+v", i, results[i])
		}
	}
	if l, _ := (acme.DiskStore{Dir: split}).Load("conference.example.org"); l.Request.Names[0].Role.String() != "component" {
		t.Errorf("the component's lineage lost its role: %v", l.Request.Names[0].Role)
	}
}

// TestPublicCAServe runs 'issue' against 'xmppcert ca serve' in another
// process, with --require-xmpp-ids: the certificate's SRV-IDs and
// XmppAddrs arrive end to end through ACME, and the check has no
// clientAuth finding.
func TestPublicCAServe(t *testing.T) {
	xmppcert, err := exec.LookPath("xmppcert")
	if err != nil {
		t.Fatalf("xmppcert is not in $PATH (TestMain puts it there): %v", err)
	}
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	dir := t.TempDir()
	caState := filepath.Join(dir, "ca-state")
	port := testtool.FreePort(t)
	directory, _ := startCAServe(t, xmppcert, "--state-dir", caState, "ca", "serve", "--listen", "127.0.0.1:0",
		"--validate-ip", "127.0.0.1", "--http-01-port", strconv.Itoa(port), "--component", "conference.example.org")
	rootFile, _ := caRootFile(t, xmppcert, caState, dir)
	state := filepath.Join(dir, "state")
	code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", "example.org", "--component", "conference.example.org",
		"--ca", directory, "--trust-root", rootFile, "--http-listen", "127.0.0.1:"+strconv.Itoa(port), "--agree-tos", "--require-xmpp-ids")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	t.Log(out)
	for _, want := range []string{
		`^    identities  dNSName example.org, SRVName _xmpp-client.example.org, SRVName _xmpp-server.example.org, XmppAddr example.org$`,
		`^    identities  dNSName conference.example.org, SRVName _xmpp-server.conference.example.org, XmppAddr conference.example.org$`,
		`^    check       xmpp-client valid, xmpp-server valid$`,
	} {
		if !regexp.MustCompile(`(?m)` + want).MatchString(out) {
			t.Errorf("output lacks %s", want)
		}
	}
	if strings.Contains(out, "clientAuth") || strings.Contains(out, "DNS names only") {
		t.Errorf("findings or notes that do not apply:\n%s", out)
	}
	l, err := (acme.DiskStore{Dir: state}).Load("example.org")
	if err != nil || !l.Request.ACME.RequireXMPPIDs {
		t.Errorf("stored request: %v %+v", err, l)
	}
}

// TestPublicFaults: a CA that fails makes 'issue' exit 1 within its
// bounds, with one line naming the CA and saying what to do, and the
// deployed lineage unchanged.
func TestPublicFaults(t *testing.T) {
	p := startPublicPebble(t, acmecatest.PebbleOptions{})
	nonce := acmecatest.StartFakeCA(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		acmecatest.Problem(w, 400, "badNonce", "JWS has an invalid anti-replay nonce")
		return true
	})
	fiveHundred := acmecatest.StartFakeCA(t, func(w http.ResponseWriter, r *http.Request) bool {
		acmecatest.Problem(w, 500, "serverInternal", "internal error")
		return true
	})
	limited := acmecatest.StartFakeCA(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/order" {
			return false
		}
		w.Header().Set("Retry-After", "7200")
		acmecatest.Problem(w, 429, "rateLimited", "too many new orders recently")
		return true
	})
	pending := acmecatest.StartFakeCA(t, nil)
	closed := fmt.Sprintf("http://127.0.0.1:%d/dir", testtool.FreePort(t))
	otherListen := "127.0.0.1:" + strconv.Itoa(testtool.FreePort(t))
	refusing := startRefusingDNS(t)
	tsigFile := filepath.Join(t.TempDir(), "tsig.key")
	if err := os.WriteFile(tsigFile, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		args    []string
		words   []string
		maxTime time.Duration
	}{
		{"unreachable", []string{"--ca", closed, "--http-listen", otherListen, "--timeout", "4s"}, []string{"cannot reach the CA", "connection refused", "(xmppcert issue --ca)"}, 10 * time.Second},
		{"500s", []string{"--ca", fiveHundred.Directory(), "--http-listen", otherListen, "--timeout", "4s"}, []string{"server errors", "HTTP 500"}, 10 * time.Second},
		{"bad nonce storm", []string{"--ca", nonce.Directory(), "--http-listen", otherListen}, []string{"badNonce"}, 15 * time.Second},
		{"rate limited", []string{"--ca", limited.Directory(), "--http-listen", otherListen}, []string{"rate-limiting", "the CA asks not to retry before", "(in 2h0m0s)", "(xmppcert issue --ca letsencrypt-staging)"}, 5 * time.Second},
		{"challenge never validates", []string{"--ca", pending.Directory(), "--http-listen", otherListen, "--timeout", "3s"}, []string{"out of time", "allow more time (xmppcert issue --timeout)"}, 10 * time.Second},
		{"DNS update refused", []string{"--ca", p.Directory, "--trust-root", p.trustRoot, "--dns-rfc2136-server", refusing,
			"--dns-tsig-name", "acme-update.", "--dns-tsig-secret-file", tsigFile, "--timeout", "10s"}, []string{"REFUSED"}, 15 * time.Second},
		// pebble validates on a port nobody answers on.
		{"challenge refused", []string{"--ca", p.Directory, "--trust-root", p.trustRoot, "--http-listen", otherListen}, []string{"could not validate control of the names", "connection refused", "http-01: port 80"}, 10 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			if code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", "example.org", "-q"); code != exitOK {
				t.Fatalf("local issue: exit %d\n%s%s", code, out, errs)
			}
			before := testfs.Snapshot(t, filepath.Join(state, "live"))
			beforeArchive := testfs.Snapshot(t, filepath.Join(state, "archive"))
			start := time.Now()
			// Moving the lineage from the embedded CA to an ACME CA is a
			// change of its desired state, asked for explicitly.
			code, out, errs := runCLI(t, nil, append([]string{"--state-dir", state, "issue", "example.org", "--agree-tos", "--replace-names"}, tc.args...)...)
			took := time.Since(start)
			t.Logf("after %v: %s", took.Round(time.Millisecond), errs)
			if code != exitFailed || out != "" || !oneLine(errs) || !strings.HasPrefix(errs, "xmppcert: ") {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and one line", code, out, errs)
			}
			for _, w := range append([]string{"nothing was written", "ordering a certificate for example.org"}, tc.words...) {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if took > tc.maxTime {
				t.Errorf("took %v; want under %v", took, tc.maxTime)
			}
			if d := diff(before, testfs.Snapshot(t, filepath.Join(state, "live"))); d != nil {
				t.Errorf("live changed: %q", d)
			}
			if d := diff(beforeArchive, testfs.Snapshot(t, filepath.Join(state, "archive"))); d != nil {
				t.Errorf("archive changed: %q", d)
			}
		})
	}
	if n := limited.Count("POST", "/order"); n != 1 {
		t.Errorf("the rate-limited CA got %d orders; want 1", n)
	}
}

// TestPublicBadInput: mistakes in the ACME flags exit 2 with one line,
// before anything is written.
func TestPublicBadInput(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if code, out, errs := runCLI(t, nil, "--state-dir", existing, "issue", "example.org", "-q"); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "tsig.key")
	if err := os.WriteFile(unreadable, []byte("secret c2VjcmV0c2VjcmV0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.key")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	le := []string{"--ca", "letsencrypt", "--http-listen", ":80", "--agree-tos"}
	with := func(extra ...string) []string { return append(append([]string{}, le...), extra...) }
	bad := []struct {
		args []string
		want string // a regular expression for the message after "xmppcert: "
	}{
		{[]string{"--ca", "letsencrypt-prod", "--http-listen", ":80"}, `--ca: unknown CA "letsencrypt-prod": use local, letsencrypt, letsencrypt-staging, zerossl, or an ACME directory URL \(https://\.\.\.\)`},
		{[]string{"--ca", "https://", "--http-listen", ":80"}, `--ca: CA directory URL "https://" has no host; .*`},
		{[]string{"--ca", "https://ca.example.org:99999/dir", "--http-listen", ":80"}, `--ca: CA directory URL .* has a bad port "99999"`},
		{[]string{"--ca", "https://ca example.org/dir", "--http-listen", ":80"}, `--ca: CA directory URL .* is malformed: .*`},
		{[]string{"--ca", "http://acme.example.org/directory", "--http-listen", ":80"}, `--ca: CA directory URL "http://acme\.example\.org/directory" is plain http to acme\.example\.org, .*use https.*`},
		{[]string{"--ca", "ftp://acme.example.org/directory", "--http-listen", ":80"}, `--ca: CA directory URL .*: scheme "ftp" is not https; .*`},
		{with("--email", "postmaster"), `--email: email "postmaster" is not an address \(no user@domain\); .*`},
		{with("--email", "mailto:a@example.org"), `--email: email "mailto:a@example\.org": give the address without mailto:`},
		{[]string{"--ca", "letsencrypt", "--http-listen", ":80"}, `no account with Let's Encrypt yet: registering one needs --agree-tos, your agreement to its terms of service \(xmppcert never prompts\)`},
		{[]string{"--ca", "zerossl", "--http-listen", ":80", "--agree-tos"}, `no account with ZeroSSL yet: it needs External Account Binding; give --eab-kid and --eab-hmac .*`},
		{with("--eab-kid", "kid"), `--eab-kid/--eab-hmac: an External Account Binding key ID without its HMAC key: give both, from the CA's account page`},
		{with("--eab-kid", "kid", "--eab-hmac", "not base64!"), `--eab-kid/--eab-hmac: the External Account Binding HMAC key is not base64url .*`},
		{with("--eab-kid", "kid", "--eab-hmac-file", filepath.Join(dir, "missing.hmac")), `cannot read --eab-hmac-file .*missing\.hmac: no such file or directory; .*`},
		{with("--eab-kid", "kid", "--eab-hmac-file", empty), `--eab-hmac-file .*empty\.key is empty; put the secret in it`},
		{with("--eab-kid", "kid", "--eab-hmac-file", empty, "--eab-hmac", "a2V5"), `give the EAB HMAC key once: --eab-hmac or --eab-hmac-file, not both`},
		{with("--dns-rfc2136-server", "127.0.0.1:53", "--dns-tsig-name", "xmppcert", "--dns-tsig-secret-file", filepath.Join(dir, "missing.key")), `cannot read TSIG secret file .*missing\.key: no such file or directory; check the path and that this user may read it`},
		{with("--dns-rfc2136-server", "127.0.0.1:53", "--dns-tsig-name", "xmppcert", "--dns-tsig-secret-file", empty), `TSIG secret file .*empty\.key is empty; put the secret in it`},
		{with("--dns-tsig-name", "xmppcert"), `--dns-tsig-name needs --dns-rfc2136-server, .*`},
		{with("--dns-rfc2136-server", "127.0.0.1:53", "--dns-tsig-name", "xmppcert"), `--dns-tsig-name xmppcert needs --dns-tsig-secret-file, .*`},
		{with("--trust-root", filepath.Join(dir, "missing.pem")), `--trust-root .*missing\.pem: .*`},
		{with("--trust-root", garbage), `--trust-root .*garbage\.pem: .*`},
		{[]string{"--ca", "letsencrypt", "--agree-tos"}, `no way to prove control of the names is configured: give --http-listen, --webroot, --tls-alpn-listen, --dns-rfc2136-server or --dns-hook`},
		{with("--webroot", dir), `--http-listen and --webroot: choose one way to solve http-01`},
		{with("--http-listen", "nonsense"), `.*nonsense.*`},
		{[]string{"--ca", "letsencrypt", "--webroot", filepath.Join(dir, "missing"), "--agree-tos"}, `webroot .*missing: no such file or directory`},
		{with("--require-xmpp-ids"), `--require-xmpp-ids: Let's Encrypt certifies DNS names only \(CA/Browser Forum rules .*\); for SRV-IDs and XmppAddr use --ca local or a private ACME CA .*POSH or DANE`},
		{with("--days", "30"), `--days is for --ca local; .*`},
		{with("--timeout", "0s"), `--timeout 0s: give a positive duration such as 10m`},
		{[]string{"--http-listen", ":80"}, `--http-listen is for ACME CAs; the embedded CA \(--ca local\) signs offline without challenges or account`},
		{[]string{"--agree-tos"}, `--agree-tos is for ACME CAs; .*`},
	}
	for _, c := range bad {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			for _, state := range []string{filepath.Join(t.TempDir(), "fresh"), existing} {
				before := testfs.Snapshot(t, state)
				code, stdout, stderr := runCLI(t, nil, append([]string{"--state-dir", state, "issue", "example.org"}, c.args...)...)
				if code != exitUsage || stdout != "" || !oneLine(stderr) {
					t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and one line", code, stdout, stderr)
				}
				if !regexp.MustCompile(`^xmppcert: ` + c.want + "\n$").MatchString(stderr) {
					t.Errorf("stderr %q does not match %q", stderr, c.want)
				}
				if d := diff(before, testfs.Snapshot(t, state)); d != nil {
					t.Errorf("the state directory changed: %q", d)
				}
				if before == nil {
					if _, err := os.Lstat(state); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("the state directory was created: %v", err)
					}
				}
			}
		})
	}
}

// startRefusingDNS runs a primary for example.org on loopback (UDP and
// TCP) that answers its SOA but refuses every dynamic update, as a server
// whose ACL does not allow the key does (BIND answers REFUSED).
func startRefusingDNS(t *testing.T) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		switch {
		case r.Opcode == dns.OpcodeUpdate:
			m.Rcode = dns.RcodeRefused
		case len(r.Question) == 1 && dns.IsSubDomain("example.org.", r.Question[0].Name):
			soa, _ := dns.NewRR("example.org. 300 IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 60")
			if r.Question[0].Name == "example.org." && r.Question[0].Qtype == dns.TypeSOA {
				m.Answer = append(m.Answer, soa)
			} else {
				m.Ns = append(m.Ns, soa)
			}
		default:
			m.Rcode = dns.RcodeRefused
		}
		w.WriteMsg(m)
	})
	// The same port over UDP and TCP: a port free for UDP may be taken
	// for TCP, so try a few.
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc, ln = nil, nil
	}
	if ln == nil {
		t.Fatal("no port of 127.0.0.1 is free over both UDP and TCP after 20 tries")
	}
	// miekg/dns answers NOTIMP to updates unless told to accept them.
	accept := func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler, MsgAcceptFunc: accept}, {Listener: ln, Handler: handler, MsgAcceptFunc: accept}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// TestRenewInsideARIWindow has pebble move a certificate's renewal window
// (ARI) to now by revoking it: renew, without --force and long before a
// third of the lifetime is left, renews because the CA says so, and
// orders with "replaces" naming the old certificate.
func TestRenewInsideARIWindow(t *testing.T) {
	p := startPublicPebble(t, acmecatest.PebbleOptions{})
	state := filepath.Join(t.TempDir(), "state")
	if code, out, errs := runCLI(t, nil, append([]string{"--state-dir", state, "issue", "example.org", "-q"}, p.args("--agree-tos")...)...); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	renew := func(args ...string) renewReport {
		t.Helper()
		code, out, errs := runCLI(t, nil, append([]string{"--state-dir", state, "renew", "--json"}, args...)...)
		if code != exitOK {
			t.Fatalf("renew %q: exit %d\n%s%s", args, code, out, errs)
		}
		var rep renewReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Lineages) != 1 {
			t.Fatalf("renew %q: %v\n%s", args, err, out)
		}
		return rep
	}
	// A dry run asks the CA and caches nothing: pebble's window is two
	// thirds into the 90 days.
	if l := renew("--dry-run").Lineages[0]; l.Due || l.Rule != acme.RuleARI {
		t.Fatalf("before revocation: due %v by rule %q (%s); want not due by ari", l.Due, l.Rule, l.Reason)
	}
	old := mustLoad(t, state, "example.org").Chain[0]
	p.Revoke(t, old)
	l := renew().Lineages[0]
	if l.Result != "renewed" || l.Rule != acme.RuleARI || l.Version != 2 {
		t.Fatalf("after revocation: %s by rule %q, version %d (%s; notes %q); want renewed by ari, version 2", l.Result, l.Rule, l.Version, l.Reason, l.Notes)
	}
	orders := p.Orders()
	if last := orders[len(orders)-1]; last.Replaces == "" || len(orders) != 2 {
		t.Errorf("orders %+v; want a second one with replaces", orders)
	}
}

// TestSecretFileExposedWarning: a secret file readable by group or others
// is used, with one warning line naming it and the chmod to run; a
// private one gets none.
func TestSecretFileExposedWarning(t *testing.T) {
	dir := t.TempDir()
	eab := filepath.Join(dir, "eab.hmac")
	writeFile(t, eab, []byte("a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5\n"), 0o644)
	args := []string{"--state-dir", filepath.Join(dir, "state"), "issue", "acme.example", "--ca", "https://127.0.0.1:1/dir",
		"--agree-tos", "--email", "a@example.org", "--eab-kid", "kid", "--eab-hmac-file", eab}
	_, _, errOut := runCLI(t, nil, args...)
	want := "xmppcert: warning: --eab-hmac-file " + eab + " is readable by group or others (mode 0644): chmod 600 " + eab + "\n"
	if !strings.HasPrefix(errOut, want) {
		t.Errorf("stderr:\n%s\nwant it to start with %q", errOut, want)
	}
	if err := os.Chmod(eab, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, errOut := runCLI(t, nil, args...); strings.Contains(errOut, "warning") {
		t.Errorf("a private secret file warned:\n%s", errOut)
	}
}
