package acme_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
)

// BenchmarkNothingDue measures what renew spends per lineage when none
// is due, the run cron makes twice a day: list the lineages, read each
// one's current version, request and leaf, decide. One op is a pass over
// 100 lineages; ns/lineage is the figure to multiply. bench/renew.sh
// measures the whole process over 1,000 lineages beside certbot.
func BenchmarkNothingDue(b *testing.B) {
	s := acme.DiskStore{Dir: b.TempDir()}
	iss := newTestIssuer(b)
	const n = 100
	for i := range n {
		mustObtain(b, s, iss, request(b, fmt.Sprintf("h%d.example.org", i), acme.KeyECDSAP256, false))
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		names, err := s.Names()
		if err != nil || len(names) != n {
			b.Fatal(len(names), err)
		}
		for _, name := range names {
			c, err := s.Current(name)
			if err != nil {
				b.Fatal(err)
			}
			if d := acme.Decide(c.Leaf, now, nil, false); d.Due {
				b.Fatalf("%s is due: %s", name, d.Reason)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/lineage")
}
