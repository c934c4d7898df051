package acme

import (
	"crypto"
	"crypto/x509"
	"time"
)

// Store keeps lineages and what the lifecycle records about each of
// them between runs. DiskStore, certbot's layout in one state directory,
// is the implementation a single machine uses; a cluster keeps the same
// facts in a shared store (docs/architecture.md, "Cluster mode"). The
// lifecycle engine and Obtain see lineages only through this interface.
//
// Every method that changes a lineage is called with the lineage's lock
// held (Lock), except SaveWindowRecord, whose record any writer may
// replace: every answer of the CA is right. A method given a name with
// no lineage returns an error that wraps ErrNoLineage, except the
// records, which read as their zero values. Methods that only read
// (Current above all: a renewal run reads ahead) may be called from
// several goroutines at once.
type Store interface {
	// Lock takes lineage name's lock without waiting: a held lock
	// returns *LockedError. unlock releases it.
	Lock(name string) (unlock func(), err error)
	// Names lists the lineages, sorted.
	Names() ([]string, error)
	// Load reads the current version of a lineage, its key checked to
	// belong to its certificate.
	Load(name string) (*Lineage, error)
	// LoadVersion reads version n of a lineage, current or not.
	LoadVersion(name string, n int) (*Lineage, error)
	// Versions lists a lineage's version numbers, ascending.
	Versions(name string) ([]int, error)
	// VersionLeaf reads the leaf of version n of a lineage, and nothing
	// else of it.
	VersionLeaf(name string, n int) (*x509.Certificate, error)
	// Current reads what a renewal decision needs, and no key.
	Current(name string) (*Current, error)
	// Write stores iss as a new version of req's lineage with next as
	// its next key, and makes it current unless req.Stage is set. It
	// returns a nil Lineage with an error when the previous version is
	// still current and nothing of the new one is kept.
	Write(req Request, iss *Issued, next crypto.Signer) (*Lineage, error)
	// Promote makes version n of a lineage the current one.
	Promote(name string, n int) (*Lineage, error)
	// Delete removes a lineage and every record of it, under its lock.
	Delete(name string) error

	// SaveRenewState records st for lineage name; the zero RenewState
	// removes the record. Current returns it.
	SaveRenewState(name string, st RenewState) error
	// WindowRecord returns the CA's renewal window last recorded for the
	// lineage (the zero record when none is).
	WindowRecord(name string) (WindowRecord, error)
	// SaveWindowRecord replaces it.
	SaveWindowRecord(name string, w WindowRecord) error
	// PinState reads the lineage's pin state (the zero state when it
	// was never pinned); SavePinState replaces it.
	PinState(name string) (PinState, error)
	SavePinState(name string, p PinState) error
	// DeployRecord reads the lineage's deploy record; ok is false when
	// it has none because it was last deployed before records were kept
	// (DiskStore), and every target is then taken to hold it. A store
	// that kept records from its start (a cluster's) reports ok with an
	// empty record when this machine has deployed nothing of it.
	// SaveDeployRecord replaces it.
	DeployRecord(name string) (rec DeployRecord, ok bool, err error)
	SaveDeployRecord(name string, rec DeployRecord) error
}

// WindowRecord is a CA's renewal window (RFC 9773) as recorded for the
// certificate it was fetched for, and until when it is reused.
type WindowRecord struct {
	// Serial is the certificate's serial number (decimal) the window is for.
	Serial         string    `json:"serial"`
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	ExplanationURL string    `json:"explanation_url,omitempty"`
	// Until is when to ask again: the CA's Retry-After, bounded.
	Until time.Time `json:"until"`
}

// DiskStore is a Store.
var _ Store = DiskStore{}
