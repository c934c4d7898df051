package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"
)

// stateDir returns --state-dir after checking that it can be written:
// the directory itself, or the nearest existing parent it would be
// created in. Nothing is created here, so a usage error leaves no trace.
func stateDir(c *cli.Context) (string, error) {
	dir := c.Path("state-dir")
	if dir == "" {
		return "", usagef("no state directory: give --state-dir or set XMPPCERT_STATE_DIR")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", usagef("state directory %s: %v", dir, err)
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
	if err := syscall.Access(probe, 2 /* W_OK */); err != nil {
		return "", usagef("state directory %s is not writable (%s: %v); choose another with --state-dir or XMPPCERT_STATE_DIR", abs, probe, err)
	}
	return abs, nil
}

// caDir is where the embedded CA lives in a state directory.
func caDir(state string) string { return filepath.Join(state, "ca") }
