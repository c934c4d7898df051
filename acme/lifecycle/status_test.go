package lifecycle

import (
	"reflect"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
)

// TestProblems: what needs the operator in a lineage, critical first.
func TestProblems(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	base := LineageStatus{Version: 3, NotBefore: now.Add(-30 * day), NotAfter: now.Add(60 * day), RenewAt: now.Add(30 * day)}
	with := func(f func(*LineageStatus)) LineageStatus {
		st := base
		f(&st)
		return st
	}
	for _, c := range []struct {
		name string
		st   LineageStatus
		want []Problem
	}{
		{"healthy", base, nil},
		{"due but a third left", with(func(s *LineageStatus) { s.NotAfter, s.Due = now.Add(29*day), true }), nil},
		{"a sixth left", with(func(s *LineageStatus) {
			s.NotBefore, s.NotAfter, s.RenewAt, s.Due = now.Add(-80*day), now.Add(10*day), now.Add(-20*day), true
		}), []Problem{{false, "version 3 expires 2026-12-11 12:00 UTC and is still not renewed (due 2026-11-11 12:00 UTC)"}}},
		{"expires within a day", with(func(s *LineageStatus) { s.NotAfter = now.Add(time.Hour) }),
			[]Problem{{true, "version 3 expires 2026-12-01 13:00 UTC, within a day"}}},
		{"expired, target failed, served foreign", with(func(s *LineageStatus) {
			s.NotAfter = now.Add(-time.Hour)
			s.Targets = []TargetStatus{{Target: "prosody:/etc/prosody/certs", Record: &acme.TargetRecord{Error: "permission denied"}}, {Target: "hook:true", Holds: true}}
			s.Served = []acme.ServedRecord{{Status: ServedForeign, Detail: "xmpp.example.org:5222 serves a key of no lineage"}, {Status: ServedCurrent, Detail: "ok"}}
		}), []Problem{
			{true, "version 3 expired 2026-12-01 11:00 UTC"},
			{true, "xmpp.example.org:5222 serves a key of no lineage"},
			{false, "prosody:/etc/prosody/certs: FAILED: permission denied"},
		}},
		{"revoked, key compromised", with(func(s *LineageStatus) {
			s.Revoked = &acme.Revocation{Serial: "7", Reason: acme.ReasonKeyCompromise, At: now.Add(-time.Hour)}
		}), []Problem{{true, "version 3 was revoked (keyCompromise) at 2026-12-01 11:00 UTC and is still current"}}},
		{"revoked, superseded", with(func(s *LineageStatus) {
			s.Revoked = &acme.Revocation{Serial: "7", Reason: acme.ReasonSuperseded, At: now.Add(-time.Hour)}
		}), []Problem{{false, "version 3 was revoked (superseded) at 2026-12-01 11:00 UTC and is still current"}}},
		{"retry after, deploy pending, target behind, stale", with(func(s *LineageStatus) {
			s.RetryAfter, s.DeployPending = now.Add(time.Hour), true
			s.Targets = []TargetStatus{{Target: "ejabberd"}}
			s.Served = []acme.ServedRecord{{Status: ServedStale, Detail: "still version 2"}}
		}), []Problem{
			{false, "the CA asked not to be asked again before 2026-12-01 13:00 UTC"},
			{false, "version 3 is current but its deploy did not finish"},
			{false, "ejabberd: behind the current version"},
			{false, "still version 2"},
		}},
	} {
		if got := c.st.Problems(now); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}
