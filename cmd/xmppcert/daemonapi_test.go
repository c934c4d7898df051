package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// TestAckSweepCheck: against the running daemon, status --check answers
// as a monitoring plugin (OK with only a first sighting; WARNING with
// its line once the watched peer's key changed), ack --all-info leaves
// the warning, ack DOMAIN acknowledges it and the check is OK again,
// sweep probes now; without the daemon and with the lineage expired the
// check is CRITICAL, and an invalid command line is UNKNOWN.
func TestAckSweepCheck(t *testing.T) {
	state := t.TempDir()
	agedLineage(t, state, localRequest(t, "example.org", xmppaddr.RoleHost), 0)
	ca := testpki.NewRoot("Peer Root", nil)
	// Valid now and for 200 days, so that only its changes count.
	now := func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(200*day)
	}
	var cert atomic.Pointer[tls.Certificate]
	cert.Store(peerLeaf(ca, now))
	peer := xmpptlstest.Start(t, xmpptlstest.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return cert.Load(), nil
	}})
	hook := newWebhookReceiver(t, nil)
	cfgFile := filepath.Join(t.TempDir(), "xmppcert.toml")
	writeFile(t, cfgFile, []byte(fmt.Sprintf(`[watch]
interval = "1h"
timeout = "1s"
own_hosts = false
[[watch.peer]]
domain = "peer.example"
service = "xmpp-client"
connect = %q
[[alert.webhook]]
url = %q
`, peer.Addr, hook.URL+"/hook")), 0o600)
	d := startDaemon(t, state, cfgFile)
	listen := d.listen
	hook.waitKind(t, changes.FirstSeen, 1)
	cli := func(args ...string) (int, string) {
		t.Helper()
		code, out, errOut := runCLI(t, nil, append([]string{"--state-dir", state, "--config", cfgFile}, args...)...)
		return code, out + errOut
	}

	if code, out := cli("status", "--check", "--listen", listen); code != checkOK || !strings.HasPrefix(out, "XMPPCERT OK - 1 endpoints, 1 lineages | endpoints=1 lineages=1 critical=0 warning=0\n") {
		t.Errorf("first sighting only: exit %d\n%s", code, out)
	}
	cert.Store(peerLeaf(ca, now))
	code, out := cli("sweep", "--json", "--listen", listen)
	var res struct{ Targets, Observations, Changed int }
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.Targets != 1 || res.Changed != 1 {
		t.Fatalf("sweep: exit %d, %+v\n%s", code, res, out)
	}
	code, out = cli("status", "--check", "--listen", listen)
	if code != checkWarning || !strings.HasPrefix(out, "XMPPCERT WARNING - 0 critical, 1 warning: peer.example xmpp-client ") || !strings.Contains(out, ": key-changed: unexpected key change") {
		t.Errorf("after the key change: exit %d\n%s", code, out)
	}
	if code, out := cli("ack", "--all-info", "--json", "--listen", listen); code != 0 || !strings.Contains(out, `"acknowledged": []`) || !strings.Contains(out, `"left": [`) {
		t.Errorf("ack --all-info with a warning pending: exit %d\n%s", code, out)
	}
	if code, out := cli("ack", "peer.example", "--listen", listen); code != 0 || out != "acknowledged 1 endpoint(s)\n" {
		t.Errorf("ack peer.example: exit %d\n%s", code, out)
	}
	if code, out := cli("status", "--check", "--listen", listen); code != checkOK {
		t.Errorf("after the acknowledgement: exit %d\n%s", code, out)
	}
	if code, out := cli("ack", "nobody.example", "--listen", listen); code != exitUsage || !strings.Contains(out, `no watched endpoint "nobody.example"`) {
		t.Errorf("ack of an unknown endpoint: exit %d\n%s", code, out)
	}

	d.stop(t)
	defer func(now func() time.Time) { clock = now }(clock)
	clock = func() time.Time { return time.Now().Add(91 * day) }
	code, out = cli("status", "--check", "--listen", listen)
	if code != checkCritical || !strings.HasPrefix(out, "XMPPCERT CRITICAL - 1 critical, 1 warning: lineage example.org: version 1 expired ") || !strings.Contains(out, "\nthe daemon: ") {
		t.Errorf("expired, no daemon: exit %d\n%s", code, out)
	}
	if code, out := cli("status", "--check", "--listen", "nonsense"); code != checkUnknown || !strings.HasPrefix(out, "XMPPCERT UNKNOWN - --listen \"nonsense\" is not HOST:PORT") {
		t.Errorf("bad --listen: exit %d\n%s", code, out)
	}
	if code, out := cli("status", "--check", "--bogus"); code != checkUnknown || !strings.HasPrefix(out, "XMPPCERT UNKNOWN - ") {
		t.Errorf("unknown flag: exit %d\n%s", code, out)
	}
}
