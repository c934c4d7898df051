package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func issueCommand() *cli.Command {
	return &cli.Command{
		Name:      "issue",
		Usage:     "obtain a certificate for a host and its components, write the lineage, deploy it",
		ArgsUsage: "DOMAIN",
		Description: "With --ca local (the default) the embedded CA signs, offline; it is created on first use.\n" +
			"The certificate carries, for the host and every component, a DNS-ID, the SRV-IDs of the services\n" +
			"its role serves and an XmppAddr; EKU serverAuth and clientAuth. The lineage is written to\n" +
			"STATE/live/DOMAIN/{cert,chain,fullchain,privkey}.pem (certbot's layout), then --deploy targets\n" +
			"and --hook commands run (certbot's RENEWED_LINEAGE and RENEWED_DOMAINS, plus XMPPCERT_*).\n" +
			"Exit 0 issued and deployed, 1 an issuance, check or deploy step failed, 2 usage error.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "component", Aliases: []string{"c"}, Usage: "a component of the host (conference, upload...): DNS-ID, _xmpp-server SRV-ID, XmppAddr (repeatable)"},
			&cli.BoolFlag{Name: "anonymous", Usage: "DOMAIN is an anonymous-login host that does not federate: no _xmpp-server SRV-ID"},
			&cli.StringFlag{Name: "ca", Value: "local", Usage: "who signs: local (the embedded CA)"},
			&cli.StringFlag{Name: "key-type", Value: string(acme.KeyECDSAP256), Usage: "ecdsa-p256, rsa2048 or rsa3072"},
			&cli.BoolFlag{Name: "reuse-key", Usage: "keep the lineage's current key (DANE 3 1 1 pins stay valid)"},
			&cli.IntFlag{Name: "days", Value: int(localca.DefaultLifetime / (24 * time.Hour)), Usage: "validity, for --ca local"},
			&cli.StringSliceFlag{Name: "deploy", Usage: "prosody[:CERTDIR] or ejabberd[:FILE] (repeatable)"},
			&cli.StringSliceFlag{Name: "hook", Usage: "shell command to run after deploying, with certbot's environment (repeatable)"},
			jsonFlag(), quietFlag(),
		},
		OnUsageError: onUsageError,
		Action:       runIssue,
	}
}

// issueResult is the --json form of issue.
type issueResult struct {
	Lineage   string        `json:"lineage"`
	Version   int           `json:"version"`
	Issuer    string        `json:"issuer"`
	NotBefore time.Time     `json:"not_before"`
	NotAfter  time.Time     `json:"not_after"`
	Key       string        `json:"key"`
	KeyReused bool          `json:"key_reused"`
	Names     []issuedName  `json:"names"`
	Notes     []string      `json:"notes"`
	Deploy    []deployState `json:"deploy"`
	Valid     bool          `json:"valid"`
}

type issuedName struct {
	Domain     string          `json:"domain"`
	Role       xmppaddr.Role   `json:"role"`
	Identities []string        `json:"identities"`
	Checks     []serviceVerdit `json:"checks"`
}

type serviceVerdit struct {
	Service  xmppaddr.Service   `json:"service"`
	Valid    bool               `json:"valid"`
	Findings []xmppaddr.Finding `json:"findings"`
}

type deployState struct {
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
}

// errDeploy reports that the certificate was issued but a deploy target
// or hook failed (exit 1); the output already says which and why.
var errDeploy = errors.New("a deploy target or hook failed")

func runIssue(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("issue needs exactly one DOMAIN, the XMPP host; components go in --component")
	}
	req, targets, err := issueRequest(c)
	if err != nil {
		return err
	}
	state, err := writableStateDir(c)
	if err != nil {
		return err
	}
	store := acme.Store{Dir: state}
	unlock, err := store.Lock(req.Host())
	if err != nil {
		return err
	}
	defer unlock()
	iss, roots, release, err := openIssuer(state, req)
	if err != nil {
		return err
	}
	got, err := acme.Obtain(c.Context, store, iss, req)
	release() // the local CA's database is free before deploy hooks run
	if err != nil {
		return err
	}
	res := describeIssued(got, roots, time.Now())
	res.Deploy = deploy(c.Context, got.Lineage, acme.EventIssued, targets)
	out := c.App.Writer
	if flagAnywhere(c, "json") {
		if err := writeJSON(out, res); err != nil {
			return err
		}
	} else if !flagAnywhere(c, "quiet") {
		printIssued(out, res)
	}
	for _, d := range res.Deploy {
		if !d.OK {
			fmt.Fprintf(c.App.ErrWriter, "xmppcert: deploy %s failed: %s\n", d.Target, d.Error)
		}
	}
	switch {
	case !res.Valid:
		return errInvalid
	case len(res.Deploy) > 0 && !allDeployed(res.Deploy):
		return errDeploy
	}
	return nil
}

// issueRequest reads and checks everything the command line says before
// anything is written.
func issueRequest(c *cli.Context) (acme.Request, []acme.Target, error) {
	if ca := c.String("ca"); ca != "local" {
		return acme.Request{}, nil, usagef("--ca %q: this build issues from the embedded CA only; use --ca local", ca)
	}
	key, err := acme.ParseKeyType(c.String("key-type"))
	if err != nil {
		return acme.Request{}, nil, usagef("--key-type: %v", err)
	}
	days := c.Int("days")
	if days < 1 || time.Duration(days)*24*time.Hour > localca.MaxLifetime {
		return acme.Request{}, nil, usagef("--days %d is out of range: 1 to %d", days, int(localca.MaxLifetime/(24*time.Hour)))
	}
	role := xmppaddr.RoleHost
	if c.Bool("anonymous") {
		role = xmppaddr.RoleAnonymousHost
	}
	req, err := acme.NewRequest(c.Args().First(), role, c.StringSlice("component"), key)
	if err != nil {
		return acme.Request{}, nil, usagef("issue: %v", err)
	}
	req.ReuseKey = c.Bool("reuse-key")
	req.CA = "local"
	req.Days = days
	var targets []acme.Target
	for _, spec := range c.StringSlice("deploy") {
		t, err := acme.ParseTarget(spec)
		if err != nil {
			return acme.Request{}, nil, usagef("--deploy: %v", err)
		}
		targets = append(targets, t)
	}
	for _, h := range c.StringSlice("hook") {
		if strings.TrimSpace(h) == "" {
			return acme.Request{}, nil, usagef("--hook is empty; give a shell command")
		}
		targets = append(targets, &acme.HookTarget{Command: h})
	}
	return req, targets, nil
}

// describeIssued checks the new certificate for every service each
// name's role serves and lists its identities.
func describeIssued(got *acme.Obtained, roots *x509.CertPool, now time.Time) issueResult {
	leaf := got.Chain[0]
	res := issueResult{
		Lineage: got.Path, Version: got.Version, Issuer: got.Issuer,
		NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(),
		Key: keyDescription(leaf.PublicKey), KeyReused: got.KeyReused,
		Notes: []string{}, Deploy: []deployState{}, Valid: true,
	}
	presented := xmppaddr.Identities(leaf).Identifiers
	for _, n := range got.Request.Names {
		in := issuedName{Domain: n.Domain, Role: n.Role, Identities: identitiesOf(presented, n.Domain)}
		for _, svc := range n.Role.Services() {
			v := serviceVerdit{Service: svc}
			r, err := xmppaddr.Verify(got.Chain, xmppaddr.Options{Domain: n.Domain, Service: svc, Roots: roots, CurrentTime: now})
			if err != nil {
				v.Findings = []xmppaddr.Finding{{Code: "check-failed", Severity: xmppaddr.Error, Text: err.Error()}}
			} else {
				v.Valid, v.Findings = r.Valid, r.Findings
			}
			res.Valid = res.Valid && v.Valid
			in.Checks = append(in.Checks, v)
		}
		res.Names = append(res.Names, in)
	}
	for _, d := range got.Request.Unrelated() {
		res.Notes = append(res.Notes, fmt.Sprintf("%s is not under %s or its parent domain; it is in the certificate as asked, but check that it belongs to this host", d, got.Request.Host()))
	}
	return res
}

// identitiesOf lists the presented identities that name domain, as
// "TYPE value".
func identitiesOf(ids []xmppaddr.Identifier, domain string) []string {
	out := []string{}
	for _, id := range ids {
		if id.Type != xmppaddr.TypeCN && id.Domain == domain {
			out = append(out, string(id.Type)+" "+id.Value)
		}
	}
	return out
}

func deploy(ctx context.Context, l *acme.Lineage, event string, targets []acme.Target) []deployState {
	out := []deployState{}
	for _, t := range targets {
		d := deployState{Target: t.String(), OK: true}
		if err := t.Deploy(ctx, l, event); err != nil {
			d.OK, d.Error = false, err.Error()
		}
		out = append(out, d)
	}
	return out
}

func allDeployed(ds []deployState) bool {
	for _, d := range ds {
		if !d.OK {
			return false
		}
	}
	return true
}

func printIssued(w io.Writer, r issueResult) {
	reused := "new"
	if r.KeyReused {
		reused = "reused"
	}
	fmt.Fprintf(w, "Issued %s (version %d) by %s\n", r.Names[0].Domain, r.Version, r.Issuer)
	fmt.Fprintf(w, "  files     %s/{fullchain,privkey,cert,chain}.pem (privkey 0600)\n", r.Lineage)
	fmt.Fprintf(w, "  key       %s, %s\n", r.Key, reused)
	fmt.Fprintf(w, "  valid     %s to %s (%d days)\n", r.NotBefore.Format("2006-01-02 15:04 MST"), r.NotAfter.Format("2006-01-02 15:04 MST"),
		int(r.NotAfter.Sub(r.NotBefore).Round(24*time.Hour)/(24*time.Hour)))
	for _, n := range r.Names {
		fmt.Fprintf(w, "  %s (%s)\n", n.Domain, n.Role)
		fmt.Fprintf(w, "    identities  %s\n", strings.Join(n.Identities, ", "))
		var verdicts []string
		for _, v := range n.Checks {
			s := "valid"
			if !v.Valid {
				s = "NOT VALID"
			}
			verdicts = append(verdicts, string(v.Service)+" "+s)
		}
		fmt.Fprintf(w, "    check       %s\n", strings.Join(verdicts, ", "))
		for _, v := range n.Checks {
			for _, f := range v.Findings {
				if f.Severity != xmppaddr.Info {
					fmt.Fprintf(w, "      %s %s: %s\n", v.Service, f.Severity, f.Text)
				}
			}
		}
	}
	for _, note := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", note)
	}
	for _, d := range r.Deploy {
		if d.OK {
			fmt.Fprintf(w, "  deployed  %s\n", d.Target)
		} else {
			fmt.Fprintf(w, "  FAILED    %s: %s\n", d.Target, d.Error)
		}
	}
	fmt.Fprintf(w, "Peers must trust the private CA's root: xmppcert ca root > xmppcert-root.pem\n")
}
