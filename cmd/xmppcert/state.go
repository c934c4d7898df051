package main

import (
	"errors"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
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
	if err := safedir.Check(abs, acme.Layout); err != nil {
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
// written (safedir.Writable). A failure is a usage error, before
// anything has been written.
func writableStateDir(c *cli.Context) (string, error) {
	abs, err := stateDir(c)
	if err != nil {
		return "", err
	}
	var notDir *safedir.NotDirError
	var notWritable *safedir.NotWritableError
	switch err := safedir.Writable(abs); {
	case errors.As(err, &notDir):
		return "", usagef("state directory %s: %s is not a directory; choose another with --state-dir", abs, notDir.Path)
	case errors.As(err, &notWritable):
		return "", usagef("state directory %s is not writable (%v); choose another with --state-dir or XMPPCERT_STATE_DIR", abs, notWritable.Err)
	case err != nil:
		return "", usagef("state directory %s: %v", abs, err)
	}
	return abs, nil
}

// caDir is where the embedded CA lives in a state directory.
func caDir(state string) string { return lifecycle.CADir(state) }
