// Package secretfile reads a secret (an HMAC key, a bearer token, an EAB
// key) from a file, as xmppcert takes every secret: never on the command
// line, where ps and shell history show it, nor in the configuration
// file. A secret is one line, so the file is read up to MaxSize and
// trimmed; errors name the file and never quote its content.
package secretfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxSize is the largest secret file read: a secret is a line, so
// anything bigger is the wrong file.
const MaxSize = 64 << 10

// Read returns the content of the file at path without surrounding
// white space. what names the secret in errors ("EAB HMAC key file").
func Read(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s %s: %v; check the path and that this user may read it", what, path, bare(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s %s: %v", what, path, bare(err))
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s %s is larger than %d KiB; is it the right file?", what, path, MaxSize>>10)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("%s %s is empty; put the secret in it", what, path)
	}
	return data, nil
}

// Exposed reports whether the file at path is readable by group or
// others, and its mode: a secret there is known to more than its owner.
// A file that cannot be examined is not reported (Read says why).
func Exposed(path string) (fs.FileMode, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	return fi.Mode().Perm(), fi.Mode().Perm()&0o044 != 0
}

// bare is err without the path an *fs.PathError repeats.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
