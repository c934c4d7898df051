package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/secretfile"
	"github.com/xmppcert/xmppcert/pinning"
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
			"Over an existing lineage, the names, their roles and the CA must be those it was issued with (the\n" +
			"difference is printed and nothing changes) unless --replace-names; its deploy targets and hooks are\n" +
			"kept, those given now are added, and --no-deploy / --no-hooks drop the stored ones; its --key-type,\n" +
			"--reuse-key and --days are kept unless given again. The output says what changed.\n" +
			"Exit 0 issued and deployed, 1 an issuance, check or deploy step failed, 2 usage error.",
		Flags: append(append([]cli.Flag{
			&cli.StringSliceFlag{Name: "component", Aliases: []string{"c"}, Usage: "a component of the host (conference, upload...): DNS-ID, _xmpp-server SRV-ID, XmppAddr (repeatable)"},
			&cli.BoolFlag{Name: "anonymous", Usage: "DOMAIN is an anonymous-login host that does not federate: no _xmpp-server SRV-ID"},
			&cli.StringFlag{Name: "ca", Value: "local", Usage: "who signs: local (the embedded CA), letsencrypt, letsencrypt-staging, zerossl, or an ACME directory URL"},
			&cli.BoolFlag{Name: "split", Usage: "one certificate, and one lineage, per name instead of one for the host and its components"},
			&cli.StringFlag{Name: "key-type", Value: string(acme.KeyECDSAP256), Usage: "ecdsa-p256, rsa2048 or rsa3072"},
			&cli.BoolFlag{Name: "reuse-key", Usage: "keep the lineage's current key (DANE 3 1 1 pins stay valid)"},
			&cli.IntFlag{Name: "days", Value: int(localca.DefaultLifetime / (24 * time.Hour)), Usage: "validity, for --ca local"},
		}, deployFlags("shell command to run after deploying, with certbot's environment (repeatable)")...),
			&cli.StringSliceFlag{Name: "serve-check", Usage: "[KIND:]HOST:PORT that serves this certificate, checked after every deploy (KIND xmpp-client, the default, xmpp-server, xmpps-client, xmpps-server; repeatable, stored)"},
			&cli.BoolFlag{Name: "replace-names", Usage: "re-issue an existing lineage with other names, roles or another CA than it was issued with"},
			&cli.BoolFlag{Name: "no-deploy", Usage: "drop the deploy targets stored with an existing lineage (those given now are kept)"},
			&cli.BoolFlag{Name: "no-hooks", Usage: "drop the hooks stored with an existing lineage (those given now are kept)"},
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
			&cli.StringSliceFlag{Name: "caa-identity", Usage: "ACME: the CA's CAA issuer domain, for a CA whose directory names none (repeatable, stored; turns the pre-flight on for a private CA)"},
			&cli.StringFlag{Name: "preflight-resolver", Usage: "ACME: HOST:PORT of the DNSSEC-validating resolver the pre-flight asks (stored; default the system's)"},
			&cli.BoolFlag{Name: "no-preflight", Usage: "ACME: order without checking CAA, DNSSEC and the challenge first (stored)"},
			jsonFlag(), quietFlag(),
		),
		OnUsageError: onUsageError,
		Action:       runIssue,
	}
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
	reqs   []acme.Request
	opts   lifecycle.IssueOptions
	policy lifecycle.ReplacePolicy
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
	engine, done, err := newEngine(c, state, true)
	if err != nil {
		return err
	}
	defer done()
	if err := engine.CheckAccount(plan.reqs[0], plan.opts); err != nil {
		return accountUsage(err)
	}
	var results []lifecycle.IssueReport
	failed := false
	for _, req := range plan.reqs {
		res, err := engine.Issue(c.Context, req, plan.opts, plan.policy)
		if err == nil {
			res.Notes = append(res.Notes, issueNotes(res, req)...)
		}
		if err != nil {
			err = issueError(err)
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
			results = []lifecycle.IssueReport{}
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
			}
		}
		for _, r := range res.Served {
			if !r.OK() {
				fmt.Fprintf(c.App.ErrWriter, "xmppcert: %s\n", r)
			}
		}
		deployed = deployed && res.Deployed()
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
	}
	dr, err := deployRequest(c)
	if err != nil {
		return plan, err
	}
	for _, spec := range c.StringSlice("serve-check") {
		ep, err := acme.ParseServeEndpoint(spec)
		if err != nil {
			return plan, usagef("--serve-check: %v", err)
		}
		req.ServeCheck = append(req.ServeCheck, ep)
	}
	req.Deploy, req.Hooks, req.ProsodyConfig, req.EjabberdCtlConfig = dr.Deploy, dr.Hooks, dr.ProsodyConfig, dr.EjabberdCtlConfig
	plan.policy = lifecycle.ReplacePolicy{ReplaceNames: c.Bool("replace-names"), NoDeploy: c.Bool("no-deploy"), NoHooks: c.Bool("no-hooks"),
		Given: lifecycle.GivenSettings{Key: c.IsSet("key-type"), ReuseKey: c.IsSet("reuse-key"), Days: c.IsSet("days")}}
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
	"http-listen", "webroot", "tls-alpn-listen", "dns-rfc2136-server", "dns-tsig-name", "dns-tsig-alg", "dns-tsig-secret-file", "dns-hook",
	"caa-identity", "preflight-resolver", "no-preflight"}

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
func acmeRequest(c *cli.Context, req *acme.Request) (lifecycle.IssueOptions, error) {
	var o lifecycle.IssueOptions
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
		warnExposed(c, "eab-hmac-file", f)
		hmac = string(key)
	}
	if kid != "" || hmac != "" {
		if err := acmeca.CheckEAB(kid, hmac); err != nil {
			return o, usagef("--eab-kid/--eab-hmac: %v", err)
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
		if _, err := lifecycle.TrustPool(a.TrustRoot); err != nil {
			return o, usagef("--trust-root %s: %v", a.TrustRoot, errors.Unwrap(err))
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
			warnExposed(c, "dns-tsig-secret-file", f)
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
	if _, err := lifecycle.ChallengeSolvers(ch); err != nil {
		return o, solverUsage(err)
	}
	a.Challenges = ch
	for _, id := range c.StringSlice("caa-identity") {
		v, err := pinning.ParseCAAIdentity(id)
		if err != nil {
			return o, usagef("--caa-identity: %v", err)
		}
		a.CAAIdentities = append(a.CAAIdentities, v)
	}
	if r := c.String("preflight-resolver"); r != "" {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return o, usagef("--preflight-resolver %q is not HOST:PORT (127.0.0.1:53, say)", r)
		}
		a.Resolver = r
	}
	a.NoPreflight = c.Bool("no-preflight")
	req.CA = dir
	req.ACME = a
	o.AgreeTOS = c.Bool("agree-tos")
	o.EABHMAC = hmac
	o.Timeout = c.Duration("timeout")
	return o, nil
}

// issueNotes are the notes about an issuance that name what to do on
// the command line.
func issueNotes(res lifecycle.IssueReport, req acme.Request) []string {
	var notes []string
	if res.DNSOnly {
		notes = append(notes, "the CA certified DNS names only (no SRV-ID, no XmppAddr), as every public CA does: peers match the DNS-IDs; "+
			"for a domain whose XMPP service is delegated to another host by SRV, peers accept this certificate only with POSH or DANE published; "+
			"SRV-IDs and XmppAddr come from a private CA (--ca local, xmppcert ca serve)")
	}
	if req.ACME != nil && req.ACME.Directory == acmeca.LetsEncryptStaging {
		notes = append(notes, "Let's Encrypt staging certificates chain to a test root that no peer trusts: test the set-up with them, then issue with --ca letsencrypt")
	}
	return notes
}

// issueError phrases the engine's refusals to change a lineage's
// desired state in flags: usage errors, before anything was written.
func issueError(err error) error {
	var nc *lifecycle.NamesChangedError
	switch {
	case errors.As(err, &nc):
		return usagef("%v; give --replace-names to issue it with these names", err)
	case errors.Is(err, lifecycle.ErrNothingToReplace):
		return usagef("--replace-names: %v; leave the flag out", err)
	}
	if h := remedyHint(err); h != "" {
		return fmt.Errorf("%w%s", err, h)
	}
	return err
}

// remedyFlags names, for each setting an ACME CA's failure asks to
// change, the flags of issue that change it.
var remedyFlags = map[acmeca.Remedy]string{
	acmeca.RemedyDirectory: "--ca",
	acmeca.RemedyTrustRoot: "--trust-root FILE",
	acmeca.RemedyStaging:   "--ca letsencrypt-staging",
	acmeca.RemedyTimeout:   "--timeout",
	acmeca.RemedyProfile:   "--profile",
	acmeca.RemedyEAB:       "--eab-kid and --eab-hmac-file",
	acmeca.RemedyAgreeTOS:  "--agree-tos",
	acmeca.RemedyEmail:     "--email",
	acmeca.RemedyXMPPIDs:   "--ca local, or without --require-xmpp-ids",
}

// remedyHint names, for an ACME CA's failure, the flags of issue that
// change the setting its advice names; "" for any other error.
func remedyHint(err error) string {
	var ae *acmeca.Error
	if errors.As(err, &ae) {
		if f, ok := remedyFlags[ae.Remedy()]; ok {
			return " (xmppcert issue " + f + ")"
		}
	}
	return ""
}

// accountUsage phrases a missing ACME account's requirements in flags.
func accountUsage(err error) error {
	var ae *lifecycle.AccountError
	switch {
	case !errors.As(err, &ae):
		return err
	case ae.NeedAgreeTOS:
		return usagef("no account with %s yet: registering one needs --agree-tos, your agreement to its terms of service (xmppcert never prompts)", acmeca.DisplayName(ae.Directory))
	case ae.Directory == acmeca.ZeroSSL:
		return usagef("no account with ZeroSSL yet: it needs External Account Binding; give --eab-kid and --eab-hmac from the Developer section of your ZeroSSL dashboard")
	}
	return usagef("%v: give --eab-kid and --eab-hmac-file", err)
}

// solverUsage phrases a challenge-settings error in flags.
func solverUsage(err error) error {
	var conflict *lifecycle.SolverConflictError
	switch {
	case errors.Is(err, lifecycle.ErrNoSolver):
		return usagef("no way to prove control of the names is configured: give --http-listen, --webroot, --tls-alpn-listen, --dns-rfc2136-server or --dns-hook")
	case errors.As(err, &conflict) && conflict.Type == "http-01":
		return usagef("--http-listen and --webroot: choose one way to solve http-01")
	case errors.As(err, &conflict):
		return usagef("--dns-rfc2136-server and --dns-hook: choose one way to solve %s", conflict.Type)
	}
	return usagef("%v", err)
}

func printIssued(w io.Writer, r lifecycle.IssueReport) {
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
	printChanges(w, r.Changes)
	for _, note := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", note)
	}
	printDeployResults(w, r.Deploy)
	printServed(w, r.Served)
	switch {
	case r.TrustRoot != "":
		fmt.Fprintf(w, "Peers must trust the private CA's root, as this host does with --trust-root %s\n", r.TrustRoot)
	case r.PrivateRoot:
		fmt.Fprintf(w, "Peers must trust the private CA's root: xmppcert ca root > xmppcert-root.pem\n")
	}
}

// printChanges says what an issuance changed in the lineage's stored
// request, a line per kind of change.
func printChanges(w io.Writer, ch lifecycle.RequestChanges) {
	if ch.Identity() {
		fmt.Fprintf(w, "  changed   names: %s\n", ch.IdentityString())
	}
	for _, l := range []struct {
		what  string
		items []string
	}{{"deploy target added", ch.DeployAdded}, {"deploy target removed", ch.DeployRemoved}, {"hook added", ch.HooksAdded}, {"hook removed", ch.HooksRemoved}} {
		for _, it := range l.items {
			fmt.Fprintf(w, "  changed   %s: %s\n", l.what, it)
		}
	}
	for _, s := range ch.Settings {
		fmt.Fprintf(w, "  changed   %s\n", s)
	}
}
