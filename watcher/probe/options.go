package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/xmppcert/xmppcert/internal/tlsscan"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Defaults and bounds of a probe.
const (
	// DefaultTimeout bounds each phase of a probe (a DNS query, the TCP
	// connect, the stream header and features, STARTTLS, the TLS
	// handshake, the restarted stream, SASL EXTERNAL) when
	// Options.Timeout is zero. A healthy server answers each in
	// milliseconds; two seconds covers a slow one on another continent.
	DefaultTimeout = 2 * time.Second
	// DefaultDeadline bounds a whole probe of one domain, every endpoint
	// included, when Options.Deadline is zero and Options.Full is false.
	DefaultDeadline = 5 * time.Second
	// DefaultFullDeadline is DefaultDeadline for a probe with Options.Full:
	// the scan makes dozens of connections.
	DefaultFullDeadline = 30 * time.Second
	// DefaultConcurrency is how many domains ProbeAll probes at once when
	// asked for zero or fewer.
	DefaultConcurrency = 8
	// MaxTargets is the most SRV targets probed per domain; further ones
	// are left out with a note.
	MaxTargets = pinning.MaxVerifyTargets
	// MaxAddresses is the most addresses probed per target.
	MaxAddresses = pinning.MaxVerifyAddresses
	// endpointConcurrency is how many endpoints of one domain are probed
	// at once.
	endpointConcurrency = 8
)

// FullScanFunc runs the `--full` TLS scan of one endpoint: the protocol
// versions it accepts (SSLv2 and SSLv3 with hand-built hellos), the TLS
// 1.2 cipher suites it accepts and its preference among them. dial opens
// a new connection to the endpoint that is ready for a ClientHello (for
// STARTTLS the XMPP negotiation up to <proceed/> is done, and anything
// buffered after it dropped); sni is the name to send. The scan must
// respect ctx, which carries the probe's deadline. TLSScan is
// internal/tlsscan's; Options.FullScan is the seam where the caller wires it.
type FullScanFunc func(ctx context.Context, dial func(ctx context.Context) (net.Conn, error), sni string) tlsscan.Report

// TLSScan is the FullScanFunc of internal/tlsscan, with its default
// options.
func TLSScan(ctx context.Context, dial func(ctx context.Context) (net.Conn, error), sni string) tlsscan.Report {
	return tlsscan.Scan(ctx, dial, tlsscan.Options{SNI: sni})
}

// Options says how to probe. The zero value probes c2s (xmpp-client)
// through SRV records found with the system's resolver, with STARTTLS and
// direct TLS as the records say, judging certificates against the system
// roots, within DefaultDeadline.
type Options struct {
	// Service is xmppaddr.ServiceClient (c2s, the default when empty) or
	// xmppaddr.ServiceServer (s2s). It selects the SRV records, the
	// stream namespace, the reference identities and the ALPN protocol.
	Service xmppaddr.Service
	// Connect, when set, is the HOST:PORT to probe instead of what the
	// SRV records name (a new server before DNS points at it, say). HOST
	// may be a name (resolved like an SRV target) or an IP address. The
	// domain is still what the stream's to, the SNI and the certificate
	// check use.
	Connect string
	// DirectTLS speaks XEP-0368 direct TLS at Connect. Without Connect it
	// restricts the probe to the _xmpps-* SRV targets.
	DirectTLS bool
	// From is the probing side's own domain, sent as the s2s stream's
	// from (and as the authorization identity of s2s SASL EXTERNAL).
	// Servers offer SASL EXTERNAL and dialback, and sometimes choose a
	// certificate, by it; without it many s2s servers offer neither.
	// Ignored for c2s.
	From string
	// Resolver is the HOST:PORT of the DNS resolver to ask (for DANE, a
	// DNSSEC-validating one on this host). Empty means the first
	// nameserver of /etc/resolv.conf for SRV, TLSA and the system's
	// resolver (with /etc/hosts) for addresses.
	Resolver string
	// ClientCert, when set, is presented as the TLS client certificate
	// and SASL EXTERNAL (XEP-0178) is attempted with it after TLS, to
	// know whether EXTERNAL works rather than only whether it is offered.
	ClientCert *tls.Certificate
	// Roots are the trust anchors for the PKIX verdict on the presented
	// chain; nil means the system roots.
	Roots *x509.CertPool
	// Profile selects xmppaddr's matching rules; empty means RFC 9525.
	Profile xmppaddr.Profile
	// Timeout bounds each phase (see DefaultTimeout); zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Deadline bounds the whole probe, whatever ctx says; zero means
	// DefaultDeadline, or DefaultFullDeadline with Full. Endpoints still
	// running at the deadline are reported as timed out.
	Deadline time.Duration
	// Full adds the `--full` checks: FullScan (versions, ciphers,
	// preference) on every endpoint that completed TLS, and a second
	// handshake without SNI to see which certificate SNI-less peers get.
	Full bool
	// FullScan runs the TLS scan for Full. nil leaves the scan out (with
	// a note); the SNI comparison still runs.
	FullScan FullScanFunc
	// FullDeadline, with Full, bounds the Full checks of each endpoint
	// that completed TLS on their own, from when they start: Deadline
	// then bounds reaching the endpoints only, so that a peer that hangs
	// costs Deadline whether or not its full scan is due (the daemon's
	// schedule). Zero keeps the Full checks under Deadline (the CLI's
	// --full).
	FullDeadline time.Duration
	// Pins adds DANE (TLSA through Resolver, which should validate
	// DNSSEC) and POSH verdicts through pinning.Verifier.
	Pins bool
	// POSH fetches POSH documents for Pins; nil means a
	// pinning.POSHFetcher with the system roots and Timeout.
	POSH *pinning.POSHFetcher
	// Now is the time certificates are judged at (validity, days left);
	// zero means the time of the probe.
	Now time.Time
	// Dial opens TCP connections to XMPP servers; nil means a
	// net.Dialer. DNS queries go to Resolver regardless.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Via, when set, is a SOCKS5 proxy (see ParseVia) that every
	// connection to an XMPP server goes through, reached with Dial: the
	// probe sees the endpoints from the proxy's network. SRV records and
	// addresses are still resolved here (SOCKS5 carries no SRV query), so
	// the proxy is asked for the same addresses over its own path; POSH
	// documents and DNS are not fetched through it.
	Via string
}

// InputError means the probe was asked for something that cannot be
// probed: an invalid domain, an unknown service, a --connect without a
// port. It is the caller's mistake (exit 2), not the endpoint's.
type InputError struct {
	// Field names the option or argument ("domain", "service", ...).
	Field string
	// Msg says what is wrong and what to do.
	Msg string
}

// Error names the field and says what is wrong with it.
func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// Validate checks domain and opts without touching the network: the
// domain is a valid XMPP domain (IDNA2008, at least one label), Service
// is xmpp-client or xmpp-server, Connect and Resolver are HOST:PORT with
// a valid port, From is a valid domain, durations are not negative. Its
// error is an *InputError. Probe runs it first and reports its error as
// CodeInvalidInput.
func Validate(domain string, opts Options) error {
	_, _, err := opts.check(domain)
	return err
}

// check validates and returns the canonical domain and the service.
func (o Options) check(domain string) (string, xmppaddr.Service, error) {
	d, err := xmppaddr.CanonicalDomain(domain)
	if err != nil {
		return "", "", &InputError{"domain", fmt.Sprintf("%q is not a valid XMPP domain: %v", domain, err)}
	}
	svc := o.Service
	if svc == "" {
		svc = xmppaddr.ServiceClient
	}
	if svc != xmppaddr.ServiceClient && svc != xmppaddr.ServiceServer {
		return "", "", &InputError{"service", fmt.Sprintf("%q is not a service probe knows: use xmpp-client or xmpp-server", svc)}
	}
	if o.Connect != "" {
		if err := hostPort(o.Connect); err != nil {
			return "", "", &InputError{"connect", fmt.Sprintf("%q: %v (give HOST:PORT, e.g. xmpp.example.org:5222)", o.Connect, err)}
		}
	}
	if o.Resolver != "" {
		if err := hostPort(o.Resolver); err != nil {
			return "", "", &InputError{"resolver", fmt.Sprintf("%q: %v (give HOST:PORT, e.g. 127.0.0.1:53)", o.Resolver, err)}
		}
	}
	if o.From != "" && svc == xmppaddr.ServiceServer {
		if _, err := xmppaddr.CanonicalDomain(o.From); err != nil {
			return "", "", &InputError{"from", fmt.Sprintf("%q is not a valid XMPP domain: %v", o.From, err)}
		}
	}
	if o.Profile != "" {
		if _, err := xmppaddr.ParseProfile(string(o.Profile)); err != nil {
			return "", "", &InputError{"profile", err.Error()}
		}
	}
	if o.Via != "" {
		if _, err := ParseVia(o.Via); err != nil {
			return "", "", &InputError{"via", err.Error()}
		}
	}
	if o.Timeout < 0 || o.Deadline < 0 || o.FullDeadline < 0 {
		return "", "", &InputError{"timeout", "durations must not be negative"}
	}
	if o.ClientCert != nil && len(o.ClientCert.Certificate) == 0 {
		return "", "", &InputError{"client-cert", "the client certificate holds no certificate"}
	}
	return d, svc, nil
}

// hostPort checks a HOST:PORT with a non-empty host and a port from 1 to
// 65535.
func hostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not HOST:PORT")
	}
	if host == "" {
		return errors.New("no host")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

func (o Options) deadline() time.Duration {
	switch {
	case o.Deadline > 0:
		return o.Deadline
	case o.Full:
		return DefaultFullDeadline
	}
	return DefaultDeadline
}

func (o Options) now() time.Time {
	if !o.Now.IsZero() {
		return o.Now
	}
	return time.Now()
}
