package acme

import (
	"context"
	"crypto"
	"time"
)

// Account is an ACME account as kept between runs: what the CA
// registered, and its key. Its JSON is the record without the key.
type Account struct {
	// Directory is the CA's directory URL the account belongs to.
	Directory string `json:"directory"`
	// Location is the account URL the CA gave (its kid).
	Location string   `json:"location"`
	Contact  []string `json:"contact,omitempty"`
	// TermsOfServiceAgreed records that the operator agreed to the CA's
	// terms when the account was registered.
	TermsOfServiceAgreed bool `json:"terms_of_service_agreed"`
	// EABKeyID is the External Account Binding key it was bound with.
	EABKeyID string    `json:"eab_kid,omitempty"`
	Created  time.Time `json:"created"`
	// Key is the account's private key, kept apart from the record.
	Key crypto.Signer `json:"-"`
}

// AccountStore keeps ACME accounts, one per CA directory URL, so that
// every run (and, in a cluster, every node) orders from a CA with the
// same account: a CA accepts the "replaces" of a renewal (RFC 9773) only
// from the account the replaced certificate was issued to.
type AccountStore interface {
	// Account reads the account kept for directory. An error that wraps
	// fs.ErrNotExist means that none is.
	Account(directory string) (*Account, error)
	// LockAccount takes directory's account lock, waiting (within ctx)
	// for another holder, so that runs that find no account register
	// one, not one each.
	LockAccount(ctx context.Context, directory string) (unlock func(), err error)
	// SaveAccount keeps a, under its directory's lock.
	SaveAccount(a *Account) error
	// RemoveAccount forgets directory's account (the CA no longer knows
	// it), under its lock.
	RemoveAccount(directory string) error
	// AccountPlace says where directory's account is kept, for messages:
	// a directory on disk, or a key in a cluster's store.
	AccountPlace(directory string) string
}

// OrderSlots caps the ACME orders open at once with one account: Take
// waits (within ctx) for a free slot and returns its release. A cluster
// shares its slots among its nodes, so that renewing many lineages at
// once (a CA moving thousands of renewal windows together) stays within
// the CA's rate limits.
type OrderSlots interface {
	TakeOrderSlot(ctx context.Context, account string) (release func(), err error)
}
