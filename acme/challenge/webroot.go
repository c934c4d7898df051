package challenge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/internal/atomicfile"
	"github.com/xmppcert/xmppcert/internal/oneline"
)

// Webroot solves http-01 through a web server that already runs on port
// 80: Present writes the key authorization to
// Dir/.well-known/acme-challenge/TOKEN, and CleanUp removes it again,
// with the two directories when Present created them. Directories are
// created 0755 and the file 0644 whatever the umask (a cron job's umask
// 077 would otherwise hide the file from the web server), and the file
// appears atomically, so the server never serves half of it.
//
// Use it through a pointer; it must not be copied after first use. It is
// safe for concurrent use.
type Webroot struct {
	// Dir is the web server's document root for the names being
	// validated (--webroot). It must exist.
	Dir string

	mu      sync.Mutex
	created map[string]bool // directories Present created
}

// Validate checks that Dir is an existing directory.
func (s *Webroot) Validate() error {
	if s.Dir == "" {
		return errors.New("webroot: no directory given")
	}
	fi, err := os.Stat(s.Dir)
	if err != nil {
		return fmt.Errorf("webroot %s: %v", s.Dir, pathErr(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("webroot %s: not a directory", s.Dir)
	}
	return nil
}

// Present writes the challenge file.
func (s *Webroot) Present(ctx context.Context, chal acme.Challenge) error {
	if !validToken(chal.Token) {
		return fmt.Errorf("http-01: the CA sent an invalid token %q", oneline.Clip(chal.Token, 80))
	}
	if err := s.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.Dir
	for _, name := range []string{".well-known", "acme-challenge"} {
		dir = filepath.Join(dir, name)
		err := os.Mkdir(dir, 0o755)
		switch {
		case err == nil:
			// Past the umask, through the new directory itself: by
			// path, a link the web server's user swapped in would have
			// its target made world-readable.
			if err := atomicfile.ChmodDir(dir, 0o755, -1); err != nil {
				return fmt.Errorf("webroot: %s: %v", dir, pathErr(err))
			}
			if s.created == nil {
				s.created = make(map[string]bool)
			}
			s.created[dir] = true
		case errors.Is(err, fs.ErrExist):
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("webroot: %s exists and is not a directory", dir)
			}
		default:
			return fmt.Errorf("webroot: creating %s: %v", dir, pathErr(err))
		}
	}
	path := filepath.Join(dir, chal.Token)
	tmp, err := os.CreateTemp(dir, ".xmppcert-"+chal.Token+"-*")
	if err != nil {
		return fmt.Errorf("webroot: writing %s: %v", path, pathErr(err))
	}
	_, err = tmp.WriteString(chal.KeyAuthorization)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("webroot: writing %s: %v", path, pathErr(err))
	}
	return nil
}

// CleanUp removes the challenge file, then the directories Present
// created once they are empty.
func (s *Webroot) CleanUp(ctx context.Context, chal acme.Challenge) error {
	if !validToken(chal.Token) {
		return nil // Present wrote nothing for it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Join(s.Dir, ".well-known", "acme-challenge")
	path := filepath.Join(dir, chal.Token)
	var err error
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = fmt.Errorf("webroot: removing %s: %v", path, pathErr(rerr))
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if !s.created[d] {
			continue
		}
		// Fails while other challenges' files remain; the last
		// CleanUp removes it.
		if os.Remove(d) == nil {
			delete(s.created, d)
		}
	}
	return err
}
