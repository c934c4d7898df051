package acmeca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/atomicfile"
)

// Account files in an account directory (AccountDir).
const (
	AccountFile    = "account.json"
	AccountKeyFile = "account.key"
	accountLock    = "lock"
)

// AccountDir is where the account for a directory URL is kept in a state
// directory: STATE/accounts/HOST/HASH, HOST the directory's host (and
// port), HASH the first 16 hex digits of the SHA-256 of the URL, so that
// two directories on one host (staging and production, say) never share
// an account.
func AccountDir(state, directory string) string {
	host := "unknown"
	if u, err := url.Parse(directory); err == nil && u.Host != "" {
		host = u.Host
	}
	host = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, host)
	sum := sha256.Sum256([]byte(directory))
	return filepath.Join(state, "accounts", host, hex.EncodeToString(sum[:8]))
}

// DiskAccounts keeps the ACME accounts of one machine in its state
// directory: AccountDir holds account.json and account.key (0600).
type DiskAccounts struct {
	// State is the state directory.
	State string
}

var _ acme.AccountStore = DiskAccounts{}

// Account reads the account kept in directory's AccountDir.
// fs.ErrNotExist means there is none.
func (d DiskAccounts) Account(directory string) (*acme.Account, error) {
	dir := AccountDir(d.State, directory)
	b, err := os.ReadFile(filepath.Join(dir, AccountFile))
	if err != nil {
		return nil, err
	}
	var a acme.Account
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, AccountFile), err)
	}
	if a.Location == "" {
		return nil, fmt.Errorf("%s names no account URL", filepath.Join(dir, AccountFile))
	}
	if a.Key, err = acme.ReadKey(filepath.Join(dir, AccountKeyFile)); err != nil {
		return nil, err
	}
	return &a, nil
}

// SaveAccount writes the account: the key first, so that an account.json
// never names a key that is not there.
func (d DiskAccounts) SaveAccount(a *acme.Account) error {
	dir := AccountDir(d.State, a.Directory)
	if err := atomicfile.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(a.Key)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, AccountKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, AccountFile), append(b, '\n'), 0o600)
}

// AccountPlace is directory's AccountDir.
func (d DiskAccounts) AccountPlace(directory string) string { return AccountDir(d.State, directory) }

// newAccountKey makes an account key: ECDSA P-256, which every ACME CA
// takes.
func newAccountKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// LockAccount takes an exclusive lock on the account directory, held
// across processes, so that two runs that find no account register one,
// not two. It waits for the other run (a file lock: ctx does not bound
// the wait, which lasts one registration).
func (d DiskAccounts) LockAccount(_ context.Context, directory string) (unlock func(), err error) {
	dir := AccountDir(d.State, directory)
	if err := atomicfile.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Never through a symbolic link (the lock is only opened, but a
	// link would create or hold open a file elsewhere).
	path := filepath.Join(dir, accountLock)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("lock file %s is a symbolic link, which is not followed", path)
	}
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// RemoveAccount forgets a stored account the CA no longer knows.
func (d DiskAccounts) RemoveAccount(directory string) error {
	dir := AccountDir(d.State, directory)
	for _, f := range []string{AccountFile, AccountKeyFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
