package acme

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/xmppcert/xmppcert/internal/atomicfile"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestSwapHelper is the other user's process of TestDeploySymlinkRace.
func TestSwapHelper(t *testing.T) { testtool.SwapHelper(t) }

// TestDeploySymlinkRace: root deploys a key and a certificate, as the
// Prosody target writes them (the key 0640 with the server's group), into
// a directory that another user owns, while that user swaps each file
// for a symbolic link to a root-only file thousands of times: the root
// file's owner, group, mode and content never change.
func TestDeploySymlinkRace(t *testing.T) {
	testtool.SkipShort(t, "it races another user's process for thousands of swaps")
	if os.Geteuid() != 0 {
		t.Skip("needs root: the race is root's writes against another user's links")
	}
	dir := testtool.NobodysDir(t, "certs")
	victim, unchanged := testtool.Victim(t)
	key, cert := []byte("-----BEGIN PRIVATE KEY-----\n"), []byte("-----BEGIN CERTIFICATE-----\n")

	sw := testtool.StartSwapper(t, "TestSwapHelper", dir, victim, []string{"example.org.key", "example.org.crt"})
	deploys := 0
	// At least 100 deploys, and on until the other user has swapped
	// 2,000 times, however fast either side runs.
	for ; deploys < 100 || sw.Swaps() < 2000; deploys++ {
		// Errors are expected (the other user renames files away);
		// what must never happen is a change to the victim.
		writeServerKey(filepath.Join(dir, "example.org.key"), key, "nogroup")
		atomicfile.WriteFile(filepath.Join(dir, "example.org.crt"), cert, 0o644)
	}
	t.Logf("%d deploys against %d swaps", deploys, sw.Stop(t))
	unchanged()
}
