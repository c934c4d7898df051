package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/testxmpp"
	"github.com/xmppcert/xmppcert/internal/tlsscan"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/watcher/probe"
)

// probeState issues lineages from the embedded CA for the names and
// writes its root; it returns the state directory and the root's path.
func probeState(t *testing.T, names ...string) (state, root string) {
	t.Helper()
	state = filepath.Join(t.TempDir(), "state")
	for _, n := range names {
		mustRun(t, "--state-dir", state, "issue", n, "-q")
	}
	root = filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(root, []byte(mustRun(t, "--state-dir", state, "ca", "root")), 0o644); err != nil {
		t.Fatal(err)
	}
	return state, root
}

func live(state, name, file string) string { return filepath.Join(state, "live", name, file) }

// probeJSON runs xmppcert probe --json and decodes the result.
func probeJSON(t *testing.T, wantCode int, args ...string) probe.Result {
	t.Helper()
	code, stdout, stderr := runCLI(t, nil, append([]string{"probe", "--json"}, args...)...)
	var r probe.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != wantCode {
		t.Fatalf("probe %q: exit %d (want %d), %v\n%s%s", args, code, wantCode, err, stdout, stderr)
	}
	return r
}

func requirement(g probe.Grade, id string) probe.Requirement {
	for _, r := range g.Requirements {
		if r.ID == id {
			return r
		}
	}
	return probe.Requirement{}
}

// TestProbeProsody probes a real Prosody on loopback: STARTTLS required
// on one virtual host and optional on another, direct TLS, s2s with
// dialback as Prosody advertises it, SASL EXTERNAL with a certificate
// from our CA that Prosody trusts (success) and with one from another CA
// (refused), and --full's versions and suites against testssl.sh's.
func TestProbeProsody(t *testing.T) {
	state, root := probeState(t, "required.example", "optional.example", "peer.example")
	mustRun(t, "--state-dir", state, "issue", "legacy.example", "--key-type", "rsa2048", "-q")
	p := testxmpp.StartProsody(t, testxmpp.ProsodyOptions{
		VirtualHosts: []testxmpp.VirtualHost{
			{Domain: "required.example", CertFile: live(state, "required.example", "fullchain.pem"), KeyFile: live(state, "required.example", "privkey.pem"), C2SRequireEncryption: true},
			{Domain: "optional.example", CertFile: live(state, "optional.example", "fullchain.pem"), KeyFile: live(state, "optional.example", "privkey.pem")},
		},
		CAFile:               root,
		S2SRequireEncryption: true,
	})

	t.Run("c2s STARTTLS required", func(t *testing.T) {
		r := probeJSON(t, exitOK, "required.example", "--connect", p.C2SAddr, "--roots", root)
		e := r.Endpoints[0]
		if !e.OK || !e.StartTLS.Required || e.Encryption != probe.Encryption("starttls") || e.TLS == nil || !e.Certificate.Valid {
			t.Fatalf("endpoint %+v; want STARTTLS required, TLS, a valid certificate", e)
		}
		if len(e.BeforeTLS.Features.Mechanisms) != 0 || len(e.AfterTLS.Features.Mechanisms) == 0 {
			t.Errorf("SASL before TLS %q, after %q; want none before, some after", e.BeforeTLS.Features.Mechanisms, e.AfterTLS.Features.Mechanisms)
		}
		if s := requirement(r.Grade, probe.RequirementEncryption).Status; s != probe.StatusPass {
			t.Errorf("encryption-required: %s; want pass", s)
		}
		if e.TLS.Version != "TLS 1.3" || !e.TLS.ForwardSecret || e.TLS.Group == "" {
			t.Errorf("TLS %+v; want TLS 1.3 with a forward-secret group", e.TLS)
		}
	})
	t.Run("c2s STARTTLS optional", func(t *testing.T) {
		r := probeJSON(t, exitFailed, "optional.example", "--connect", p.C2SAddr, "--roots", root)
		e := r.Endpoints[0]
		if !e.StartTLS.Offered || e.StartTLS.Required || !e.Encrypted {
			t.Fatalf("starttls %+v, encrypted %v; want offered, not required, and used", e.StartTLS, e.Encrypted)
		}
		if !hasFinding(e, probe.FindingStartTLSOptional) || len(e.BeforeTLS.Features.Mechanisms) == 0 {
			t.Errorf("findings %+v, SASL before TLS %q; want starttls-optional and mechanisms before TLS", e.Findings, e.BeforeTLS.Features.Mechanisms)
		}
		if s := requirement(r.Grade, probe.RequirementEncryption).Status; s != probe.StatusFail || r.Grade.Verdict != probe.StatusFail {
			t.Errorf("encryption-required %s, verdict %s; want fail, fail", s, r.Grade.Verdict)
		}
	})
	t.Run("c2s direct TLS", func(t *testing.T) {
		r := probeJSON(t, exitOK, "required.example", "--connect", p.C2SDirectTLSAddr, "--direct-tls", "--roots", root)
		e := r.Endpoints[0]
		if !e.OK || e.Encryption != probe.Encryption("direct-tls") || !e.Certificate.Valid || !slices.Equal(e.TLS.ALPNOffered, []string{"xmpp-client"}) {
			t.Fatalf("endpoint %+v; want direct TLS with ALPN offered and a valid certificate", e)
		}
		// Prosody 0.12 negotiates no ALPN on its direct TLS ports.
		if e.TLS.ALPNNegotiated != "" || !hasFinding(e, probe.FindingALPNNotNegotiated) {
			t.Errorf("ALPN %q, findings %+v; want none negotiated, and said so", e.TLS.ALPNNegotiated, e.Findings)
		}
	})
	t.Run("s2s dialback and EXTERNAL", func(t *testing.T) {
		r := probeJSON(t, exitOK, "required.example", "--service", "xmpp-server", "--connect", p.S2SAddr, "--from", "peer.example",
			"--client-cert", live(state, "peer.example", "fullchain.pem"), "--client-key", live(state, "peer.example", "privkey.pem"), "--roots", root)
		e := r.Endpoints[0]
		if d := e.Dialback; d == nil || !d.BeforeTLS || !d.AfterTLS || d.Errors || !d.StreamNamespace {
			t.Errorf("dialback %+v; want offered before and after TLS, without <errors/>, namespace declared (Prosody)", d)
		}
		if e.External == nil || !e.External.Attempted || e.External.Result != "success" {
			t.Errorf("EXTERNAL %+v; want attempted and successful with a certificate from the CA Prosody trusts", e.External)
		}
		if s := requirement(r.Grade, probe.RequirementAuthenticated).Status; s != probe.StatusPass {
			t.Errorf("authenticated: %s; want pass", s)
		}
	})
	t.Run("s2s direct TLS", func(t *testing.T) {
		r := probeJSON(t, exitOK, "required.example", "--service", "xmpp-server", "--connect", p.S2SDirectTLSAddr, "--direct-tls", "--from", "peer.example", "--roots", root)
		e := r.Endpoints[0]
		if !e.OK || e.Encryption != probe.Encryption("direct-tls") || !e.Certificate.Valid || !slices.Equal(e.TLS.ALPNOffered, []string{"xmpp-server"}) {
			t.Fatalf("endpoint %+v; want s2s direct TLS with a valid certificate", e)
		}
		if e.Dialback == nil || !e.Dialback.AfterTLS {
			t.Errorf("dialback %+v; want offered on the direct TLS stream", e.Dialback)
		}
	})
	t.Run("s2s EXTERNAL with an untrusted certificate", func(t *testing.T) {
		other := testpki.NewRoot("not trusted by prosody", nil)
		cert, key := testxmpp.IssueLeaf(t, other, t.TempDir(), "peer", "peer.example")
		r := probeJSON(t, exitOK, "required.example", "--service", "xmpp-server", "--connect", p.S2SAddr, "--from", "peer.example",
			"--client-cert", cert, "--client-key", key, "--roots", root)
		x := r.Endpoints[0].External
		if x == nil || x.Result == "success" || !hasFinding(r.Endpoints[0], probe.FindingExternalNotOffered, probe.FindingExternalFailed) {
			t.Errorf("EXTERNAL %+v; want it refused (not offered or failed) for a certificate Prosody does not trust", x)
		}
	})
	t.Run("full equals testssl.sh", func(t *testing.T) {
		r := probeJSON(t, exitOK, "required.example", "--connect", p.C2SAddr, "--roots", root, "--full")
		scan := r.Endpoints[0].Full.Scan
		if scan == nil {
			t.Fatalf("no scan in --full: %+v", r.Endpoints[0].Full)
		}
		ts := testxmpp.TestSSL(t, p.C2SAddr, testxmpp.TestSSLOptions{StartTLS: "xmpp", XMPPHost: "required.example",
			Protocols: true, CipherPerProto: true, ServerPreference: true})
		compareScan(t, scan, ts)
		if s := requirement(r.Grade, probe.RequirementNoSSLv2).Status; s != probe.StatusPass || r.Grade.Verdict != probe.StatusPass {
			t.Errorf("no-sslv2 %s, verdict %s; want pass with --full", s, r.Grade.Verdict)
		}
		_, text, _ := runCLI(t, nil, "probe", "required.example", "--connect", p.C2SAddr, "--roots", root, "--full")
		t.Logf("xmppcert probe --full:\n%s", text)
	})
	t.Run("full equals testssl.sh, old TLS profile and an RSA key", func(t *testing.T) {
		// TLS 1.0 and a static-RSA suite beside forward-secret ones, CBC
		// and GCM: what the requirements below fail on, in four suites.
		// testssl.sh -E makes a handshake per accepted suite per
		// protocol: with every suite OpenSSL has ("ALL") its run took
		// over seven minutes under load.
		old := testxmpp.StartProsody(t, testxmpp.ProsodyOptions{
			VirtualHosts: []testxmpp.VirtualHost{{Domain: "legacy.example", C2SRequireEncryption: true,
				CertFile: live(state, "legacy.example", "fullchain.pem"), KeyFile: live(state, "legacy.example", "privkey.pem"),
				SSL: `protocol = "tlsv1+"; ciphers = "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-GCM-SHA384:AES128-SHA:AES256-GCM-SHA384:@SECLEVEL=0";`}},
			TLSProfile: "old",
		})
		r := probeJSON(t, exitOK, "legacy.example", "--connect", old.C2SAddr, "--roots", root, "--full")
		scan := r.Endpoints[0].Full.Scan
		ts := testxmpp.TestSSL(t, old.C2SAddr, testxmpp.TestSSLOptions{StartTLS: "xmpp", XMPPHost: "legacy.example",
			Protocols: true, CipherPerProto: true, ServerPreference: true})
		compareScan(t, scan, ts)
		if s := requirement(r.Grade, probe.RequirementOldVersions).Status; s != probe.StatusFail {
			t.Errorf("old-versions-by-option-only: %s; want fail with TLS 1.0 offered", s)
		}
		if s := requirement(r.Grade, probe.RequirementFSRequired).Status; s != probe.StatusFail || !scan.NonForwardSecret {
			t.Errorf("forward-secrecy-required: %s, non-FS suites %v; want fail", s, scan.NonForwardSecret)
		}
	})
}

// TestProbeEjabberd probes a real ejabberd: c2s STARTTLS, and s2s where
// ejabberd offers dialback (with <errors/>) only after TLS.
func TestProbeEjabberd(t *testing.T) {
	state, root := probeState(t, "ejabberd.example")
	e := testxmpp.StartEjabberd(t, testxmpp.EjabberdOptions{
		Hosts:            []testxmpp.EjabberdHost{{Domain: "ejabberd.example", CertFile: live(state, "ejabberd.example", "fullchain.pem"), KeyFile: live(state, "ejabberd.example", "privkey.pem")}},
		StartTLSRequired: true,
	})
	r := probeJSON(t, exitOK, "ejabberd.example", "--connect", e.C2SAddr, "--roots", root)
	if ep := r.Endpoints[0]; !ep.OK || !ep.StartTLS.Required || !ep.Certificate.Valid {
		t.Errorf("c2s endpoint %+v; want STARTTLS required and a valid certificate", ep)
	}
	r = probeJSON(t, exitOK, "ejabberd.example", "--service", "xmpp-server", "--connect", e.S2SAddr, "--from", "peer.example", "--roots", root)
	d := r.Endpoints[0].Dialback
	if d == nil || !d.Offered || d.BeforeTLS || !d.AfterTLS || !d.Errors {
		t.Errorf("dialback %+v; want offered after TLS only, with <errors/> (ejabberd)", d)
	}
}

func hasFinding(e probe.Endpoint, codes ...string) bool {
	for _, f := range e.Findings {
		if slices.Contains(codes, f.Code) {
			return true
		}
	}
	return false
}

// compareScan holds probe --full's versions and suites to testssl.sh's
// for the same endpoint.
func compareScan(t *testing.T, scan *tlsscan.Report, ts testxmpp.TestSSLResult) {
	t.Helper()
	names := map[string]string{"SSLv2": testxmpp.SSLv2, "SSLv3": testxmpp.SSLv3, "TLSv1.0": testxmpp.TLS1,
		"TLSv1.1": testxmpp.TLS1_1, "TLSv1.2": testxmpp.TLS1_2, "TLSv1.3": testxmpp.TLS1_3}
	for _, v := range scan.Versions {
		if want := ts.Offered(names[v.Name]); v.Offered != want {
			t.Errorf("%s: probe says offered %v, testssl.sh %v (%s)", v.Name, v.Offered, want, ts.Protocols[names[v.Name]].Finding)
		}
	}
	ids := func(cs []tlsscan.Cipher) []uint32 {
		var out []uint32
		for _, c := range cs {
			out = append(out, uint32(c.ID))
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s []uint32) []uint32 { s = slices.Clone(s); slices.Sort(s); return s }
	if got, want := ids(scan.TLS12Ciphers), sorted(ts.CipherIDs(testxmpp.TLS1_2)); !slices.Equal(got, want) {
		t.Errorf("TLS 1.2 suites: probe %s, testssl.sh %s", hexIDs(got), hexIDs(want))
	}
	if got, want := ids(scan.TLS13Ciphers), sorted(ts.CipherIDs(testxmpp.TLS1_3)); !slices.Equal(got, want) {
		t.Errorf("TLS 1.3 suites: probe %s, testssl.sh %s", hexIDs(got), hexIDs(want))
	}
	if ts.CipherOrder != nil && scan.ServerPreference != nil && *ts.CipherOrder != *scan.ServerPreference {
		t.Errorf("server cipher order: probe %v, testssl.sh %v (%s)", *scan.ServerPreference, *ts.CipherOrder, ts.CipherOrderFinding)
	}
	t.Logf("probe --full and testssl.sh agree: %d TLS 1.2 and %d TLS 1.3 suites, testssl.sh took %s", len(scan.TLS12Ciphers), len(scan.TLS13Ciphers), ts.Duration)
}

func hexIDs(ids []uint32) string {
	var s []string
	for _, id := range ids {
		s = append(s, fmt.Sprintf("%04x", id))
	}
	return strings.Join(s, " ")
}

// TestProbeBadInput: usage mistakes are exit 2 with one line; a bad or
// unreachable endpoint, or DNS failing, is exit 1 with its
// classification.
func TestProbeBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"a..example"}, `.*invalid domain.*`},
		{[]string{"example.org", "--connect", "127.0.0.1"}, `--connect: "127\.0\.0\.1": not HOST:PORT .*`},
		{[]string{"example.org", "--service", "https"}, `--service: .*`},
		{[]string{"example.org", "--client-cert", "x.pem"}, `--client-cert and --client-key go together`},
		{[]string{"example.org", "--client-cert", "missing.pem", "--client-key", "missing.key"}, `--client-cert missing\.pem / --client-key missing\.key: .*`},
		{[]string{}, `probe needs exactly one DOMAIN, the XMPP domain to look at`},
		{[]string{"example.org", "--via", "http://127.0.0.1:3128"}, `--via: "http://127\.0\.0\.1:3128": only SOCKS5 proxies are supported \(socks5://HOST:PORT\)`},
		{[]string{"example.org", "--via", "socks5://u:secret@127.0.0.1"}, `--via: "socks5://u:xxxxx@127\.0\.0\.1": not HOST:PORT .*`},
	} {
		code, stdout, stderr := runCLI(t, nil, append([]string{"probe"}, tc.args...)...)
		if code != exitUsage || stdout != "" || !regexp.MustCompile(`^xmppcert: `+tc.want+`\n$`).MatchString(stderr) {
			t.Errorf("probe %q: exit %d, stdout %q, stderr %q; want exit 2 and %s", tc.args, code, stdout, stderr, tc.want)
		}
	}
	for _, tc := range []struct {
		args    []string
		failure probe.Code
	}{
		{[]string{"example.org", "--connect", "127.0.0.1:1", "--timeout", "2s"}, "unreachable"},
		{[]string{"example.org", "--resolver", "127.0.0.1:1", "--timeout", "1s"}, "dns-error"},
	} {
		r := probeJSON(t, exitFailed, tc.args...)
		if r.OK || r.Failure != tc.failure {
			t.Errorf("probe %q: ok %v, failure %q; want %q", tc.args, r.OK, r.Failure, tc.failure)
		}
	}
}

// TestProbeVia probes one server through two real SOCKS5 proxies
// (microsocks), the second leaving from 127.0.0.2, to which the server
// presents another key: each probe shows the chain its path was shown,
// and says which proxy it went through.
func TestProbeVia(t *testing.T) {
	here := testtool.SOCKS5(t, "")
	elsewhere := testtool.SOCKS5(t, "127.0.0.2")
	ours, theirs := peerLeaf(testpki.NewRoot("Our Root", nil)), peerLeaf(testpki.NewRoot("Interceptor Root", nil))
	srv := xmpptlstest.Start(t, xmpptlstest.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if a, ok := hello.Conn.RemoteAddr().(*net.TCPAddr); ok && a.IP.Equal(net.ParseIP("127.0.0.2")) {
			return theirs, nil
		}
		return ours, nil
	}})
	spki := func(c *tls.Certificate) string {
		sum := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
		return hex.EncodeToString(sum[:])
	}
	for _, tc := range []struct {
		via  *testtool.Proxy
		want *tls.Certificate
	}{{here, ours}, {elsewhere, theirs}} {
		args := []string{"peer.example", "--connect", srv.Addr, "--via", tc.via.URL}
		r := probeJSON(t, exitFailed, args...) // the test certificates have expired
		if len(r.Endpoints) != 1 || r.Endpoints[0].TLS == nil || len(r.Endpoints[0].TLS.Chain) == 0 {
			t.Fatalf("probe %q: no chain: %+v", args, r)
		}
		if got := r.Endpoints[0].TLS.Chain[0].SPKISHA256; got != spki(tc.want) || r.Resolution.Via != tc.via.URL {
			t.Errorf("probe %q: SPKI %s via %q; want %s via %q", args, got, r.Resolution.Via, spki(tc.want), tc.via.URL)
		}
		_, text, _ := runCLI(t, nil, append([]string{"probe"}, args...)...)
		if !strings.Contains(text, "\nvia "+tc.via.URL+"\n") || !strings.Contains(text, "(SPKI "+spki(tc.want)+")") {
			t.Errorf("probe %q says:\n%s\nwant the proxy and SPKI %s", args, text, spki(tc.want))
		}
	}
}
