package lifecycle

import (
	"context"
	"fmt"
	"iter"

	"github.com/xmppcert/xmppcert/acme"
)

// DeployReport is what deploying one lineage did: the --json form of one
// lineage in the deploy command's output.
type DeployReport struct {
	Lineage string `json:"lineage"`
	Version int    `json:"version"`
	// Deploy has a result per target deployed; empty when every stored
	// target already held the version (UpToDate).
	Deploy   []DeployResult `json:"deploy"`
	Served   []ServedResult `json:"served,omitempty"`
	UpToDate bool           `json:"up_to_date"`
	Notes    []string       `json:"notes,omitempty"`
}

// Deployed reports whether every target deployed succeeded and every
// endpoint presents the version.
func (r DeployReport) Deployed() bool { return allDeployed(r.Deploy) && servedFailures(r.Served) == "" }

// Deploy deploys lineage name's current version, under its lock, to its
// stored deploy targets that do not hold it by its deploy record, or to
// every stored target with all (a lineage without a record has every
// target deployed). Nothing is issued. Once every target holds the
// version, a renewal's unfinished deploy is finished too.
func (e *Engine) Deploy(ctx context.Context, name string, all bool) (DeployReport, error) {
	if !all {
		if rep, ok := e.upToDate(name); ok {
			return rep, nil
		}
	}
	return e.deployLocked(ctx, name, all)
}

// Deploys deploys each of names as Deploy does, in their order, and
// yields each report with its error. Without all, whether a lineage is up
// to date is read ahead (ahead), as a renewal run reads, so that a run
// over many lineages with nothing to deploy costs little more than their
// reads; the lineages behind are deployed one at a time. It stops when
// ctx ends or yield returns false.
func (e *Engine) Deploys(ctx context.Context, names []string, all bool) iter.Seq2[DeployReport, error] {
	type upToDate struct {
		rep DeployReport
		ok  bool
	}
	return func(yield func(DeployReport, error) bool) {
		if all {
			for _, name := range names {
				if ctx.Err() != nil || !yield(e.deployLocked(ctx, name, true)) {
					return
				}
			}
			return
		}
		ahead(ctx, names, func(name string) upToDate {
			rep, ok := e.upToDate(name)
			return upToDate{rep, ok}
		}, func(i int, u upToDate) bool {
			if u.ok {
				return yield(u.rep, nil)
			}
			// Behind, or unreadable without the lock: read again under it.
			return yield(e.deployLocked(ctx, names[i], false))
		})
	}
}

// upToDate is lineage name's report when every stored target holds its
// current version by the deploy record and no renewal's deploy is
// unfinished, read without the lineage's lock, which is left to whoever
// needs it (a renewal due at this moment). Not ok otherwise, or when the
// lineage cannot be read: the deploy under the lock says why.
func (e *Engine) upToDate(name string) (DeployReport, bool) {
	cur, err := e.Store.Current(name)
	if err != nil || cur.DeployPending() {
		return DeployReport{}, false
	}
	if behind, err := e.storedBehind(cur); err != nil || len(behind) > 0 {
		return DeployReport{}, false
	}
	return DeployReport{Lineage: name, Version: cur.Version, Deploy: []DeployResult{}, UpToDate: true}, true
}

// deployLocked is Deploy under the lineage's lock, to the targets
// behind, or with all to every target.
func (e *Engine) deployLocked(ctx context.Context, name string, all bool) (DeployReport, error) {
	unlock, err := e.Store.Lock(name)
	if err != nil {
		return DeployReport{}, err
	}
	defer unlock()
	l, err := e.Store.Load(name)
	if err != nil {
		return DeployReport{}, err
	}
	rep := DeployReport{Lineage: name, Version: l.Version, Deploy: []DeployResult{}}
	targets, err := l.Request.Targets()
	if err != nil {
		return rep, fmt.Errorf("the deploy targets stored with lineage %s: %w", name, err)
	}
	if !all {
		if targets, _, err = e.behind(name, l.Version, targets); err != nil {
			return rep, err
		}
	}
	if len(targets) == 0 {
		rep.UpToDate = true
		return rep, nil
	}
	var notes []string
	rep.Deploy, rep.Served, notes = e.deployChecked(ctx, l, versionEvent(l), targets)
	rep.Notes = append(rep.Notes, notes...)
	if rep.Deployed() {
		if cur, err := e.Store.Current(name); err == nil && cur.DeployPending() {
			if err := e.Store.SaveRenewState(name, acme.RenewState{}); err != nil {
				rep.Notes = append(rep.Notes, fmt.Sprintf("clearing the renewal record: %v", err))
			}
		}
	}
	return rep, nil
}
