package acme

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Obtained is the outcome of Obtain.
type Obtained struct {
	*Lineage
	// KeyReused is true when the previous version's key was kept
	// (KeyChoice KeyReused or KeyHeld).
	KeyReused bool
	// KeyChoice says which key was used, KeyNote why, in words for the
	// operator (empty when there is nothing to explain).
	KeyChoice KeyChoice
	KeyNote   string
	// Issuer is the name of the Issuer that signed.
	Issuer string
}

// Obtain issues a certificate for req and writes it as the next version of
// the lineage named by req's host. The caller holds the lineage's lock
// (Store.Lock), taken before anything slow such as opening the CA, so
// that a concurrent run gives up at once instead of issuing twice.
//
// The key follows the next-key rollover (pins.go): with req.ReuseKey the
// current key is kept when it has the requested type; otherwise the
// lineage moves to its pre-made next key unless published pins would
// break, in which case the current key is kept and KeyNote says so. A
// lineage whose current version cannot be read is an error when its key
// matters (req.ReuseKey, or published pins), rather than a silent new key
// that would break DANE pins. The certificate is checked to carry the key
// before anything is written; on error the current version is untouched.
func Obtain(ctx context.Context, s Store, iss Issuer, req Request) (*Obtained, error) {
	return ObtainAt(ctx, s, iss, req, time.Now())
}

// ObtainAt is Obtain with the key rollover judged at now: the lifecycle
// engine passes its own clock, so that the pin hold follows it.
func ObtainAt(ctx context.Context, s Store, iss Issuer, req Request, now time.Time) (*Obtained, error) {
	if len(req.Names) == 0 {
		return nil, errors.New("no names to certify")
	}
	pins, err := s.PinState(req.Host())
	if err != nil {
		return nil, err
	}
	cur, err := s.Load(req.Host())
	switch {
	case errors.Is(err, ErrNoLineage):
		cur = nil
	case err != nil && (req.ReuseKey || pins.Pinned()):
		return nil, fmt.Errorf("reusing the key of lineage %s: %w; nothing was issued", req.Host(), err)
	case err != nil:
		// Nothing relies on the old key: start the lineage's keys afresh.
		cur = nil
	}
	plan, err := planKey(req, cur, pins, now)
	if err != nil {
		return nil, err
	}
	issued, err := iss.Issue(ctx, req, plan.key)
	if err != nil {
		return nil, err
	}
	if len(issued.Chain) == 0 || !SamePublicKey(issued.Leaf(), plan.key) {
		return nil, fmt.Errorf("%s returned a certificate that does not carry the requested key; nothing was written", iss.Name())
	}
	l, err := s.Write(req, issued, plan.next)
	if err != nil {
		if l != nil {
			return nil, fmt.Errorf("writing lineage %s: %w", req.Host(), err)
		}
		return nil, fmt.Errorf("writing lineage %s: %w; the previous version, if any, is still current", req.Host(), err)
	}
	reused := plan.choice == KeyReused || plan.choice == KeyHeld
	return &Obtained{Lineage: l, KeyReused: reused, KeyChoice: plan.choice, KeyNote: plan.note, Issuer: issued.Issuer}, nil
}

// SamePublicKey reports whether key is the private half of c's public
// key: a lineage's key must belong to its certificate, whatever store
// keeps them.
func SamePublicKey(c *x509.Certificate, key crypto.Signer) bool {
	// Every key type Go generates has Equal.
	e, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(c.PublicKey)
}
