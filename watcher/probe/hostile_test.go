package probe

import (
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
)

// Hostile and broken servers: each probe ends
// within its deadline with the right classification and without holding
// more than the negotiation limits in memory.
func TestHostile(t *testing.T) {
	p := thePKI()
	header := xmpptlstest.Header("jabber:client", domain)
	script := func(s string) func() io.Reader {
		return func() io.Reader { return strings.NewReader(s) }
	}
	type check func(t *testing.T, e Endpoint)
	for _, tc := range []struct {
		name  string
		cfg   xmpptlstest.Config
		opts  func(*Options)
		code  Code
		phase string
		// within is how long the probe may take (well under the deadline
		// unless the case is about the deadline).
		within time.Duration
		check  check
	}{
		{
			name:  "no STARTTLS",
			cfg:   xmpptlstest.Config{Features: xmpptlstest.Mechanisms("PLAIN")},
			code:  CodeNoStartTLS,
			phase: "stream",
			check: func(t *testing.T, e Endpoint) {
				if e.Encryption != EncryptionNone || e.StartTLS.Offered || e.BeforeTLS == nil || !hasFinding(e, FindingPlainBeforeTLS) || !hasFinding(e, FindingNoStartTLS) {
					t.Errorf("encryption %s starttls %+v findings %v", e.Encryption, e.StartTLS, e.Findings)
				}
				if r := requirement(t, e.Grade, RequirementEncryption); r.Status != StatusFail {
					t.Errorf("encryption requirement %+v", r)
				}
			},
		},
		{
			name:  "STARTTLS then garbage",
			cfg:   xmpptlstest.Config{TLSReply: "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"},
			code:  CodeTLSError,
			phase: "tls",
		},
		{
			name:  "garbage instead of proceed",
			cfg:   xmpptlstest.Config{Answer: "HTTP/1.1 400 Bad Request\r\n\r\n"},
			code:  CodeProtocolError,
			phase: "starttls",
		},
		{
			name:  "STARTTLS failure",
			cfg:   xmpptlstest.Config{Answer: "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>"},
			code:  CodeStartTLSFailure,
			phase: "starttls",
		},
		{
			// The injected features must never be read as if they came
			// over TLS: were they kept, the handshake would fail, and the
			// features after TLS would show the injected mechanism.
			name: "plaintext injected after proceed",
			cfg: xmpptlstest.Config{Inject: header + "<stream:features>" + xmpptlstest.Mechanisms("INJECTED") + "</stream:features>",
				FeaturesAfterTLS: xmpptlstest.Mechanisms("SCRAM-SHA-1")},
			check: func(t *testing.T, e Endpoint) {
				if got := e.AfterTLS.Features.Mechanisms; !slices.Equal(got, []string{"SCRAM-SHA-1"}) {
					t.Errorf("mechanisms after TLS %v: injected plaintext was read", got)
				}
			},
		},
		{
			name:  "stream error",
			cfg:   xmpptlstest.Config{Script: script(header + xmpptlstest.StreamError("host-unknown", "no such host <example.test> here"))},
			code:  CodeStreamError,
			phase: "stream",
			check: func(t *testing.T, e Endpoint) {
				if se := e.StreamError; se == nil || se.Condition != "host-unknown" || se.Text != "no such host <example.test> here" {
					t.Errorf("stream error %+v, want it verbatim", se)
				}
			},
		},
		{
			name:  "stream error after TLS",
			cfg:   xmpptlstest.Config{ScriptAfterTLS: script(header + xmpptlstest.StreamError("policy-violation", ""))},
			code:  CodeStreamError,
			phase: "features",
			check: func(t *testing.T, e Endpoint) {
				if e.StreamError == nil || e.StreamError.Condition != "policy-violation" || !e.Encrypted || e.TLS == nil || e.Certificate == nil || e.Completed {
					t.Errorf("stream error %+v encrypted %v completed %v", e.StreamError, e.Encrypted, e.Completed)
				}
			},
		},
		{
			name:   "features never sent",
			cfg:    xmpptlstest.Config{Script: script(header)},
			opts:   func(o *Options) { o.Timeout = 300 * time.Millisecond },
			code:   CodeFeaturesMissing,
			phase:  "stream",
			within: 2 * time.Second,
		},
		{
			name:   "features never sent after TLS",
			cfg:    xmpptlstest.Config{ScriptAfterTLS: script(header + " ")},
			opts:   func(o *Options) { o.Timeout = 300 * time.Millisecond },
			code:   CodeFeaturesMissing,
			phase:  "features",
			within: 2 * time.Second,
		},
		{
			name:  "stream closed instead of features",
			cfg:   xmpptlstest.Config{Script: script(header + "</stream:stream>")},
			code:  CodeFeaturesMissing,
			phase: "stream",
		},
		{
			name:  "100 MB of XML",
			cfg:   xmpptlstest.Config{Script: xmpptlstest.Repeat(header+"<stream:features>", "<x xmlns='urn:example:flood'><y/></x>", 100<<20)},
			code:  CodeTooLarge,
			phase: "stream",
		},
		{
			name:  "100 MB of keepalives",
			cfg:   xmpptlstest.Config{Script: xmpptlstest.Repeat(header, " ", 100<<20)},
			code:  CodeTooLarge,
			phase: "stream",
		},
		{
			name:  "100 MB attribute",
			cfg:   xmpptlstest.Config{Script: xmpptlstest.Repeat(header+"<stream:features><x xmlns='y' a='", "a", 100<<20)},
			code:  CodeTooLarge,
			phase: "stream",
		},
		{
			name:  "billion laughs",
			cfg:   xmpptlstest.Config{Script: script(xmpptlstest.BillionLaughs)},
			code:  CodeProtocolError,
			phase: "stream",
			check: func(t *testing.T, e Endpoint) {
				if !strings.Contains(e.Error, "DOCTYPE") {
					t.Errorf("error %q does not name the DOCTYPE", e.Error)
				}
			},
		},
		{
			name:  "undeclared entity",
			cfg:   xmpptlstest.Config{Script: script(header + "<stream:features>&lol9;</stream:features>")},
			code:  CodeProtocolError,
			phase: "stream",
		},
		{
			// One byte every 5 s: the per-phase timeout is longer than the
			// probe's deadline here, so the deadline ends it.
			name:   "one byte every 5 s",
			cfg:    xmpptlstest.Config{Delay: 5 * time.Second},
			opts:   func(o *Options) { o.Timeout, o.Deadline = 10*time.Second, 700*time.Millisecond },
			code:   CodeTimeout,
			phase:  "stream",
			within: 2 * time.Second,
			check: func(t *testing.T, e Endpoint) {
				if !strings.Contains(e.Error, "deadline") {
					t.Errorf("error %q does not mention the deadline", e.Error)
				}
			},
		},
		{
			name:   "one byte at a time, slowly but in time",
			cfg:    xmpptlstest.Config{Split: true, Features: " \n" + xmpptlstest.Mechanisms("PLAIN") + "\t " + xmpptlstest.DefaultFeatures + " "},
			within: 3 * time.Second,
			check: func(t *testing.T, e Endpoint) {
				if !e.StartTLS.Required || !slices.Equal(e.BeforeTLS.Features.Mechanisms, []string{"PLAIN"}) {
					t.Errorf("features %+v", e.BeforeTLS.Features)
				}
			},
		},
		{
			name:  "TLS alert",
			cfg:   xmpptlstest.Config{TLSReply: xmpptlstest.AlertHandshakeFailure},
			code:  CodeTLSAlert,
			phase: "tls",
			check: func(t *testing.T, e Endpoint) {
				if !strings.Contains(e.Error, "handshake failure") || e.Encrypted {
					t.Errorf("error %q encrypted %v", e.Error, e.Encrypted)
				}
			},
		},
		{
			name:   "silent server",
			cfg:    xmpptlstest.Config{Handler: func(c net.Conn) { io.Copy(io.Discard, c) }},
			opts:   func(o *Options) { o.Timeout = 300 * time.Millisecond },
			code:   CodeTimeout,
			phase:  "stream",
			within: 2 * time.Second,
		},
		{
			name:  "not XMPP",
			cfg:   xmpptlstest.Config{Handler: func(c net.Conn) { io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n") }},
			code:  CodeProtocolError,
			phase: "stream",
		},
		{
			name:  "expired certificate",
			cfg:   xmpptlstest.Config{Certificate: p.expired},
			code:  CodeCertificateExpired,
			phase: "certificate",
			check: certCheck("chain-expired"),
		},
		{
			name:  "wrong-name certificate",
			cfg:   xmpptlstest.Config{Certificate: p.wrongName},
			code:  CodeCertificateNameMismatch,
			phase: "certificate",
			check: certCheck("no-match"),
		},
		{
			name:  "untrusted certificate",
			cfg:   xmpptlstest.Config{Certificate: p.untrusted},
			code:  CodeCertificateUntrusted,
			phase: "certificate",
			check: certCheck("chain-untrusted"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, tc.cfg)
			opts := options(srv.Addr)
			if tc.opts != nil {
				tc.opts(&opts)
			}
			within := tc.within
			if within == 0 {
				within = time.Second
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			begin := time.Now()
			res := Probe(t.Context(), domain, opts)
			took := time.Since(begin)
			runtime.ReadMemStats(&after)
			e := one(t, res)
			if e.Failure != tc.code || e.Phase != tc.phase && tc.code != "" {
				dump(t, res)
				t.Fatalf("failure %q in phase %q, want %q in %q (error %q)", e.Failure, e.Phase, tc.code, tc.phase, e.Error)
			}
			if tc.code == "" && !e.OK {
				dump(t, res)
				t.Fatalf("not ok: %s", e.Error)
			}
			if res.Failure != tc.code {
				t.Errorf("result failure %q, want %q", res.Failure, tc.code)
			}
			if tc.code != "" && e.Error == "" {
				t.Error("a failure without an error text")
			}
			if took > within {
				t.Errorf("took %v, want under %v (deadline %v)", took, within, opts.deadline())
			}
			// Whatever the server sends, the probe allocates a small,
			// bounded amount: never the 100 MB on offer.
			t.Logf("took %v, allocated %d KiB", took, (after.TotalAlloc-before.TotalAlloc)>>10)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("allocated %d MB", alloc>>20)
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

// certCheck checks an endpoint that completed with a bad certificate: the
// finding is there, the chain is reported, the authentication grade fails.
func certCheck(finding string) func(t *testing.T, e Endpoint) {
	return func(t *testing.T, e Endpoint) {
		t.Helper()
		if !e.Completed || e.OK || e.Certificate == nil || e.Certificate.Valid || len(e.TLS.Chain) != 2 {
			t.Fatalf("completed %v ok %v certificate %+v", e.Completed, e.OK, e.Certificate)
		}
		found := false
		for _, f := range e.Certificate.Findings {
			found = found || f.Code == finding
		}
		if !found || !strings.HasPrefix(e.Error, finding) {
			t.Errorf("findings %v error %q, want %s", e.Certificate.Findings, e.Error, finding)
		}
		if r := requirement(t, e.Grade, RequirementAuthenticated); r.Status != StatusFail {
			t.Errorf("authenticated %+v", r)
		}
	}
}
