// Package tlsscan finds out which TLS protocol versions and cipher suites
// a server accepts, as `xmppcert probe --full` reports them: SSLv2 to TLS
// 1.3, every TLS 1.2 and TLS 1.3 cipher suite, the server's preference
// order and whether any accepted suite lacks forward secrecy, and, on
// request, whether the certificate depends on SNI.
//
// Go's crypto/tls cannot offer SSLv2, SSLv3 or most of the suites a
// server may still accept, and it completes handshakes a scanner does not
// need. So Scan builds its own ClientHellos (golang.org/x/crypto/cryptobyte)
// and reads only as far as the ServerHello, an alert or an SSL 2.0
// SERVER-HELLO: one connection per question, as testssl.sh and sslscan do.
// Suites are enumerated by offering all of them and removing the one the
// server chose until it refuses, which costs one connection per accepted
// suite plus one.
//
// Scan does not know XMPP. Its caller passes a Dialer that returns a
// connection positioned for a ClientHello: a plain TCP connection for
// direct TLS, or one on which STARTTLS has been negotiated up to
// <proceed/>. The server may be hostile: every read is bounded in size
// (no more than the ServerHello is read) and in time (Options.Timeout),
// and no answer makes Scan panic.
package tlsscan

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultTimeout bounds one probe when Options.Timeout is zero: dialing
// (for STARTTLS that includes the XMPP stream negotiation, four round
// trips before the ClientHello), sending the hello and reading the
// answer. Loopback probes take milliseconds; 5 s leaves room for a
// distant, loaded server without letting one that never answers (some
// ignore an SSLv2 hello) hold a scan for long.
const DefaultTimeout = 5 * time.Second

// DefaultConcurrency is how many probes run at once when
// Options.Concurrency is zero: enough to overlap the version probes with
// the cipher enumeration, few enough for servers that limit connections
// per address (ejabberd's and Prosody's connection limits, fail2ban).
const DefaultConcurrency = 4

// Dialer returns a fresh connection to the server, positioned for a TLS
// ClientHello: after STARTTLS's <proceed/> for STARTTLS ports, or a plain
// TCP connection for direct TLS ports. Scan calls it once per probe and
// closes every connection it gets. The context carries the probe's
// deadline.
type Dialer func(ctx context.Context) (net.Conn, error)

// Options tune a scan. The zero value is ready to use.
type Options struct {
	// SNI is the server name sent in every ClientHello, normally the
	// XMPP domain (servers choose the certificate and virtual host by
	// it). Empty, or an IP address, sends none.
	SNI string
	// Timeout bounds each probe, dial included; DefaultTimeout when zero.
	Timeout time.Duration
	// Concurrency is how many probes may be in progress at once;
	// DefaultConcurrency when zero or negative.
	Concurrency int
	// Certificates adds two crypto/tls handshakes, with SNI and without,
	// to fill Report.Certificates and Report.CertificateDependsOnSNI.
	// Off by default: watcher/probe compares the certificates itself.
	Certificates bool
}

// scanner is the state of one Scan.
type scanner struct {
	dial     Dialer
	certs    bool
	sni      string
	timeout  time.Duration
	sem      chan struct{}
	keyShare []byte
	conns    atomic.Int64
}

// Scan probes the server that dial connects to and reports the protocol
// versions and cipher suites it accepts. It always returns a Report:
// probes that fail are recorded in Report.Errors and their versions as
// not offered. It returns early, with what it has, when ctx ends.
//
// A scan costs one connection per accepted TLS 1.2 and TLS 1.3 suite plus
// at most 10: one each for SSLv2, SSLv3, TLS 1.0 and TLS 1.1; for TLS 1.2
// and for TLS 1.3 one per accepted suite plus the one refused, and one or
// two to tell the server's preference (none with a single suite); two
// more with Options.Certificates. A loopback Prosody (13 TLS 1.2 suites
// in its "old" profile) takes 24 connections and about 35 ms through
// STARTTLS.
func Scan(ctx context.Context, dial Dialer, opts Options) Report {
	s := &scanner{dial: dial, sni: opts.SNI, timeout: opts.Timeout, certs: opts.Certificates}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	n := opts.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	s.sem = make(chan struct{}, n)

	rep := Report{
		Versions:     make([]Version, 6),
		TLS12Ciphers: []Cipher{},
		TLS13Ciphers: []Cipher{},
		Certificates: []CertificateSeen{},
		Errors:       []string{},
	}
	if dial == nil {
		rep.Errors = append(rep.Errors, "tlsscan: no dialer")
		for i, name := range []string{"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"} {
			rep.Versions[i] = Version{Name: name, Detail: "not probed"}
		}
		return rep
	}
	// One key share serves every TLS 1.3 probe: no handshake gets far
	// enough to use it.
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic("tlsscan: X25519 key generation failed: " + err.Error()) // crypto/rand broken
	}
	s.keyShare = key.PublicKey().Bytes()

	var (
		wg           sync.WaitGroup
		errs         [6][]string
		tls12, tls13 suiteScan
		withSNI      CertificateSeen
		withoutSNI   CertificateSeen
	)
	legacy := suiteIDs(offerOrder(), func(s suite) bool { return !tls12Only(s.name) })
	wg.Go(func() { rep.Versions[0], errs[0] = s.sslv2(ctx) })
	wg.Go(func() { rep.Versions[1], errs[1] = s.version(ctx, "SSLv3", versionSSL3, legacy) })
	wg.Go(func() { rep.Versions[2], errs[2] = s.version(ctx, "TLSv1.0", versionTLS10, legacy) })
	wg.Go(func() { rep.Versions[3], errs[3] = s.version(ctx, "TLSv1.1", versionTLS11, legacy) })
	wg.Go(func() { tls12 = s.suites(ctx, "TLSv1.2", versionTLS12, suiteIDs(offerOrder(), nil)) })
	wg.Go(func() { tls13 = s.suites(ctx, "TLSv1.3", versionTLS13, suiteIDs(tls13Suites, nil)) })
	withSNIToo := s.certs && sniName(s.sni) != ""
	if withSNIToo {
		wg.Go(func() { withSNI = s.certificate(ctx, sniName(s.sni)) })
	}
	if s.certs {
		wg.Go(func() { withoutSNI = s.certificate(ctx, "") })
	}
	wg.Wait()

	rep.Versions[4], rep.Versions[5] = tls12.version, tls13.version
	errs[4], errs[5] = tls12.errs, tls13.errs
	for _, id := range tls12.accepted {
		rep.TLS12Ciphers = append(rep.TLS12Ciphers, CipherByID(id))
	}
	for _, id := range tls13.accepted {
		rep.TLS13Ciphers = append(rep.TLS13Ciphers, CipherByID(id))
	}
	rep.ServerPreference, rep.TLS13ServerPreference = tls12.preference, tls13.preference
	for _, c := range rep.TLS12Ciphers {
		rep.NonForwardSecret = rep.NonForwardSecret || !c.ForwardSecret
	}
	for _, v := range rep.Versions[1:4] {
		if v.Cipher != nil && !v.Cipher.ForwardSecret {
			rep.NonForwardSecret = true
		}
	}
	if withSNIToo {
		rep.Certificates = append(rep.Certificates, withSNI)
	}
	if s.certs {
		rep.Certificates = append(rep.Certificates, withoutSNI)
	}
	if withSNIToo && withSNI.Error == "" && withoutSNI.Error == "" {
		differs := withSNI.SHA256 != withoutSNI.SHA256
		rep.CertificateDependsOnSNI = &differs
	}
	for _, e := range errs {
		rep.Errors = append(rep.Errors, e...)
	}
	rep.Connections = int(s.conns.Load())
	return rep
}

// exchange runs one probe: dial, send msg, let read parse the answer.
// The probe holds a concurrency slot throughout and is bounded by
// s.timeout; the connection is closed when it returns.
func (s *scanner) exchange(ctx context.Context, msg []byte, read func(net.Conn) error) error {
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		return &probeError{cause: ctx.Err(), canceled: true}
	}
	pctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	s.conns.Add(1)
	conn, err := s.dial(pctx)
	if err != nil {
		return s.failure(ctx, pctx, &dialError{err})
	}
	defer conn.Close()
	stop := context.AfterFunc(pctx, func() { conn.Close() })
	defer stop()
	if d, ok := pctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	if len(msg) > 0 {
		if _, err := conn.Write(msg); err != nil {
			if isReset(err) {
				return io.EOF // the server closed before the hello was out: refused
			}
			return s.failure(ctx, pctx, err)
		}
	}
	if err := read(conn); err != nil {
		return s.failure(ctx, pctx, err)
	}
	return nil
}

// dialError is a Dialer's failure: the probe never reached TLS, which
// says nothing about what the server accepts.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// probeError is a probe that failed because time ran out.
type probeError struct {
	cause    error
	canceled bool // the scan's context ended, not the probe's timeout
	timeout  time.Duration
}

func (e *probeError) Error() string {
	if e.canceled {
		return "scan canceled: " + e.cause.Error()
	}
	return fmt.Sprintf("no answer within %v", e.timeout)
}

// failure turns err into a probeError when the scan or the probe ran out
// of time (a read on a connection closed by the timeout fails with some
// other error), else returns it as it is.
func (s *scanner) failure(ctx, pctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &probeError{cause: ctx.Err(), canceled: true}
	}
	var ne net.Error
	if pctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
		return &probeError{cause: err, timeout: s.timeout}
	}
	return err
}

// isReset reports whether err is the peer resetting or having closed the
// connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// describe is the one-line text for a probe's error and whether it means
// the server refused (as opposed to the probe failing).
func describe(err error) (string, bool) {
	var (
		de *dialError
		pe *probeError
		ae *alertError
		ve *sslv2Error
	)
	switch {
	case errors.As(err, &de), errors.As(err, &pe):
		return err.Error(), false
	case errors.As(err, &ae), errors.As(err, &ve):
		return err.Error(), true
	case errors.Is(err, io.EOF):
		return "connection closed", true
	case isReset(err):
		return "connection reset", true
	}
	return err.Error(), false
}

// tlsProbe sends a ClientHello per spec and reads the ServerHello.
func (s *scanner) tlsProbe(ctx context.Context, version uint16, suites []uint16) (*serverHello, error) {
	msg := buildClientHello(helloSpec{version: version, suites: suites, sni: s.sni, keyShare: s.keyShare})
	var hello *serverHello
	err := s.exchange(ctx, msg, func(c net.Conn) error {
		var err error
		hello, err = readServerHello(c)
		return err
	})
	return hello, err
}

// versionNames names the wire versions.
var versionNames = map[uint16]string{
	versionSSL2: "SSLv2", versionSSL3: "SSLv3", versionTLS10: "TLSv1.0",
	versionTLS11: "TLSv1.1", versionTLS12: "TLSv1.2", versionTLS13: "TLSv1.3",
}

// versionName is the name of a wire version, "0x0305" for unknown ones.
func versionName(v uint16) string {
	if n, ok := versionNames[v]; ok {
		return n
	}
	return fmt.Sprintf("0x%04x", v)
}

// versionResult judges the answer to a hello for version: offered when
// the ServerHello carries that version. A failure that is not a refusal
// is returned as a line for Report.Errors.
func versionResult(name string, version uint16, suites []uint16, hello *serverHello, err error) (Version, []string) {
	v := Version{Name: name}
	if err != nil {
		detail, refused := describe(err)
		v.Detail = detail
		if !refused {
			return v, []string{name + " probe: " + detail}
		}
		return v, nil
	}
	if hello.version != version {
		v.Detail = "server chose " + versionName(hello.version)
		return v, nil
	}
	v.Offered = true
	c := CipherByID(hello.suite)
	v.Cipher = &c
	if hello.retry {
		v.Detail = "HelloRetryRequest"
		if hello.group != 0 {
			v.Detail += " for " + groupName(hello.group)
		}
	}
	if !slices.Contains(suites, hello.suite) {
		return v, []string{fmt.Sprintf("%s probe: server chose cipher suite 0x%04x, which was not offered", name, hello.suite)}
	}
	return v, nil
}

// groupNames names the groups a HelloRetryRequest may ask for.
var groupNames = map[uint16]string{
	23: "secp256r1", 24: "secp384r1", 25: "secp521r1", 29: "x25519", 30: "x448",
	0x0100: "ffdhe2048", 0x0101: "ffdhe3072", 0x0102: "ffdhe4096", 0x0103: "ffdhe6144",
	0x0104: "ffdhe8192", 0x11ec: "X25519MLKEM768",
}

// groupName is the name of a named group, or its number.
func groupName(g uint16) string {
	if n, ok := groupNames[g]; ok {
		return n
	}
	return fmt.Sprintf("group 0x%04x", g)
}

// version probes one old protocol version (SSLv3, TLS 1.0, TLS 1.1) once.
func (s *scanner) version(ctx context.Context, name string, version uint16, suites []uint16) (Version, []string) {
	hello, err := s.tlsProbe(ctx, version, suites)
	return versionResult(name, version, suites, hello, err)
}

// sslv2 probes for SSL 2.0 with a CLIENT-HELLO.
func (s *scanner) sslv2(ctx context.Context) (Version, []string) {
	v := Version{Name: "SSLv2"}
	var hello *sslv2Hello
	err := s.exchange(ctx, buildSSLv2ClientHello(), func(c net.Conn) error {
		var err error
		hello, err = readSSLv2ServerHello(c)
		return err
	})
	if err != nil {
		detail, refused := describe(err)
		v.Detail = detail
		if !refused {
			return v, []string{"SSLv2 probe: " + detail}
		}
		return v, nil
	}
	if hello.version != versionSSL2 {
		v.Detail = fmt.Sprintf("SERVER-HELLO with version 0x%04x", hello.version)
		return v, nil
	}
	v.Offered = true
	v.Detail = fmt.Sprintf("SERVER-HELLO with %d cipher specs", hello.cipherSpecs)
	return v, nil
}

// suiteScan is what suites found for one protocol version.
type suiteScan struct {
	version    Version
	accepted   []uint16
	preference *bool
	errs       []string
}

// suites probes version with every suite in candidates, then enumerates
// the accepted ones by removing the chosen suite until the server
// refuses, then tells whether the server has its own preference. The
// first probe doubles as the version probe.
func (s *scanner) suites(ctx context.Context, name string, version uint16, candidates []uint16) suiteScan {
	var res suiteScan
	hello, err := s.tlsProbe(ctx, version, candidates)
	res.version, res.errs = versionResult(name, version, candidates, hello, err)
	if !res.version.Offered {
		return res
	}
	remaining := slices.Clone(candidates)
	for {
		i := slices.Index(remaining, hello.suite)
		if i < 0 {
			if len(res.accepted) > 0 { // else versionResult reported it
				res.errs = append(res.errs, fmt.Sprintf("%s cipher enumeration: server chose cipher suite 0x%04x, which was not offered", name, hello.suite))
			}
			break
		}
		res.accepted = append(res.accepted, hello.suite)
		remaining = slices.Delete(remaining, i, i+1)
		if len(remaining) == 0 {
			break
		}
		hello, err = s.tlsProbe(ctx, version, remaining)
		if err != nil {
			if detail, refused := describe(err); !refused {
				res.errs = append(res.errs, fmt.Sprintf("%s cipher enumeration after %d suites: %s", name, len(res.accepted), detail))
			}
			break
		}
		if hello.version != version {
			res.errs = append(res.errs, fmt.Sprintf("%s cipher enumeration: server switched to %s", name, versionName(hello.version)))
			break
		}
	}
	res.preference, res.errs = s.preference(ctx, name, version, res.accepted, res.errs)
	return res
}

// preference tells whether the server picks suites by its own order.
// accepted is in the order the server chose them while all remaining
// suites were offered in the scanner's order. Offered reversed, a server
// that follows the client picks the (new) first suite; one with its own
// order picks the same as before. If the reversed probe looks like client
// preference, a rotation (the former first moved last) is tried too, for
// servers like Go's whose order flips with the client's first suite.
// With fewer than two accepted suites it cannot be told (nil).
func (s *scanner) preference(ctx context.Context, name string, version uint16, accepted []uint16, errs []string) (*bool, []string) {
	if len(accepted) < 2 {
		return nil, errs
	}
	rev := slices.Clone(accepted)
	slices.Reverse(rev)
	orders := [][]uint16{rev}
	if len(accepted) > 2 {
		orders = append(orders, append(slices.Clone(accepted[1:]), accepted[0]))
	}
	for _, order := range orders {
		hello, err := s.tlsProbe(ctx, version, order)
		if err != nil {
			detail, _ := describe(err)
			return nil, append(errs, fmt.Sprintf("%s server preference probe: %s", name, detail))
		}
		if hello.version != version || !slices.Contains(order, hello.suite) {
			return nil, append(errs, fmt.Sprintf("%s server preference probe: server answered %s with cipher suite 0x%04x", name, versionName(hello.version), hello.suite))
		}
		if hello.suite != order[0] {
			t := true
			return &t, errs
		}
	}
	f := false
	return &f, errs
}

// goSuites are every TLS 1.0-1.2 suite Go's client implements, offered
// in the certificate handshakes so that they work with old servers too.
var goSuites = sync.OnceValue(func() []uint16 {
	var ids []uint16
	for _, c := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !isTLS13Suite(c.ID) {
			ids = append(ids, c.ID)
		}
	}
	return ids
})

// certificate completes a handshake (Go's crypto/tls, TLS 1.0-1.3,
// without verification) with server name sni, "" for none, to see the
// certificate the server presents to such a peer.
func (s *scanner) certificate(ctx context.Context, sni string) CertificateSeen {
	seen := CertificateSeen{SNI: sni}
	var state tls.ConnectionState
	err := s.exchange(ctx, nil, func(c net.Conn) error {
		conn := tls.Client(c, &tls.Config{
			ServerName:         sni,
			InsecureSkipVerify: true, // the prober verifies; this only looks
			MinVersion:         tls.VersionTLS10,
			CipherSuites:       goSuites(),
		})
		if err := conn.Handshake(); err != nil {
			return err
		}
		state = conn.ConnectionState()
		return nil
	})
	if err != nil {
		seen.Error, _ = describe(err)
		return seen
	}
	if len(state.PeerCertificates) == 0 {
		seen.Error = "server sent no certificate"
		return seen
	}
	leaf := state.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	seen.SHA256 = hex.EncodeToString(sum[:])
	seen.Subject = leaf.Subject.String()
	seen.DNSNames = leaf.DNSNames
	seen.Chain = state.PeerCertificates
	return seen
}
