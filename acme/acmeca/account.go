package acmeca

import (
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
	"time"

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

// HasAccount reports whether an account for directory is kept in state,
// so that issuing needs no --agree-tos.
func HasAccount(state, directory string) bool {
	_, err := loadAccount(AccountDir(state, directory))
	return err == nil
}

// accountRecord is account.json. The key is in account.key (0600).
type accountRecord struct {
	Directory string   `json:"directory"`
	Location  string   `json:"location"`
	Contact   []string `json:"contact,omitempty"`
	// TermsOfServiceAgreed records that the operator agreed, with
	// --agree-tos, when the account was registered.
	TermsOfServiceAgreed bool      `json:"terms_of_service_agreed"`
	EABKeyID             string    `json:"eab_kid,omitempty"`
	Created              time.Time `json:"created"`
}

// storedAccount is an account read from disk.
type storedAccount struct {
	accountRecord
	key crypto.Signer
}

// loadAccount reads the account kept in dir. fs.ErrNotExist means there
// is none.
func loadAccount(dir string) (*storedAccount, error) {
	b, err := os.ReadFile(filepath.Join(dir, AccountFile))
	if err != nil {
		return nil, err
	}
	var a storedAccount
	if err := json.Unmarshal(b, &a.accountRecord); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, AccountFile), err)
	}
	if a.Location == "" {
		return nil, fmt.Errorf("%s names no account URL", filepath.Join(dir, AccountFile))
	}
	if a.key, err = acme.ReadKey(filepath.Join(dir, AccountKeyFile)); err != nil {
		return nil, err
	}
	return &a, nil
}

// saveAccount writes the account to dir: the key first, so that an
// account.json never names a key that is not there.
func saveAccount(dir string, a *storedAccount) error {
	if err := atomicfile.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(a.key)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, AccountKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	b, err := json.MarshalIndent(a.accountRecord, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, AccountFile), append(b, '\n'), 0o600)
}

// newAccountKey makes an account key: ECDSA P-256, which every ACME CA
// takes.
func newAccountKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// lockAccountDir takes an exclusive lock on the account directory, held
// across processes, so that two runs that find no account register one,
// not two. It waits for the other run.
func lockAccountDir(dir string) (unlock func(), err error) {
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

// removeAccount forgets a stored account the CA no longer knows.
func removeAccount(dir string) error {
	for _, f := range []string{AccountFile, AccountKeyFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
