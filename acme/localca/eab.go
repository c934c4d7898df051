package localca

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	stepacme "github.com/smallstep/certificates/acme"
	"github.com/smallstep/nosql"
	"go.step.sm/crypto/jose"

	"github.com/xmppcert/xmppcert/internal/oneline"
)

// This file holds External Account Binding: the keys 'xmppcert ca eab'
// makes, the guard that answers binding failures with ACME problems, and
// the accounts that predate RequireEAB.

// NewEABKey creates an External Account Binding key for the ACME
// provisioner: the key ID and the HMAC key an ACME client presents
// (certbot's --eab-kid and --eab-hmac-key, base64url).
func (ca *CA) NewEABKey(ctx context.Context, reference string) (kid string, hmac string, err error) {
	_, acmeDB, err := ca.acmeDB()
	if err != nil {
		return "", "", err
	}
	// step-ca looks the key up under the ID field of the provisioner that
	// serves the new-account request, not under GetID().
	k, err := acmeDB.CreateExternalAccountKey(ctx, ca.prov.ID, reference)
	if err != nil {
		return "", "", err
	}
	return k.ID, base64.RawURLEncoding.EncodeToString(k.HmacKey), nil
}

// Account is an ACME account of the CA.
type Account struct {
	ID        string
	Contact   []string
	CreatedAt time.Time
}

// AccountsWithoutEAB lists the valid accounts that no External Account
// Binding key is bound to, oldest first. With RequireEAB these are the
// accounts created before it was required: step-ca goes on serving them.
func (ca *CA) AccountsWithoutEAB(ctx context.Context) ([]Account, error) {
	nosqlDB, acmeDB, err := ca.acmeDB()
	if err != nil {
		return nil, err
	}
	keys, _, err := acmeDB.GetExternalAccountKeys(ctx, ca.prov.ID, "", 0)
	if err != nil {
		return nil, err
	}
	bound := map[string]bool{}
	for _, k := range keys {
		if k.AlreadyBound() {
			bound[k.AccountID] = true
		}
	}
	entries, err := nosqlDB.List(accountTable)
	if err != nil && !nosql.IsErrNotFound(err) {
		return nil, err
	}
	var out []Account
	for _, e := range entries {
		var a struct {
			ID        string          `json:"id"`
			Contact   []string        `json:"contact"`
			Status    stepacme.Status `json:"status"`
			CreatedAt time.Time       `json:"createdAt"`
		}
		if err := json.Unmarshal(e.Value, &a); err != nil {
			return nil, fmt.Errorf("reading ACME account %q: %w", e.Key, err)
		}
		if a.Status == stepacme.StatusValid && !bound[a.ID] {
			out = append(out, Account{ID: a.ID, Contact: a.Contact, CreatedAt: a.CreatedAt})
		}
	}
	slices.SortFunc(out, func(a, b Account) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// accountTable is the bucket where step-ca's nosql ACME database keeps
// accounts (acme/db/nosql: accountTable).
var accountTable = []byte("acme_accounts")

// eabGuard stands before step-ca's new-account and answers the External
// Account Binding failures that step-ca answers with 500
// (serverInternal) with the RFC 8555 problem a client can act on: an
// unknown key ID, a key already bound to another account, a MAC that
// does not verify, a binding that is not a JWS. Requests of existing
// accounts, and bindings it finds valid, go on to step-ca, which checks
// everything again. Like step-ca, it looks at a binding only when the CA
// requires one (RequireEAB); otherwise step-ca ignores it.
type eabGuard struct {
	db       stepacme.DB
	provID   string
	required bool
	next     http.Handler
}

func (g *eabGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.required {
		g.next.ServeHTTP(w, r)
		return
	}
	body, ok := intercept(w, r, "/new-account", g.next)
	if !ok {
		return
	}
	if status, typ, detail := g.check(r, body); status != 0 {
		acmeProblem(w, status, typ, detail)
		return
	}
	g.next.ServeHTTP(w, r)
}

// check returns the problem of a new-account request's binding, or a
// zero status when step-ca should answer.
func (g *eabGuard) check(r *http.Request, body []byte) (status int, typ, detail string) {
	outer, err := jose.ParseJWS(string(body))
	if err != nil || len(outer.Signatures) != 1 || outer.Signatures[0].Protected.JSONWebKey == nil {
		return 0, "", ""
	}
	var nar struct {
		EAB json.RawMessage `json:"externalAccountBinding"`
	}
	if json.Unmarshal(outer.UnsafePayloadWithoutVerification(), &nar) != nil || len(nar.EAB) == 0 || string(nar.EAB) == "null" {
		return 0, "", ""
	}
	if id, err := stepacme.KeyToID(outer.Signatures[0].Protected.JSONWebKey); err == nil {
		if acct, err := g.db.GetAccountByKeyID(r.Context(), id); err == nil && acct != nil {
			return 0, "", ""
		}
	}
	inner, err := jose.ParseJWS(string(nar.EAB))
	if err != nil {
		return http.StatusBadRequest, "malformed", "the externalAccountBinding is not a JWS: " + oneline.Clip(err.Error(), 200)
	}
	if len(inner.Signatures) != 1 || inner.Signatures[0].Protected.KeyID == "" {
		return 0, "", ""
	}
	kid := inner.Signatures[0].Protected.KeyID
	eak, err := g.db.GetExternalAccountKey(r.Context(), g.provID, kid)
	var ae *stepacme.Error
	switch {
	case errors.Is(err, stepacme.ErrNotFound), errors.As(err, &ae), err == nil && eak == nil:
		return http.StatusUnauthorized, "unauthorized", fmt.Sprintf("the External Account Binding key ID %q is not known to this CA", oneline.Clip(kid, 80))
	case err != nil:
		return 0, "", ""
	case eak.AlreadyBound():
		return http.StatusUnauthorized, "unauthorized", fmt.Sprintf("the External Account Binding key %q is already bound to an account; a key binds one account only", oneline.Clip(kid, 80))
	}
	if _, err := inner.Verify(eak.HmacKey); err != nil {
		return http.StatusUnauthorized, "unauthorized", fmt.Sprintf("the External Account Binding's MAC does not verify with the key %q", oneline.Clip(kid, 80))
	}
	return 0, "", ""
}
