// Package acmecatest runs ACME CAs for tests: pebble
// (github.com/letsencrypt/pebble/v2) in-process on loopback, a DNS
// resolver that sends pebble's validation to 127.0.0.1, and an http-01
// responder. Tests of acme/acmeca and of the xmppcert command use it.
package acmecatest

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/core"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
)

// PebbleOptions configure StartPebble.
type PebbleOptions struct {
	// HTTPPort and TLSPort are where pebble validates http-01 and
	// tls-alpn-01 on 127.0.0.1 (every name resolves there).
	HTTPPort, TLSPort int
	// EABKeys, when not empty, makes new accounts present External
	// Account Binding with one of these keys: key ID to base64url HMAC.
	EABKeys map[string]string
	// Verbose sends pebble's log to the test log.
	Verbose bool
	// ExtraProfiles are offered beside Profiles, e.g. one of seconds for
	// a client that is to renew within a test; only the orders of a
	// client that always names a profile should get them.
	ExtraProfiles map[string]time.Duration
}

// Profiles are the ACME profiles the pebble of StartPebble offers.
// pebble gives an order that names no profile a random one of them.
var Profiles = map[string]time.Duration{
	"classic":    90 * 24 * time.Hour,
	"shortlived": 160 * time.Hour,
}

// Pebble is a running pebble.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// TLSRoot is the self-signed certificate of the server's HTTPS;
	// IssuingRoot is the root pebble's certificates chain to.
	TLSRoot, IssuingRoot *x509.Certificate
	// Server is the HTTPS server.
	Server *httptest.Server

	store    *db.MemoryStore
	mu       sync.Mutex
	orders   []Order
	accounts int
}

// Order is a new-order request pebble received.
type Order struct {
	Identifiers []string
	Replaces    string
	Profile     string
	// Status is pebble's HTTP status answer (201 when accepted).
	Status int
}

// StartPebble runs pebble until the test ends. It sets pebble's
// environment (no random validation sleeps, no random badNonce, no
// authorization reuse), so its tests cannot run in parallel.
func StartPebble(t testing.TB, o PebbleOptions) *Pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	var out io.Writer = io.Discard
	if o.Verbose {
		out = testWriter{t}
	}
	logger := log.New(out, "pebble ", log.Lmicroseconds)
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{}
	for name, d := range Profiles {
		profiles[name] = ca.Profile{Description: name, ValidityPeriod: uint64(d / time.Second)}
	}
	for name, d := range o.ExtraProfiles {
		profiles[name] = ca.Profile{Description: name, ValidityPeriod: uint64(d / time.Second)}
	}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	resolver := StartResolver(t)
	vaImpl := va.New(logger, o.HTTPPort, o.TLSPort, true, resolver, store)
	for kid, hmac := range o.EABKeys {
		if err := store.AddExternalAccountKeyByID(kid, hmac); err != nil {
			t.Fatal(err)
		}
	}
	front := wfe.New(logger, store, vaImpl, authority, nil, true, len(o.EABKeys) > 0, 0, 0)
	p := &Pebble{store: store}
	inner := front.Handler()
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.observe(w, r, inner)
	}))
	// The kernel may give the server a port the caller found free for
	// its challenge responders a moment ago: take another then.
	for port := p.Server.Listener.Addr().(*net.TCPAddr).Port; port == o.HTTPPort || port == o.TLSPort; port = p.Server.Listener.Addr().(*net.TCPAddr).Port {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.Server.Listener.Close()
		p.Server.Listener = ln
	}
	p.Server.StartTLS()
	t.Cleanup(p.Server.Close)
	p.Directory = p.Server.URL + wfe.DirectoryPath
	p.TLSRoot = p.Server.Certificate()
	p.IssuingRoot = authority.GetRootCert(0).Cert
	return p
}

// observe records new-order and new-account requests on their way to
// pebble.
func (p *Pebble) observe(w http.ResponseWriter, r *http.Request, next http.Handler) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/order-plz":
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		var payload struct {
			Identifiers []acme.Identifier `json:"identifiers"`
			Replaces    string            `json:"replaces"`
			Profile     string            `json:"profile"`
		}
		jwsPayload(body, &payload)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		o := Order{Replaces: payload.Replaces, Profile: payload.Profile, Status: sw.status}
		for _, id := range payload.Identifiers {
			o.Identifiers = append(o.Identifiers, id.Value)
		}
		p.mu.Lock()
		p.orders = append(p.orders, o)
		p.mu.Unlock()
		return
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/finalize-order/"):
		next.ServeHTTP(w, r)
		p.finalized(strings.TrimPrefix(r.URL.Path, "/finalize-order/"))
		return
	case r.Method == http.MethodPost && r.URL.Path == "/sign-me-up":
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == http.StatusCreated {
			p.mu.Lock()
			p.accounts++
			p.mu.Unlock()
		}
		return
	}
	next.ServeHTTP(w, r)
}

// finalized waits, before pebble's answer to a finalization goes out,
// until pebble has finished the order in the background: its
// certificate issued and, for a renewal, the replaced order marked as
// replaced. pebble reads that mark without its lock when the next order
// names the same certificate (a data race inside pebble that the race
// detector reports when a client orders again at once); waiting here,
// and reading the mark under the order's lock, orders the two.
func (p *Pebble) finalized(id string) {
	o := p.store.GetOrderByID(id)
	if o == nil {
		return
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		o.RLock()
		issued, replaces, errored := o.CertificateObject != nil, o.Replaces, o.Error != nil
		o.RUnlock()
		if errored {
			return
		}
		if !issued {
			continue
		}
		if replaces == "" {
			return
		}
		parts := strings.Split(replaces, ".")
		serial, err := base64.RawURLEncoding.DecodeString(parts[len(parts)-1])
		if err != nil {
			return
		}
		replaced, err := p.store.GetOrderByIssuedSerial(hex.EncodeToString(new(big.Int).SetBytes(serial).Bytes()))
		if err != nil {
			return
		}
		replaced.RLock()
		marked := replaced.IsReplaced
		replaced.RUnlock()
		if marked {
			return
		}
	}
}

// jwsPayload decodes the JSON payload of a flattened JWS without
// verifying it.
func jwsPayload(body []byte, v any) {
	var jws struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(body, &jws) != nil {
		return
	}
	b, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil {
		return
	}
	json.Unmarshal(b, v)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader notes the status.
func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write notes an implicit 200.
func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Orders lists the new-order requests pebble received.
func (p *Pebble) Orders() []Order {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Order(nil), p.orders...)
}

// Revoke marks a certificate pebble issued as revoked, as a CA does after
// a key compromise or a mis-issuance: its renewal information (ARI) then
// says to renew at once.
func (p *Pebble) Revoke(t testing.TB, leaf *x509.Certificate) {
	t.Helper()
	c := p.store.GetCertificateByDER(leaf.Raw)
	if c == nil {
		t.Fatalf("pebble did not issue the certificate with serial %x", leaf.SerialNumber)
	}
	p.store.RevokeCertificate(&core.RevokedCertificate{Certificate: c, RevokedAt: time.Now()})
}

// NewAccounts counts the accounts pebble created.
func (p *Pebble) NewAccounts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accounts
}

// Roots is a pool of the HTTPS root and the issuing root.
func (p *Pebble) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.TLSRoot)
	pool.AddCert(p.IssuingRoot)
	return pool
}

// RootsPEM is the HTTPS root and the issuing root in PEM, a --trust-root
// file.
func (p *Pebble) RootsPEM() []byte {
	var b []byte
	for _, c := range []*x509.Certificate{p.TLSRoot, p.IssuingRoot} {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

type testWriter struct{ t testing.TB }

// Write logs one line of pebble's log.
func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// StartResolver runs a DNS server over TCP on loopback, as pebble's
// validation asks it, that answers every A question with 127.0.0.1 and
// every other question with no records. It returns its address.
func StartResolver(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Net: "tcp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// HTTP01 is an http-01 responder on a loopback port, an acmez.Solver.
type HTTP01 struct {
	// Port is where it listens on 127.0.0.1.
	Port int

	mu       sync.Mutex
	silent   bool
	keys     map[string]string
	requests []string
}

// NewHTTP01 starts an http-01 responder until the test ends.
func NewHTTP01(t testing.TB) *HTTP01 {
	s := &HTTP01{keys: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Host+r.URL.Path)
		v, ok := s.keys[r.URL.Path]
		silent := s.silent
		s.mu.Unlock()
		if !ok || silent {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, v)
	}))
	t.Cleanup(srv.Close)
	s.Port = srv.Listener.Addr().(*net.TCPAddr).Port
	return s
}

// Present serves the challenge's key authorization.
func (s *HTTP01) Present(_ context.Context, ch acme.Challenge) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[ch.HTTP01ResourcePath()] = ch.KeyAuthorization
	return nil
}

// CleanUp stops serving it.
func (s *HTTP01) CleanUp(_ context.Context, ch acme.Challenge) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, ch.HTTP01ResourcePath())
	return nil
}

// Requests lists the validation requests received, as host and path.
func (s *HTTP01) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// SetSilent switches answering off (true: 404 to everything, a
// challenge that never validates) or on.
func (s *HTTP01) SetSilent(v bool) {
	s.mu.Lock()
	s.silent = v
	s.mu.Unlock()
}

// FakeCA is a minimal ACME server on loopback (plain http, which
// ParseDirectory allows there) whose every answer a test can replace:
// accounts are created, orders stay pending, authorizations never
// validate.
type FakeCA struct {
	srv   *httptest.Server
	fault func(w http.ResponseWriter, r *http.Request) bool
	mu    sync.Mutex
	hits  map[string]int
	nonce int
}

// StartFakeCA runs a FakeCA until the test ends. fault, when not nil,
// sees every request first and handles it by returning true.
func StartFakeCA(t testing.TB, fault func(w http.ResponseWriter, r *http.Request) bool) *FakeCA {
	f := &FakeCA{fault: fault, hits: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// Directory is the directory URL.
func (f *FakeCA) Directory() string { return f.srv.URL + "/dir" }

// Count returns how often a path was asked for with a method.
func (f *FakeCA) Count(method, path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[method+" "+path]
}

// serve answers as a CA whose authorizations never validate.
func (f *FakeCA) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.Method+" "+r.URL.Path]++
	f.nonce++
	w.Header().Set("Replay-Nonce", fmt.Sprintf("nonce-%d", f.nonce))
	f.mu.Unlock()
	if f.fault != nil && f.fault(w, r) {
		return
	}
	base := f.srv.URL
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	chall := map[string]any{"type": "http-01", "url": base + "/chall/1", "token": "dG9rZW4tdG9rZW4tdG9rZW4tdG9rZW4", "status": "pending"}
	switch r.URL.Path {
	case "/dir":
		reply(200, map[string]any{"newNonce": base + "/nonce", "newAccount": base + "/acct", "newOrder": base + "/order",
			"revokeCert": base + "/revoke", "keyChange": base + "/key"})
	case "/nonce":
		w.WriteHeader(http.StatusOK)
	case "/acct":
		w.Header().Set("Location", base+"/acct/1")
		reply(201, map[string]any{"status": "valid"})
	case "/order":
		w.Header().Set("Location", base+"/order/1")
		reply(201, map[string]any{"status": "pending", "identifiers": []map[string]string{{"type": "dns", "value": "example.org"}},
			"authorizations": []string{base + "/authz/1"}, "finalize": base + "/finalize/1"})
	case "/authz/1":
		reply(200, map[string]any{"status": "pending", "identifier": map[string]string{"type": "dns", "value": "example.org"},
			"challenges": []any{chall}})
	case "/chall/1":
		chall["status"] = "processing"
		reply(200, chall)
	default:
		http.NotFound(w, r)
	}
}

// Problem writes an ACME problem document.
func Problem(w http.ResponseWriter, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": acme.ProblemTypeNamespace + typ, "detail": detail, "status": status})
}
