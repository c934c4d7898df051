package alert

import (
	"context"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testxmpp"
	"github.com/xmppcert/xmppcert/watcher/changes"
)

// TestXMPPSinkProsody: against a real Prosody, an alert arrives as a
// chat message at the recipient's client, with the alert's ID; Prosody
// restarted while the next alert waits: the sink logs in again and
// delivers it, nothing lost, nothing failed. A wrong password is a
// failed delivery.
func TestXMPPSinkProsody(t *testing.T) {
	root := testpki.NewRoot("xmpp sink test root", nil)
	dir := t.TempDir()
	cert, key := testxmpp.IssueLeaf(t, root, dir, "example.org", "example.org")
	p := testxmpp.NewProsody(t, testxmpp.ProsodyOptions{
		VirtualHosts: []testxmpp.VirtualHost{{Domain: "example.org", CertFile: cert, KeyFile: key, C2SRequireEncryption: true}},
		Modules:      []string{"roster", "offline", "ping"},
	})
	p.Register(t, "alerts", "example.org", "alerts-password")
	p.Register(t, "admin", "example.org", "admin-password")
	p.Start(t)

	sink, err := NewXMPPSink(XMPPOptions{
		JID: "alerts@example.org", Password: Secret("alerts-password"), To: []string{"admin@example.org"},
		Server: p.C2SAddr, RootCAs: root.Pool(), Timeout: 5 * time.Second,
		MaxAttempts: 400, MinBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close(context.Background()) })
	reader := testxmpp.LoginClient(t, p.C2SAddr, "admin@example.org", "admin-password", root.Pool())

	first := testAlert(changes.KeyChanged, changes.Critical, "the key of xmpp.example.org changed")
	sink.Send(first)
	m := reader.Next(t, 20*time.Second)
	if !strings.Contains(m.Body, "the key of xmpp.example.org changed") || !strings.HasPrefix(m.Body, "[CRITICAL] key-changed: ") ||
		m.ID != first.ID() || m.Type != stanza.ChatMessage || m.From.Bare().String() != "alerts@example.org" {
		t.Errorf("message %+v; want a chat message from alerts@example.org with the alert's text and ID", m)
	}

	// Delivered once the server answered the ping after it, which may
	// come after the reader has the message.
	deadline := time.Now().Add(20 * time.Second)
	for sink.Stats().Delivered != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	p.Stop()
	second := testAlert(changes.Expiry30d, changes.Warning, "expires in 6 days")
	sink.Send(second)
	time.Sleep(500 * time.Millisecond) // attempts fail while Prosody is down
	if st := sink.Stats(); st.Delivered != 1 {
		t.Fatalf("while Prosody is down: %+v; want the second alert not delivered yet", st)
	}
	p.Restart(t)
	reader = testxmpp.LoginClient(t, p.C2SAddr, "admin@example.org", "admin-password", root.Pool())
	if m := reader.Next(t, 20*time.Second); !strings.Contains(m.Body, "expires in 6 days") || m.ID != second.ID() {
		t.Errorf("after the restart: %+v; want the second alert", m)
	}
	deadline = time.Now().Add(20 * time.Second)
	for sink.Stats().Delivered != 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := sink.Stats(); st.Delivered != 2 || st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("sink stats %+v; want both delivered, none failed or dropped", st)
	}

	wrong, err := NewXMPPSink(XMPPOptions{JID: "alerts@example.org", Password: Secret("wrong"), To: []string{"admin@example.org"},
		Server: p.C2SAddr, RootCAs: root.Pool(), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close(context.Background())
	if err := wrong.Deliver(context.Background(), first); err == nil || !strings.Contains(err.Error(), "logging in") {
		t.Errorf("wrong password: %v; want a failed login", err)
	}
}
