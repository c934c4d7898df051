package tlsscan

import (
	"context"
	"testing"
)

// BenchmarkScan measures a whole scan against loopback servers: Go's
// crypto/tls with TLS 1.0-1.3 and its default suites, and `openssl
// s_server` with every suite OpenSSL 3 has (77 TLS 1.2 suites, the worst
// case for enumeration). The README's budget for `probe --full` against a
// loopback Prosody (STARTTLS adds an XMPP negotiation per connection) is
// 2 s.
func BenchmarkScan(b *testing.B) {
	_, ecC := certs(b)
	servers := []struct {
		name string
		addr func(b *testing.B) string
	}{
		{"go", func(b *testing.B) string { return goServer(b, tlsConfigAll(ecC)) }},
		{"openssl-all", func(b *testing.B) string {
			return opensslServer(b, "-cipher", "ALL:COMPLEMENTOFALL:@SECLEVEL=0")
		}},
	}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			addr := srv.addr(b)
			var conns int
			for b.Loop() {
				rep := Scan(context.Background(), tcpDialer(addr), Options{SNI: "xmpp.example"})
				if len(rep.Errors) > 0 {
					b.Fatalf("errors: %q", rep.Errors)
				}
				conns = rep.Connections
			}
			b.ReportMetric(float64(conns), "conns/op")
		})
	}
}
