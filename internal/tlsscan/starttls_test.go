package tlsscan

import (
	"context"
	"crypto/tls"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/xmpptls"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// starttlsDialer is the Dialer watcher/probe gives Scan for a STARTTLS
// port: a TCP connection on which xmpptls.PrepareTLS has negotiated
// STARTTLS up to <proceed/>.
func starttlsDialer(addr, domain string) Dialer {
	cfg := xmpptls.Config{Domain: domain, Service: xmppaddr.ServiceClient}
	return func(ctx context.Context) (net.Conn, error) {
		conn, err := xmpptls.DialTCP(ctx, addr, cfg)
		if err != nil {
			return nil, err
		}
		if err := xmpptls.PrepareTLS(ctx, conn, cfg); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
}

// TestScanSTARTTLS scans through XMPP STARTTLS, with plaintext injected
// after <proceed/> (which the dialer must drop, or every probe would read
// garbage): the Dialer contract watcher/probe relies on.
func TestScanSTARTTLS(t *testing.T) {
	rsaC, _ := certs(t)
	srv := xmpptlstest.Start(t, xmpptlstest.Config{
		Certificate: rsaC.tls,
		Inject:      "<iq type='set'/>",
		TLSConfig: func(c *tls.Config) {
			c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA}
		},
	})
	rep := Scan(context.Background(), starttlsDialer(srv.Addr, "xmpp.example"), Options{SNI: "xmpp.example"})
	if len(rep.Errors) > 0 {
		t.Errorf("errors: %q", rep.Errors)
	}
	if o := offered(rep); !slices.Equal(o, []string{"TLSv1.2"}) {
		t.Errorf("offered %v, want TLSv1.2", o)
	}
	want := []string{"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_128_CBC_SHA"}
	if got := names(rep.TLS12Ciphers); !slices.Equal(got, want) {
		t.Errorf("TLS 1.2 suites %v, want %v", got, want)
	}
	if !rep.NonForwardSecret || rep.ServerPreference == nil || !*rep.ServerPreference {
		t.Errorf("non-FS %v, server preference %s; want true, true", rep.NonForwardSecret, fmtBool(rep.ServerPreference))
	}
	// Seen lists finished connections; the server may still be closing
	// the last ones.
	seen := srv.Seen()
	for deadline := time.Now().Add(2 * time.Second); len(seen) < rep.Connections && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		seen = srv.Seen()
	}
	if len(seen) != rep.Connections {
		t.Errorf("server saw %d connections, scan reports %d", len(seen), rep.Connections)
	}
	for _, h := range seen {
		if !h.StartTLS || h.To != "xmpp.example" {
			t.Errorf("connection without STARTTLS to xmpp.example: %+v", h)
		}
	}
}
