package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/safetext"
)

func caCommand() *cli.Command {
	return &cli.Command{
		Name:  "ca",
		Usage: "the embedded private CA: init, root, template, serve, eab",
		Description: "The embedded CA (smallstep/certificates) issues what no public CA can: SRV-IDs and XmppAddr.\n" +
			"It lives in STATE/ca: root and intermediate certificates and keys (0600) and its database.",
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown ca command %q; use init, root, template, serve or eab", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
		Subcommands: []*cli.Command{
			{
				Name: "init", Usage: "create the root and intermediate CA (refuses to replace an existing CA)",
				Description: "With --root-key-out FILE the root's private key is written to FILE (a new file, 0600) and\n" +
					"never to STATE/ca: the root signs the intermediate once, and only the intermediate's key stays\n" +
					"online. Move FILE offline; it is needed only to sign another intermediate.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "root-key-out", Usage: "write the root's private key to this new file instead of STATE/ca", TakesFile: true},
					jsonFlag(), quietFlag(),
				},
				OnUsageError: onUsageError, Action: runCAInit,
			},
			{
				Name: "root", Usage: "print the root certificate (PEM): the trust anchor peers need",
				OnUsageError: onUsageError, Action: runCARoot,
			},
			{
				Name: "template", Usage: "print the step-ca X.509 template that adds SRV-IDs and XmppAddr",
				Description: "For operators who run their own step-ca: set it as an ACME provisioner's\n" +
					"options.x509.template (or templateFile).",
				OnUsageError: onUsageError, Action: runCATemplate,
			},
			caServeCommand(),
			{
				Name: "eab", Usage: "create an External Account Binding key for 'ca serve --require-eab'",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "reference", Usage: "a name to remember the key by"},
					jsonFlag(),
				},
				OnUsageError: onUsageError, Action: runCAEAB,
			},
		},
	}
}

func runCAInit(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("ca init takes no arguments")
	}
	state, err := writableStateDir(c)
	if err != nil {
		return err
	}
	out := c.String("root-key-out")
	if c.IsSet("root-key-out") {
		if out == "" {
			return usagef("--root-key-out is empty; name the new file for the root's private key")
		}
		if _, err := os.Lstat(out); err == nil {
			return usagef("--root-key-out %s exists; name a new file (nothing is overwritten)", out)
		}
		if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
			return usagef("--root-key-out %s: the directory %s does not exist", out, filepath.Dir(out))
		}
	}
	store, err := clusterStore(c)
	if err != nil {
		return err
	}
	engine := lifecycle.OnDisk(state)
	if store != nil {
		defer store.Close()
		engine = lifecycle.OnCluster(state, store)
	}
	created, err := engine.InitCA(out)
	var exists *lifecycle.CAExistsError
	switch {
	case errors.Is(err, lifecycle.ErrClusterKeepsCA):
		return usagef("--root-key-out: %v, whose root key is where its creator put it; leave --root-key-out out to install the cluster's CA here", err)
	case errors.As(err, &exists):
		return fmt.Errorf("%v; nothing was changed (its root: xmppcert ca root)", err)
	case out != "" && errors.Is(err, os.ErrExist):
		return usagef("--root-key-out %s exists; name a new file (nothing is overwritten)", out)
	case err != nil:
		return caClusterError(err)
	case !created:
		return printCAInfo(c, caDir(state), "installed", "")
	}
	return printCAInfo(c, caDir(state), "created", out)
}

// caClusterError phrases what keeps the node's embedded CA from being
// the cluster's.
func caClusterError(err error) error {
	var mismatch *lifecycle.CAMismatchError
	if errors.As(err, &mismatch) {
		return fmt.Errorf("%v; move %s aside to take the cluster's CA (nothing was changed)", err, mismatch.Dir)
	}
	return err
}

// caInfo is the --json form of ca init.
type caInfo struct {
	Dir      string `json:"dir"`
	Root     string `json:"root"`
	Subject  string `json:"subject"`
	SHA256   string `json:"sha256"`
	NotAfter string `json:"not_after"`
	Created  bool   `json:"created"`
	// RootKey is where ca init --root-key-out wrote the root's key.
	RootKey string `json:"root_key,omitempty"`
}

// printCAInfo reports the CA in dir; rootKeyOut is where its root key
// was written outside dir, if it was.
func printCAInfo(c *cli.Context, dir, verb, rootKeyOut string) error {
	pemBytes, err := localca.RootPEM(dir)
	if err != nil {
		return err
	}
	certs, err := certfile.Parse(pemBytes)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "root.crt"), err)
	}
	root := certs[0]
	sum := sha256.Sum256(root.Raw)
	info := caInfo{Dir: dir, Root: filepath.Join(dir, "root.crt"), Subject: root.Subject.CommonName,
		SHA256: hex.EncodeToString(sum[:]), NotAfter: root.NotAfter.UTC().Format(time.RFC3339), Created: verb == "created", RootKey: rootKeyOut}
	if flagAnywhere(c, "json") {
		return writeJSON(c.App.Writer, info)
	}
	if flagAnywhere(c, "quiet") {
		return nil
	}
	fmt.Fprintf(c.App.Writer, "%s the private CA %q in %s\n  root    %s (valid until %s)\n  sha256  %s\n",
		verb, info.Subject, dir, info.Root, root.NotAfter.UTC().Format("2006-01-02"), info.SHA256)
	if rootKeyOut != "" {
		fmt.Fprintf(c.App.Writer, "  root key %s, and nowhere else: move it offline (it is needed only to sign another intermediate)\n", rootKeyOut)
	}
	fmt.Fprintf(c.App.Writer, "Peers and clients must trust this root to accept its certificates: 'xmppcert ca root'.\n")
	return nil
}

func runCARoot(c *cli.Context) error {
	state, err := stateDir(c)
	if err != nil {
		return err
	}
	store, err := clusterStore(c)
	if err != nil {
		return err
	}
	if store != nil {
		defer store.Close()
		if state, err = writableStateDir(c); err != nil {
			return err
		}
		err := lifecycle.InstallClusterCA(state, store)
		if errors.Is(err, lifecycle.ErrNoClusterCA) {
			return fmt.Errorf("the cluster keeps no CA yet; create it with 'xmppcert ca init' given the same cluster (or 'xmppcert issue', which creates it)")
		}
		if err != nil {
			return caClusterError(err)
		}
	}
	b, err := localca.RootPEM(caDir(state))
	if errors.Is(err, localca.ErrNotInitialized) {
		return fmt.Errorf("no CA in %s; create one with 'xmppcert ca init' (or 'xmppcert issue', which creates it)", caDir(state))
	}
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(b)
	return err
}

func runCATemplate(c *cli.Context) error {
	_, err := fmt.Fprint(c.App.Writer, localca.Template)
	return err
}

func runCAEAB(c *cli.Context) error {
	state, err := writableStateDir(c)
	if err != nil {
		return err
	}
	ca, err := openCA(state, localca.Options{}, false)
	if err != nil {
		return err
	}
	defer ca.Close()
	kid, hmac, err := ca.NewEABKey(c.Context, c.String("reference"))
	if err != nil {
		return err
	}
	if flagAnywhere(c, "json") {
		return writeJSON(c.App.Writer, map[string]string{"kid": kid, "hmac": hmac, "reference": c.String("reference")})
	}
	fmt.Fprintf(c.App.Writer, "kid   %s\nhmac  %s\nFor certbot: --eab-kid %s --eab-hmac-key %s\n", kid, hmac, kid, hmac)
	return nil
}

// openCA opens the state directory's embedded CA; a missing one is
// created when create is set, else an error that says how to create it.
func openCA(state string, opts localca.Options, create bool) (*localca.CA, error) {
	ca, err := lifecycle.OpenCA(state, opts, create)
	if errors.Is(err, localca.ErrNotInitialized) {
		return nil, fmt.Errorf("no CA in %s; create one with 'xmppcert ca init'", caDir(state))
	}
	return ca, err
}

func caServeCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve ACME (RFC 8555) from the embedded CA, issuing XMPP-complete certificates",
		Description: "Any ACME client (certbot, acme.sh, certmagic) gets certificates whose SRV-IDs and XmppAddr cover\n" +
			"the names its order validated (http-01 or tls-alpn-01). The directory is\n" +
			"https://LISTEN" + localca.ACMEPath + "; clients trust the root from 'xmppcert ca root'.\n" +
			"Listening beyond loopback needs --allow-domain, so that the CA never issues for any name to anyone.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8443", Usage: "address to serve HTTPS on"},
			&cli.StringSliceFlag{Name: "allow-domain", Usage: "issue only for this domain and its subdomains (repeatable)"},
			&cli.StringSliceFlag{Name: "component", Usage: "this name is a component: no _xmpp-client SRV-ID (repeatable)"},
			&cli.StringSliceFlag{Name: "anonymous", Usage: "this name is an anonymous host: no _xmpp-server SRV-ID (repeatable)"},
			&cli.BoolFlag{Name: "require-eab", Usage: "new accounts need an External Account Binding key ('xmppcert ca eab')"},
			&cli.IntFlag{Name: "days", Value: int(localca.DefaultLifetime / (24 * time.Hour)), Usage: "validity of issued certificates"},
			&cli.StringFlag{Name: "validate-ip", Usage: "validate challenges against this address instead of the name's DNS address"},
			&cli.IntFlag{Name: "http-01-port", Value: 80, Usage: "port http-01 validation connects to"},
			&cli.IntFlag{Name: "tls-alpn-01-port", Value: 443, Usage: "port tls-alpn-01 validation connects to"},
			&cli.IntFlag{Name: "max-names-per-order", Value: localca.DefaultMaxNamesPerOrder, Usage: "names one order may hold; more are refused with rateLimited"},
			&cli.IntFlag{Name: "max-orders-per-hour", Value: localca.DefaultMaxOrdersPerHour, Usage: "orders one account may create in an hour; more are refused with rateLimited and Retry-After"},
		},
		OnUsageError: onUsageError,
		Action:       runCAServe,
	}
}

func runCAServe(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("ca serve takes no arguments; see 'xmppcert ca serve --help'")
	}
	if _, _, err := net.SplitHostPort(c.String("listen")); err != nil {
		return usagef("--listen %q: %v; give HOST:PORT such as 127.0.0.1:8443", c.String("listen"), err)
	}
	if !loopbackListen(c.String("listen")) && len(c.StringSlice("allow-domain")) == 0 {
		return usagef("--listen %s is reachable beyond this machine; name the domains this CA may issue for with --allow-domain", c.String("listen"))
	}
	for _, d := range c.StringSlice("allow-domain") {
		if _, err := acme.CanonicalName(d); err != nil {
			return usagef("--allow-domain %q: %v", d, err)
		}
	}
	if v := c.String("validate-ip"); v != "" && net.ParseIP(v) == nil {
		return usagef("--validate-ip %q is not an IP address", v)
	}
	for _, p := range []string{"http-01-port", "tls-alpn-01-port"} {
		if n := c.Int(p); n < 1 || n > 65535 {
			return usagef("--%s %d is not a port number", p, n)
		}
	}
	for _, p := range []string{"max-names-per-order", "max-orders-per-hour"} {
		if n := c.Int(p); n < 1 {
			return usagef("--%s %d: give a positive number", p, n)
		}
	}
	days := c.Int("days")
	if days < 1 || time.Duration(days)*24*time.Hour > localca.MaxLifetime {
		return usagef("--days %d is out of range: 1 to %d", days, int(localca.MaxLifetime/(24*time.Hour)))
	}
	state, err := writableStateDir(c)
	if err != nil {
		return err
	}
	opts := localca.Options{
		Lifetime:   time.Duration(days) * 24 * time.Hour,
		Components: c.StringSlice("component"),
		Anonymous:  c.StringSlice("anonymous"),
		RequireEAB: c.Bool("require-eab"),
	}
	store, err := clusterStore(c)
	if err != nil {
		return err
	}
	if store == nil {
		ca, err := openCA(state, opts, true)
		if err != nil {
			return err
		}
		defer ca.Close()
		if err := serveCA(c.Context, c, ca, state); err != nil {
			return fmt.Errorf("ca serve: %w", err)
		}
		return nil
	}
	defer store.Close()
	ca, err := lifecycle.OnCluster(state, store).OpenCA(opts)
	if err != nil {
		return fmt.Errorf("ca serve: the cluster's CA: %w", err)
	}
	defer ca.Close()
	// One node of the cluster serves its CA at a time (README, "Cluster
	// mode"); SIGTERM hands the lead to the next node at once.
	errw := c.App.ErrWriter
	err = store.Serve(c.Context, etcdstore.Role{
		Name: etcdstore.RoleCA, Offer: "https://" + localca.ClientHost(c.String("listen")) + localca.ACMEPath,
		Standby: func(l etcdstore.Candidate, ok bool) {
			if ok {
				fmt.Fprintf(errw, "xmppcert: ca serve: standing by: node %s serves the cluster's CA at %s\n", safetext.Escape(l.Node), safetext.Escape(l.Offer))
			}
		},
		Lead: func(ctx context.Context) error {
			fmt.Fprintln(errw, "xmppcert: ca serve: this node leads the cluster's CA")
			return serveCA(ctx, c, ca, state)
		},
		Lost: func() {
			fmt.Fprintln(errw, "xmppcert: ca serve: this node's etcd session ended: it no longer leads the cluster's CA and stops serving")
		},
	})
	if err != nil {
		return fmt.Errorf("ca serve: %w", err)
	}
	return nil
}

// serveCA serves ACME from ca on --listen until ctx ends; its errors
// are the caller's to name as ca serve's.
func serveCA(ctx context.Context, c *cli.Context, ca *localca.CA, state string) error {
	srv, err := ca.Listen(ctx, c.String("listen"), localca.ServeOptions{
		AllowDomains: c.StringSlice("allow-domain"),
		ValidateIP:   c.String("validate-ip"),
		HTTPPort:     c.Int("http-01-port"),
		TLSALPNPort:  c.Int("tls-alpn-01-port"),

		MaxNamesPerOrder: c.Int("max-names-per-order"),
		MaxOrdersPerHour: c.Int("max-orders-per-hour"),
	})
	if err != nil {
		return err
	}
	if !loopbackListen(c.String("listen")) {
		fmt.Fprintf(c.App.ErrWriter, "xmppcert: ca serve listens on %s, beyond loopback, for %s\n", srv.Addr(), strings.Join(c.StringSlice("allow-domain"), ", "))
	}
	if c.Bool("require-eab") {
		if err := reportAccountsWithoutEAB(ctx, c.App.ErrWriter, ca); err != nil {
			srv.Close()
			return fmt.Errorf("listing the ACME accounts: %w", err)
		}
	}
	fmt.Fprintf(c.App.Writer, "ACME directory %s\nroot %s\n", srv.DirectoryURL(), filepath.Join(caDir(state), "root.crt"))
	return srv.Serve(ctx)
}

// loopbackListen reports whether ca serve's --listen address (HOST:PORT)
// is reachable from this machine only: localhost or a loopback address.
func loopbackListen(listen string) bool {
	host, _, _ := net.SplitHostPort(listen)
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// reportAccountsWithoutEAB warns of the accounts that --require-eab does
// not hold back: those created before it was turned on, which can still
// order.
func reportAccountsWithoutEAB(ctx context.Context, w io.Writer, ca *localca.CA) error {
	accts, err := ca.AccountsWithoutEAB(ctx)
	if err != nil || len(accts) == 0 {
		return err
	}
	fmt.Fprintf(w, "xmppcert: warning: %d ACME account(s) predate --require-eab (no External Account Binding) and can still order:\n", len(accts))
	for _, a := range accts {
		contact := "no contact"
		if len(a.Contact) > 0 {
			contact = strings.Join(a.Contact, " ")
		}
		fmt.Fprintf(w, "  account %s (%s), created %s\n", a.ID, contact, a.CreatedAt.UTC().Format(time.DateTime))
	}
	return nil
}
