package lifecycle

import (
	"context"
	"crypto/sha256"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/xmppcert/xmppcert/acme"
)

// LineageStatus is a lineage's four states as the state directory
// records them, read without asking any CA or endpoint: what is desired
// (names, CA, targets), issued (the current and a staged version),
// deployed (per target) and served (the last check). It is the --json
// form of one lineage in the certificates command's output.
type LineageStatus struct {
	Name  string      `json:"name"`
	Names []acme.Name `json:"names"`
	// CA is "local" or the ACME directory URL.
	CA      string `json:"ca"`
	KeyType string `json:"key_type"`
	Key     string `json:"key"`
	Version int    `json:"version"`
	// Staged is a version written for POSH and not yet current.
	Staged    int       `json:"staged,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Serial    string    `json:"serial"`
	SHA256    string    `json:"sha256"`
	// RenewAt is when the lineage is due by Rule (acme.RuleRevoked when
	// the current version was revoked, acme.RuleARI from the CA's last
	// renewal window, else acme.RuleLifetime); Due is whether that is
	// now or past.
	RenewAt time.Time `json:"renew_at"`
	Rule    string    `json:"rule"`
	Due     bool      `json:"due"`
	// Revoked is the current version's revocation, which makes the
	// lineage due at once.
	Revoked *acme.Revocation `json:"revoked,omitempty"`
	// RetryAfter is when a CA that refused asked to be asked again.
	RetryAfter time.Time `json:"retry_after,omitzero"`
	// DeployPending is set when a renewal made the version current and
	// its deploy has not finished.
	DeployPending bool           `json:"deploy_pending"`
	Targets       []TargetStatus `json:"targets"`
	// Served is what the lineage's endpoints presented at the last check.
	Served []acme.ServedRecord `json:"served,omitempty"`
}

// TargetStatus is one stored deploy target's state.
type TargetStatus struct {
	Target string `json:"target"`
	// Holds is whether the target holds the current version, with its
	// server reloaded.
	Holds bool `json:"holds"`
	// Record is what the target last did; nil when it never ran since
	// records were kept.
	Record *acme.TargetRecord `json:"record,omitempty"`
}

// Status reads lineage name's states at the engine's clock.
func (e *Engine) Status(name string) (LineageStatus, error) {
	cur, err := e.Store.Current(name)
	if err != nil {
		return LineageStatus{}, err
	}
	leaf := cur.Leaf
	sum := sha256.Sum256(leaf.Raw)
	st := LineageStatus{
		Name: name, Names: cur.Request.Names, CA: caName(cur.Request), KeyType: string(cur.Request.Key),
		Key: acme.KeyDescription(leaf.PublicKey), Version: cur.Version,
		NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(),
		Serial: leaf.SerialNumber.String(), SHA256: fmt.Sprintf("%X", sum),
		RetryAfter: cur.State.RetryAfter.UTC(), DeployPending: cur.DeployPending(),
		Targets: []TargetStatus{},
	}
	if st.KeyType == "" {
		st.KeyType = string(acme.KeyECDSAP256)
	}
	d, revoked := revokedDecision(cur)
	if revoked {
		st.Revoked = &cur.State.Revoked
	} else {
		var w *acme.RenewalWindow
		if !LocalCA(cur.Request) {
			w = acme.CachedRenewalWindow(e.Store, cur)
		}
		d = acme.Decide(leaf, e.now(), w, false)
	}
	st.RenewAt, st.Rule, st.Due = d.At.UTC(), d.Rule, d.Due
	if pins, err := e.Store.PinState(name); err == nil {
		if v, ok := pins.StagedFor(cur.Version); ok {
			st.Staged = v
		}
	}
	targets, err := cur.Request.Targets()
	if err != nil {
		return st, fmt.Errorf("the deploy targets stored with lineage %s: %w", name, err)
	}
	rec, recorded, err := e.Store.DeployRecord(name)
	if err != nil {
		return st, err
	}
	for _, t := range targets {
		ts := TargetStatus{Target: t.String()}
		if tr, ok := rec.Find(ts.Target); ok {
			ts.Record = &tr
			ts.Holds = tr.Holds(cur.Version)
		} else if !recorded {
			ts.Holds = !st.DeployPending // deployed before records were kept
		}
		st.Targets = append(st.Targets, ts)
	}
	st.Served = rec.Served
	return st, nil
}

// Statuses reads the status of each of names (Status) in their order,
// read ahead as a renewal run reads (ahead), and yields each with its
// error; the status's Name is set even with an error. It stops when ctx
// ends or yield returns false.
func (e *Engine) Statuses(ctx context.Context, names []string) iter.Seq2[LineageStatus, error] {
	type status struct {
		st  LineageStatus
		err error
	}
	return func(yield func(LineageStatus, error) bool) {
		ahead(ctx, names, func(name string) status {
			st, err := e.Status(name)
			st.Name = name
			return status{st, err}
		}, func(_ int, s status) bool {
			return yield(s.st, s.err)
		})
	}
}

// Problem is something about a lineage that needs the operator.
type Problem struct {
	// Critical is set when the lineage is broken for its peers or will
	// be within a day: expired, expiring, its current key revoked as
	// compromised, or an endpoint serving a key of no lineage. Everything
	// else is a warning.
	Critical bool   `json:"critical"`
	Text     string `json:"text"`
}

// Problems are what needs the operator in st at now, the most urgent
// first: the certificate expired or expiring within a day (critical);
// less than a sixth of its lifetime left, so renewals have failed since
// it became due at a third (warning); the current version revoked
// (critical when its key was compromised); a CA's Retry-After not yet
// passed; a deploy that did not finish or a target behind; an endpoint
// that served a key of no lineage (critical), another lineage's
// certificate or an older version at the last check. The dashboard and
// the CLI's monitoring check both judge by it.
func (st LineageStatus) Problems(now time.Time) []Problem {
	var out []Problem
	add := func(critical bool, format string, args ...any) {
		out = append(out, Problem{Critical: critical, Text: fmt.Sprintf(format, args...)})
	}
	switch left := st.NotAfter.Sub(now); {
	case left <= 0:
		add(true, "version %d expired %s", st.Version, stamp(st.NotAfter))
	case left < 24*time.Hour:
		add(true, "version %d expires %s, within a day", st.Version, stamp(st.NotAfter))
	case left < st.NotAfter.Sub(st.NotBefore)/6:
		add(false, "version %d expires %s and is still not renewed (due %s)", st.Version, stamp(st.NotAfter), stamp(st.RenewAt))
	}
	if rv := st.Revoked; rv != nil {
		add(rv.Reason == acme.ReasonKeyCompromise, "version %d was revoked (%s) at %s and is still current", st.Version, acme.ReasonName(rv.Reason), stamp(rv.At))
	}
	if st.RetryAfter.After(now) {
		add(false, "the CA asked not to be asked again before %s", stamp(st.RetryAfter))
	}
	if st.DeployPending {
		add(false, "version %d is current but its deploy did not finish", st.Version)
	}
	for _, t := range st.Targets {
		switch r := t.Record; {
		case t.Holds:
		case r != nil && r.Error != "":
			add(false, "%s: FAILED: %s", t.Target, r.Error)
		default:
			add(false, "%s: behind the current version", t.Target)
		}
	}
	for _, s := range st.Served {
		if s.Status != ServedCurrent {
			add(s.Status == ServedForeign, "%s", s.Detail)
		}
	}
	slices.SortStableFunc(out, func(a, b Problem) int {
		switch {
		case a.Critical == b.Critical:
			return 0
		case a.Critical:
			return -1
		}
		return 1
	})
	return out
}
