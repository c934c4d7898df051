package alert

import (
	"slices"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
)

// TestClassifyThenReport runs the daemon's loop by hand: classify each
// probe against the previous one and Report the result. An unchanged
// endpoint with an expiry condition alerts once per ResendInterval; a
// renewal alerts once and clears the expiry condition.
func TestClassifyThenReport(t *testing.T) {
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rec := &recorder{}
	d := NewDispatcher(DispatcherOptions{ResendInterval: 6 * time.Hour, Now: func() time.Time { return clock }}, rec)
	leaf := watcher.CertSummary{SHA256: "aa", SPKISHA256: "k1", Subject: "CN=example.org", Issuer: "CN=CA", NotAfter: clock.Add(20 * 24 * time.Hour)}
	obs := watcher.Observation{Endpoint: testEP, Reachable: true, Chain: []watcher.CertSummary{leaf}, Valid: true, TLSVersion: "TLS 1.3"}
	var prev *watcher.Observation
	probe := func(o watcher.Observation) {
		o.At = clock
		d.Report(o.Endpoint, o.At, changes.Classify(prev, o, changes.Context{Now: clock}))
		prev = &o
		clock = clock.Add(time.Hour)
	}
	for range 13 { // 13 hourly probes: sends at hours 0, 6 and 12
		probe(obs)
	}
	renewed := obs
	renewed.Chain = []watcher.CertSummary{{SHA256: "bb", SPKISHA256: "k1", Subject: "CN=example.org", Issuer: "CN=CA", NotAfter: clock.Add(90 * 24 * time.Hour)}}
	probe(renewed)
	probe(renewed)
	var got []string
	for _, a := range rec.got() {
		s := string(a.Change.Kind)
		if a.Resent {
			s += " (resent)"
		}
		got = append(got, s)
	}
	want := []string{"first-seen", "expiry-30d", "expiry-30d (resent)", "expiry-30d (resent)", "renewal-same-key"}
	if !slices.Equal(got, want) {
		t.Errorf("alerts %v\nwant %v", got, want)
	}
	d.mu.Lock()
	n := len(d.sent)
	d.mu.Unlock()
	if n != 0 {
		t.Errorf("%d keys still remembered after the conditions cleared", n)
	}
}
