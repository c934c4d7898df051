package acme

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// deployDir holds one record per lineage of what its deploy targets hold:
//
//	deploy/NAME.json  DeployRecord
const deployDir = "deploy"

// DeployRecord is what each deploy target of a lineage holds, kept in
// STATE/deploy/NAME.json and written under the lineage's lock after
// every deploy, so that any later run can tell a target that is behind
// the current version (a failed deploy, a reload that did not happen)
// and deploy it again.
type DeployRecord struct {
	Targets []TargetRecord `json:"targets"`
	// Served is what the lineage's endpoints presented at the last check
	// after a deploy.
	Served []ServedRecord `json:"served,omitempty"`
}

// ServedRecord is what one endpoint presented at a check.
type ServedRecord struct {
	// Endpoint is the endpoint as ServeEndpoint.String gives it.
	Endpoint string `json:"endpoint"`
	// Status is served, stale, mismatch, foreign or unreachable; Detail
	// says it in words.
	Status string `json:"status"`
	Detail string `json:"detail"`
	// Version is the lineage version the check was for.
	Version int       `json:"version"`
	At      time.Time `json:"at"`
}

// TargetRecord is one target's state.
type TargetRecord struct {
	// Target names the target as Target.String does.
	Target string `json:"target"`
	// Version is the lineage version the target last took without an
	// error; 0 when none.
	Version int `json:"version"`
	// At is when that was.
	At time.Time `json:"at,omitzero"`
	// Reloaded says whether the target's server was reloaded then;
	// NotReloaded says why not, for a target that reloads a server.
	Reloaded    bool   `json:"reloaded"`
	NotReloaded string `json:"not_reloaded,omitempty"`
	// Failed is the version the last attempt failed to deploy, with
	// Error; both are cleared by a later success.
	Failed int    `json:"failed_version,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Holds reports whether the target took version without an error and,
// for a server, with a reload.
func (t TargetRecord) Holds(version int) bool {
	return t.Version >= version && t.Failed == 0 && t.NotReloaded == ""
}

// Find returns the record of target, if there is one.
func (r DeployRecord) Find(target string) (TargetRecord, bool) {
	for _, t := range r.Targets {
		if t.Target == target {
			return t, true
		}
	}
	return TargetRecord{}, false
}

// Set replaces the record of t.Target with t, or adds it.
func (r *DeployRecord) Set(t TargetRecord) {
	for i := range r.Targets {
		if r.Targets[i].Target == t.Target {
			r.Targets[i] = t
			return
		}
	}
	r.Targets = append(r.Targets, t)
}

// DeployRecord reads lineage name's deploy record; ok is false when it
// has none (a lineage last deployed before records were kept).
func (s DiskStore) DeployRecord(name string) (rec DeployRecord, ok bool, err error) {
	path := filepath.Join(s.Dir, deployDir, name+".json")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return rec, false, nil
	}
	err = readJSON(path, &rec)
	return rec, err == nil, err
}

// SaveDeployRecord replaces lineage name's deploy record. The caller
// holds the lineage's lock.
func (s DiskStore) SaveDeployRecord(name string, rec DeployRecord) error {
	return s.writeJSONFile(filepath.Join(s.Dir, deployDir, name+".json"), rec)
}
