package lifecycle

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/pinning"
)

// Renewal of a lineage pinned by POSH (acme/pins.go): the new version is
// staged, the POSH documents are rewritten to list the current and the
// staged certificate, and a later run makes the staged version current
// once the documents have listed it for their lifetime.

// staged finishes a renewal that wrote a staged version: it records the
// staging and rewrites the POSH documents. The deployed certificate is
// unchanged; nothing is deployed.
func (r *RenewRun) staged(cur *acme.Current, staged *acme.Lineage, pins acme.PinState, rep LineageResult) LineageResult {
	store := r.e.Store
	now := r.e.now()
	pins.Staged, pins.StagedAt = staged.Version, now.UTC()
	rep.Result, rep.Version = ResultStaged, cur.Version
	rep.Reason = fmt.Sprintf("version %d is staged, valid until %s; it goes live once POSH has listed it for %s",
		staged.Version, stamp(staged.Chain[0].NotAfter), time.Duration(pins.POSH.ExpiresSeconds)*time.Second)
	current, err := store.Load(cur.Name)
	if err == nil {
		err = r.e.rewritePOSH(current, staged, &pins, now)
	}
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("rewriting the POSH documents in %s: %v; they must list the staged certificate before it goes live", pins.POSH.Dir, err))
	}
	if err := store.SavePinState(cur.Name, pins); err != nil {
		return rep.fail(fmt.Errorf("recording staged version %d: %w; the deployed certificate is unchanged", staged.Version, err))
	}
	if err := store.SaveRenewState(cur.Name, acme.RenewState{}); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("clearing the renewal record: %v", err))
	}
	return rep
}

// promoteStaged makes the staged version v current when POSH has listed
// it long enough, deploys it and rewrites the documents to list it
// alone; until then it says when.
func (r *RenewRun) promoteStaged(ctx context.Context, cur *acme.Current, pins acme.PinState, v int, rep LineageResult) LineageResult {
	store := r.e.Store
	staged, err := store.LoadVersion(cur.Name, v)
	if err != nil {
		pins.Staged = 0
		if serr := store.SavePinState(cur.Name, pins); serr != nil {
			return rep.fail(fmt.Errorf("staged version %d cannot be read (%v) nor dropped (%v); the deployed certificate is unchanged", v, err, serr))
		}
		return rep.fail(fmt.Errorf("staged version %d cannot be read (%v); it was dropped and the next run renews afresh; the deployed certificate is unchanged", v, err))
	}
	now := r.e.now()
	ready, at := pins.StagedReady(staged.Chain[0], cur.Leaf, now)
	if ready && now.Before(cur.Leaf.NotAfter.Add(-24*time.Hour)) {
		var waiting string
		if waiting, at, err = r.e.nodesListing(cur.Name, staged.Chain[0], pins.POSH, now); err != nil {
			return rep.fail(fmt.Errorf("staged version %d: %w; the deployed certificate is unchanged", v, err))
		}
		if waiting != "" {
			rep.Result = ResultStaged
			rep.Reason = fmt.Sprintf("version %d is staged; it goes live once every node's POSH documents have listed it for their lifetime: node %s does not list it yet", v, waiting)
			return rep
		}
		ready = !now.Before(at)
	}
	if !ready {
		rep.Result = ResultStaged
		if at.IsZero() {
			rep.Reason = fmt.Sprintf("version %d is staged, but the POSH documents in %s do not list it yet; it goes live once they have listed it for their lifetime", v, pins.POSH.Dir)
		} else {
			rep.Reason = fmt.Sprintf("version %d is staged; it goes live after %s, once POSH has listed it for its lifetime", v, stamp(at))
		}
		return rep
	}
	if err := store.SaveRenewState(cur.Name, acme.RenewState{RenewingFrom: cur.Version}); err != nil {
		return rep.fail(fmt.Errorf("recording the switch: %w; the deployed certificate is unchanged", err))
	}
	l, err := store.Promote(cur.Name, v)
	if err != nil {
		return rep.fail(fmt.Errorf("%w; the deployed certificate is unchanged", err))
	}
	r.e.emit(Event{Name: EventPromoted, Lineage: cur.Name, Version: v})
	rep.Result = ResultRenewed
	rep.Notes = append(rep.Notes, fmt.Sprintf("staged version %d went live: POSH has listed it since %s", v, stamp(pins.POSH.Written)))
	if err := r.e.rewritePOSH(l, nil, &pins, now); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("rewriting the POSH documents: %v", err))
	}
	if err := store.SavePinState(cur.Name, pins); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("recording the POSH documents: %v", err))
	}
	_, roots, release, err := r.e.open(l.Request, IssueOptions{})
	if err != nil {
		return rep.fail(fmt.Errorf("%w; version %d is current but not deployed yet", err, l.Version))
	}
	release()
	return r.checkAndDeploy(ctx, l, roots, rep)
}

// nodesListing, on a cluster's node, checks that every live node that
// serves the lineage's POSH documents lists staged: it returns the first
// node whose documents do not (its name), else when the last of them
// will have listed it for the documents' lifetime. On one machine it
// returns now.
func (e *Engine) nodesListing(name string, staged *x509.Certificate, p *acme.POSHPublication, now time.Time) (string, time.Time, error) {
	if e.POSHNodes == nil {
		return "", now, nil
	}
	served, err := e.POSHNodes.POSHServed(name)
	if err != nil {
		return "", time.Time{}, err
	}
	digest := certDigests([]*x509.Certificate{staged})[0]
	at := now
	for _, node := range slices.Sorted(maps.Keys(served)) {
		rec := served[node]
		if !slices.Contains(rec.Certs, digest) {
			return node, time.Time{}, nil
		}
		if t := rec.Since.Add(time.Duration(p.ExpiresSeconds) * time.Second); t.After(at) {
			at = t
		}
	}
	return "", at, nil
}

// rewritePOSH writes the lineage's POSH documents where they were last
// written (on a cluster's node, into its own web root, as its record
// says), listing the current certificate and the staged one, if any,
// and records that in pins (which the caller saves) and, on a cluster's
// node, as what this node serves. A failure to write into the web root
// is a *WebRootError.
func (e *Engine) rewritePOSH(current, staged *acme.Lineage, pins *acme.PinState, now time.Time) error {
	p := pins.POSH
	certs := []*x509.Certificate{current.Chain[0]}
	if staged != nil {
		certs = append(certs, staged.Chain[0])
	}
	dir := p.Dir
	if own, ok, err := e.ownPOSH(current.Name); err != nil {
		return err
	} else if ok && own.Dir != "" {
		dir = own.Dir
	}
	if err := writePOSHDocs(dir, p, certs); err != nil {
		return &WebRootError{err}
	}
	p.Written, p.Certs = now.UTC(), certDigests(certs)
	return e.recordPOSH(current.Name, dir, p.Certs, now)
}

// ownPOSH is this cluster node's record of the lineage's POSH documents;
// none on one machine.
func (e *Engine) ownPOSH(name string) (acme.POSHServed, bool, error) {
	if e.POSHNodes == nil {
		return acme.POSHServed{}, false, nil
	}
	served, err := e.POSHNodes.POSHServed(name)
	if err != nil {
		return acme.POSHServed{}, false, err
	}
	rec, ok := served[e.POSHNodes.Node()]
	return rec, ok, nil
}

// writePOSHDocs writes the POSH documents of p's services into dir,
// listing certs.
func writePOSHDocs(dir string, p *acme.POSHPublication, certs []*x509.Certificate) error {
	doc, err := pinning.NewPOSH(certs, time.Duration(p.ExpiresSeconds)*time.Second, pinning.POSHOptions{SHA512: p.SHA512})
	if err != nil {
		return err
	}
	for _, svc := range p.Services {
		if _, err := pinning.WritePOSH(dir, svc, doc); err != nil {
			return err
		}
	}
	return nil
}

// recordPOSH records, on a cluster's node, that this node's documents of
// name, in its web root dir, list certs (digests) from now on.
func (e *Engine) recordPOSH(name, dir string, certs []string, now time.Time) error {
	if e.POSHNodes == nil {
		return nil
	}
	if err := e.POSHNodes.SavePOSHServed(name, acme.POSHServed{Dir: dir, Certs: certs, Since: now.UTC()}); err != nil {
		return fmt.Errorf("recording this node's POSH documents: %w", err)
	}
	return nil
}

// SyncPOSH makes this cluster node's POSH documents of the lineage, in
// its own web root dir (each node has its own, which the node that
// renews writes into), list what the cluster's pin state says they list
// (the current certificate and a staged one) when this node's record
// says otherwise or a document is missing, and records them: a staged
// certificate goes live only once every node's documents have listed it
// for their lifetime. It reports whether it wrote; on one machine
// (POSHNodes nil), or before the documents were ever published, it does
// nothing.
func (e *Engine) SyncPOSH(name, dir string) (bool, error) {
	if e.POSHNodes == nil {
		return false, nil
	}
	pins, err := e.Store.PinState(name)
	if err != nil || pins.POSH == nil {
		return false, err
	}
	l, err := e.Store.Load(name)
	if err != nil {
		return false, err
	}
	certs, err := e.POSHCerts(l)
	if err != nil {
		return false, err
	}
	want := certDigests(certs)
	own, ok, err := e.ownPOSH(name)
	if err != nil {
		return false, err
	}
	if ok && own.Dir == dir && slices.Equal(own.Certs, want) && poshWritten(dir, pins.POSH.Services) {
		return false, nil
	}
	if err := writePOSHDocs(dir, pins.POSH, certs); err != nil {
		return false, &WebRootError{err}
	}
	return true, e.recordPOSH(name, dir, want, e.now())
}

// poshWritten reports whether the documents of services are in the web
// root dir.
func poshWritten(dir string, services []string) bool {
	for _, svc := range services {
		rel, err := pinning.POSHPath(svc)
		if err != nil {
			return false
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			return false
		}
	}
	return true
}

// certDigests are the hex SHA-256 of the certificates' DER, as
// acme.POSHPublication records them.
func certDigests(certs []*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		d := sha256.Sum256(c.Raw)
		out[i] = hex.EncodeToString(d[:])
	}
	return out
}

// WebRootError is a failure to write POSH documents into the web root,
// as opposed to one of the state directory.
type WebRootError struct{ Err error }

// Error is the underlying error's text.
func (e *WebRootError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *WebRootError) Unwrap() error { return e.Err }

// PublishPOSH writes, under the lineage's lock, the POSH documents pub
// describes, listing the current certificate and a staged one, and
// records the publication, so that renewals stage new certificates for
// POSH and rewrite the documents there. A failure to write into the web
// root is a *WebRootError.
func (e *Engine) PublishPOSH(name string, pub acme.POSHPublication) error {
	store := e.Store
	unlock, err := store.Lock(name)
	if err != nil {
		return fmt.Errorf("writing the POSH documents of %s: %w", name, err)
	}
	defer unlock()
	l, err := store.Load(name)
	if err != nil {
		return err
	}
	pins, err := store.PinState(l.Name)
	if err != nil {
		return err
	}
	var staged *acme.Lineage
	if v, ok := pins.StagedFor(l.Version); ok {
		if staged, err = store.LoadVersion(l.Name, v); err != nil {
			return fmt.Errorf("staged version %d of %s: %w", v, l.Name, err)
		}
	}
	pins.POSH = &pub
	if err := e.rewritePOSH(l, staged, &pins, e.now()); err != nil {
		return err
	}
	if err := store.SavePinState(l.Name, pins); err != nil {
		return err
	}
	e.emit(Event{Name: EventPOSHWritten, Lineage: l.Name, Version: l.Version})
	return nil
}

// POSHCerts are the certificates a lineage's POSH documents list: the
// current one and a staged one.
func (e *Engine) POSHCerts(l *acme.Lineage) ([]*x509.Certificate, error) {
	certs := []*x509.Certificate{l.Chain[0]}
	pins, err := e.Store.PinState(l.Name)
	if err != nil {
		return nil, err
	}
	if v, ok := pins.StagedFor(l.Version); ok {
		staged, err := e.Store.LoadVersion(l.Name, v)
		if err != nil {
			return nil, fmt.Errorf("staged version %d of %s: %w", v, l.Name, err)
		}
		certs = append(certs, staged.Chain[0])
	}
	return certs, nil
}
