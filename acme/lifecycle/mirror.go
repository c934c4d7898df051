package lifecycle

import (
	"errors"
	"fmt"
	"slices"

	"github.com/xmppcert/xmppcert/acme"
)

// MirrorError says why a lineage was not mirrored; the others were.
type MirrorError struct {
	Name string
	Err  error
}

func (e *MirrorError) Error() string { return fmt.Sprintf("lineage %s: %v", e.Name, e.Err) }

func (e *MirrorError) Unwrap() error { return e.Err }

// ErrDiverged is a local lineage whose versions are not the shared
// store's: a version there that the shared store lacks, or the same
// number holding another certificate.
var ErrDiverged = errors.New("the local layout holds versions the shared store does not")

// Mirror writes every lineage of src that dst lacks or holds behind into
// dst, certbot's layout on this machine, version by version under the
// same numbers, and makes src's current version current in dst, so that
// a cluster node's servers, hooks and `prosodyctl cert import` find the
// shared certificates where they always did. It returns the lineages it
// changed; a lineage it cannot mirror (locked locally, diverged) is
// skipped and named in the joined error.
func Mirror(src acme.Store, dst acme.DiskStore) ([]string, error) {
	names, err := src.Names()
	if err != nil {
		return nil, err
	}
	var changed []string
	var errs []error
	for _, name := range names {
		did, err := mirrorOne(src, dst, name)
		if err != nil {
			errs = append(errs, &MirrorError{Name: name, Err: err})
		}
		if did {
			changed = append(changed, name)
		}
	}
	return changed, errors.Join(errs...)
}

func mirrorOne(src acme.Store, dst acme.DiskStore, name string) (bool, error) {
	cur, err := src.Current(name)
	if err != nil {
		return false, err
	}
	want, err := src.Versions(name)
	if err != nil {
		return false, err
	}
	if _, ok, err := behindIn(dst, name, cur, want); err != nil || !ok {
		return false, err // up to date (read again under the lock below otherwise)
	}
	// What dst holds is read again under its lock: another writer (this
	// node's other loop, a command) may have mirrored meanwhile.
	unlock, err := dst.Lock(name)
	if err != nil {
		return false, err
	}
	defer unlock()
	have, behind, err := behindIn(dst, name, cur, want)
	if err != nil || !behind {
		return false, err
	}
	for _, n := range have {
		if !slices.Contains(want, n) {
			return false, ErrDiverged
		}
		a, err := src.VersionLeaf(name, n)
		if err != nil {
			return false, err
		}
		b, err := dst.VersionLeaf(name, n)
		if err != nil || !a.Equal(b) {
			return false, ErrDiverged
		}
	}
	for _, n := range want {
		if slices.Contains(have, n) {
			continue
		}
		l, err := src.LoadVersion(name, n)
		if err != nil {
			return false, err
		}
		req := l.Request
		req.Stage = true
		w, err := dst.Write(req, &acme.Issued{Chain: l.Chain, Key: l.Key}, l.NextKey)
		if err != nil {
			return false, err
		}
		if w.Version != n {
			return false, fmt.Errorf("%w: version %d was written locally as %d", ErrDiverged, n, w.Version)
		}
	}
	if _, err := dst.Promote(name, cur.Version); err != nil {
		return false, err
	}
	return true, nil
}

// behindIn reads the versions dst holds of lineage name, and whether it
// is behind the shared store's current version cur and versions want.
func behindIn(dst acme.DiskStore, name string, cur *acme.Current, want []int) (have []int, behind bool, err error) {
	have, err = dst.Versions(name)
	if err != nil && !errors.Is(err, acme.ErrNoLineage) {
		return nil, false, err
	}
	local, lerr := dst.Current(name)
	upToDate := lerr == nil && local.Version == cur.Version && local.Leaf.Equal(cur.Leaf) && slices.Equal(have, want)
	return have, !upToDate, nil
}
