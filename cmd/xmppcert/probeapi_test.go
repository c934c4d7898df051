package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testxmpp"
)

// TestProsodyCheckConnectivity: Prosody's own `prosodyctl check
// connectivity`, with connectivity_probe pointing at the daemon's /probe
// (the blackbox exporter's modules for STARTTLS, xmppcert's for direct
// TLS, which prosodyctl asks for only when told a module), says "Works"
// for c2s and s2s, STARTTLS and direct TLS, of a host whose certificate
// the daemon trusts, and gives its failure text for a host whose
// certificate names another domain.
func TestProsodyCheckConnectivity(t *testing.T) {
	dir := serverTempDir(t)
	root := testpki.NewRoot("Connectivity Test Root", nil)
	ca := root.Intermediate("Connectivity Test Intermediate", nil)
	goodCert, goodKey := testxmpp.IssueLeaf(t, ca, dir, "good", "example.org")
	badCert, badKey := testxmpp.IssueLeaf(t, ca, dir, "bad", "other.example")
	writeFile(t, filepath.Join(dir, "root.pem"), testpki.PEM(root.Cert), 0o644)
	listen := freeAddr(t)
	p := testxmpp.StartProsody(t, testxmpp.ProsodyOptions{
		VirtualHosts: []testxmpp.VirtualHost{
			{Domain: "example.org", CertFile: goodCert, KeyFile: goodKey, C2SRequireEncryption: true},
			{Domain: "broken.example", CertFile: badCert, KeyFile: badKey, C2SRequireEncryption: true},
		},
		S2SRequireEncryption: true,
		Config: fmt.Sprintf(`connectivity_probe = { url = %q; modules = {
  ["xmpp-client"] = "c2s_normal_auth"; ["xmpp-server"] = "s2s_normal";
  ["xmpps-client"] = "xmpps-client"; ["xmpps-server"] = "xmpps-server";
} }`, "http://"+listen+"/probe"),
	})
	dns := testdns.StartFake(t)
	for _, d := range []string{"example.org", "broken.example"} {
		dns.Add(t,
			fmt.Sprintf("_xmpp-client._tcp.%s. 60 IN SRV 0 0 %d xmpp.%[1]s.", d, p.C2SPort),
			fmt.Sprintf("_xmpp-server._tcp.%s. 60 IN SRV 0 0 %d xmpp.%[1]s.", d, p.S2SPort),
			fmt.Sprintf("_xmpps-client._tcp.%s. 60 IN SRV 0 0 %d xmpp.%[1]s.", d, p.C2SDirectTLSPort),
			fmt.Sprintf("_xmpps-server._tcp.%s. 60 IN SRV 0 0 %d xmpp.%[1]s.", d, p.S2SDirectTLSPort),
			fmt.Sprintf("xmpp.%s. 60 IN A 127.0.0.1", d))
	}
	cfg := filepath.Join(dir, "xmppcert.toml")
	// The daemon watches the host too: /probe needs no [[watch.peer]] of
	// its own, but a daemon with nothing to watch does not start.
	writeFile(t, cfg, []byte(fmt.Sprintf(`[watch]
interval = "1h"
timeout = "10s"
resolver = %q
trust_roots = ["root.pem"]

[[watch.peer]]
domain = "example.org"
service = "xmpp-client"
`, dns.Addr)), 0o600)
	bin := buildXmppcert(t)
	startDaemonProc(t, bin, daemonOptions{listen: listen}, "--state-dir", filepath.Join(dir, "state"), "--config", cfg, "daemon")

	out, err := p.Prosodyctl("check", "connectivity")
	t.Logf("prosodyctl check connectivity:\n%s", out)
	// One section per host, in whatever order Prosody lists its hosts.
	section := map[string]string{}
	for _, s := range strings.Split(out, "Checking external connectivity for ")[1:] {
		host, rest, _ := strings.Cut(s, " ")
		section[host] = rest
	}
	good, bad := section["example.org"], section["broken.example"]
	if !strings.HasPrefix(good, "via 127.0.0.1") || !strings.HasPrefix(bad, "via 127.0.0.1") {
		t.Errorf("no section for each host checked via the daemon: %q", section)
	}
	for _, svc := range []string{"xmpp-client", "xmpp-server", "xmpps-client", "xmpps-server"} {
		if want := svc + ": Works"; !strings.Contains(good, want) {
			t.Errorf("example.org: no %q", want)
		}
		if want := svc + ": Check service failed to establish (secure) connection"; !strings.Contains(bad, want) {
			t.Errorf("broken.example: no %q", want)
		}
	}
	if err == nil {
		t.Error("prosodyctl check connectivity exited 0 with a broken host")
	}
}
