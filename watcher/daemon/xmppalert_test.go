package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/testxmpp"
)

// TestXMPPAlerts: with [[alert.xmpp]], the daemon's alerts arrive as
// chat messages at the operator's account on a real Prosody, whose
// certificate the daemon checks against the roots its probes use: the
// first sighting of a watched endpoint, then its key change.
func TestXMPPAlerts(t *testing.T) {
	f := newFixture(t)
	cert, key := testxmpp.IssueLeaf(t, f.ca, t.TempDir(), "example.net", "example.net")
	p := testxmpp.NewProsody(t, testxmpp.ProsodyOptions{
		VirtualHosts: []testxmpp.VirtualHost{{Domain: "example.net", CertFile: cert, KeyFile: key, C2SRequireEncryption: true}},
		Modules:      []string{"roster", "offline", "ping"},
	})
	p.Register(t, "xmppcert", "example.net", "xmppcert-password")
	p.Register(t, "admin", "example.net", "admin-password")
	p.Start(t)
	password := filepath.Join(f.dir, "xmpp.password")
	if err := os.WriteFile(password, []byte("xmppcert-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := f.config("1s") + `[[alert.xmpp]]
jid = "xmppcert@example.net"
password_file = "` + password + `"
to = ["admin@example.net"]
server = "` + p.C2SAddr + `"
timeout = "5s"
`
	if err := os.WriteFile(f.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := testxmpp.LoginClient(t, p.C2SAddr, "admin@example.net", "admin-password", f.ca.Pool())

	var logs testtool.LockedBuffer
	d := f.newDaemon(t, &logs, true)
	defer d.Close(context.Background())
	if _, err := d.SweepOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := admin.Next(t, 20*time.Second); !strings.HasPrefix(m.Body, "[INFO] first-seen: "+domain+" xmpp-client") || m.From.Bare().String() != "xmppcert@example.net" {
		t.Errorf("first message: %+v; want the first-seen alert from xmppcert@example.net", m)
	}
	f.cert.Store(leaf(f.ca))
	if _, err := d.SweepOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := admin.Next(t, 20*time.Second); !strings.Contains(m.Body, "key-changed: "+domain) || !strings.Contains(m.Body, "unexpected key change") {
		t.Errorf("second message: %+v; want the key-changed alert", m)
	}
}
