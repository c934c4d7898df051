package main

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme/lifecycle"
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
	return abs, nil
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
