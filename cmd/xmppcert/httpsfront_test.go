package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/pinning"
)

// TestHTTPSFrontPinVerify: `xmppcert daemon` with [http.https] gets its
// certificate from pebble (tls-alpn-01) and serves the POSH documents of
// its lineage over that HTTPS, and `pin verify --posh-connect` fetches
// them there, PKIX-valid against pebble's root, listing the lineage's
// certificate (DNS is a fake: no SRV, the domain on loopback).
func TestHTTPSFrontPinVerify(t *testing.T) {
	tlsPort := testtool.FreePort(t)
	p := acmecatest.StartPebble(t, acmecatest.PebbleOptions{TLSPort: tlsPort})
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	roots := filepath.Join(dir, "pebble-roots.pem")
	writeFile(t, roots, p.RootsPEM(), 0o644)
	cfgFile := filepath.Join(dir, "xmppcert.toml")
	writeFile(t, cfgFile, []byte(fmt.Sprintf(`[[host]]
domain = "example.org"
[host.pins.posh]
expires = "1h"
[watch]
own_hosts = false
[http.https]
listen = "127.0.0.1:%d"
names = ["example.org"]
ca = %q
trust_root = %q
agree_tos = true
challenges = ["tls-alpn-01"]
`, tlsPort, p.Directory, roots)), 0o600)
	d := startDaemon(t, state, cfgFile)
	waitFor(t, "the HTTPS certificate", func() bool { return strings.Contains(d.stderr.String(), "event=cert_obtained") })
	waitFor(t, "the POSH documents", func() bool { return strings.Contains(d.stderr.String(), "POSH documents written") })

	// No SRV records: the domain itself on 5269, where nothing listens.
	dns := testdns.StartFake(t, "example.org")
	dns.Add(t, "example.org. 300 IN A 127.0.0.1")
	var rep pinning.Report
	var out string
	waitFor(t, "the documents over HTTPS", func() bool {
		_, out, _ = runCLI(t, nil, "--state-dir", state, "pin", "verify", "example.org", "--service", "xmpp-server",
			"--resolver", dns.Addr, "--roots", roots, "--posh-connect", fmt.Sprintf("127.0.0.1:%d", tlsPort),
			"--timeout", "5s", "--json")
		rep = pinning.Report{}
		return json.Unmarshal([]byte(out), &rep) == nil && len(rep.Services) == 1 && rep.Services[0].POSH != nil &&
			rep.Services[0].POSH.Document.Code == pinning.POSHValid
	})
	doc := rep.Services[0].POSH.Document
	l := mustLoad(t, state, "example.org")
	want := sha256.Sum256(l.Chain[0].Raw)
	if !strings.Contains(out, `"sha-256": "`+base64.StdEncoding.EncodeToString(want[:])+`"`) {
		t.Errorf("the POSH document over HTTPS does not list the lineage's certificate:\n%s", out)
	}
	if !strings.HasPrefix(doc.URL, "https://example.org/") {
		t.Errorf("fetched %q; want https://example.org/...", doc.URL)
	}
}
