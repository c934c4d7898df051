// Package config reads the daemon's configuration: one TOML file naming
// the hosts whose certificates xmppcert keeps (with their CA, deploy
// targets, hooks and pin publishing), the endpoints it watches, how
// history is kept, where alerts go and how the HTTP side listens.
// contrib/xmppcert.toml is a commented example of every setting.
//
// Load and Parse are strict and all-or-nothing: an unknown key (a typo,
// or a key in the wrong table or with the wrong case), a value of the
// wrong type, a bad duration, an invalid domain, a duplicate host, an
// unknown service, an unreadable secret file and the like make them
// return an ErrorList and no Config. Every Error names the file, line
// and column of the key at fault, says what is wrong and what to do:
//
//	/etc/xmppcert.toml:12:1: watch.interval: "1 hour" is not a duration: write it like "90s", "15m", "1h" or "7d"
//
// A reload (the daemon's SIGHUP) calls Load again and keeps running on
// the old Config unless the new one loads without error.
//
// # Secrets
//
// Secrets never appear in the file: the webhook HMAC key, the HTTP bearer
// token, the ACME EAB HMAC key and the TSIG key are each read from a file
// named in the configuration (hmac_secret_file, token_file,
// eab_hmac_file, tsig_secret_file). Load reads every such file, so that
// an unreadable or empty one is reported at start-up and on reload, not
// when first needed; the secrets are held as alert.Secret, which never
// prints, and no error ever quotes a secret file's content. (TSIG
// secrets are checked but not kept: renewal and pin publishing read
// them from the file each time, as the CLI does.)
//
// # Paths
//
// Relative paths in the file (state_dir, the secret and token files,
// out_dir, webroot, trust_root, watch.trust_roots, an exec program given
// with a slash) are taken relative to the directory of the configuration
// file and stored absolute (the trust_roots files are read at load
// instead), so that a configuration means the same whatever the
// daemon's working directory. Deploy targets and hook commands are kept
// as written, as `xmppcert issue` keeps them.
//
// # Positions
//
// BurntSushi/toml reports syntax errors with their position, but keeps
// one position per dotted key name, shared by every element of an array
// of tables ([[host]]), and does not export it. So once the library has
// accepted the file, this package scans the source to find where each
// key, header and array element starts (see position.go), and decodes
// each array-of-tables element on its own (toml.Primitive), so that an
// error in the third [[host]] is reported at the third [[host]]'s line.
// Unknown keys come from MetaData.Undecoded; because the library matches
// field names case-insensitively, keys are also checked for exact case.
package config

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/ct"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// The keys that messages outside this package name (the daemon's
// warnings, the command line's hints), as contrib/xmppcert.toml writes
// them.
const (
	KeyStateDir      = "state_dir"
	KeyHTTPListen    = "http.listen"
	KeyHTTPTokenFile = "http.token_file"
	KeyHTTPS         = "[http.https]"
	KeyHost          = "[[host]]"
)

// Defaults, applied where the file says nothing.
const (
	// DefaultCA is who signs a host's certificate: the embedded CA.
	DefaultCA = "local"
	// DefaultInterval is how often each watched endpoint is probed.
	DefaultInterval = time.Hour
	// DefaultJitter spreads probes over this fraction of the interval,
	// so that endpoints are not all probed at the same instant.
	DefaultJitter = 0.1
	// DefaultConcurrency is how many domains are probed at once.
	DefaultConcurrency = 8
	// MaxConcurrency bounds watch.concurrency: each probe holds a few
	// connections and goroutines.
	MaxConcurrency = 1024
	// DefaultProbeTimeout bounds a whole probe of one domain (every
	// endpoint), as probe.DefaultDeadline.
	DefaultProbeTimeout = 5 * time.Second
	// MinInterval is the shortest watch.interval accepted.
	MinInterval = time.Second
	// DefaultFullInterval is how often each target gets the full TLS
	// scan (versions, cipher suites, SSLv2) that the manifesto grade's
	// scan-based requirements need.
	DefaultFullInterval = 24 * time.Hour
	// DefaultRetention is how long history keeps superseded
	// observations.
	DefaultRetention = 90 * 24 * time.Hour
	// DefaultListen is where the dashboard, API and /metrics listen:
	// loopback only, so no token is needed.
	DefaultListen = "127.0.0.1:8787"
	// DefaultTLSATTL is the TTL of published TLSA records.
	DefaultTLSATTL = time.Hour
	// DefaultPOSHExpires is how long clients may cache a POSH document.
	DefaultPOSHExpires = 24 * time.Hour
	// DefaultMinSeverity is the least severity each alert sink gets:
	// every alert.
	DefaultMinSeverity = changes.Info
)

// Config is a loaded, checked configuration. Every field holds its
// default when the file leaves it out; durations are positive and
// domains canonical (IDNA A-labels, lower case, no trailing dot).
type Config struct {
	// File is the path the configuration was read from (Parse's name).
	File string
	// StateDir is state_dir, made absolute; empty means the CLI's default
	// (--state-dir, $XMPPCERT_STATE_DIR, /var/lib/xmppcert for root,
	// else $XDG_STATE_HOME/xmppcert).
	StateDir string
	// Hosts are the [[host]] entries, in file order.
	Hosts []Host
	// Watch says what is probed and how often ([watch]).
	Watch Watch
	// History says how long observations are kept ([history]).
	History History
	// Alert says where alerts go ([alert]).
	Alert Alert
	// HTTP says where the dashboard, API and /metrics listen ([http]).
	HTTP HTTP
	// Cluster, from [cluster], keeps the lineages in etcd, shared by the
	// nodes; nil without the table (one machine, its state directory).
	Cluster *Cluster
	// CT, from [ct], has the daemon follow Certificate Transparency logs
	// for certificates of our names that it did not issue; nil without
	// the table.
	CT *CT
	// Warnings are what does not stop the daemon but should be fixed: a
	// secret file readable by group or others. The daemon logs them at
	// start and on every reload.
	Warnings ErrorList
}

// DefaultCTInterval is how often the CT logs are read when [ct] gives
// no interval.
const DefaultCTInterval = 5 * time.Minute

// CT is [ct]: the Certificate Transparency logs to follow.
type CT struct {
	// Logs are the logs of log_list (a v3 JSON log list, read at load;
	// retired and rejected logs left out).
	Logs []ct.Log
	// URLs are the logs, whose kind (static-ct-api monitoring prefix or
	// RFC 6962) is found when first read.
	URLs []string
	// Interval between two rounds (interval, default DefaultCTInterval).
	Interval time.Duration
}

// Cluster is [cluster]: where the nodes' shared etcd is and how this
// node takes part (README, "Cluster mode").
type Cluster struct {
	// Endpoints are etcd's client URLs (etcd_endpoints, required):
	// http://HOST:PORT on loopback only, else https.
	Endpoints []string
	// TLSCertFile and TLSKeyFile are this node's client certificate and
	// key for etcd (tls_cert_file, tls_key_file, absolute; together or
	// neither), TLSCAFile the CAs etcd's certificate is checked against
	// (tls_ca_file; empty: the system roots).
	TLSCertFile, TLSKeyFile, TLSCAFile string
	// NodeID names this node (node_id, default the host name): its
	// deploy records and its share of the watching are its own.
	NodeID string
	// LeaseTTL is the node's etcd lease (lease_ttl, default 10s, whole
	// seconds from 2s): a node that stops renewing it loses its locks
	// that long after.
	LeaseTTL time.Duration
	// Key seals the private keys stored in etcd: the KeySize bytes read
	// from KeyFile (key_file, required, absolute), given as 64 hex
	// digits (openssl rand -hex 32). Every node has the same.
	Key     []byte
	KeyFile string
	// Prefix is the key prefix of everything xmppcert keeps in etcd
	// (prefix, default "/xmppcert/"; it ends with a slash).
	Prefix string
	// MaxOrders caps the ACME orders the nodes have open at once with
	// one account (max_concurrent_orders, default DefaultMaxOrders), so
	// that a mass renewal stays within the CA's rate limits.
	MaxOrders int
	// AdvertiseURL is where the other nodes reach this node's dashboard
	// API for the cluster's dashboard and /metrics (advertise_url:
	// http:// or https://HOST[:PORT], no path; kept without a trailing
	// slash). Empty: the daemon derives it from the address it listens
	// on, unless that is every address (README, "Cluster mode").
	AdvertiseURL string
}

// Cluster defaults.
const (
	DefaultLeaseTTL      = 10 * time.Second
	DefaultClusterPrefix = "/xmppcert/"
	DefaultMaxOrders     = 4
	// ClusterKeySize is the size of the sealing key: AES-256.
	ClusterKeySize = 32
)

// Host is one [[host]]: an XMPP host and its components, certified
// together in one lineage named after the host (as `xmppcert issue`).
type Host struct {
	// Domain is the host (domain), canonical.
	Domain string
	// Components are the component domains (components), canonical;
	// they get no _xmpp-client SRV-ID.
	Components []string
	// Anonymous marks an anonymous-login host that does not federate
	// (anonymous): no _xmpp-server SRV-ID, and only c2s is watched.
	Anonymous bool
	// CA is "local" (the embedded CA, the default) or an ACME directory
	// URL; a known name in the file (letsencrypt, letsencrypt-staging,
	// zerossl) is turned into its URL, as `issue --ca` does.
	CA string
	// KeyType is key_type (default ecdsa-p256).
	KeyType acme.KeyType
	// ReuseKey keeps the lineage's key on renewal (reuse_key), so that
	// DANE 3 1 1 records stay valid.
	ReuseKey bool
	// Days is the validity asked of the local CA (days; default 90);
	// zero for an ACME CA, which chooses.
	Days int
	// Deploy are the deploy targets (deploy), as `issue --deploy` takes
	// them: prosody[:CERTDIR] or ejabberd[:FILE].
	Deploy []string
	// Hooks are shell commands run after deploying (hooks), with
	// certbot's environment, as `issue --hook`.
	Hooks []string
	// ProsodyConfig (prosody_config) and EjabberdCtlConfig
	// (ejabberd_ctl_config) are the servers' configuration files, which
	// the prosody and ejabberd deploy targets give their status and
	// reload commands; absolute, empty for the defaults.
	ProsodyConfig, EjabberdCtlConfig string
	// ServeCheck are the endpoints that serve the host's certificate
	// (serve_check), asked after every deploy what they present.
	ServeCheck []acme.ServeEndpoint
	// ACME is how to reach an ACME CA ([host.acme]); nil for the local CA.
	ACME *acme.ACMESettings
	// AgreeTOS is agree_tos in [host.acme]: agreement to the CA's terms,
	// needed to register an account the first time.
	AgreeTOS bool
	// EABHMAC is the External Account Binding HMAC key read from
	// eab_hmac_file in [host.acme]; empty without one.
	EABHMAC alert.Secret
	// Timeout bounds each issuance and renewal by the ACME CA, retries
	// included (timeout in [host.acme], default acmeca.DefaultTimeout);
	// zero for the local CA.
	Timeout time.Duration
	// TLSA publishes TLSA records by RFC 2136 ([host.pins.tlsa]); nil
	// when not configured.
	TLSA *TLSA
	// POSH writes POSH documents ([host.pins.posh]); nil when not
	// configured.
	POSH *POSH
	// Line is the line of the host's [[host]] header, for messages.
	Line int
	// Role is the role of Domain when it is not a host: set for a host
	// taken from a lineage of a component alone (HostFromRequest).
	Role xmppaddr.Role
	// FromLineage marks a host taken from a lineage in the state
	// directory (a daemon without a configuration file), not configured:
	// it is watched, and its lineage renewed, but it states no desired
	// state of its own.
	FromLineage bool
}

// HostFromRequest is the host a lineage's stored request describes: its
// first name with its role, the others as components, and the request's
// CA, key, deploy and check settings. FromLineage is set.
func HostFromRequest(req acme.Request) Host {
	h := Host{Domain: req.Host(), CA: req.CA, KeyType: req.Key, ReuseKey: req.ReuseKey, Days: req.Days,
		Deploy: req.Deploy, Hooks: req.Hooks, ACME: req.ACME, ProsodyConfig: req.ProsodyConfig,
		EjabberdCtlConfig: req.EjabberdCtlConfig, ServeCheck: req.ServeCheck, FromLineage: true}
	switch r := req.Names[0].Role; r {
	case xmppaddr.RoleAnonymousHost:
		h.Anonymous = true
	default:
		h.Role = r
	}
	for _, n := range req.Names[1:] {
		h.Components = append(h.Components, n.Domain)
	}
	return h
}

// TLSA is [host.pins.tlsa]: how the host's TLSA records are published,
// as `xmppcert pin publish` does.
type TLSA struct {
	// Server is the primary taking RFC 2136 updates, HOST[:PORT] (server).
	Server string
	// Zone holds the records (zone); empty means asked of the server by SOA.
	Zone string
	// TSIGName, TSIGAlgorithm and TSIGSecretFile are the TSIG key
	// (tsig_name, tsig_algorithm default hmac-sha256, tsig_secret_file,
	// absolute). The file was read and checked at load.
	TSIGName       string
	TSIGAlgorithm  string
	TSIGSecretFile string
	// TTL of the records (ttl, default 1h).
	TTL time.Duration
	// Hold is how long the next key's records must be public before a
	// renewal switches to it (hold, default 2 x TTL).
	Hold time.Duration
	// Usage, Selector and MatchingType are the record parameters (usage,
	// selector, matching_type; default 3 1 1: DANE-EE, SPKI, SHA-256).
	Usage, Selector, MatchingType uint8
	// Ports to publish for (ports); empty means by role: 5222 5223 c2s,
	// 5269 5270 s2s.
	Ports []uint16
	// Targets are the SRV target hosts the records are for (targets),
	// canonical; empty means each name of the lineage.
	Targets []string
	// FromSRV takes targets and ports from the names' SRV records
	// (from_srv); Ports and Targets are then empty.
	FromSRV bool
	// Resolver is the HOST:PORT FromSRV asks (resolver); empty means the
	// first nameserver of /etc/resolv.conf.
	Resolver string
}

// POSH is [host.pins.posh]: where the host's POSH documents (RFC 7711)
// are written.
type POSH struct {
	// OutDir is the web root .well-known/posh/SERVICE.json is written
	// into (out_dir, absolute); empty means STATE_DIR/posh/DOMAIN (see
	// Host.POSHRoot). The daemon's HTTP server serves them either way.
	OutDir string
	// Expires is how long clients may cache a document (expires, default
	// 24h).
	Expires time.Duration
	// Services are the documents published (services); default the
	// services of the host's role.
	Services []xmppaddr.Service
}

// Watch is [watch]: which endpoints are probed and how.
type Watch struct {
	// Interval between two probes of one endpoint (interval, default 1h).
	Interval time.Duration
	// Jitter spreads the probes (jitter: a fraction of the interval such
	// as 0.1, or a duration such as "5m"; default 0.1).
	Jitter Jitter
	// Concurrency is how many domains are probed at once (concurrency,
	// 1 to MaxConcurrency, default 8).
	Concurrency int
	// Timeout bounds a whole probe of one domain (timeout, default 5s);
	// it is probe.Options.Deadline.
	Timeout time.Duration
	// FullInterval is how often each target gets the full TLS scan
	// (full_interval, default 24h; -1 for "never"). The scans are spread
	// over the interval: each sweep scans its share of the targets,
	// those scanned longest ago first.
	FullInterval time.Duration
	// OwnHosts watches c2s and s2s of every host and component of
	// Hosts, as their roles serve them (own_hosts, default true).
	OwnHosts bool
	// From is the own domain sent in s2s probes' stream from (from,
	// canonical); default the first host's domain. It is sent to peers
	// only when it is one of the hosts' names: our own servers refuse
	// a stream from a domain they serve, so they are probed without one.
	From string
	// Resolver is the DNS resolver probes ask, HOST:PORT (resolver); for
	// DANE a DNSSEC-validating one. Empty means the system's.
	Resolver string
	// TrustRoots are the certificates of the PEM files in trust_roots
	// (paths relative to the configuration file), read and checked at
	// load: trust anchors the probes accept besides the system roots and
	// the embedded CA's root, for peers and hosts certified by a private
	// CA. Empty when trust_roots is left out.
	TrustRoots []*x509.Certificate
	// Peers are the [[watch.peer]] entries.
	Peers []Peer
	// Vantages are the [[watch.vantage]] entries: every sweep probes our
	// own hosts through each of them too and compares the keys seen.
	Vantages []Vantage
}

// Vantage is one [[watch.vantage]]: a SOCKS5 proxy on another network
// (Tor, a small host elsewhere) through which the daemon probes its own
// hosts as well, to learn when the endpoints present another key there
// than here: an interception on the way to our servers.
type Vantage struct {
	// Name names the vantage in alerts and logs (name; letters, digits,
	// '.', '_' and '-', unique).
	Name string
	// Proxy is the socks5://[USER@]HOST:PORT URL to dial through
	// (proxy), without a password.
	Proxy string
	// PasswordFile holds the password sent to the proxy with the URL's
	// user (password_file); empty for none.
	PasswordFile string
	// Password is that file's content without surrounding white space.
	Password alert.Secret
	// Line is the line of the vantage's [[watch.vantage]] header.
	Line int
}

// Via is the proxy URL for probe.Options.Via, with the password.
func (v Vantage) Via() string {
	if len(v.Password) == 0 {
		return v.Proxy
	}
	u, err := url.Parse(v.Proxy)
	if err != nil {
		return v.Proxy // checked at load
	}
	u.User = url.UserPassword(u.User.Username(), string(v.Password))
	return u.String()
}

// Jitter is a random delay added to each probe's schedule: either a
// fraction of the interval or a fixed duration.
type Jitter struct {
	// Fraction of the interval, in [0, 1); used when Duration is 0.
	Fraction float64
	// Duration, less than the interval, when given as one.
	Duration time.Duration
}

// Max is the largest delay the jitter adds to interval.
func (j Jitter) Max(interval time.Duration) time.Duration {
	if j.Duration > 0 {
		return j.Duration
	}
	return time.Duration(j.Fraction * float64(interval))
}

// Peer is one [[watch.peer]]: a domain someone else runs that is watched.
type Peer struct {
	// Domain is the peer's domain, canonical.
	Domain string
	// Services are probed (service or services; default xmpp-server,
	// since peers are what one federates with).
	Services []xmppaddr.Service
	// Connect is a HOST:PORT probed instead of what SRV says (connect).
	Connect string
	// DirectTLS speaks XEP-0368 direct TLS at Connect (direct_tls).
	DirectTLS bool
	// Line is the line of the peer's [[watch.peer]] header.
	Line int
}

// Target is one (domain, service) the daemon watches.
type Target struct {
	// Domain is the XMPP domain probed, canonical.
	Domain string
	// Service is xmpp-client or xmpp-server.
	Service xmppaddr.Service
	// Connect and DirectTLS are a peer's; empty for own hosts.
	Connect   string
	DirectTLS bool
	// Own is true for the hosts and components of Hosts.
	Own bool
}

// Targets lists what the daemon probes: with own_hosts every host and
// component for the services its role serves (c2s and s2s for a host,
// s2s for a component, c2s for an anonymous host), then every peer's
// services, without duplicates, in file order.
func (c *Config) Targets() []Target {
	var out []Target
	seen := map[Target]bool{}
	add := func(t Target) {
		k := t
		k.Own = false
		if !seen[k] {
			seen[k] = true
			out = append(out, t)
		}
	}
	if c.Watch.OwnHosts {
		for _, h := range c.Hosts {
			for _, n := range h.names() {
				for _, svc := range n.Role.Services() {
					add(Target{Domain: n.Domain, Service: svc, Own: true})
				}
			}
		}
	}
	for _, p := range c.Watch.Peers {
		for _, svc := range p.Services {
			add(Target{Domain: p.Domain, Service: svc, Connect: p.Connect, DirectTLS: p.DirectTLS})
		}
	}
	return out
}

func (h Host) role() xmppaddr.Role {
	if h.Anonymous {
		return xmppaddr.RoleAnonymousHost
	}
	return h.Role
}

func (h Host) names() []xmppaddr.Name {
	out := []xmppaddr.Name{{Domain: h.Domain, Role: h.role()}}
	for _, c := range h.Components {
		out = append(out, xmppaddr.Name{Domain: c, Role: xmppaddr.RoleComponent})
	}
	return out
}

// Request is the issuance request for the host, as `xmppcert issue`
// builds it from the same settings.
func (h Host) Request() (acme.Request, error) {
	req, err := acme.NewRequest(h.Domain, h.role(), h.Components, h.KeyType)
	if err != nil {
		return acme.Request{}, err
	}
	req.ReuseKey = h.ReuseKey
	req.CA = h.CA
	req.Days = h.Days
	req.Deploy = append([]string(nil), h.Deploy...)
	req.Hooks = append([]string(nil), h.Hooks...)
	req.ProsodyConfig, req.EjabberdCtlConfig = h.ProsodyConfig, h.EjabberdCtlConfig
	req.ServeCheck = append([]acme.ServeEndpoint(nil), h.ServeCheck...)
	if h.ACME != nil {
		a := *h.ACME
		if a.Challenges.RFC2136 != nil {
			r := *a.Challenges.RFC2136
			a.Challenges.RFC2136 = &r
		}
		req.ACME = &a
	}
	return req, nil
}

// History is [history].
type History struct {
	// Retention is how long superseded observations are kept (retention,
	// default 90 days); the current observation of an endpoint is
	// always kept.
	Retention time.Duration
}

// Alert is [alert]: the sinks and how often a persisting condition is
// re-sent.
type Alert struct {
	// MinSeverity is the least severity the log sink logs (min_severity,
	// default info).
	MinSeverity changes.Severity
	// ResendInterval is how long a persisting condition stays quiet
	// after being sent (resend_interval, default 24h); negative, from
	// "never", means never re-sent while it persists.
	ResendInterval time.Duration
	// Webhooks are the [[alert.webhook]] entries.
	Webhooks []Webhook
	// Execs are the [[alert.exec]] entries.
	Execs []Exec
	// XMPP are the [[alert.xmpp]] entries.
	XMPP []XMPP
}

// XMPP is one [[alert.xmpp]]: alerts sent as chat messages from an
// account.
type XMPP struct {
	// JID is the account the alerts are sent from (jid, user@domain).
	JID string
	// PasswordFile is the file the account's password was read from
	// (password_file, absolute).
	PasswordFile string
	// Password is that file's content without surrounding white space.
	Password alert.Secret
	// To are the recipients' JIDs (to, at least one).
	To []string
	// Server is the HOST:PORT to connect to (server); empty: the JID's
	// domain through its SRV records.
	Server string
	// MinSeverity is the least severity sent (min_severity, default info).
	MinSeverity changes.Severity
	// Timeout bounds each attempt (timeout; default
	// alert.DefaultXMPPTimeout).
	Timeout time.Duration
	// MaxAttempts is the retry budget per alert (max_attempts; default
	// alert.DefaultXMPPMaxAttempts).
	MaxAttempts int
}

// Options are the sink's alert.XMPPOptions; the caller adds the roots
// the server's certificate is checked against.
func (x XMPP) Options() alert.XMPPOptions {
	return alert.XMPPOptions{JID: x.JID, Password: x.Password, To: append([]string(nil), x.To...), Server: x.Server,
		Timeout: x.Timeout, MaxAttempts: x.MaxAttempts}
}

// Webhook is one [[alert.webhook]].
type Webhook struct {
	// URL receives the POSTs (url): https, or http to a loopback host.
	URL string
	// HMACSecretFile is the file the signing key was read from
	// (hmac_secret_file, absolute); empty for unsigned posts.
	HMACSecretFile string
	// HMACSecret is that file's content without surrounding white space.
	HMACSecret alert.Secret
	// MinSeverity is the least severity sent (min_severity, default info).
	MinSeverity changes.Severity
	// Timeout bounds each attempt (timeout; default
	// alert.DefaultWebhookTimeout).
	Timeout time.Duration
	// MaxAttempts is the retry budget per alert (max_attempts; default
	// alert.DefaultWebhookMaxAttempts).
	MaxAttempts int
}

// Options are the webhook's alert.WebhookOptions.
func (w Webhook) Options() alert.WebhookOptions {
	return alert.WebhookOptions{URL: w.URL, Secret: w.HMACSecret, Timeout: w.Timeout, MaxAttempts: w.MaxAttempts}
}

// Exec is one [[alert.exec]].
type Exec struct {
	// Command is the program and its arguments (command, an array; no
	// shell). A relative program path is taken relative to the
	// configuration's directory; a bare name is looked up in $PATH at load.
	Command []string
	// Timeout bounds each run (timeout; default alert.DefaultExecTimeout).
	Timeout time.Duration
	// MinSeverity is the least severity run for (min_severity, default
	// info).
	MinSeverity changes.Severity
}

// Options are the hook's alert.ExecOptions.
func (e Exec) Options() alert.ExecOptions {
	return alert.ExecOptions{Command: append([]string(nil), e.Command...), Timeout: e.Timeout}
}

// HTTP is [http].
type HTTP struct {
	// Listen is the HOST:PORT of the dashboard, API and /metrics (listen,
	// default 127.0.0.1:8787).
	Listen string
	// TokenFile holds the bearer token (token_file, absolute); required
	// when Listen is not a loopback address.
	TokenFile string
	// Token is that file's content without surrounding white space.
	Token alert.Secret
	// HTTPS is [http.https]: the daemon's own HTTPS through certmagic;
	// nil without it.
	HTTPS *HTTPS
}

// HTTPS is [http.https]: the daemon obtains and renews certificates for
// Names from an ACME CA and serves the same dashboard, API, /metrics and
// POSH documents over HTTPS on Listen.
type HTTPS struct {
	// Listen is the HOST:PORT of the HTTPS server (listen, required).
	// tls-alpn-01 is answered there; http-01 on http.listen.
	Listen string
	// Names are the DNS names certificates are obtained for (names): the
	// XMPP domains whose POSH documents it serves, the dashboard's name.
	Names []string
	// Directory is the ACME CA's directory URL (ca: a name as issue --ca
	// takes it, or a URL; default Let's Encrypt); empty with Local.
	Directory string
	// Local is set by ca = "local": the embedded CA signs the
	// certificates itself, without an ACME order or a challenge, for
	// private deployments whose clients trust its root. Email, agree_tos,
	// trust_root and challenges do not apply.
	Local bool
	// Email is the account's contact (email); AgreeTOS (agree_tos)
	// accepts the CA's terms of service, which a new account needs.
	Email    string
	AgreeTOS bool
	// TrustRoot is a PEM file of the roots the CA's own API is checked
	// against (trust_root, absolute), for a private ACME CA; empty: the
	// system roots.
	TrustRoot string
	// HTTP01 and TLSALPN01 say which challenges may be answered
	// (challenges; default both).
	HTTP01, TLSALPN01 bool
	// Profile is the CA's certificate profile (profile), such as Let's
	// Encrypt's "shortlived"; empty: the CA's default.
	Profile string
}

// POSHDir is the directory under the state directory that holds the POSH
// web roots of hosts whose [host.pins.posh] has no out_dir.
const POSHDir = "posh"

// AccountHint says, in the file's keys, how to let the host's first
// issuance register an account with its ACME CA: the agreement to the
// CA's terms and, for CAs that require it, External Account Binding.
func (h Host) AccountHint() string {
	return fmt.Sprintf("set agree_tos = true (and for ZeroSSL eab_kid and eab_hmac_file) in [host.acme] of the [[host]] at line %d of the configuration", h.Line)
}

// remedyKeys says, for each setting an ACME CA's failure asks to
// change, what to do with the host's keys that hold it.
var remedyKeys = map[acmeca.Remedy]string{
	acmeca.RemedyDirectory: "check ca",
	acmeca.RemedyTrustRoot: "set trust_root in [host.acme]",
	acmeca.RemedyStaging:   `test with ca = "letsencrypt-staging"`,
	acmeca.RemedyProfile:   "check profile in [host.acme]",
	acmeca.RemedyTimeout:   "raise timeout in [host.acme]",
	acmeca.RemedyEAB:       "set eab_kid and eab_hmac_file in [host.acme]",
	acmeca.RemedyAgreeTOS:  "set agree_tos = true in [host.acme]",
	acmeca.RemedyEmail:     "check email in [host.acme]",
	acmeca.RemedyXMPPIDs:   `set ca = "local", or require_xmpp_ids = false in [host.acme]`,
}

// RemedyHint says, in the file's keys, which setting of the host to
// change for an ACME CA's failure whose advice names r; "" when the file
// has no such setting.
func (h Host) RemedyHint(r acmeca.Remedy) string {
	keys, ok := remedyKeys[r]
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s of the [[host]] at line %d of the configuration", keys, h.Line)
}

// POSHRoot is the web root the host's POSH documents are written into
// and served from: out_dir when given, else STATE_DIR/posh/DOMAIN; ""
// when the host publishes no POSH.
func (h Host) POSHRoot(stateDir string) string {
	switch {
	case h.POSH == nil:
		return ""
	case h.POSH.OutDir != "":
		return h.POSH.OutDir
	default:
		return filepath.Join(stateDir, POSHDir, h.Domain)
	}
}
