package acme

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
)

// Obtained is the outcome of Obtain.
type Obtained struct {
	*Lineage
	// KeyReused is true when the previous version's key was kept.
	KeyReused bool
	// Issuer is the name of the Issuer that signed.
	Issuer string
}

// Obtain issues a certificate for req and writes it as the next version of
// the lineage named by req's host. The caller holds the lineage's lock
// (Store.Lock), taken before anything slow such as opening the CA, so
// that a concurrent run gives up at once instead of issuing twice.
// With req.ReuseKey the current key is kept when it has the requested
// type (a changed key type gets a new key); a lineage whose current
// version cannot be read is an error then, rather than a silent new key
// that would break DANE pins. The certificate is checked to carry the
// key before anything is written; on error the current version is
// untouched.
func Obtain(ctx context.Context, s Store, iss Issuer, req Request) (*Obtained, error) {
	if len(req.Names) == 0 {
		return nil, errors.New("no names to certify")
	}
	var key crypto.Signer
	reused := false
	if req.ReuseKey {
		cur, err := s.Load(req.Host())
		switch {
		case err == nil && req.Key.Matches(cur.Key):
			key, reused = cur.Key, true
		case err != nil && !errors.Is(err, ErrNoLineage):
			return nil, fmt.Errorf("reusing the key of lineage %s: %w; nothing was issued", req.Host(), err)
		}
	}
	if key == nil {
		var err error
		if key, err = req.Key.Generate(); err != nil {
			return nil, err
		}
	}
	issued, err := iss.Issue(ctx, req, key)
	if err != nil {
		return nil, err
	}
	if len(issued.Chain) == 0 || !samePublicKey(issued.Leaf(), key) {
		return nil, fmt.Errorf("%s returned a certificate that does not carry the requested key; nothing was written", iss.Name())
	}
	l, err := s.write(req, issued)
	if err != nil {
		if l != nil {
			return nil, fmt.Errorf("writing lineage %s: %w", req.Host(), err)
		}
		return nil, fmt.Errorf("writing lineage %s: %w; the previous version, if any, is still current", req.Host(), err)
	}
	return &Obtained{Lineage: l, KeyReused: reused, Issuer: issued.Issuer}, nil
}

func samePublicKey(c *x509.Certificate, key crypto.Signer) bool {
	// Every key type Go generates has Equal.
	e, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(c.PublicKey)
}
