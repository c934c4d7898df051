package acme

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"time"

	"github.com/xmppcert/xmppcert/internal/atomicfile"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/smallfile"
)

// Renewal keeps what one run leaves for the next in STATE/renew, beside
// the lineages:
//
//	renew/NAME.json      RenewState: a renewal in progress, a CA's Retry-After
//	renew/NAME.ari.json  the CA's renewal window for the current certificate
//
// Neither is needed to serve a certificate; both are small JSON files
// replaced atomically.
const renewDir = "renew"

// Current is what renewal reads of a lineage to decide whether it is
// due: the current version, its stored request, its leaf and the renewal
// state. It reads no key and no chain, so that a run over many lineages
// of which none is due reads three small files per lineage.
type Current struct {
	Name    string
	Version int
	Request Request
	Leaf    *x509.Certificate
	State   RenewState
}

// RenewState is what a renewal records between runs, in
// STATE/renew/NAME.json. It is written only under the lineage's lock.
type RenewState struct {
	// RenewingFrom is the version a renewal started from. It is written
	// before issuing and removed once the new version is deployed. A
	// later run that finds it with a newer version current deploys that
	// version, because the renewing process died or a deploy target
	// failed; with the same version current, the renewal never got as
	// far as a new version and the lineage is decided afresh.
	RenewingFrom int `json:"renewing_from,omitempty"`
	// RetryAfter is when a CA that refused to issue asked to be asked
	// again (a rate limit). Renewal leaves the lineage alone until then
	// unless forced.
	RetryAfter time.Time `json:"retry_after,omitzero"`
	// Revoked records that the current certificate was revoked: a
	// lineage whose current certificate has this serial is due at once.
	Revoked Revocation `json:"revoked,omitzero"`
}

// Revocation is a certificate's revocation, as recorded.
type Revocation struct {
	// Serial is the revoked certificate's serial number, decimal.
	Serial string `json:"serial"`
	// Reason is the RFC 5280 reason code (ReasonKeyCompromise, ...).
	Reason int       `json:"reason"`
	At     time.Time `json:"at"`
}

// Of reports whether r revokes leaf.
func (r Revocation) Of(leaf *x509.Certificate) bool {
	return r.Serial != "" && r.Serial == leaf.SerialNumber.String()
}

// RFC 5280 revocation reason codes that xmppcert revoke takes (those
// ACME CAs accept from subscribers).
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
)

// ReasonNames maps each accepted reason's RFC 5280 name to its code.
var ReasonNames = map[string]int{
	"unspecified": ReasonUnspecified, "keyCompromise": ReasonKeyCompromise,
	"affiliationChanged": ReasonAffiliationChanged, "superseded": ReasonSuperseded,
	"cessationOfOperation": ReasonCessationOfOperation,
}

// ReasonName is the RFC 5280 name of a reason code.
func ReasonName(code int) string {
	for n, c := range ReasonNames {
		if c == code {
			return n
		}
	}
	return fmt.Sprintf("reason %d", code)
}

// DeployPending reports whether an earlier renewal made a new version
// current but did not finish deploying it.
func (c *Current) DeployPending() bool {
	return c.State.RenewingFrom > 0 && c.Version > c.State.RenewingFrom
}

// Current reads what renewal needs of lineage name. Like Load it
// resolves live/NAME once, so that the request and the leaf belong to
// the same version.
func (s DiskStore) Current(name string) (*Current, error) {
	version, n, req, err := s.resolve(name)
	if err != nil {
		return nil, err
	}
	c := &Current{Name: name, Version: n, Request: req}
	certs, err := certfile.Read(filepath.Join(version, CertFile), nil)
	if err != nil {
		return nil, err
	}
	c.Leaf = certs[0]
	if err := readJSON(s.renewFile(name, ".json"), &c.State); err != nil {
		return nil, err
	}
	return c, nil
}

// SaveRenewState records st for lineage name; the zero RenewState
// removes the record. The caller holds the lineage's lock.
func (s DiskStore) SaveRenewState(name string, st RenewState) error {
	path := s.renewFile(name, ".json")
	if st == (RenewState{}) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return s.writeJSONFile(path, st)
}

func (s DiskStore) renewFile(name, ext string) string {
	return filepath.Join(s.Dir, renewDir, name+ext)
}

func (s DiskStore) writeJSONFile(path string, v any) error {
	b, err := storedJSON(v)
	if err != nil {
		return err
	}
	if err := atomicfile.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

// maxStoredFile bounds what the store reads back: requests, records and
// keys are a few KB, so a larger file is not one the store wrote.
const maxStoredFile = 1 << 20

// readStored reads a file of the store, bounded by maxStoredFile.
func readStored(path string) ([]byte, error) {
	return smallfile.Read(path, maxStoredFile)
}

// readJSON decodes path into v; a missing file leaves v as it is.
func readJSON(path string, v any) error {
	b, err := readStored(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w; remove it and run again", path, err)
	}
	return nil
}

// Renewal rules, as Decision.Rule names them.
const (
	RuleLifetime = "lifetime" // a third of the lifetime left
	RuleARI      = "ari"      // the CA's renewal window (RFC 9773)
	RuleForce    = "force"    // the operator asked
	RuleRevoked  = "revoked"  // the current certificate was revoked
)

// Decision says whether a lineage is due for renewal, when and why.
type Decision struct {
	Due bool
	// At is when the certificate is or was due by its rule: the time
	// chosen in the CA's window, or the moment a third of its lifetime
	// is left. A forced decision keeps the time the rule gave.
	At time.Time
	// Rule is RuleARI, RuleLifetime or RuleForce (RuleRevoked where the
	// lifecycle engine finds the current certificate revoked).
	Rule string
	// Reason says why, in words for the operator.
	Reason string
}

// Decide applies the renewal policy to a lineage's leaf at time now.
// With a window from the CA (RFC 9773) the certificate is due from a
// time chosen in the window (RenewalTime), and at once when the window
// has ended; without one, or with a window that ends before it starts,
// it is due when a third of its lifetime is left. An expired certificate
// is always due. force makes any lineage due.
func Decide(leaf *x509.Certificate, now time.Time, w *RenewalWindow, force bool) Decision {
	var d Decision
	switch {
	case !now.Before(leaf.NotAfter):
		d = Decision{Due: true, At: leaf.NotAfter, Rule: RuleLifetime,
			Reason: "the certificate expired at " + stamp(leaf.NotAfter)}
	case w != nil && w.End.After(w.Start):
		d = Decision{At: RenewalTime(leaf, *w), Rule: RuleARI}
		window := fmt.Sprintf("the CA's renewal window %s to %s", stamp(w.Start), stamp(w.End))
		switch {
		case !now.Before(w.End):
			d.Due, d.At, d.Reason = true, w.End, window+" has ended"
		case !now.Before(d.At):
			d.Due, d.Reason = true, window+" has reached the time chosen in it"
		default:
			d.Reason = "at the time chosen in " + window
		}
		if w.ExplanationURL != "" {
			d.Reason += " (the CA explains: " + w.ExplanationURL + ")"
		}
	default:
		d = Decision{At: leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 3), Rule: RuleLifetime}
		if !now.Before(d.At) {
			d.Due, d.Reason = true, "a third or less of its lifetime is left, it expires "+stamp(leaf.NotAfter)
		} else {
			d.Reason = "when a third of its lifetime is left"
		}
	}
	if force && !d.Due {
		by := "its lifetime"
		if d.Rule == RuleARI {
			by = "the CA's renewal window"
		}
		d.Due, d.Rule, d.Reason = true, RuleForce, "renewal was forced; by "+by+" it is due "+stamp(d.At)
	}
	return d
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

// RenewalTime picks the moment in w at which to renew leaf. RFC 9773
// §4.2 asks for a uniformly random time in the window, so that a CA's
// clients spread out; this one is derived from the certificate's serial
// and the window by SHA-256, so that it is as spread out as a random one
// but every run for the same certificate and window, from cron, a second
// cron or the daemon, picks the same moment. A moved window gives a new
// pick.
func RenewalTime(leaf *x509.Certificate, w RenewalWindow) time.Time {
	h := sha256.New()
	h.Write(leaf.SerialNumber.Bytes())
	binary.Write(h, binary.BigEndian, [2]int64{w.Start.UnixNano(), w.End.UnixNano()})
	u := binary.BigEndian.Uint64(h.Sum(nil))
	span := w.End.Sub(w.Start)
	off, _ := bits.Mul64(u, uint64(span)) // u/2^64 of the span
	return w.Start.Add(time.Duration(off))
}

// How long a CA's renewal window is reused before asking again. RFC
// 9773 §4.3.2 lets a client treat a Retry-After under a minute as a
// minute and over a day as a day; without one, and after an error, six
// hours (§4.3.3).
const (
	ARIMinInterval     = time.Minute
	ARIMaxInterval     = 24 * time.Hour
	ARIDefaultInterval = 6 * time.Hour
)

// ErrNoRenewalInfo is what a RenewalAdvisor returns when its CA offers no
// renewal information after all; the lifetime rule applies.
var ErrNoRenewalInfo = errors.New("the CA offers no renewal information")

// WindowRecord reads renew/NAME.ari.json.
func (s DiskStore) WindowRecord(name string) (WindowRecord, error) {
	var w WindowRecord
	err := readJSON(s.renewFile(name, ".ari.json"), &w)
	return w, err
}

// SaveWindowRecord replaces renew/NAME.ari.json atomically; it needs no
// lock.
func (s DiskStore) SaveWindowRecord(name string, w WindowRecord) error {
	return s.writeJSONFile(s.renewFile(name, ".ari.json"), w)
}

// window is the renewal window a record holds.
func (r WindowRecord) window() *RenewalWindow {
	return &RenewalWindow{Start: r.Start, End: r.End, ExplanationURL: r.ExplanationURL, RetryAfter: r.Until}
}

// CachedRenewalWindow returns the CA's renewal window for c's
// certificate as last fetched, without asking the CA, or nil when none
// is kept for this certificate.
func CachedRenewalWindow(s Store, c *Current) *RenewalWindow {
	rec, err := s.WindowRecord(c.Name)
	if err != nil || rec.Serial != c.Leaf.SerialNumber.String() {
		return nil
	}
	return rec.window()
}

// RenewalWindowFor returns the CA's renewal window for c's certificate: the
// one recorded in s while its Retry-After has not passed, else adv's
// answer, which is then recorded unless save is false (a dry run writes
// nothing). It returns nil and no error when adv returns
// ErrNoRenewalInfo.
func RenewalWindowFor(ctx context.Context, s Store, c *Current, adv RenewalAdvisor, now time.Time, save bool) (*RenewalWindow, error) {
	serial := c.Leaf.SerialNumber.String()
	if rec, err := s.WindowRecord(c.Name); err == nil && rec.Serial == serial && now.Before(rec.Until) {
		return rec.window(), nil
	}
	w, err := adv.RenewalWindow(ctx, c.Leaf)
	if errors.Is(err, ErrNoRenewalInfo) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	next := ARIDefaultInterval
	if !w.RetryAfter.IsZero() {
		next = min(max(w.RetryAfter.Sub(now), ARIMinInterval), ARIMaxInterval)
	}
	w.RetryAfter = now.Add(next)
	if save {
		err = s.SaveWindowRecord(c.Name, WindowRecord{Serial: serial, Start: w.Start, End: w.End, ExplanationURL: w.ExplanationURL, Until: w.RetryAfter})
	}
	return &w, err
}

// AlreadyReplaced reports whether err's chain says, with a method
//
//	AlreadyReplaced() bool
//
// that the CA refused the order because the certificate it replaces was
// replaced already (RFC 9773's alreadyReplaced): another node, or
// another client of the account, renewed it.
func AlreadyReplaced(err error) bool {
	var ar interface{ AlreadyReplaced() bool }
	return errors.As(err, &ar) && ar.AlreadyReplaced()
}

// RetryAfter returns the time a CA asked not to be asked again before,
// when an error in err's chain says so with a method
//
//	RetryAfter() time.Time
//
// which is how an Issuer reports a rate limit or an HTTP Retry-After
// that it did not wait for itself (retrying within one issuance is the
// Issuer's business). A zero time counts as none. Renewal keeps it in
// RenewState, so that later runs leave the CA alone until then.
func RetryAfter(err error) (time.Time, bool) {
	var ra interface{ RetryAfter() time.Time }
	if errors.As(err, &ra) && !ra.RetryAfter().IsZero() {
		return ra.RetryAfter(), true
	}
	return time.Time{}, false
}
