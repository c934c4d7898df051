package lifecycle

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/localca"
)

// RevokeReport is what a revocation did: the --json form of revoke.
type RevokeReport struct {
	Lineage string `json:"lineage"`
	Version int    `json:"version"`
	Serial  string `json:"serial"`
	// Reason is the RFC 5280 reason's name.
	Reason string `json:"reason"`
	// CA is "local" or the ACME directory URL that revoked it.
	CA string `json:"ca"`
	// CRL is the embedded CA's revocation list, rewritten (local only).
	CRL string `json:"crl,omitempty"`
	// NewKey is set when the next renewal must leave the current key.
	NewKey bool `json:"new_key"`
}

// Revoker is an Issuer that can revoke what it issued (an ACME CA).
type Revoker interface {
	Revoke(ctx context.Context, cert *x509.Certificate, reason int) error
}

// Revoke revokes the current certificate of lineage name for reason (an
// RFC 5280 code, acme.Reason*), under the lineage's lock: the embedded
// CA records the serial and signs a new CRL; an ACME CA is asked to
// revoke it. The renewal record then says so, and the next renewal run
// replaces the certificate at once, with a new key (the pre-made next
// key) when the reason is key compromise.
func (e *Engine) Revoke(ctx context.Context, name string, reason int) (RevokeReport, error) {
	unlock, err := e.Store.Lock(name)
	if err != nil {
		return RevokeReport{}, err
	}
	defer unlock()
	cur, err := e.Store.Current(name)
	if err != nil {
		return RevokeReport{}, err
	}
	rep := RevokeReport{Lineage: name, Version: cur.Version, Serial: cur.Leaf.SerialNumber.String(),
		Reason: acme.ReasonName(reason), CA: caName(cur.Request), NewKey: reason == acme.ReasonKeyCompromise}
	if LocalCA(cur.Request) {
		state, err := e.stateDir()
		if err != nil {
			return rep, err
		}
		dir := CADir(state)
		if e.CAMaterial != nil {
			// A cluster's node that never issued has no copy of its CA.
			if err := InstallClusterCA(state, e.CAMaterial); err != nil {
				return rep, err
			}
		}
		if err := localca.Revoke(dir, cur.Leaf, reason, e.now()); err != nil {
			return rep, err
		}
		rep.CRL = filepath.Join(dir, localca.CRLFile)
	} else {
		iss, _, release, err := e.open(cur.Request, IssueOptions{})
		if err != nil {
			return rep, err
		}
		defer release()
		rv, ok := iss.(Revoker)
		if !ok {
			return rep, fmt.Errorf("%s cannot revoke certificates", iss.Name())
		}
		if err := rv.Revoke(ctx, cur.Leaf, reason); err != nil {
			return rep, err
		}
	}
	st := cur.State
	st.Revoked = acme.Revocation{Serial: rep.Serial, Reason: reason, At: e.now().UTC()}
	if err := e.Store.SaveRenewState(name, st); err != nil {
		return rep, fmt.Errorf("version %d is revoked, but recording it for renewal failed: %w; a forced renewal replaces it", cur.Version, err)
	}
	e.emit(Event{Name: EventRevoked, Lineage: name, Version: cur.Version})
	return rep, nil
}
