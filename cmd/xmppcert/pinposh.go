package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func poshFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "service", Usage: "xmpp-client or xmpp-server (repeatable; default the services of the host's role)"},
		&cli.PathFlag{Name: "out-dir", Usage: "web root to write .well-known/posh/SERVICE.json into, atomically (default: print them)"},
		&cli.DurationFlag{Name: "expires", Value: 24 * time.Hour, Usage: "how long clients may cache the document"},
		jsonFlag(),
	}
}

func pinPOSHCommand() *cli.Command {
	return &cli.Command{
		Name: "posh", Usage: "POSH documents (RFC 7711) pinning the lineage's certificate",
		ArgsUsage: "LINEAGE",
		Description: "The document lists the SHA-256 of the current certificate and, when a renewal has staged\n" +
			"the next certificate ahead of the switch, that one too. Serve it at\n" +
			"https://DOMAIN/.well-known/posh/SERVICE.json; --out-dir writes it into a web root.",
		Flags:        append(poshFlags(), &cli.BoolFlag{Name: "sha512", Usage: "add SHA-512 digests beside SHA-256"}),
		OnUsageError: onUsageError,
		Action:       runPinPOSH,
	}
}

func pinPOSHRedirectCommand() *cli.Command {
	return &cli.Command{
		Name: "posh-redirect", Usage: "POSH redirect documents for a hosted DOMAIN, pointing at the provider's document",
		ArgsUsage: "DOMAIN",
		Description: "A hosted domain delegates to its provider: its document says {\"url\": \"https://provider/...\"}\n" +
			"and peers use the provider's fingerprints (one redirect at most, https only).",
		Flags: append(poshFlags(),
			&cli.StringFlag{Name: "to", Usage: "the https URL of the provider's POSH document (required)"}),
		OnUsageError: onUsageError,
		Action:       runPinPOSHRedirect,
	}
}

// poshOut is one document as --json reports it.
type poshOut struct {
	Service  string          `json:"service"`
	URLPath  string          `json:"path"`
	File     string          `json:"file,omitempty"`
	Document json.RawMessage `json:"document"`
}

func runPinPOSH(c *cli.Context) error {
	engine, l, err := pinLineage(c)
	if err != nil {
		return err
	}
	services, err := poshServices(c, l.Request.Names[0].Role)
	if err != nil {
		return err
	}
	dir := c.Path("out-dir")
	if dir == "" {
		certs, err := engine.POSHCerts(l)
		if err != nil {
			return err
		}
		doc, err := pinning.NewPOSH(certs, c.Duration("expires"), pinning.POSHOptions{SHA512: c.Bool("sha512")})
		if err != nil {
			return usagef("--expires: %v", err)
		}
		return emitPOSH(c, l.Name, services, doc)
	}
	// Writing into a web root is publishing: under the lineage's lock,
	// recorded, so that renewals stage new certificates for POSH and
	// rewrite the documents here.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return usagef("--out-dir %s: %v", dir, err)
	}
	if c.Duration("expires") < time.Second {
		return usagef("--expires %s: give at least 1s; clients refuse a document with expires <= 0", c.Duration("expires"))
	}
	err = engine.PublishPOSH(l.Name, acme.POSHPublication{Dir: abs, Services: services,
		ExpiresSeconds: int64(c.Duration("expires") / time.Second), SHA512: c.Bool("sha512")})
	var wr *lifecycle.WebRootError
	if errors.As(err, &wr) {
		return usagef("--out-dir: %v", wr.Err)
	}
	if err != nil {
		return err
	}
	return reportPOSH(c, l.Name, services, abs)
}

// reportPOSH says which documents were written into dir.
func reportPOSH(c *cli.Context, domain string, services []string, dir string) error {
	var out []poshOut
	for _, svc := range services {
		rel, _ := pinning.POSHPath(svc)
		path := filepath.Join(dir, filepath.FromSlash(rel))
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out = append(out, poshOut{Service: svc, URLPath: "/" + rel, File: path, Document: body})
	}
	return printPOSH(c, domain, out)
}

func runPinPOSHRedirect(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("pin posh-redirect needs exactly one DOMAIN, the hosted domain the documents are for")
	}
	domain, err := acme.CanonicalName(c.Args().First())
	if err != nil {
		return usagef("DOMAIN: %v", err)
	}
	if c.String("to") == "" {
		return usagef("pin posh-redirect needs --to URL, the https URL of the provider's POSH document")
	}
	services, err := poshServices(c, xmppaddr.RoleHost)
	if err != nil {
		return err
	}
	doc, err := pinning.NewPOSHRedirect(c.String("to"), c.Duration("expires"))
	if err != nil {
		return usagef("%v", err)
	}
	return emitPOSH(c, domain, services, doc)
}

// poshServices is --service, or the services of role.
func poshServices(c *cli.Context, role xmppaddr.Role) ([]string, error) {
	services := c.StringSlice("service")
	if len(services) == 0 {
		for _, s := range role.Services() {
			services = append(services, string(s))
		}
	}
	for _, s := range services {
		if _, err := pinning.POSHPath(s); err != nil {
			return nil, usagef("--service: %v", err)
		}
	}
	return services, nil
}

// emitPOSH writes the document for each service into --out-dir, or
// prints it.
func emitPOSH(c *cli.Context, domain string, services []string, doc pinning.POSHDocument) error {
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	var out []poshOut
	for _, svc := range services {
		rel, _ := pinning.POSHPath(svc)
		o := poshOut{Service: svc, URLPath: "/" + rel, Document: body}
		if dir := c.Path("out-dir"); dir != "" {
			if o.File, err = pinning.WritePOSH(dir, svc, doc); err != nil {
				return usagef("--out-dir: %v", err)
			}
		}
		out = append(out, o)
	}
	return printPOSH(c, domain, out)
}

// printPOSH reports documents: written ones by path, others in full.
func printPOSH(c *cli.Context, domain string, out []poshOut) error {
	if flagAnywhere(c, "json") {
		return writeJSON(c.App.Writer, struct {
			Domain    string    `json:"domain"`
			Documents []poshOut `json:"documents"`
		}{domain, out})
	}
	w := c.App.Writer
	for _, o := range out {
		if o.File != "" {
			fmt.Fprintf(w, "wrote %s (https://%s%s)\n", o.File, domain, o.URLPath)
			continue
		}
		fmt.Fprintf(w, "# https://%s%s\n%s\n", domain, o.URLPath, bytes.TrimSpace(o.Document))
	}
	return nil
}
