package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/secretfile"
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
			"With an ACME CA (--ca letsencrypt, ..., or a directory URL) one order covers every name as a DNS\n" +
			"name, proved by http-01, tls-alpn-01 or dns-01. A public CA certifies DNS names only: no SRV-ID,\n" +
			"no XmppAddr, and since 2026 no clientAuth; the check after issuance says what peers make of that.\n" +
			"The account is kept in STATE/accounts and reused; --agree-tos registers it the first time.\n" +
			"Exit 0 issued and deployed, 1 an issuance, check or deploy step failed, 2 usage error.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "component", Aliases: []string{"c"}, Usage: "a component of the host (conference, upload...): DNS-ID, _xmpp-server SRV-ID, XmppAddr (repeatable)"},
			&cli.BoolFlag{Name: "anonymous", Usage: "DOMAIN is an anonymous-login host that does not federate: no _xmpp-server SRV-ID"},
			&cli.StringFlag{Name: "ca", Value: "local", Usage: "who signs: local (the embedded CA), letsencrypt, letsencrypt-staging, zerossl, or an ACME directory URL"},
			&cli.BoolFlag{Name: "split", Usage: "one certificate, and one lineage, per name instead of one for the host and its components"},
			&cli.StringFlag{Name: "key-type", Value: string(acme.KeyECDSAP256), Usage: "ecdsa-p256, rsa2048 or rsa3072"},
			&cli.BoolFlag{Name: "reuse-key", Usage: "keep the lineage's current key (DANE 3 1 1 pins stay valid)"},
			&cli.IntFlag{Name: "days", Value: int(localca.DefaultLifetime / (24 * time.Hour)), Usage: "validity, for --ca local"},
			&cli.StringSliceFlag{Name: "deploy", Usage: "prosody[:CERTDIR] or ejabberd[:FILE] (repeatable)"},
			&cli.StringSliceFlag{Name: "hook", Usage: "shell command to run after deploying, with certbot's environment (repeatable)"},
			// ACME CAs.
			&cli.StringFlag{Name: "email", Usage: "ACME: the account's contact address (expiry and policy mail from the CA)"},
			&cli.BoolFlag{Name: "agree-tos", Usage: "ACME: agree to the CA's terms of service; needed to register a new account (there is no prompt)"},
			&cli.StringFlag{Name: "eab-kid", Usage: "ACME: External Account Binding key ID (ZeroSSL, Google, step-ca --require-eab)"},
			&cli.StringFlag{Name: "eab-hmac", Usage: "ACME: External Account Binding HMAC key, base64url (used once, never stored; ps shows it: prefer --eab-hmac-file)"},
			&cli.PathFlag{Name: "eab-hmac-file", Usage: "ACME: file holding the External Account Binding HMAC key"},
			&cli.StringFlag{Name: "profile", Usage: "ACME: certificate profile the CA offers (Let's Encrypt: classic, tlsserver, shortlived)"},
			&cli.PathFlag{Name: "trust-root", Usage: "ACME: PEM roots of a private CA (ca serve, step-ca, pebble), trusted for its HTTPS and the check"},
			&cli.BoolFlag{Name: "require-xmpp-ids", Usage: "fail unless the certificate carries SRV-IDs and XmppAddr (private CAs only; refused for public ones)"},
			&cli.DurationFlag{Name: "timeout", Value: acmeca.DefaultTimeout, Usage: "ACME: give up an issuance after this long, retries included"},
			&cli.StringFlag{Name: "http-listen", Usage: "ACME http-01: answer on this address (\":80\", or where port 80 is forwarded)"},
			&cli.PathFlag{Name: "webroot", Usage: "ACME http-01: write answers under DIR/.well-known/acme-challenge of a running web server"},
			&cli.StringFlag{Name: "tls-alpn-listen", Usage: "ACME tls-alpn-01: answer on this address (\":443\")"},
			&cli.StringFlag{Name: "dns-rfc2136-server", Usage: "ACME dns-01: primary server HOST[:PORT] taking RFC 2136 dynamic updates"},
			&cli.StringFlag{Name: "dns-tsig-name", Usage: "ACME dns-01: TSIG key name for the updates"},
			&cli.StringFlag{Name: "dns-tsig-alg", Usage: "ACME dns-01: TSIG algorithm (hmac-sha256 by default)"},
			&cli.PathFlag{Name: "dns-tsig-secret-file", Usage: "ACME dns-01: file holding the TSIG secret (its path is stored, never the secret)"},
			&cli.StringFlag{Name: "dns-hook", Usage: "ACME dns-01: command run with present|cleanup, the record name and its value"},
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
	KeyChoice string        `json:"key_choice"`
	KeyNote   string        `json:"key_note,omitempty"`
	Names     []issuedName  `json:"names"`
	Notes     []string      `json:"notes"`
	Deploy    []deployState `json:"deploy"`
	Valid     bool          `json:"valid"`

	// privateRoot is set when peers must be given the CA's root: the
	// embedded CA, or an ACME CA trusted through trustRoot.
	privateRoot bool
	trustRoot   string
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

// errSomeFailed reports that with --split some issuances failed (exit 1);
// each failure was already written to stderr.
var errSomeFailed = fmt.Errorf("an issuance failed: %w", errInvalid)

// issuePlan is everything the command line asks for, checked before
// anything is written.
type issuePlan struct {
	// reqs holds one request, or one per name with --split.
	reqs    []acme.Request
	targets []acme.Target
	opts    issueOptions
	// directory is the ACME CA's directory URL; empty for --ca local.
	directory string
}

func runIssue(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("issue needs exactly one DOMAIN, the XMPP host; components go in --component")
	}
	plan, err := issueRequest(c)
	if err != nil {
		return err
	}
	state, err := writableStateDir(c)
	if err != nil {
		return err
	}
	if err := checkAccount(state, plan); err != nil {
		return err
	}
	store := acme.Store{Dir: state}
	var results []issueResult
	failed := false
	for _, req := range plan.reqs {
		res, err := issueOne(c.Context, store, req, plan)
		if err != nil {
			if len(plan.reqs) == 1 {
				return err
			}
			var ue usageError
			if errors.As(err, &ue) {
				err = errors.New(ue.msg)
			}
			fmt.Fprintf(c.App.ErrWriter, "xmppcert: %s: %v\n", req.Host(), err)
			failed = true
			continue
		}
		results = append(results, res)
	}
	out := c.App.Writer
	switch {
	case flagAnywhere(c, "json") && len(plan.reqs) == 1:
		if err := writeJSON(out, results[0]); err != nil {
			return err
		}
	case flagAnywhere(c, "json"):
		if results == nil {
			results = []issueResult{}
		}
		if err := writeJSON(out, results); err != nil {
			return err
		}
	case !flagAnywhere(c, "quiet"):
		for _, res := range results {
			printIssued(out, res)
		}
	}
	valid, deployed := true, true
	for _, res := range results {
		for _, d := range res.Deploy {
			if !d.OK {
				fmt.Fprintf(c.App.ErrWriter, "xmppcert: deploy %s failed: %s\n", d.Target, d.Error)
				deployed = false
			}
		}
		valid = valid && res.Valid
	}
	switch {
	case failed:
		return errSomeFailed
	case !valid:
		return errInvalid
	case !deployed:
		return errDeploy
	}
	return nil
}

// issueOne issues one lineage under its lock and deploys it.
func issueOne(ctx context.Context, store acme.Store, req acme.Request, plan issuePlan) (issueResult, error) {
	unlock, err := store.Lock(req.Host())
	if err != nil {
		return issueResult{}, err
	}
	defer unlock()
	return issueLocked(ctx, store, req, plan)
}

// issueLocked is issueOne for a caller that holds the lineage's lock
// (the daemon, which first looks again whether the lineage exists).
func issueLocked(ctx context.Context, store acme.Store, req acme.Request, plan issuePlan) (issueResult, error) {
	// Reissuing an ACME lineage from the same CA replaces its
	// certificate: say so to the CA (ARI "replaces", RFC 9773).
	if req.ACME != nil {
		if cur, err := store.Load(req.Host()); err == nil && cur.Request.CA == req.CA {
			req.Replaces = cur.Chain[0]
		}
	}
	iss, roots, release, err := openIssuerWith(store.Dir, req, plan.opts)
	if err != nil {
		return issueResult{}, err
	}
	got, err := acme.Obtain(ctx, store, iss, req)
	release() // the local CA's database is free before deploy hooks run
	if err != nil {
		return issueResult{}, err
	}
	res := describeIssued(got, roots, time.Now())
	if got.KeyNote != "" {
		res.Notes = append(res.Notes, "key "+string(got.KeyChoice)+": "+got.KeyNote)
	}
	if note := reissuedPOSH(store, got.Lineage); note != "" {
		res.Notes = append(res.Notes, note)
	}
	res.Deploy = deploy(ctx, got.Lineage, acme.EventIssued, plan.targets)
	return res, nil
}

// reissuedPOSH rewrites the POSH documents of a lineage that xmppcert
// publishes after issue replaced its certificate (renew stages instead),
// and says what that means for clients.
func reissuedPOSH(store acme.Store, l *acme.Lineage) string {
	pins, err := store.PinState(l.Name)
	if err != nil || pins.POSH == nil {
		return ""
	}
	pins.Staged = 0 // issue made a newer version current
	err = rewritePOSH(l, nil, &pins, time.Now())
	if err == nil {
		err = store.SavePinState(l.Name, pins)
	}
	if err != nil {
		return fmt.Sprintf("the POSH documents in %s still list the old certificate (%v); publish them with 'xmppcert pin posh %s --out-dir %s'", pins.POSH.Dir, err, l.Name, pins.POSH.Dir)
	}
	return fmt.Sprintf("the POSH documents in %s now list the new certificate; clients that cached the old ones (for up to %s) refuse it until then — renew avoids this by staging",
		pins.POSH.Dir, time.Duration(pins.POSH.ExpiresSeconds)*time.Second)
}

// issueRequest reads and checks everything the command line says before
// anything is written.
func issueRequest(c *cli.Context) (issuePlan, error) {
	var plan issuePlan
	key, err := acme.ParseKeyType(c.String("key-type"))
	if err != nil {
		return plan, usagef("--key-type: %v", err)
	}
	role := xmppaddr.RoleHost
	if c.Bool("anonymous") {
		role = xmppaddr.RoleAnonymousHost
	}
	req, err := acme.NewRequest(c.Args().First(), role, c.StringSlice("component"), key)
	if err != nil {
		return plan, usagef("issue: %v", err)
	}
	req.ReuseKey = c.Bool("reuse-key")
	if ca := c.String("ca"); ca == "local" || ca == "" {
		if err := localOnly(c); err != nil {
			return plan, err
		}
		days := c.Int("days")
		if days < 1 || time.Duration(days)*24*time.Hour > localca.MaxLifetime {
			return plan, usagef("--days %d is out of range: 1 to %d", days, int(localca.MaxLifetime/(24*time.Hour)))
		}
		req.CA = "local"
		req.Days = days
	} else {
		if plan.opts, err = acmeRequest(c, &req); err != nil {
			return plan, err
		}
		plan.directory = req.CA
	}
	req.Deploy, req.Hooks = c.StringSlice("deploy"), c.StringSlice("hook")
	if plan.targets, err = deployTargets(c); err != nil {
		return plan, err
	}
	plan.reqs = []acme.Request{req}
	if c.Bool("split") {
		plan.reqs = nil
		for _, n := range req.Names {
			one := req
			one.Names = []acme.Name{n}
			plan.reqs = append(plan.reqs, one)
		}
	}
	return plan, nil
}

// acmeOnlyFlags are the flags that only mean something for an ACME CA.
var acmeOnlyFlags = []string{"email", "agree-tos", "eab-kid", "eab-hmac", "eab-hmac-file", "profile", "trust-root", "timeout",
	"http-listen", "webroot", "tls-alpn-listen", "dns-rfc2136-server", "dns-tsig-name", "dns-tsig-alg", "dns-tsig-secret-file", "dns-hook"}

// localOnly refuses ACME flags with the embedded CA, which validates
// nothing and registers no account.
func localOnly(c *cli.Context) error {
	for _, f := range acmeOnlyFlags {
		if c.IsSet(f) {
			return usagef("--%s is for ACME CAs; the embedded CA (--ca local) signs offline without challenges or account", f)
		}
	}
	return nil
}

// acmeRequest fills in req for an ACME CA from the command line.
func acmeRequest(c *cli.Context, req *acme.Request) (issueOptions, error) {
	var o issueOptions
	dir, err := acmeca.ParseDirectory(c.String("ca"))
	if err != nil {
		return o, usagef("--ca: %v", err)
	}
	if c.IsSet("days") {
		return o, usagef("--days is for --ca local; an ACME CA sets the validity itself (choose a --profile if it offers several)")
	}
	email := c.String("email")
	if err := acmeca.CheckEmail(email); err != nil {
		return o, usagef("--email: %v", err)
	}
	kid, hmac := c.String("eab-kid"), c.String("eab-hmac")
	if f := c.Path("eab-hmac-file"); f != "" {
		if hmac != "" {
			return o, usagef("give the EAB HMAC key once: --eab-hmac or --eab-hmac-file, not both")
		}
		key, err := secretfile.Read(f, "--eab-hmac-file")
		if err != nil {
			return o, usagef("%v", err)
		}
		hmac = string(key)
	}
	if kid != "" || hmac != "" {
		if err := acmeca.CheckEAB(kid, hmac); err != nil {
			return o, usagef("%v", err)
		}
	}
	if c.Duration("timeout") <= 0 {
		return o, usagef("--timeout %s: give a positive duration such as 10m", c.Duration("timeout"))
	}
	if c.Bool("require-xmpp-ids") && acmeca.IsPublic(dir) {
		return o, usagef("--require-xmpp-ids: %s certifies DNS names only (CA/Browser Forum rules allow no SRV-ID or XmppAddr in public certificates); for SRV-IDs and XmppAddr use --ca local or a private ACME CA by URL with --trust-root (xmppcert ca serve, or step-ca with 'xmppcert ca template'), or drop the flag and rely on DNS-IDs with POSH or DANE", acmeca.DisplayName(dir))
	}
	a := &acme.ACMESettings{Directory: dir, Email: email, Profile: c.String("profile"), EABKeyID: kid, RequireXMPPIDs: c.Bool("require-xmpp-ids")}
	if f := c.Path("trust-root"); f != "" {
		if a.TrustRoot, err = filepath.Abs(f); err != nil {
			return o, usagef("--trust-root %s: %v", f, err)
		}
		if _, err := trustPool(a.TrustRoot); err != nil {
			return o, usagef("%v", err)
		}
	}
	ch := acme.ChallengeSettings{HTTPListen: c.String("http-listen"), TLSALPNListen: c.String("tls-alpn-listen"), DNSHook: c.String("dns-hook")}
	if d := c.Path("webroot"); d != "" {
		if ch.Webroot, err = filepath.Abs(d); err != nil {
			return o, usagef("--webroot %s: %v", d, err)
		}
	}
	if srv := c.String("dns-rfc2136-server"); srv != "" {
		r := &acme.RFC2136Settings{Server: srv, TSIGName: c.String("dns-tsig-name"), TSIGAlgorithm: c.String("dns-tsig-alg")}
		if f := c.Path("dns-tsig-secret-file"); f != "" {
			if r.TSIGSecretFile, err = filepath.Abs(f); err != nil {
				return o, usagef("--dns-tsig-secret-file %s: %v", f, err)
			}
		}
		if r.TSIGName != "" && r.TSIGSecretFile == "" {
			return o, usagef("--dns-tsig-name %s needs --dns-tsig-secret-file, the file holding its secret", r.TSIGName)
		}
		if r.TSIGSecretFile != "" && r.TSIGName == "" {
			return o, usagef("--dns-tsig-secret-file needs --dns-tsig-name, the key's name on the server")
		}
		ch.RFC2136 = r
	} else {
		for _, f := range []string{"dns-tsig-name", "dns-tsig-alg", "dns-tsig-secret-file"} {
			if c.IsSet(f) {
				return o, usagef("--%s needs --dns-rfc2136-server, the primary that takes the updates", f)
			}
		}
	}
	if _, err := challengeSolvers(ch); err != nil {
		return o, usagef("%v", err)
	}
	a.Challenges = ch
	req.CA = dir
	req.ACME = a
	o.AgreeTOS = c.Bool("agree-tos")
	o.EABHMAC = hmac
	o.Timeout = c.Duration("timeout")
	return o, nil
}

// checkAccount refuses, before anything is written, to go on with an
// ACME CA for which no account is kept and none may be registered.
func checkAccount(state string, plan issuePlan) error {
	if plan.directory == "" || acmeca.HasAccount(state, plan.directory) {
		return nil
	}
	name := acmeca.DisplayName(plan.directory)
	if !plan.opts.AgreeTOS {
		return usagef("no account with %s yet: registering one needs --agree-tos, your agreement to its terms of service (xmppcert never prompts)", name)
	}
	if plan.directory == acmeca.ZeroSSL && plan.opts.EABHMAC == "" {
		return usagef("no account with ZeroSSL yet: it needs External Account Binding; give --eab-kid and --eab-hmac from the Developer section of your ZeroSSL dashboard")
	}
	return nil
}

// describeIssued checks the new certificate for every service each
// name's role serves and lists its identities.
func describeIssued(got *acme.Obtained, roots *x509.CertPool, now time.Time) issueResult {
	leaf := got.Chain[0]
	res := issueResult{
		Lineage: got.Path, Version: got.Version, Issuer: got.Issuer,
		NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(),
		Key: keyDescription(leaf.PublicKey), KeyReused: got.KeyReused,
		KeyChoice: string(got.KeyChoice), KeyNote: got.KeyNote,
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
	res.privateRoot = got.Request.CA == "local" || got.Request.CA == ""
	if a := got.Request.ACME; a != nil {
		if !hasXMPPIDs(presented) {
			res.Notes = append(res.Notes, "the CA certified DNS names only (no SRV-ID, no XmppAddr), as every public CA does: peers match the DNS-IDs; "+
				"for a domain whose XMPP service is delegated to another host by SRV, peers accept this certificate only with POSH or DANE published; "+
				"SRV-IDs and XmppAddr come from a private CA (--ca local, xmppcert ca serve)")
		}
		if a.Directory == acmeca.LetsEncryptStaging {
			res.Notes = append(res.Notes, "Let's Encrypt staging certificates chain to a test root that no peer trusts: test the set-up with them, then issue with --ca letsencrypt")
		}
		res.privateRoot = a.TrustRoot != ""
		res.trustRoot = a.TrustRoot
	}
	return res
}

// hasXMPPIDs reports whether any SRV-ID or XmppAddr is presented.
func hasXMPPIDs(ids []xmppaddr.Identifier) bool {
	for _, id := range ids {
		if id.Type == xmppaddr.TypeSRVName || id.Type == xmppaddr.TypeXmppAddr {
			return true
		}
	}
	return false
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
	key := r.Key + ", " + r.KeyChoice
	if r.KeyNote != "" {
		key += " (" + r.KeyNote + ")"
	}
	fmt.Fprintf(w, "Issued %s (version %d) by %s\n", r.Names[0].Domain, r.Version, r.Issuer)
	fmt.Fprintf(w, "  files     %s/{fullchain,privkey,cert,chain}.pem (privkey 0600)\n", r.Lineage)
	fmt.Fprintf(w, "  key       %s\n", key)
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
	switch {
	case r.trustRoot != "":
		fmt.Fprintf(w, "Peers must trust the private CA's root, as this host does with --trust-root %s\n", r.trustRoot)
	case r.privateRoot:
		fmt.Fprintf(w, "Peers must trust the private CA's root: xmppcert ca root > xmppcert-root.pem\n")
	}
}
