package lifecycle

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/xmpptls"
)

// What an endpoint presents, compared with the lineage version just
// deployed (ServedResult.Status).
const (
	// ServedCurrent: the version deployed (or the staged one).
	ServedCurrent = "served"
	// ServedStale: an older version of the lineage; the server was not
	// reloaded, or the reload did not take.
	ServedStale = "stale"
	// ServedMismatch: a certificate of another lineage.
	ServedMismatch = "mismatch"
	// ServedForeign: a key that belongs to no version of any lineage.
	ServedForeign = "foreign"
	// ServedUnreachable: no TLS handshake with the endpoint.
	ServedUnreachable = "unreachable"
)

// ServedResult is what one endpoint presents.
type ServedResult struct {
	// Endpoint is the endpoint as acme.ServeEndpoint.String gives it.
	Endpoint string `json:"endpoint"`
	// Status is one of the Served* constants.
	Status string `json:"status"`
	// Lineage and Version say whose version is presented (served,
	// stale, mismatch).
	Lineage string `json:"lineage,omitempty"`
	Version int    `json:"version,omitempty"`
	// Serial and SHA256 identify the certificate presented.
	Serial string `json:"serial,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Error is why an endpoint was unreachable.
	Error string `json:"error,omitempty"`
}

// OK reports whether the endpoint presents the version deployed.
func (r ServedResult) OK() bool { return r.Status == ServedCurrent }

func (r ServedResult) String() string {
	switch r.Status {
	case ServedCurrent:
		return fmt.Sprintf("%s serves version %d", r.Endpoint, r.Version)
	case ServedStale:
		if r.Version == 0 {
			return fmt.Sprintf("%s still serves an older certificate for the lineage's key, serial %s (stale: the reload did not take)", r.Endpoint, r.Serial)
		}
		return fmt.Sprintf("%s still serves version %d (stale: the reload did not take)", r.Endpoint, r.Version)
	case ServedMismatch:
		if r.Version == 0 {
			return fmt.Sprintf("%s serves a certificate with the key of lineage %s (serial %s)", r.Endpoint, r.Lineage, r.Serial)
		}
		return fmt.Sprintf("%s serves version %d of lineage %s", r.Endpoint, r.Version, r.Lineage)
	case ServedForeign:
		return fmt.Sprintf("%s serves a certificate whose key belongs to no lineage (serial %s, SHA-256 %s)", r.Endpoint, r.Serial, r.SHA256)
	}
	return fmt.Sprintf("%s is unreachable: %s", r.Endpoint, r.Error)
}

// Defaults of the served check.
const (
	// DefaultServeGrace is how long a check waits for every endpoint to
	// present the version deployed: a reload is asynchronous.
	DefaultServeGrace = 10 * time.Second
	// serveInterval is the pause between two rounds of the check.
	serveInterval = 250 * time.Millisecond
	// serveTimeout bounds one connection to an endpoint.
	serveTimeout = 5 * time.Second
)

// CheckServed asks every endpoint of l's request (ServeCheck) what it
// presents and compares it with l, again and again until every endpoint
// presents l's version or the grace period (Engine.ServeGrace) is over,
// and reports the last answers. The last round begins at or after the end
// of the grace period, so that an endpoint that does not present l is
// asked at least twice, however slow the first round was. It returns nil
// for a lineage without endpoints.
func (e *Engine) CheckServed(ctx context.Context, l *acme.Lineage) []ServedResult {
	if len(l.Request.ServeCheck) == 0 {
		return nil
	}
	grace := e.ServeGrace
	if grace <= 0 {
		grace = DefaultServeGrace
	}
	deadline := time.Now().Add(grace)
	ix, ixErr := e.NewServedIndex() // the store does not change while we hold the lock
	for {
		started := time.Now()
		out := make([]ServedResult, len(l.Request.ServeCheck))
		all := true
		for i, ep := range l.Request.ServeCheck {
			out[i] = e.served(ctx, ix, ixErr, l, ep)
			all = all && out[i].OK()
		}
		// The answers reported are from a round that began at or after
		// the end of the grace period, however long a round takes.
		if all || !started.Before(deadline) || ctx.Err() != nil {
			return out
		}
		if wait := min(serveInterval, time.Until(deadline)); wait > 0 {
			select {
			case <-ctx.Done():
				return out
			case <-time.After(wait):
			}
		}
	}
}

// served asks one endpoint what it presents for l's host and classifies
// it with ix (ServedIndex.Classify), the index of every lineage's
// versions.
func (e *Engine) served(ctx context.Context, ix *ServedIndex, ixErr error, l *acme.Lineage, ep acme.ServeEndpoint) ServedResult {
	r := ServedResult{Endpoint: ep.String()}
	res, err := xmpptls.Dial(ctx, ep.Addr, xmpptls.Config{Domain: l.Request.Host(), Service: ep.Service, DirectTLS: ep.DirectTLS, Timeout: serveTimeout})
	if err == nil && len(res.State.PeerCertificates) == 0 {
		err = fmt.Errorf("no certificate presented")
	}
	if err == nil && ixErr != nil {
		err = fmt.Errorf("reading the lineages to compare with: %w", ixErr)
	}
	if err != nil {
		r.Status, r.Error = ServedUnreachable, err.Error()
		return r
	}
	leaf := res.State.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	r.Serial, r.SHA256 = leaf.SerialNumber.String(), fmt.Sprintf("%X", sum)
	r.Status, r.Version, r.Lineage = ix.Classify(l.Name, r.SHA256, spki(leaf))
	return r
}

// spki is the hex SHA-256 of a certificate's SubjectPublicKeyInfo.
func spki(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return fmt.Sprintf("%x", sum)
}

// servedFailures lists the endpoints that do not present the version,
// "; " between them; empty when all do.
func servedFailures(rs []ServedResult) string {
	var out []string
	for _, r := range rs {
		if !r.OK() {
			out = append(out, r.String())
		}
	}
	return strings.Join(out, "; ")
}

// deployChecked deploys l to targets (deploy) and, when every target
// succeeded, checks what the lineage's endpoints present (CheckServed).
// An endpoint that does not present l's version marks the targets just
// run as not holding it, so that later runs deploy and reload again, and
// is reported as an event. Notes say what could not be recorded.
func (e *Engine) deployChecked(ctx context.Context, l *acme.Lineage, event string, targets []acme.Target) ([]DeployResult, []ServedResult, []string) {
	var notes []string
	results, err := e.deploy(ctx, l, event, targets)
	if err != nil {
		notes = append(notes, err.Error())
	}
	if !allDeployed(results) {
		return results, nil, notes
	}
	served := e.CheckServed(ctx, l)
	if served != nil {
		if err := e.recordServed(l, served); err != nil {
			notes = append(notes, fmt.Sprintf("recording what the endpoints serve: %v", err))
		}
	}
	failed := servedFailures(served)
	if failed == "" {
		return results, served, notes
	}
	for _, r := range served {
		switch r.Status {
		case ServedStale, ServedMismatch, ServedUnreachable:
			e.emit(Event{Name: EventServedStale, Lineage: l.Name, Version: l.Version, Target: r.Endpoint, Err: fmt.Errorf("%s", r)})
		case ServedForeign:
			e.emit(Event{Name: EventServedForeign, Lineage: l.Name, Version: l.Version, Target: r.Endpoint, Err: fmt.Errorf("%s", r)})
		}
	}
	if len(results) > 0 {
		rec, _, err := e.Store.DeployRecord(l.Name)
		if err == nil {
			for _, d := range results {
				if tr, ok := rec.Find(d.Target); ok {
					tr.Failed, tr.Error = l.Version, "deployed, but "+failed
					rec.Set(tr)
				}
			}
			err = e.Store.SaveDeployRecord(l.Name, rec)
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("recording that the endpoints do not serve version %d: %v", l.Version, err))
		}
	}
	return results, served, notes
}

// recordServed keeps a check's answers in the lineage's deploy record,
// for the certificates command. The caller holds the lineage's lock.
func (e *Engine) recordServed(l *acme.Lineage, served []ServedResult) error {
	rec, _, err := e.Store.DeployRecord(l.Name)
	if err != nil {
		rec = acme.DeployRecord{}
	}
	rec.Served = nil
	now := e.now().UTC()
	for _, r := range served {
		rec.Served = append(rec.Served, acme.ServedRecord{Endpoint: r.Endpoint, Status: r.Status, Detail: r.String(), Version: l.Version, At: now})
	}
	return e.Store.SaveDeployRecord(l.Name, rec)
}

// ServedIndex knows every version of every lineage by the SHA-256 of its
// certificate and of its key, so that what an endpoint presents (as
// digests, the way the daemon's observations keep it) can be compared
// with the lineage it should serve.
type ServedIndex struct {
	certs map[string]versionRef // certificate digest
	keys  map[string]string     // key digest: its lineage
	lines map[string]lineageRef // by lineage name
}

type versionRef struct {
	lineage string
	version int
}

type lineageRef struct {
	current, staged int
	// since is when the current version went out: its last deploy, or
	// its notBefore when no deploy is recorded.
	since time.Time
}

// NewServedIndex reads every version of every lineage in the store.
func (e *Engine) NewServedIndex() (*ServedIndex, error) {
	ix := &ServedIndex{certs: map[string]versionRef{}, keys: map[string]string{}, lines: map[string]lineageRef{}}
	names, err := e.Store.Names()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		cur, err := e.Store.Current(name)
		if err != nil {
			continue // an unreadable lineage serves nothing to compare with
		}
		ref := lineageRef{current: cur.Version, since: cur.Leaf.NotBefore}
		if pins, err := e.Store.PinState(name); err == nil {
			if v, ok := pins.StagedFor(cur.Version); ok {
				ref.staged = v
			}
		}
		if rec, _, err := e.Store.DeployRecord(name); err == nil {
			for _, t := range rec.Targets {
				if t.Version == cur.Version && t.At.After(ref.since) {
					ref.since = t.At
				}
			}
		}
		ix.lines[name] = ref
		versions, _ := e.Store.Versions(name)
		for _, v := range versions {
			c, err := e.Store.VersionLeaf(name, v)
			if err != nil {
				continue
			}
			sum := sha256.Sum256(c.Raw)
			ix.certs[fmt.Sprintf("%x", sum)] = versionRef{name, v}
			ix.keys[spki(c)] = name
		}
	}
	return ix, nil
}

// Has reports whether the index knows lineage name.
func (ix *ServedIndex) Has(name string) bool {
	_, ok := ix.lines[name]
	return ok
}

// Since is when lineage name's current version went out.
func (ix *ServedIndex) Since(name string) time.Time { return ix.lines[name].since }

// Classify compares a presented certificate, given by the hex SHA-256 of
// its DER and of its SubjectPublicKeyInfo, with lineage name: one of
// the Served* statuses (never unreachable), the version presented when
// it is one of ours, and the lineage it belongs to.
func (ix *ServedIndex) Classify(name, certSHA256, spkiSHA256 string) (status string, version int, lineage string) {
	ref := ix.lines[name]
	if v, ok := ix.certs[strings.ToLower(certSHA256)]; ok {
		switch {
		case v.lineage == name && (v.version == ref.current || v.version == ref.staged):
			return ServedCurrent, v.version, name
		case v.lineage == name:
			return ServedStale, v.version, name
		}
		return ServedMismatch, v.version, v.lineage
	}
	if l, ok := ix.keys[strings.ToLower(spkiSHA256)]; ok {
		if l == name {
			return ServedStale, 0, name // a certificate of ours for this key, no longer kept
		}
		return ServedMismatch, 0, l
	}
	return ServedForeign, 0, ""
}
