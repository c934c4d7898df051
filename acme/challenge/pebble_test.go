//go:build unix

package challenge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// pebbleCA is an in-process pebble whose validation authority connects
// to http-01 and tls-alpn-01 solvers on the given loopback ports and
// resolves every name (A records for http-01/tls-alpn-01, TXT records
// for dns-01) through the given DNS server: our Knot.
type pebbleCA struct {
	client *acme.Client
	log    *testtool.LockedBuffer
}

func startPebble(t *testing.T, httpPort, tlsPort int, resolver string) *pebbleCA {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")      // validate at once
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0") // acmez retries bad nonces, but keep runs deterministic
	t.Setenv("PEBBLE_AUTHZREUSE", "0")      // every order validates afresh
	logs := &testtool.LockedBuffer{}
	logger := log.New(logs, "pebble ", log.Lmicroseconds)
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "default"}}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	// strict=false: pebble's strict mode rejects requests a real CA
	// accepts; customResolverAddr makes the VA ask Knot (over TCP).
	validator := va.New(logger, httpPort, tlsPort, false, resolver, store)
	front := wfe.New(logger, store, validator, authority, nil, false, false, 0, 0)
	srv := httptest.NewUnstartedServer(front.Handler())
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", logs.String())
		}
	})
	return &pebbleCA{
		client: &acme.Client{
			Directory:  srv.URL + wfe.DirectoryPath,
			HTTPClient: srv.Client(),
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		},
		log: logs,
	}
}

// obtain registers an account and gets a certificate for names with the
// given solvers, within a minute.
func (p *pebbleCA) obtain(t *testing.T, solvers map[string]acmez.Solver, names ...string) (*x509.Certificate, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	client := acmez.Client{Client: p.client, ChallengeSolvers: solvers}
	accountKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	account, err := client.NewAccount(ctx, acme.Account{
		Contact:              []string{"mailto:admin@example.org"},
		TermsOfServiceAgreed: true,
		PrivateKey:           accountKey,
	})
	if err != nil {
		t.Fatalf("new account: %v", err)
	}
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := client.ObtainCertificateForSANs(ctx, account, certKey, names)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(certs[0].ChainPEM)
	if block == nil {
		t.Fatal("no PEM in the chain")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(names))
	got := slices.Sorted(slices.Values(leaf.DNSNames))
	if !slices.Equal(got, want) {
		t.Fatalf("certificate names %v, want %v", got, want)
	}
	return leaf, nil
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// http-01 through the standalone listener: pebble resolves each name in
// Knot (A 127.0.0.1) and fetches the token from our port.
func TestPebbleHTTP01(t *testing.T) {
	k := startKnot(t)
	addr := freeAddr(t)
	p := startPebble(t, port(t, addr), 0, k.Addr)
	s := &HTTP01{Addr: addr}
	if _, err := p.obtain(t, map[string]acmez.Solver{acme.ChallengeTypeHTTP01: s},
		"example.org", "conference.example.org", "upload.example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("http-01 listener still up after issuance")
	}
	// The VA really fetched from our listener (it is not in always-valid
	// mode).
	want := fmt.Sprintf("Attempting to validate w/ HTTP: http://conference.example.org:%d/.well-known/acme-challenge/", port(t, addr))
	if !strings.Contains(p.log.String(), want) {
		t.Errorf("pebble log lacks %q", want)
	}
}

// http-01 through a webroot served by a separate web server.
func TestPebbleWebroot(t *testing.T) {
	k := startKnot(t)
	addr := freeAddr(t)
	root := t.TempDir()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	web := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.FileServer(http.Dir(root))}}
	web.Start()
	defer web.Close()
	p := startPebble(t, port(t, addr), 0, k.Addr)
	if _, err := p.obtain(t, map[string]acmez.Solver{acme.ChallengeTypeHTTP01: &Webroot{Dir: root}},
		"example.org", "www.example.org"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("webroot not cleaned up: %v", entries)
	}
}

// tls-alpn-01 through the standalone TLS listener.
func TestPebbleTLSALPN01(t *testing.T) {
	k := startKnot(t)
	addr := freeAddr(t)
	p := startPebble(t, 0, port(t, addr), k.Addr)
	if _, err := p.obtain(t, map[string]acmez.Solver{acme.ChallengeTypeTLSALPN01: &TLSALPN01{Addr: addr}},
		"example.org", "conference.example.org"); err != nil {
		t.Fatal(err)
	}
}

// dns-01 by RFC 2136 update into Knot, which pebble then queries; the
// name and its wildcard put two values at the same TXT name. Nothing is
// left in the zone afterwards.
func TestPebbleDNS01RFC2136(t *testing.T) {
	k := startKnot(t)
	p := startPebble(t, 0, 0, k.Addr)
	s := k.rfc2136()
	names := []string{"example.org", "*.example.org", "conference.example.org"}
	if _, err := p.obtain(t, map[string]acmez.Solver{acme.ChallengeTypeDNS01: s}, names...); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"_acme-challenge.example.org", "_acme-challenge.conference.example.org"} {
		if got := k.TXT(t, n); len(got) != 0 {
			t.Errorf("%s left in the zone: %q", n, got)
		}
	}
}

// dns-01 through a hook that runs knsupdate, waiting on the zone's NS
// found through Knot.
func TestPebbleDNS01Hook(t *testing.T) {
	k := startKnot(t)
	knsupdate := testtool.Require(t, "knsupdate", "knot-dnsutils")
	host, kport, _ := net.SplitHostPort(k.Addr)
	script := writeScript(t, "hook", fmt.Sprintf(`set -e
case "$1" in present) op=add ;; cleanup) op=delete ;; esac
printf 'server %s %s\nzone example.org\nupdate %%s %%s. 60 TXT "%%s"\nsend\n' "$op" "$2" "$3" | %s -y hmac-sha256:%s:%s
`, host, kport, knsupdate, k.KeyName, k.Secret))
	p := startPebble(t, 0, 0, k.Addr)
	s := &DNSHook{Command: script, Timeout: 10 * time.Second,
		Propagation: Propagation{Resolver: k.Addr, nsPort: kport, Timeout: 10 * time.Second, Interval: 50 * time.Millisecond}}
	if _, err := p.obtain(t, map[string]acmez.Solver{acme.ChallengeTypeDNS01: s}, "upload.example.org"); err != nil {
		t.Fatal(err)
	}
	if got := k.TXT(t, "_acme-challenge.upload.example.org"); len(got) != 0 {
		t.Errorf("record left in the zone: %q", got)
	}
}

// A dns-01 challenge that never validates (the hook publishes nothing
// and the propagation check is off) ends with the CA's reason.
func TestPebbleDNS01NeverValidates(t *testing.T) {
	k := startKnot(t)
	p := startPebble(t, 0, 0, k.Addr)
	s := &DNSHook{Command: "true", Propagation: Propagation{Timeout: -1}}
	_, err := p.obtain(t, map[string]acmez.Solver{acme.ChallengeTypeDNS01: s}, "www.example.org")
	if err == nil {
		t.Fatal("issued without a TXT record")
	}
	mustContainAny(t, err, "No TXT records found", "unauthorized")
}

func mustContainAny(t *testing.T, err error, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if err != nil && strings.Contains(err.Error(), w) {
			return
		}
	}
	t.Fatalf("error %v lacks all of %q", err, wants)
}
