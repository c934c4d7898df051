package lifecycle

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// IssueReport is what an issuance produced: the new version, the check
// of every service of every name, notes for the operator and the deploy
// results. It is the --json form of the issue command.
type IssueReport struct {
	Lineage   string         `json:"lineage"`
	Version   int            `json:"version"`
	Issuer    string         `json:"issuer"`
	NotBefore time.Time      `json:"not_before"`
	NotAfter  time.Time      `json:"not_after"`
	Key       string         `json:"key"`
	KeyReused bool           `json:"key_reused"`
	KeyChoice string         `json:"key_choice"`
	KeyNote   string         `json:"key_note,omitempty"`
	Names     []IssuedName   `json:"names"`
	Notes     []string       `json:"notes"`
	Deploy    []DeployResult `json:"deploy"`
	// Served is what the lineage's endpoints present after the deploy.
	Served []ServedResult `json:"served,omitempty"`
	Valid  bool           `json:"valid"`

	// PrivateRoot is set when peers must be given the CA's root: the
	// embedded CA, or an ACME CA trusted through TrustRoot.
	PrivateRoot bool `json:"-"`
	// TrustRoot is the file of the ACME CA's roots, when one was given.
	TrustRoot string `json:"-"`
	// DNSOnly is set when an ACME CA certified DNS names only: no SRV-ID
	// and no XmppAddr, as every public CA does.
	DNSOnly bool `json:"-"`
	// Changes is what the issuance changed in the lineage's stored
	// request; empty for a new lineage.
	Changes RequestChanges `json:"changes"`
}

// Deployed reports whether every deploy target succeeded and every
// endpoint presents the version.
func (r IssueReport) Deployed() bool { return allDeployed(r.Deploy) && servedFailures(r.Served) == "" }

// IssuedName is one name of an issued certificate: its identities and
// the verdict for each service its role serves.
type IssuedName struct {
	Domain     string           `json:"domain"`
	Role       xmppaddr.Role    `json:"role"`
	Identities []string         `json:"identities"`
	Checks     []ServiceVerdict `json:"checks"`
}

// ServiceVerdict is the check of one name for one service.
type ServiceVerdict struct {
	Service  xmppaddr.Service   `json:"service"`
	Valid    bool               `json:"valid"`
	Findings []xmppaddr.Finding `json:"findings"`
}

// DeployResult is what one deploy target did with a version. A server
// target is OK only when its server was reloaded: a server that was not
// (not running by its own status, no such server here) may be serving
// the old certificate, and the target is tried again by later runs.
type DeployResult struct {
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	// Reloaded is true when the target's server was reloaded;
	// NotReloaded says why a server was not.
	Reloaded    bool   `json:"reloaded"`
	NotReloaded string `json:"not_reloaded,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Issue issues req as the next version of its lineage under the
// lineage's lock, checks it and deploys it to the deploy targets and
// hooks of the request it stores. Over an existing lineage, req is
// merged with the stored request under p (Merge), and the report says
// what changed; a change p does not allow is a *NamesChangedError, and
// p.ReplaceNames without a change ErrNothingToReplace, both before
// anything is written. A lineage that another process holds is an
// *acme.LockedError.
func (e *Engine) Issue(ctx context.Context, req acme.Request, o IssueOptions, p ReplacePolicy) (IssueReport, error) {
	unlock, err := e.Store.Lock(req.Host())
	if err != nil {
		return IssueReport{}, err
	}
	defer unlock()
	merged, changes, note, err := e.desired(req, p)
	if err != nil {
		return IssueReport{}, err
	}
	targets, err := merged.Targets()
	if err != nil {
		return IssueReport{}, err
	}
	res, err := e.issueLocked(ctx, merged, o, targets)
	if err != nil {
		return IssueReport{}, err
	}
	res.Changes = changes
	if note != "" {
		res.Notes = append(res.Notes, note)
	}
	return res, nil
}

// desired is the request an issuance of req stores: req merged with the
// lineage's stored request, when there is one. A lineage whose stored
// request cannot be read is issued afresh as asked, and the note says
// so.
func (e *Engine) desired(req acme.Request, p ReplacePolicy) (acme.Request, RequestChanges, string, error) {
	cur, err := e.Store.Current(req.Host())
	switch {
	case errors.Is(err, acme.ErrNoLineage):
		return req, RequestChanges{}, "", nil
	case err != nil:
		return req, RequestChanges{}, fmt.Sprintf("the current version of %s could not be read (%v); it was issued afresh as asked, without the deploy targets and hooks stored with it", req.Host(), err), nil
	}
	merged, changes, err := Merge(cur.Request, req, p)
	return merged, changes, "", err
}

// issueLocked is Issue for a caller that holds the lineage's lock.
func (e *Engine) issueLocked(ctx context.Context, req acme.Request, o IssueOptions, targets []acme.Target) (IssueReport, error) {
	// Reissuing an ACME lineage from the same CA replaces its
	// certificate: say so to the CA (ARI "replaces", RFC 9773).
	if req.ACME != nil {
		if cur, err := e.Store.Load(req.Host()); err == nil && cur.Request.CA == req.CA {
			req.Replaces = cur.Chain[0]
		}
	}
	iss, roots, release, err := e.open(req, o)
	if err != nil {
		return IssueReport{}, err
	}
	got, err := acme.ObtainAt(ctx, e.Store, iss, req, e.now())
	release() // the local CA's database is free before deploy hooks run
	if err != nil {
		return IssueReport{}, err
	}
	e.emit(Event{Name: EventIssued, Lineage: got.Name, Version: got.Version})
	res := Check(got, roots, e.now())
	if got.KeyNote != "" {
		res.Notes = append(res.Notes, "key "+string(got.KeyChoice)+": "+got.KeyNote)
	}
	if note := e.reissuedPOSH(got.Lineage); note != "" {
		res.Notes = append(res.Notes, note)
	}
	var notes []string
	res.Deploy, res.Served, notes = e.deployChecked(ctx, got.Lineage, acme.EventIssued, targets)
	res.Notes = append(res.Notes, notes...)
	return res, nil
}

// reissuedPOSH rewrites the POSH documents of a lineage that xmppcert
// publishes after an issuance replaced its certificate (renewal stages
// instead), and says what that means for clients.
func (e *Engine) reissuedPOSH(l *acme.Lineage) string {
	pins, err := e.Store.PinState(l.Name)
	if err != nil || pins.POSH == nil {
		return ""
	}
	pins.Staged = 0 // the issuance made a newer version current
	err = e.rewritePOSH(l, nil, &pins, e.now())
	if err == nil {
		err = e.Store.SavePinState(l.Name, pins)
	}
	if err != nil {
		return fmt.Sprintf("the POSH documents in %s still list the old certificate: %v", pins.POSH.Dir, err)
	}
	e.emit(Event{Name: EventPOSHWritten, Lineage: l.Name, Version: l.Version})
	return fmt.Sprintf("the POSH documents in %s now list the new certificate; clients that cached the old ones (for up to %s) refuse it until then — renewal avoids this by staging",
		pins.POSH.Dir, time.Duration(pins.POSH.ExpiresSeconds)*time.Second)
}

// Check checks an issued version for every service each name's role
// serves, against roots (nil: the system roots) at now, and lists its
// identities.
func Check(got *acme.Obtained, roots *x509.CertPool, now time.Time) IssueReport {
	leaf := got.Chain[0]
	res := IssueReport{
		Lineage: got.Path, Version: got.Version, Issuer: got.Issuer,
		NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(),
		Key: acme.KeyDescription(leaf.PublicKey), KeyReused: got.KeyReused,
		KeyChoice: string(got.KeyChoice), KeyNote: got.KeyNote,
		Notes: []string{}, Deploy: []DeployResult{}, Valid: true,
	}
	presented := xmppaddr.Identities(leaf).Identifiers
	for _, n := range got.Request.Names {
		in := IssuedName{Domain: n.Domain, Role: n.Role, Identities: identitiesOf(presented, n.Domain)}
		for _, svc := range n.Role.Services() {
			v := ServiceVerdict{Service: svc}
			r, err := xmppaddr.Verify(got.Chain, xmppaddr.Options{Domain: n.Domain, Service: svc, Roots: roots, CurrentTime: now})
			if err != nil {
				v.Findings = []xmppaddr.Finding{{Code: "check-failed", Severity: xmppaddr.Error, Text: err.Error()}}
			} else {
				v.Valid, v.Findings = r.Valid, r.Findings
			}
			res.Valid = res.Valid && v.Valid
			in.Checks = append(in.Checks, v)
		}
		res.Names = append(res.Names, in)
	}
	for _, d := range got.Request.Unrelated() {
		res.Notes = append(res.Notes, fmt.Sprintf("%s is not under %s or its parent domain; it is in the certificate as asked, but check that it belongs to this host", d, got.Request.Host()))
	}
	res.PrivateRoot = LocalCA(got.Request)
	if a := got.Request.ACME; a != nil {
		res.DNSOnly = !hasXMPPIDs(presented)
		res.PrivateRoot = a.TrustRoot != ""
		res.TrustRoot = a.TrustRoot
	}
	return res
}

// Failures names the names and services a checked version failed for,
// with the first error finding of each.
func (r IssueReport) Failures() string {
	var out []string
	for _, n := range r.Names {
		for _, v := range n.Checks {
			if v.Valid {
				continue
			}
			s := n.Domain + " " + string(v.Service)
			for _, f := range v.Findings {
				if f.Severity == xmppaddr.Error {
					s += " (" + f.Text + ")"
					break
				}
			}
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
}

// hasXMPPIDs reports whether any SRV-ID or XmppAddr is presented.
func hasXMPPIDs(ids []xmppaddr.Identifier) bool {
	for _, id := range ids {
		if id.Type == xmppaddr.TypeSRVName || id.Type == xmppaddr.TypeXmppAddr {
			return true
		}
	}
	return false
}

// identitiesOf lists the presented identities that name domain, as
// "TYPE value".
func identitiesOf(ids []xmppaddr.Identifier, domain string) []string {
	out := []string{}
	for _, id := range ids {
		if id.Type != xmppaddr.TypeCN && id.Domain == domain {
			out = append(out, string(id.Type)+" "+id.Value)
		}
	}
	return out
}

// inLayout writes l's lineage into e.Layout, when the engine has one,
// and returns l with its path there (live/NAME for the current version,
// else the version's directory), for hooks that read the files. A
// lineage that cannot be written there fails every target: a node
// deploys nothing its own layout does not hold.
func (e *Engine) inLayout(l *acme.Lineage) (*acme.Lineage, error) {
	if e.Layout == nil {
		return l, nil
	}
	if _, err := mirrorOne(e.Store, *e.Layout, l.Name); err != nil {
		return nil, fmt.Errorf("writing the lineage into this machine's layout in %s: %w", e.Layout.Dir, err)
	}
	there, err := e.Layout.LoadVersion(l.Name, l.Version)
	if cur, cerr := e.Layout.Current(l.Name); cerr == nil && cur.Version == l.Version {
		there, err = e.Layout.Load(l.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the lineage from this machine's layout in %s: %w", e.Layout.Dir, err)
	}
	local := *l
	local.Path = there.Path
	return &local, nil
}

// deploy runs targets for l, records each outcome in the lineage's
// deploy record and reports them, also as events. The caller holds the
// lineage's lock. A record that cannot be written is the error; the
// results stand.
func (e *Engine) deploy(ctx context.Context, l *acme.Lineage, event string, targets []acme.Target) ([]DeployResult, error) {
	out := []DeployResult{}
	if len(targets) == 0 {
		return out, nil
	}
	rec, _, err := e.Store.DeployRecord(l.Name)
	if err != nil {
		rec = acme.DeployRecord{} // unreadable: replaced by what happens now
	}
	local, layoutErr := e.inLayout(l)
	for _, t := range targets {
		d := DeployResult{Target: t.String(), OK: true}
		tr, _ := rec.Find(d.Target)
		tr.Target = d.Target
		reload, err := acme.Reload{}, layoutErr
		if err == nil {
			reload, err = t.Deploy(ctx, local, event)
		}
		if err == nil && reload.Server && !reload.Done {
			err = &NotReloadedError{Reason: reload.NotDone}
			d.NotReloaded = reload.NotDone
		}
		if err != nil {
			d.OK, d.Error = false, err.Error()
			tr.Failed, tr.Error, tr.Reloaded, tr.NotReloaded = l.Version, d.Error, false, d.NotReloaded
			e.emit(Event{Name: EventDeployFailed, Lineage: l.Name, Version: l.Version, Target: d.Target, Err: err})
		} else {
			d.Reloaded = reload.Done
			tr.Version, tr.At, tr.Failed, tr.Error, tr.Reloaded, tr.NotReloaded = l.Version, e.now().UTC(), 0, "", reload.Done, ""
			e.emit(Event{Name: EventDeployed, Lineage: l.Name, Version: l.Version, Target: d.Target})
		}
		rec.Set(tr)
		out = append(out, d)
	}
	if err := e.Store.SaveDeployRecord(l.Name, rec); err != nil {
		return out, fmt.Errorf("recording what the deploy targets hold: %w", err)
	}
	return out, nil
}

// behind are those of targets that do not hold version by the
// lineage's deploy record; recorded is false when the lineage has no
// record (last deployed before records were kept), and then behind is
// every target.
func (e *Engine) behind(name string, version int, targets []acme.Target) (behind []acme.Target, recorded bool, err error) {
	rec, ok, err := e.Store.DeployRecord(name)
	if err != nil || !ok {
		return targets, false, err
	}
	for _, t := range targets {
		if tr, ok := rec.Find(t.String()); !ok || !tr.Holds(version) {
			behind = append(behind, t)
		}
	}
	return behind, true, nil
}

// NotReloadedError says that a deploy target installed the files but its
// server was not reloaded, and why.
type NotReloadedError struct{ Reason string }

func (e *NotReloadedError) Error() string { return "not reloaded: " + e.Reason }

func allDeployed(ds []DeployResult) bool {
	for _, d := range ds {
		if !d.OK {
			return false
		}
	}
	return true
}
