package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
)

func revokeCommand() *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "revoke a lineage's current certificate; the next renew replaces it",
		ArgsUsage: "LINEAGE",
		Description: "An ACME CA is asked to revoke the certificate (RFC 8555, signed with the account's key). The\n" +
			"embedded CA records the serial in STATE/ca/revoked.json and signs a new CRL with its intermediate,\n" +
			"STATE/ca/crl.der (and crl.pem), which 'ca serve' and the daemon serve at /crl. The lineage is then due:\n" +
			"the next 'xmppcert renew' (or the daemon) replaces the certificate at once, and for keyCompromise\n" +
			"with the lineage's pre-made next key, whose pins may already be published, never the old key.\n" +
			"Exit 0 revoked, 1 the CA refused or the lineage is busy, 2 usage error.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "reason", Value: "unspecified", Usage: "RFC 5280 reason: " + strings.Join(reasonNames(), ", ")},
			jsonFlag(), quietFlag(),
		},
		OnUsageError: onUsageError,
		Action:       runRevoke,
	}
}

// reasonNames are the --reason values, sorted.
func reasonNames() []string { return slices.Sorted(maps.Keys(acme.ReasonNames)) }

func runRevoke(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("revoke needs exactly one LINEAGE")
	}
	reason, ok := acme.ReasonNames[c.String("reason")]
	if !ok {
		return usagef("--reason %q is not a revocation reason; use one of %s", c.String("reason"), strings.Join(reasonNames(), ", "))
	}
	engine, names, done, err := engineFor(c, true)
	if err != nil {
		return err
	}
	defer done()
	rep, err := engine.Revoke(c.Context, names[0], reason)
	if err != nil {
		return err
	}
	switch {
	case flagAnywhere(c, "json"):
		return writeJSON(c.App.Writer, rep)
	case flagAnywhere(c, "quiet"):
		return nil
	}
	w := c.App.Writer
	by := "the embedded CA; its CRL is now " + rep.CRL
	if rep.CA != "local" {
		by = rep.CA
	}
	fmt.Fprintf(w, "Revoked %s version %d (serial %s, %s) by %s.\n", rep.Lineage, rep.Version, rep.Serial, rep.Reason, by)
	key := ""
	if rep.NewKey {
		key = " with a new key (the lineage's next key)"
	}
	fmt.Fprintf(w, "The lineage is due: 'xmppcert renew' (or the daemon) replaces the certificate now%s.\n", key)
	return nil
}
