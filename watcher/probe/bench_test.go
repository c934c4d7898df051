package probe

import (
	"testing"

	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
)

// BenchmarkProbe is a plain probe (STARTTLS, TLS 1.3, the stream restart,
// the chain and the identity verdict, the grade) of a loopback fake
// server: what `xmppcert probe` costs per endpoint, network aside.
func BenchmarkProbe(b *testing.B) {
	srv := server(b, xmpptlstest.Config{})
	opts := options(srv.Addr)
	b.ReportAllocs()
	for b.Loop() {
		if res := Probe(b.Context(), domain, opts); !res.OK {
			b.Fatalf("probe failed: %s %s", res.Failure, res.Error)
		}
	}
}

// BenchmarkProbeDirectTLS is BenchmarkProbe with direct TLS (XEP-0368).
func BenchmarkProbeDirectTLS(b *testing.B) {
	srv := server(b, xmpptlstest.Config{DirectTLS: true})
	opts := options(srv.Addr)
	opts.DirectTLS = true
	b.ReportAllocs()
	for b.Loop() {
		if res := Probe(b.Context(), domain, opts); !res.OK {
			b.Fatalf("probe failed: %s %s", res.Failure, res.Error)
		}
	}
}
