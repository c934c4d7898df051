package lifecycle

import (
	"context"
	"errors"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/preflight"
	"github.com/xmppcert/xmppcert/pinning"
)

// ErrLocalCAA says that a lineage comes from the embedded CA, which
// checks no CAA: there are no CAA records to make or judge for it.
var ErrLocalCAA = errors.New("the embedded CA checks no CAA records")

// ErrNoCAAIdentity says that a lineage's ACME CA names no CAA identity
// in its directory, and none is stored with the lineage.
var ErrNoCAAIdentity = errors.New("the CA names no CAA identity in its directory, and none is stored with the lineage")

// CAAIssuer is who orders a lineage's next certificate, as CAA judges
// it (acmeca.Issuer.CAAIssuer): the CA's identities, the account kept in
// the state directory, the challenge types of the stored settings. It
// asks the CA for its directory; it registers nothing.
func CAAIssuer(ctx context.Context, state string, req acme.Request) (pinning.CAAIssuer, error) {
	if LocalCA(req) {
		return pinning.CAAIssuer{}, ErrLocalCAA
	}
	iss, _, release, err := OpenIssuer(state, req, IssueOptions{})
	if err != nil {
		return pinning.CAAIssuer{}, err
	}
	defer release()
	ci, err := iss.(*acmeca.Issuer).CAAIssuer(ctx)
	if err == nil && len(ci.Domains) == 0 {
		err = ErrNoCAAIdentity
	}
	return ci, err
}

// PreflightLineage runs the pre-flight (acme/preflight) for a lineage's
// next order, through the stored resolver, as issuance would run it
// (whether issuance runs it at all is ACMESettings.Preflight's to say).
// Its error is a *preflight.RefusedError when a check fails.
func PreflightLineage(ctx context.Context, state string, req acme.Request) (preflight.Report, error) {
	ci, err := CAAIssuer(ctx, state, req)
	if err != nil && !errors.Is(err, ErrNoCAAIdentity) {
		return preflight.Report{}, err
	}
	solvers, err := ChallengeSolvers(req.ACME.Challenges)
	if err != nil {
		return preflight.Report{}, err
	}
	return preflightChecker(req.ACME, solvers).Run(ctx, preflight.Order{Names: req.Domains(), Issuer: ci})
}
