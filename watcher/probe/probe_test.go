package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/tlsscan"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func TestProbeC2SStartTLS(t *testing.T) {
	srv := server(t, xmpptlstest.Config{
		Features: " <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\n" + xmpptlstest.DefaultFeatures,
	})
	res := Probe(t.Context(), domain, options(srv.Addr))
	e := one(t, res)
	if !res.OK || !e.OK || res.Failure != "" || !e.Completed {
		dump(t, res)
		t.Fatalf("ok=%v failure=%q, want a clean probe", res.OK, res.Failure)
	}
	if e.Encryption != EncryptionStartTLS || !e.Encrypted || !e.StartTLS.Offered || !e.StartTLS.Required {
		t.Errorf("encryption %q starttls %+v", e.Encryption, e.StartTLS)
	}
	if e.BeforeTLS == nil || e.BeforeTLS.Header.Namespace != "jabber:client" || e.BeforeTLS.Header.ID != "fake" || len(e.BeforeTLS.Features.Names) != 2 {
		t.Errorf("before TLS %+v", e.BeforeTLS)
	}
	if e.AfterTLS == nil || !slices.Equal(e.AfterTLS.Features.Mechanisms, []string{"SCRAM-SHA-1", "PLAIN"}) || e.AfterTLS.Features.StartTLS {
		t.Errorf("after TLS %+v", e.AfterTLS)
	}
	tl := e.TLS
	if tl == nil || tl.Version != "TLS 1.3" || tl.Cipher == "" || tl.Group == "" || !tl.ForwardSecret || tl.SNI != domain || len(tl.ALPNOffered) != 0 {
		t.Fatalf("tls %+v", tl)
	}
	if len(tl.Chain) != 2 {
		t.Fatalf("chain %+v", tl.Chain)
	}
	leaf := tl.Chain[0]
	if leaf.Subject != "CN="+domain || leaf.KeyType != "ECDSA" || leaf.KeySize != 256 || leaf.SignatureAlgorithm != "ECDSA-SHA256" ||
		leaf.DaysLeft != 60 || !slices.Equal(leaf.EKU, []string{"serverAuth", "clientAuth"}) || len(leaf.SHA256) != 64 || len(leaf.SPKISHA256) != 64 {
		t.Errorf("leaf %+v", leaf)
	}
	if !tl.Chain[1].IsCA {
		t.Errorf("issuer %+v", tl.Chain[1])
	}
	if e.Certificate == nil || !e.Certificate.Valid || e.Certificate.Service != xmppaddr.ServiceClient {
		t.Errorf("certificate verdict %+v", e.Certificate)
	}
	if e.Dialback != nil || e.External != nil || e.Full != nil || e.DANE != nil {
		t.Errorf("c2s without options has dialback %v external %v full %v dane %v", e.Dialback, e.External, e.Full, e.DANE)
	}
	if len(e.Findings) != 0 {
		t.Errorf("findings %v", e.Findings)
	}
	tm := e.Timings
	if tm.Connect <= 0 || tm.Stream <= 0 || tm.StartTLS <= 0 || tm.TLS <= 0 || tm.Features <= 0 || tm.Total < tm.TLS || tm.DNS != 0 {
		t.Errorf("timings %+v", tm)
	}
	for id, want := range map[string]Status{
		RequirementEncryption: StatusPass, RequirementTLS12: StatusPass, RequirementFSPreferred: StatusPass,
		RequirementAuthenticated: StatusPass, RequirementNoSSLv2: StatusUnknown, RequirementFSRequired: StatusUnknown,
		RequirementOldVersions: StatusUnknown,
	} {
		if r := requirement(t, res.Grade, id); r.Status != want {
			t.Errorf("%s: %s (%v), want %s", id, r.Status, r.Evidence, want)
		}
	}
	if res.Grade.Verdict != StatusUnknown || !strings.Contains(res.Grade.Summary, "a full scan") || !strings.Contains(res.Grade.Summary, RequirementNoSSLv2) {
		t.Errorf("verdict %s %q, want unknown pointing at a full scan", res.Grade.Verdict, res.Grade.Summary)
	}
	h := seen(t, srv, 1)[0]
	if h.StreamNS != "jabber:client" || h.To != domain || h.From != "" || !h.StartTLS || h.SNI != domain || !h.Restarted || h.ClientCert {
		t.Errorf("server saw %+v", h)
	}
}

func TestProbeS2SStartTLS(t *testing.T) {
	srv := server(t, xmpptlstest.Config{
		Features:         xmpptlstest.Dialback(false) + xmpptlstest.DefaultFeatures,
		FeaturesAfterTLS: xmpptlstest.Dialback(true) + xmpptlstest.Mechanisms("EXTERNAL"),
		Split:            true,
	})
	opts := options(srv.Addr)
	opts.Service = xmppaddr.ServiceServer
	opts.From = "us.test"
	res := Probe(t.Context(), domain, opts)
	e := one(t, res)
	if !res.OK {
		dump(t, res)
		t.Fatalf("failure %q: %s", res.Failure, res.Error)
	}
	want := Dialback{Offered: true, BeforeTLS: true, AfterTLS: true, Errors: true, StreamNamespace: true}
	if e.Dialback == nil || *e.Dialback != want {
		t.Errorf("dialback %+v, want %+v", e.Dialback, want)
	}
	if !e.BeforeTLS.Header.DialbackNS || e.BeforeTLS.Header.Namespace != "jabber:server" {
		t.Errorf("header %+v", e.BeforeTLS.Header)
	}
	if !slices.Equal(e.AfterTLS.Features.Mechanisms, []string{"EXTERNAL"}) {
		t.Errorf("mechanisms after TLS %v", e.AfterTLS.Features.Mechanisms)
	}
	if e.Certificate.Service != xmppaddr.ServiceServer || !e.Certificate.Valid {
		t.Errorf("verdict %+v", e.Certificate)
	}
	if res.From != "us.test" || hasFinding(e, FindingNoFrom) {
		t.Errorf("from %q findings %v", res.From, e.Findings)
	}
	h := seen(t, srv, 1)[0]
	if h.StreamNS != "jabber:server" || h.DialbackNS != "jabber:server:dialback" || h.From != "us.test" || h.To != domain || h.Version != "1.0" || !h.Restarted {
		t.Errorf("server saw %+v", h)
	}
}

func TestProbeDirectTLS(t *testing.T) {
	for _, svc := range []xmppaddr.Service{xmppaddr.ServiceClient, xmppaddr.ServiceServer} {
		t.Run(string(svc), func(t *testing.T) {
			srv := server(t, xmpptlstest.Config{DirectTLS: true})
			opts := options(srv.Addr)
			opts.Service, opts.DirectTLS = svc, true
			res := Probe(t.Context(), domain, opts)
			e := one(t, res)
			if !res.OK {
				dump(t, res)
				t.Fatalf("failure %q: %s", res.Failure, res.Error)
			}
			if e.Encryption != EncryptionDirectTLS || e.BeforeTLS != nil || e.StartTLS.Offered || e.AfterTLS == nil {
				t.Errorf("encryption %q before %v starttls %+v after %v", e.Encryption, e.BeforeTLS, e.StartTLS, e.AfterTLS)
			}
			if !slices.Equal(e.TLS.ALPNOffered, []string{string(svc)}) || e.TLS.ALPNNegotiated != string(svc) {
				t.Errorf("ALPN offered %v negotiated %q", e.TLS.ALPNOffered, e.TLS.ALPNNegotiated)
			}
			if e.Timings.Stream != 0 || e.Timings.StartTLS != 0 || e.Timings.Features <= 0 {
				t.Errorf("timings %+v", e.Timings)
			}
			if r := requirement(t, e.Grade, RequirementEncryption); r.Status != StatusPass {
				t.Errorf("encryption %+v", r)
			}
			h := seen(t, srv, 1)[0]
			wantNS := "jabber:client"
			if svc == xmppaddr.ServiceServer {
				wantNS = "jabber:server"
			}
			if h.SNI != domain || h.ALPN != string(svc) || h.StartTLS || h.StreamNS != wantNS || !h.Restarted {
				t.Errorf("server saw %+v", h)
			}
		})
	}
	t.Run("no ALPN", func(t *testing.T) {
		srv := server(t, xmpptlstest.Config{DirectTLS: true, TLSConfig: func(c *tls.Config) { c.NextProtos = nil }})
		opts := options(srv.Addr)
		opts.DirectTLS = true
		e := one(t, Probe(t.Context(), domain, opts))
		if !e.OK || e.TLS.ALPNNegotiated != "" || !hasFinding(e, FindingALPNNotNegotiated) {
			t.Errorf("ok=%v alpn %q findings %v", e.OK, e.TLS.ALPNNegotiated, e.Findings)
		}
	})
}

// SRV: XEP-0368 merge of the STARTTLS and direct TLS records in one
// priority order, addresses from A records, the DNS time on each
// endpoint.
func TestProbeSRV(t *testing.T) {
	starttls := server(t, xmpptlstest.Config{})
	direct := server(t, xmpptlstest.Config{DirectTLS: true})
	z := testdns.StartFake(t)
	z.Add(t,
		fmt.Sprintf("_xmpp-client._tcp.example.test. 300 IN SRV 10 0 %d xmpp.example.test.", starttls.Port()),
		fmt.Sprintf("_xmpps-client._tcp.example.test. 300 IN SRV 5 0 %d xmpp.example.test.", direct.Port()),
		"xmpp.example.test. 300 IN A 127.0.0.1",
	)
	opts := options("")
	opts.Resolver = z.Addr
	res := Probe(t.Context(), domain, opts)
	if !res.OK || len(res.Endpoints) != 2 {
		dump(t, res)
		t.Fatalf("ok=%v failure=%q endpoints=%d", res.OK, res.Failure, len(res.Endpoints))
	}
	if !res.Endpoints[0].DirectTLS || res.Endpoints[1].DirectTLS {
		t.Errorf("order: direct TLS (priority 5) should come before STARTTLS (priority 10)")
	}
	for _, e := range res.Endpoints {
		if e.Source != "srv" || e.Host != "xmpp.example.test" || !strings.HasPrefix(e.Address, "127.0.0.1:") || e.Timings.DNS <= 0 {
			t.Errorf("endpoint %s source %s host %s dns %v", e.Address, e.Source, e.Host, e.Timings.DNS)
		}
	}
	r := res.Resolution
	if r.SRV == nil || len(r.SRV.Records) != 2 || len(r.Targets) != 2 || r.Resolver != z.Addr {
		t.Errorf("resolution %+v", r)
	}
	if h := seen(t, direct, 1)[0]; h.SNI != domain {
		t.Errorf("SNI %q, want the domain, not the SRV target", h.SNI)
	}

	t.Run("direct TLS only", func(t *testing.T) {
		opts := opts
		opts.DirectTLS = true
		res := Probe(t.Context(), domain, opts)
		if e := one(t, res); !e.DirectTLS || !e.OK {
			t.Errorf("endpoint %+v", e)
		}
	})
}

func TestProbeSRVDot(t *testing.T) {
	z := testdns.StartFake(t)
	z.Add(t, "_xmpp-client._tcp.example.test. 300 IN SRV 0 0 0 .")
	opts := options("")
	opts.Resolver = z.Addr
	res := Probe(t.Context(), domain, opts)
	if res.OK || res.Failure != CodeNotOffered || len(res.Endpoints) != 0 || !res.Resolution.SRV.NotOffered {
		dump(t, res)
		t.Fatalf("failure %q, want not-offered", res.Failure)
	}
	if len(res.Endpoints) != 0 || res.Grade.Verdict != StatusUnknown {
		t.Errorf("grade %+v", res.Grade)
	}
}

// Without SRV records, peers try the domain itself on 5222 (5269 for
// s2s) with STARTTLS.
func TestProbeFallback(t *testing.T) {
	srv := server(t, xmpptlstest.Config{})
	z := testdns.StartFake(t)
	z.Add(t, "example.test. 300 IN A 127.0.0.1")
	for _, svc := range []xmppaddr.Service{xmppaddr.ServiceClient, xmppaddr.ServiceServer} {
		opts := options("")
		opts.Resolver, opts.Service, opts.Dial = z.Addr, svc, redirect(srv.Addr)
		res := Probe(t.Context(), domain, opts)
		e := one(t, res)
		want := uint16(5222)
		if svc == xmppaddr.ServiceServer {
			want = 5269
		}
		if !res.OK || e.Source != "fallback" || e.Port != want || e.Address != fmt.Sprintf("127.0.0.1:%d", want) || !res.Resolution.SRV.Fallback {
			dump(t, res)
			t.Errorf("%s: ok=%v endpoint %s source %s", svc, res.OK, e.Address, e.Source)
		}
	}
	// No fallback for direct TLS.
	opts := options("")
	opts.Resolver, opts.DirectTLS = z.Addr, true
	if res := Probe(t.Context(), domain, opts); res.Failure != CodeNotOffered {
		t.Errorf("direct TLS without SRV: failure %q, want not-offered", res.Failure)
	}
}

func TestProbeDNSError(t *testing.T) {
	z := testdns.StartFake(t)
	z.ServFail("example.test")
	opts := options("")
	opts.Resolver = z.Addr
	res := Probe(t.Context(), domain, opts)
	if res.OK || res.Failure != CodeDNSError || !strings.Contains(res.Error, "SERVFAIL") {
		dump(t, res)
		t.Fatalf("failure %q error %q, want dns-error with SERVFAIL", res.Failure, res.Error)
	}

	t.Run("target without address", func(t *testing.T) {
		z := testdns.StartFake(t)
		z.Add(t, "_xmpp-client._tcp.example.test. 300 IN SRV 0 0 5222 gone.example.test.")
		opts := options("")
		opts.Resolver = z.Addr
		res := Probe(t.Context(), domain, opts)
		e := one(t, res)
		if res.Failure != CodeDNSError || e.Failure != CodeDNSError || e.Phase != "dns" || e.Error == "" {
			dump(t, res)
			t.Errorf("failure %q endpoint %q phase %q", res.Failure, e.Failure, e.Phase)
		}
	})

	t.Run("resolver silent", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		opts := options("")
		opts.Resolver, opts.Timeout, opts.Deadline = pc.LocalAddr().String(), 200*time.Millisecond, time.Second
		begin := time.Now()
		res := Probe(t.Context(), domain, opts)
		if res.Failure != CodeDNSError {
			dump(t, res)
			t.Errorf("failure %q, want dns-error", res.Failure)
		}
		if d := time.Since(begin); d > 2*time.Second {
			t.Errorf("took %v with a 1s deadline", d)
		}
	})
}

func TestProbeUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res := Probe(t.Context(), domain, options(addr))
	e := one(t, res)
	if res.OK || res.Failure != CodeUnreachable || e.Phase != "connect" || !strings.Contains(e.Error, addr) {
		dump(t, res)
		t.Fatalf("failure %q phase %q error %q", res.Failure, e.Phase, e.Error)
	}
	for _, r := range res.Grade.Requirements {
		if r.Status != StatusUnknown {
			t.Errorf("%s: %s for an unreachable endpoint", r.ID, r.Status)
		}
	}
}

func TestProbeInvalidInput(t *testing.T) {
	for name, tc := range map[string]struct {
		domain string
		opts   Options
		field  string
	}{
		"empty domain":     {"", Options{}, "domain"},
		"bad domain":       {"bad..domain", Options{}, "domain"},
		"unknown service":  {domain, Options{Service: "https"}, "service"},
		"connect no port":  {domain, Options{Connect: "xmpp.example.test"}, "connect"},
		"connect bad port": {domain, Options{Connect: "xmpp.example.test:99999"}, "connect"},
		"connect no host":  {domain, Options{Connect: ":5222"}, "connect"},
		"resolver":         {domain, Options{Resolver: "127.0.0.1"}, "resolver"},
		"from":             {domain, Options{Service: xmppaddr.ServiceServer, From: "bad..from"}, "from"},
		"negative":         {domain, Options{Timeout: -1}, "timeout"},
		"empty cert":       {domain, Options{ClientCert: &tls.Certificate{}}, "client-cert"},
	} {
		t.Run(name, func(t *testing.T) {
			err := Validate(tc.domain, tc.opts)
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != tc.field {
				t.Fatalf("Validate: %v, want an InputError for %s", err, tc.field)
			}
			res := Probe(t.Context(), tc.domain, tc.opts)
			if res.OK || res.Failure != CodeInvalidInput || res.Error != err.Error() || res.Endpoints == nil || res.Notes == nil {
				t.Errorf("result %+v", res)
			}
		})
	}
	if err := Validate("Exämple.TEST.", Options{Connect: "[::1]:5222"}); err != nil {
		t.Errorf("valid input refused: %v", err)
	}
}

func TestProbeExternal(t *testing.T) {
	p := thePKI()
	for name, tc := range map[string]struct {
		svc       xmppaddr.Service
		cert      tls.Certificate
		features  string
		result    string
		condition string
	}{
		"c2s success": {xmppaddr.ServiceClient, p.client, xmpptlstest.Mechanisms("EXTERNAL", "PLAIN"), "success", ""},
		"s2s success": {xmppaddr.ServiceServer, p.client, xmpptlstest.Mechanisms("EXTERNAL") + xmpptlstest.Dialback(true), "success", ""},
		"s2s refused": {xmppaddr.ServiceServer, p.strangerClient, xmpptlstest.Mechanisms("EXTERNAL") + xmpptlstest.Dialback(true), "failure", "not-authorized"},
		"not offered": {xmppaddr.ServiceClient, p.client, xmpptlstest.Mechanisms("PLAIN"), "not-offered", ""},
	} {
		t.Run(name, func(t *testing.T) {
			srv := server(t, xmpptlstest.Config{ClientCAs: p.ca.Pool(), ClientTime: testpki.At, FeaturesAfterTLS: tc.features})
			opts := options(srv.Addr)
			opts.Service, opts.From, opts.ClientCert = tc.svc, "us.test", &tc.cert
			res := Probe(t.Context(), domain, opts)
			e := one(t, res)
			x := e.External
			if !e.OK || x == nil || x.Result != tc.result || x.Condition != tc.condition || x.Attempted != (tc.result != "not-offered") {
				dump(t, res)
				t.Fatalf("external %+v, want %s %s", x, tc.result, tc.condition)
			}
			if tc.result == "failure" && (!strings.Contains(x.Text, "not trusted") || !hasFinding(e, FindingExternalFailed)) {
				t.Errorf("failure text %q findings %v", x.Text, e.Findings)
			}
			if tc.result == "not-offered" && !hasFinding(e, FindingExternalNotOffered) {
				t.Errorf("findings %v", e.Findings)
			}
			if x.Attempted && e.Timings.Auth <= 0 {
				t.Errorf("auth timing %v", e.Timings.Auth)
			}
			h := seen(t, srv, 1)[0]
			if !h.ClientCert || (x.Attempted && h.Auth != "EXTERNAL") || h.Authenticated != (tc.result == "success") {
				t.Errorf("server saw %+v", h)
			}
			wantAuthzid := ""
			if tc.svc == xmppaddr.ServiceServer && x.Attempted {
				wantAuthzid = "us.test"
			}
			if h.Authzid != wantAuthzid {
				t.Errorf("authzid %q, want %q", h.Authzid, wantAuthzid)
			}
		})
	}
}

// s2s with a certificate peers refuse: dialback after TLS is the
// manifesto's fallback; without it authentication fails.
func TestGradeDialbackFallback(t *testing.T) {
	p := thePKI()
	for name, tc := range map[string]struct {
		features string
		want     Status
	}{
		"dialback":    {xmpptlstest.Dialback(true), StatusPass},
		"no dialback": {xmpptlstest.Mechanisms("EXTERNAL"), StatusFail},
	} {
		t.Run(name, func(t *testing.T) {
			srv := server(t, xmpptlstest.Config{Certificate: p.untrusted, FeaturesAfterTLS: tc.features})
			opts := options(srv.Addr)
			opts.Service, opts.From = xmppaddr.ServiceServer, "us.test"
			res := Probe(t.Context(), domain, opts)
			e := one(t, res)
			if e.Failure != CodeCertificateUntrusted || !e.Completed {
				dump(t, res)
				t.Fatalf("failure %q", e.Failure)
			}
			r := requirement(t, res.Grade, RequirementAuthenticated)
			if r.Status != tc.want || len(r.Evidence) != 2 {
				t.Errorf("authenticated %+v, want %s", r, tc.want)
			}
			if tc.want == StatusFail && res.Grade.Verdict != StatusFail {
				t.Errorf("verdict %s", res.Grade.Verdict)
			}
		})
	}
}

// A weak server: TLS 1.0 only, RSA key exchange, STARTTLS optional with
// PLAIN before TLS.
func TestGradeWeakServer(t *testing.T) {
	srv := server(t, xmpptlstest.Config{
		Certificate: rsaLeaf(t, thePKI().ca, domain),
		Features:    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + xmpptlstest.Mechanisms("PLAIN", "DIGEST-MD5"),
		TLSConfig: func(c *tls.Config) {
			c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10
			c.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}
		},
	})
	res := Probe(t.Context(), domain, options(srv.Addr))
	e := one(t, res)
	if e.TLS == nil || e.TLS.Version != "TLS 1.0" || e.TLS.ForwardSecret || e.TLS.Group != "" {
		dump(t, res)
		t.Fatalf("tls %+v", e.TLS)
	}
	for _, code := range []string{FindingPlainBeforeTLS, FindingSASLBeforeTLS, FindingStartTLSOptional, FindingOldTLS, FindingNoForwardSecrecy} {
		if !hasFinding(e, code) {
			t.Errorf("no finding %s in %v", code, e.Findings)
		}
	}
	if e.Findings[0].Severity != xmppaddr.Error {
		t.Errorf("findings not sorted errors first: %v", e.Findings)
	}
	for id, want := range map[string]Status{
		RequirementEncryption: StatusFail, RequirementTLS12: StatusFail, RequirementFSPreferred: StatusFail,
	} {
		if r := requirement(t, res.Grade, id); r.Status != want {
			t.Errorf("%s: %s %v, want %s", id, r.Status, r.Evidence, want)
		}
	}
	if res.Grade.Verdict != StatusFail || !strings.Contains(res.Grade.Summary, RequirementEncryption) {
		t.Errorf("grade %s %q", res.Grade.Verdict, res.Grade.Summary)
	}
}

// Full: the scanner seam gets a dialer that hands over a connection
// ready for a ClientHello, with the domain as SNI; the scan feeds the
// grade; the handshake without SNI shows another certificate.
func TestProbeFull(t *testing.T) {
	p := thePKI()
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			srv := server(t, xmpptlstest.Config{DirectTLS: direct, GetCertificate: func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
				if hi.ServerName == "" {
					return &p.wrongName, nil
				}
				return &p.good, nil
			}})
			var scans atomic.Int32
			scan := func(ctx context.Context, dial func(context.Context) (net.Conn, error), sni string) tlsscan.Report {
				scans.Add(1)
				if sni != domain {
					t.Errorf("scan SNI %q", sni)
				}
				// The scanner speaks TLS right away on what dial returns.
				for range 2 {
					conn, err := dial(ctx)
					if err != nil {
						t.Errorf("dial: %v", err)
						return tlsscan.Report{}
					}
					tc := tls.Client(conn, &tls.Config{ServerName: sni, InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
					if err := tc.HandshakeContext(ctx); err != nil {
						t.Errorf("handshake on the scanner's connection: %v", err)
					}
					tc.Close()
				}
				yes := true
				return tlsscan.Report{
					Versions: []tlsscan.Version{
						{Name: "SSLv2", Detail: "connection closed"}, {Name: "SSLv3", Detail: "protocol_version alert"},
						{Name: "TLSv1.0", Offered: true}, {Name: "TLSv1.1"}, {Name: "TLSv1.2", Offered: true}, {Name: "TLSv1.3", Offered: true},
					},
					TLS12Ciphers: []tlsscan.Cipher{
						{ID: 0xc02b, Name: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", ForwardSecret: true},
						{ID: 0x009c, Name: "TLS_RSA_WITH_AES_128_GCM_SHA256"},
					},
					TLS13Ciphers:     []tlsscan.Cipher{{ID: 0x1301, Name: "TLS_AES_128_GCM_SHA256", ForwardSecret: true}},
					ServerPreference: &yes, NonForwardSecret: true, Errors: []string{},
				}
			}
			opts := options(srv.Addr)
			opts.DirectTLS, opts.Full, opts.FullScan = direct, true, scan
			res := Probe(t.Context(), domain, opts)
			e := one(t, res)
			if !e.OK || scans.Load() != 1 || e.Full == nil || e.Full.Scan == nil || e.Full.SNI == nil {
				dump(t, res)
				t.Fatalf("ok=%v scans=%d full=%+v", e.OK, scans.Load(), e.Full)
			}
			s := e.Full.SNI
			if s.Same || s.WithoutSNI == "" || s.WithSNI != e.TLS.Chain[0].SHA256 || s.WithoutSNIValid || s.WithoutSNICertificate == nil ||
				s.WithoutSNICertificate.Subject != "CN=elsewhere.test" || !hasFinding(e, FindingSNIDifferent) {
				t.Errorf("sni %+v findings %v", s, e.Findings)
			}
			if e.Timings.Full <= 0 {
				t.Errorf("full timing %v", e.Timings.Full)
			}
			for id, want := range map[string]Status{
				RequirementNoSSLv2: StatusPass, RequirementOldVersions: StatusFail, RequirementFSRequired: StatusFail,
				RequirementFSPreferred: StatusPass, RequirementTLS12: StatusPass,
			} {
				if r := requirement(t, res.Grade, id); r.Status != want {
					t.Errorf("%s: %s %v, want %s", id, r.Status, r.Evidence, want)
				}
			}
			// The advisory failures do not fail the verdict.
			if res.Grade.Verdict != StatusPass || !strings.Contains(res.Grade.Summary, "advisory") {
				t.Errorf("grade %s %q", res.Grade.Verdict, res.Grade.Summary)
			}
			fsr := requirement(t, res.Grade, RequirementFSRequired)
			if !strings.Contains(strings.Join(fsr.Evidence, " "), "TLS_RSA_WITH_AES_128_GCM_SHA256") {
				t.Errorf("evidence %v", fsr.Evidence)
			}
		})
	}
	t.Run("no scanner", func(t *testing.T) {
		srv := server(t, xmpptlstest.Config{})
		opts := options(srv.Addr)
		opts.Full = true
		e := one(t, Probe(t.Context(), domain, opts))
		if e.Full == nil || e.Full.Scan != nil || len(e.Full.Notes) != 1 || e.Full.SNI == nil || !e.Full.SNI.Same || !e.Full.SNI.WithoutSNIValid {
			t.Errorf("full %+v", e.Full)
		}
	})
}

// Pins: DANE through the resolver's AD bit and a 3 1 1 record at the
// SRV target, POSH from the domain's web server.
func TestProbePins(t *testing.T) {
	p := thePKI()
	srv := server(t, xmpptlstest.Config{})
	z := testdns.StartFake(t, "example.test.")
	pin, err := pinning.NewTLSA(p.good.Leaf, pinning.UsageDANEEE, pinning.SelectorSPKI, pinning.MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	owner := pinning.Endpoint{Target: "xmpp.example.test", Port: srv.Port()}.Owner()
	pin.Name = owner
	z.Add(t,
		fmt.Sprintf("_xmpp-client._tcp.example.test. 300 IN SRV 0 0 %d xmpp.example.test.", srv.Port()),
		"xmpp.example.test. 300 IN A 127.0.0.1",
		pin.String(),
	)
	doc, err := pinning.NewPOSH([]*x509.Certificate{p.good.Leaf}, time.Hour, pinning.POSHOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(doc)
	web := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/posh/xmpp-client.json" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	web.TLS = &tls.Config{Certificates: []tls.Certificate{p.good}}
	web.StartTLS()
	defer web.Close()
	webAddr := web.Listener.Addr().String()

	opts := options("")
	opts.Resolver, opts.Pins = z.Addr, true
	opts.POSH = &pinning.POSHFetcher{RootCAs: p.ca.Pool(), DialContext: redirect(webAddr), Now: func() time.Time { return testpki.At }}
	res := Probe(t.Context(), domain, opts)
	e := one(t, res)
	if !res.OK || res.Pins == nil || e.DANE == nil || e.POSH == nil {
		dump(t, res)
		t.Fatalf("ok=%v pins=%v dane=%v posh=%v", res.OK, res.Pins != nil, e.DANE, e.POSH)
	}
	if d := e.DANE; d.Status != pinning.StatusMatch || !d.Applies || !d.Matched || d.Owner != owner || len(d.Records) != 1 {
		t.Errorf("dane %+v", d)
	}
	if e.POSH.Code != pinning.POSHPinMatch {
		t.Errorf("posh %+v", e.POSH)
	}
}

// ProbeAll keeps to its concurrency and returns results in order.
func TestProbeAll(t *testing.T) {
	var active, peak atomic.Int32
	srv := xmpptlstest.Start(t, xmpptlstest.Config{Handler: func(c net.Conn) {
		n := active.Add(1)
		defer active.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
	}})
	var jobs []Job
	for i := range 7 {
		jobs = append(jobs, Job{Domain: fmt.Sprintf("d%d.example.test", i), Options: options(srv.Addr)})
	}
	jobs = append(jobs, Job{Domain: "bad..domain"})
	out := ProbeAll(t.Context(), jobs, 2)
	if len(out) != len(jobs) {
		t.Fatalf("%d results for %d jobs", len(out), len(jobs))
	}
	for i, r := range out[:7] {
		if r.Domain != jobs[i].Domain || r.Failure != CodeProtocolError {
			t.Errorf("result %d: domain %q failure %q", i, r.Domain, r.Failure)
		}
	}
	if out[7].Failure != CodeInvalidInput {
		t.Errorf("last: %q", out[7].Failure)
	}
	if p := peak.Load(); p > 2 || p == 0 {
		t.Errorf("peak concurrency %d, want at most 2", p)
	}
}

// The JSON form: snake_case keys, lists [] rather than null.
func TestResultJSON(t *testing.T) {
	srv := server(t, xmpptlstest.Config{})
	for name, res := range map[string]Result{
		"ok":      Probe(t.Context(), domain, options(srv.Addr)),
		"invalid": Probe(t.Context(), "", Options{}),
		"s2s":     Probe(t.Context(), domain, func() Options { o := options(srv.Addr); o.Service = xmppaddr.ServiceServer; return o }()),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "null") {
				var m map[string]any
				json.Unmarshal(b, &m)
				// Only objects may be null; find any null list.
				checkNoNullLists(t, "", m)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"domain", "service", "checked_at", "duration_ms", "ok", "failure", "resolution", "endpoints", "pins", "grade", "notes"} {
				if _, ok := m[k]; !ok {
					t.Errorf("no %q key", k)
				}
			}
			checkSnake(t, "", m)
		})
	}
}

// listKeys are the keys whose values are lists; they must never be null.
var listKeys = map[string]bool{
	"endpoints": true, "notes": true, "targets": true, "addresses": true, "names": true, "sasl_mechanisms": true,
	"alpn_offered": true, "chain": true, "eku": true, "findings": true, "requirements": true, "evidence": true,
	"records": true, "references": true, "matched": true, "presented": true, "peers": true,
}

func checkNoNullLists(t *testing.T, path string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if val == nil && listKeys[k] {
				t.Errorf("%s.%s is null", path, k)
			}
			checkNoNullLists(t, path+"."+k, val)
		}
	case []any:
		for i, val := range x {
			checkNoNullLists(t, fmt.Sprintf("%s[%d]", path, i), val)
		}
	}
}

func checkSnake(t *testing.T, path string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if k != strings.ToLower(k) || strings.ContainsAny(k, "- ") {
				t.Errorf("key %s.%s is not snake_case", path, k)
			}
			checkSnake(t, path+"."+k, val)
		}
	case []any:
		for i, val := range x {
			checkSnake(t, fmt.Sprintf("%s[%d]", path, i), val)
		}
	}
}

// The probe's deadline holds whatever the context says, and cancelling
// the context ends a probe at once.
func TestProbeDeadlineAndCancel(t *testing.T) {
	srv := xmpptlstest.Start(t, xmpptlstest.Config{Handler: func(c net.Conn) { io.Copy(io.Discard, c) }})
	opts := options(srv.Addr)
	opts.Timeout, opts.Deadline = 10*time.Second, 300*time.Millisecond
	begin := time.Now()
	res := Probe(context.Background(), domain, opts)
	if d := time.Since(begin); d > 2*time.Second || res.Failure != CodeTimeout {
		t.Errorf("took %v, failure %q; want a timeout after 300ms", d, res.Failure)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	opts.Deadline = 10 * time.Second
	begin = time.Now()
	res = Probe(ctx, domain, opts)
	if d := time.Since(begin); d > 2*time.Second || res.Failure != CodeCanceled {
		t.Errorf("took %v, failure %q; want canceled after 100ms", d, res.Failure)
	}
}

// FullDeadline gives the full scan a bound of its own: a scan that
// outlasts Deadline completes (no note that the probe ran out of time),
// and without FullDeadline the same scan is cut off by Deadline.
func TestProbeFullDeadline(t *testing.T) {
	srv := server(t, xmpptlstest.Config{})
	scan := func(ctx context.Context, _ func(context.Context) (net.Conn, error), _ string) tlsscan.Report {
		select {
		case <-time.After(600 * time.Millisecond):
			return tlsscan.Report{Versions: []tlsscan.Version{{Name: "SSLv2"}}, Errors: []string{}}
		case <-ctx.Done():
			return tlsscan.Report{Errors: []string{"cut off: " + ctx.Err().Error()}}
		}
	}
	for _, fullDeadline := range []time.Duration{0, 5 * time.Second} {
		opts := options(srv.Addr)
		opts.Deadline, opts.Full, opts.FullScan, opts.FullDeadline = 400*time.Millisecond, true, scan, fullDeadline
		res := Probe(t.Context(), domain, opts)
		e := one(t, res)
		complete := e.Full != nil && e.Full.Scan != nil && len(e.Full.Scan.Errors) == 0
		noted := strings.Contains(strings.Join(res.Notes, " "), "ran out of time")
		if complete != (fullDeadline > 0) || noted == (fullDeadline > 0) || !e.OK {
			dump(t, res)
			t.Errorf("FullDeadline %v: scan complete %v, out-of-time note %v, endpoint ok %v; want the scan complete and no note only with FullDeadline", fullDeadline, complete, noted, e.OK)
		}
	}
}
