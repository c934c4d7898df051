package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/safedir"
)

// stateDir returns --state-dir as an absolute path, for commands that
// only read it.
func stateDir(c *cli.Context) (string, error) {
	dir := c.Path("state-dir")
	if dir == "" {
		return "", usagef("no state directory: give --state-dir or set XMPPCERT_STATE_DIR")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", usagef("state directory %s: %v", dir, err)
	}
	if err := safedir.Check(abs); err != nil {
		return "", unsafeStateDir(abs, err)
	}
	return abs, nil
}

// unsafeStateDir phrases safedir's refusal of the state directory: what
// to chown or chmod, before anything in it is read or run.
func unsafeStateDir(abs string, err error) error {
	var ue *safedir.UnsafeError
	if !errors.As(err, &ue) {
		return usagef("state directory %s: %v", abs, err)
	}
	inside := ue.Path == abs || strings.HasPrefix(ue.Path, abs+string(filepath.Separator))
	switch {
	case !inside:
		return usagef("state directory %s: %v, who could replace it: choose a state directory whose parents only you or root can write, with --state-dir", abs, err)
	case ue.OtherOwner():
		return usagef("state directory %s: %v: another user could plant what this runs; use a directory of your own with --state-dir, or chown -R %d %s if it is yours", abs, err, ue.Want, abs)
	}
	return usagef("state directory %s: %v: another user could plant what this runs; chmod -R go-w %s", abs, err, abs)
}

// writableStateDir returns --state-dir after proving that it can be
// written: a probe directory is created and removed in the state
// directory, or in the nearest existing parent it would be created in.
// access(2) is not enough: it says yes to root on /proc. A failure is a
// usage error, before anything has been written.
func writableStateDir(c *cli.Context) (string, error) {
	abs, err := stateDir(c)
	if err != nil {
		return "", err
	}
	probe := abs
	for {
		st, err := os.Stat(probe)
		if err == nil {
			if !st.IsDir() {
				return "", usagef("state directory %s: %s is not a directory; choose another with --state-dir", abs, probe)
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", usagef("state directory %s: %v", abs, err)
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			break
		}
		probe = parent
	}
	tmp, err := os.MkdirTemp(probe, probePrefix+"*")
	if err != nil {
		return "", usagef("state directory %s is not writable (%v); choose another with --state-dir or XMPPCERT_STATE_DIR", abs, err)
	}
	// Remove this probe and any a killed run left. Removing a concurrent
	// run's probe is harmless: its MkdirTemp has already answered.
	left, _ := filepath.Glob(filepath.Join(probe, probePrefix+"*"))
	for _, d := range append(left, tmp) {
		os.Remove(d)
	}
	return abs, nil
}

// probePrefix names the directories writableStateDir creates and removes.
const probePrefix = ".xmppcert-probe-"

// caDir is where the embedded CA lives in a state directory.
func caDir(state string) string { return lifecycle.CADir(state) }
