package main

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/localca"
)

// openIssuer returns the Issuer for a request's CA, the roots its
// certificates are checked against, and release, which frees what the
// Issuer holds (the local CA's database) and is to be called once
// issuance is over. issue and renew both get their Issuer here.
func openIssuer(state string, req acme.Request) (iss acme.Issuer, roots *x509.CertPool, release func(), err error) {
	switch req.CA {
	case "local", "":
		ca, err := openCA(state, localca.Options{Lifetime: time.Duration(req.Days) * 24 * time.Hour}, true)
		if err != nil {
			return nil, nil, nil, err
		}
		return ca, ca.RootPool(), func() { ca.Close() }, nil
	}
	return nil, nil, nil, fmt.Errorf("lineage %s names CA %q, which this build cannot reach; use --ca local", req.Host(), req.CA)
}
