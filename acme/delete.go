package acme

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Delete removes lineage name from the store under its lock: first
// live/NAME, so that it is gone for every other reader at once, then
// every version in its archive and its renewal, pin and deploy records.
// Files deployed to servers are not touched. The lock file stays:
// removing it while another process waits on it would let two hold it.
func (s DiskStore) Delete(name string) error {
	unlock, err := s.Lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	live := filepath.Join(s.Dir, "live", name)
	if _, err := os.Lstat(live); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", name, ErrNoLineage)
	}
	if err := os.Remove(live); err != nil {
		return err
	}
	for _, p := range []string{
		filepath.Join(s.Dir, "archive", name),
		s.renewFile(name, ".json"),
		s.renewFile(name, ".ari.json"),
		filepath.Join(s.Dir, pinsDir, name+".json"),
		filepath.Join(s.Dir, deployDir, name+".json"),
	} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("lineage %s is no longer live, but removing %s failed: %w", name, p, err)
		}
	}
	return nil
}
