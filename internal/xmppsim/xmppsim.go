// Package xmppsim simulates many XMPP servers behind one TCP listener on
// loopback, for scale tests of the watcher: it answers XMPP STARTTLS, c2s
// and s2s alike (chosen by the namespace of the client's stream header),
// for every domain under a configured suffix (d00001.sim.example, ...,
// d10000.sim.example), presenting in the TLS handshake a certificate for
// the domain the client names by SNI (or, without SNI, by the stream's
// to). Each domain's certificate is issued on first use by the
// simulator's own test CA (ECDSA P-256, valid from an hour ago for 90
// days) and cached; Rekey, Renew and SetCertificate change it, to
// simulate what the watcher must notice.
//
// The simulator is a test fixture, not a server: it authenticates no one
// (SASL always fails with <not-authorized/>) and routes nothing. It does
// bound what it reads from each connection and how long it keeps one.
package xmppsim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	nsStreams         = "http://etherx.jabber.org/streams"
	nsTLS             = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL            = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsClient          = "jabber:client"
	nsServer          = "jabber:server"
	nsDialback        = "jabber:server:dialback"
	nsDialbackFeature = "urn:xmpp:features:dialback"
	nsStreamErrors    = "urn:ietf:params:xml:ns:xmpp-streams"
)

// Defaults of Config.
const (
	// DefaultSuffix is the domain suffix served when Config.Suffix is
	// empty.
	DefaultSuffix = "sim.example"
	// DefaultTimeout bounds a whole connection when Config.Timeout is
	// zero.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxConns is how many connections are served at once when
	// Config.MaxConns is zero; further ones wait to be accepted.
	DefaultMaxConns = 16384
	// MaxRead is the most the simulator reads from a connection before
	// TLS, and again over TLS: far more than a probe sends.
	MaxRead = 64 << 10
	// LeafLifetime is how long the leaf certificates are valid from
	// their NotBefore (an hour before they are made).
	LeafLifetime = 90 * 24 * time.Hour
)

// Config describes a simulator. The zero value serves every domain under
// DefaultSuffix, without dialback.
type Config struct {
	// Suffix is the parent of the domains served: a stream or SNI for
	// "x.Suffix" (any depth) is answered, anything else gets a
	// <host-unknown/> stream error or a TLS alert. Empty means
	// DefaultSuffix.
	Suffix string
	// Dialback offers the XEP-0220 dialback feature on s2s streams
	// restarted over TLS (and declares the dialback namespace in the
	// stream header when the client did).
	Dialback bool
	// Mechanisms are the SASL mechanisms offered on c2s streams over TLS;
	// nil means SCRAM-SHA-1 and PLAIN. s2s streams offer EXTERNAL when the
	// client presented a certificate, and nothing otherwise.
	Mechanisms []string
	// Timeout bounds each connection from accept to close; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxConns bounds the connections served at once; zero means
	// DefaultMaxConns.
	MaxConns int
	// Addr is the address to listen on; empty means 127.0.0.1:0.
	Addr string
	// TimeWait closes connections the ordinary way. By default the
	// simulator ends each connection with a reset once the client has
	// closed its stream (or the connection failed), which leaves no
	// TIME_WAIT on either side: a real server does not, but a sweep of
	// tens of thousands of endpoints on loopback would otherwise fill the
	// client's ephemeral ports with TIME_WAIT and slow every connect.
	TimeWait bool
}

// Sim is a running simulator. Its methods are safe for concurrent use.
type Sim struct {
	cfg    Config
	suffix string
	ln     net.Listener
	ca     *x509.Certificate
	caKey  crypto.Signer
	roots  *x509.CertPool

	mu    sync.Mutex
	certs map[string]*entry
	conns map[net.Conn]struct{}

	sem      chan struct{}
	wg       sync.WaitGroup
	done     chan struct{}
	once     sync.Once
	accepted atomic.Int64
	issued   atomic.Int64
	streams  map[string]int // by the domain a stream was opened to
}

// entry is one domain's certificate, made once on first use.
type entry struct {
	once sync.Once
	err  error
	cert atomic.Pointer[tls.Certificate]
}

// New makes the simulator's CA and starts listening.
func New(cfg Config) (*Sim, error) {
	suffix := strings.ToLower(strings.Trim(cfg.Suffix, "."))
	if suffix == "" {
		suffix = DefaultSuffix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Mechanisms == nil {
		cfg.Mechanisms = []string{"SCRAM-SHA-1", "PLAIN"}
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "xmppsim CA for " + suffix, Organization: []string{"xmppcert simulator"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sim{
		cfg: cfg, suffix: suffix, ln: ln, ca: ca, caKey: key, roots: roots,
		certs: map[string]*entry{}, conns: map[net.Conn]struct{}{},
		sem: make(chan struct{}, cfg.MaxConns), done: make(chan struct{}),
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is the HOST:PORT the simulator listens on: what probe's
// Options.Connect should name.
func (s *Sim) Addr() string { return s.ln.Addr().String() }

// Suffix is the parent domain of the domains served.
func (s *Sim) Suffix() string { return s.suffix }

// Domain is the i-th simulated domain, "d%05d.SUFFIX": Domain(1) is
// d00001.sim.example with the default suffix.
func (s *Sim) Domain(i int) string { return fmt.Sprintf("d%05d.%s", i, s.suffix) }

// CA is the certificate of the simulator's CA, which signs every leaf.
func (s *Sim) CA() *x509.Certificate { return s.ca }

// Roots is a pool holding the simulator's CA: probe's Options.Roots.
func (s *Sim) Roots() *x509.CertPool { return s.roots }

// Accepted is how many connections the simulator has accepted.
func (s *Sim) Accepted() int64 { return s.accepted.Load() }

// Streams is how many streams were opened to domain and taken up to
// STARTTLS: the probes of it the simulator answered.
func (s *Sim) Streams(domain string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[strings.ToLower(domain)]
}

// ResetStreams forgets the streams counted so far (Streams).
func (s *Sim) ResetStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.streams)
}

// Issued is how many leaf certificates the simulator has made.
func (s *Sim) Issued() int64 { return s.issued.Load() }

// Serves reports whether domain is one the simulator answers for.
func (s *Sim) Serves(domain string) bool {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	return strings.HasSuffix(d, "."+s.suffix) && len(d) > len(s.suffix)+1
}

// Certificate returns the domain's current certificate, making it on
// first use.
func (s *Sim) Certificate(domain string) (*tls.Certificate, error) {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	if !s.Serves(d) {
		return nil, fmt.Errorf("xmppsim: %q is not under %q", domain, s.suffix)
	}
	s.mu.Lock()
	e := s.certs[d]
	if e == nil {
		e = &entry{}
		s.certs[d] = e
	}
	s.mu.Unlock()
	e.once.Do(func() {
		c, err := s.issue(d, nil)
		if err != nil {
			e.err = err
			return
		}
		e.cert.Store(c)
	})
	if e.err != nil {
		return nil, e.err
	}
	return e.cert.Load(), nil
}

// Prepare makes the certificates of domains in advance, on workers
// goroutines (GOMAXPROCS when zero or less), so that a benchmark can
// leave certificate issuance out of what it times. It stops early when
// ctx ends.
func (s *Sim) Prepare(ctx context.Context, domains []string, workers int) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(domains) || ctx.Err() != nil {
					return
				}
				if _, err := s.Certificate(domains[i]); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// Rekey replaces the domain's certificate with a new one for a new key,
// as an unexpected key change (or a rollover) looks to a watcher. The
// next handshake presents it.
func (s *Sim) Rekey(domain string) error {
	return s.replace(domain, false)
}

// Renew replaces the domain's certificate with a new one for the same
// key, as a routine renewal looks to a watcher.
func (s *Sim) Renew(domain string) error {
	return s.replace(domain, true)
}

// SetCertificate makes the domain present cert from the next handshake
// on: a chain from another CA, an expired or misissued certificate,
// whatever a test needs. cert must hold at least one certificate.
func (s *Sim) SetCertificate(domain string, cert *tls.Certificate) error {
	if cert == nil || len(cert.Certificate) == 0 {
		return errors.New("xmppsim: SetCertificate needs a certificate")
	}
	if _, err := s.Certificate(domain); err != nil {
		return err
	}
	s.lookup(domain).cert.Store(cert)
	return nil
}

func (s *Sim) lookup(domain string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.certs[strings.ToLower(strings.TrimSuffix(domain, "."))]
}

func (s *Sim) replace(domain string, sameKey bool) error {
	old, err := s.Certificate(domain)
	if err != nil {
		return err
	}
	var key crypto.Signer
	if sameKey {
		k, ok := old.PrivateKey.(crypto.Signer)
		if !ok {
			return errors.New("xmppsim: the current key cannot sign")
		}
		key = k
	}
	c, err := s.issue(strings.ToLower(strings.TrimSuffix(domain, ".")), key)
	if err != nil {
		return err
	}
	s.lookup(domain).cert.Store(c)
	return nil
}

// issue makes a leaf for domain with key, or a new key when nil.
func (s *Sim) issue(domain string, key crypto.Signer) (*tls.Certificate, error) {
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		key = k
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: domain},
		DNSNames:     []string{domain},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(-time.Hour).Add(LeafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca, key.Public(), s.caKey)
	if err != nil {
		return nil, err
	}
	s.issued.Add(1)
	// No parsed Leaf: ten thousand of them would cost megabytes for
	// nothing the handshake needs.
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

// Close stops listening, ends every connection and waits for their
// goroutines.
func (s *Sim) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	s.wg.Wait()
	return err
}

func (s *Sim) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Sim) serve() {
	defer s.wg.Done()
	backoff := time.Duration(0)
	for {
		select {
		case s.sem <- struct{}{}:
		case <-s.done:
			return
		}
		c, err := s.ln.Accept()
		if err != nil {
			<-s.sem
			if s.closed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, say: wait and try again, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-s.done:
				return
			}
			continue
		}
		backoff = 0
		s.accepted.Add(1)
		s.mu.Lock()
		if s.closed() {
			s.mu.Unlock()
			c.Close()
			<-s.sem
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				<-s.sem
			}()
			s.handle(c)
		}()
	}
}

// stream is what the client's stream header said.
type stream struct {
	ns, to, from string
	db           bool
}

func readHeader(se xml.StartElement) stream {
	var h stream
	for _, a := range se.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			h.ns = a.Value
		case a.Name.Space == "xmlns" && a.Name.Local == "db":
			h.db = a.Value == nsDialback
		case a.Name.Space == "" && a.Name.Local == "to":
			h.to = a.Value
		case a.Name.Space == "" && a.Name.Local == "from":
			h.from = a.Value
		}
	}
	return h
}

// header is the simulator's answer to the client's stream header.
func (s *Sim) header(h stream) string {
	ns := nsClient
	if h.ns == nsServer {
		ns = nsServer
	}
	db := ""
	if ns == nsServer && h.db && s.cfg.Dialback {
		db = " xmlns:db='" + nsDialback + "'"
	}
	id := make([]byte, 8)
	rand.Read(id)
	return fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='%s'%s xmlns:stream='%s' id='%x' from='%s' version='1.0'>",
		ns, db, nsStreams, id, escape(h.to))
}

func streamError(condition string) string {
	return "<stream:error><" + condition + " xmlns='" + nsStreamErrors + "'/></stream:error></stream:stream>"
}

// handle plays one connection: the stream and STARTTLS, TLS with the
// domain's certificate, the restarted stream, until the client leaves
// or the connection's time is up.
func (s *Sim) handle(c net.Conn) {
	c.SetDeadline(time.Now().Add(s.cfg.Timeout))
	if tc, ok := c.(*net.TCPConn); ok && !s.cfg.TimeWait {
		// Close with a reset: neither side keeps the connection in
		// TIME_WAIT, so that tens of thousands of probes a minute from
		// one loopback address do not run the client out of ports.
		tc.SetLinger(0)
	}
	h, ok := s.negotiate(c)
	if !ok {
		return
	}
	to := strings.ToLower(strings.TrimSuffix(h.to, "."))
	s.mu.Lock()
	if s.streams == nil {
		s.streams = map[string]int{}
	}
	s.streams[to]++
	s.mu.Unlock()
	tcfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"xmpp-client", "xmpp-server"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := hello.ServerName
			if name == "" {
				name = to
			}
			return s.Certificate(name)
		},
		ClientAuth: tls.RequestClientCert,
	}
	tc := tls.Server(c, tcfg)
	if err := tc.Handshake(); err != nil {
		return
	}
	s.afterTLS(tc, h)
	tc.Close()
}

// negotiate reads the client's stream header and answers it, then reads
// <starttls/> and answers <proceed/>. ok is false when the connection is
// done with (an error, a stream for another domain).
func (s *Sim) negotiate(c net.Conn) (h stream, ok bool) {
	// Bounded and buffered; the client sends nothing after <starttls/>
	// until it has read <proceed/>, so nothing TLS is left in the buffer.
	dec := xml.NewDecoder(bufio.NewReaderSize(io.LimitReader(c, MaxRead), 1024))
	dec.Strict = true
	opened := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return h, false
		}
		se, isStart := tok.(xml.StartElement)
		if !isStart {
			continue
		}
		switch {
		case se.Name.Space == nsStreams && se.Name.Local == "stream" && !opened:
			opened = true
			h = readHeader(se)
			if !s.Serves(h.to) || (h.ns != nsClient && h.ns != nsServer) {
				cond := "host-unknown"
				if h.ns != nsClient && h.ns != nsServer {
					cond = "invalid-namespace"
				}
				io.WriteString(c, s.header(h)+streamError(cond))
				return h, false
			}
			features := "<stream:features><starttls xmlns='" + nsTLS + "'><required/></starttls></stream:features>"
			if _, err := io.WriteString(c, s.header(h)+features); err != nil {
				return h, false
			}
		case opened && se.Name.Space == nsTLS && se.Name.Local == "starttls":
			if _, err := io.WriteString(c, "<proceed xmlns='"+nsTLS+"'/>"); err != nil {
				return h, false
			}
			return h, true
		default:
			io.WriteString(c, streamError("policy-violation"))
			return h, false
		}
	}
}

// afterTLS answers the stream restarted over TLS with its features and
// any SASL attempt with <not-authorized/>, until the client closes.
func (s *Sim) afterTLS(tc *tls.Conn, pre stream) {
	dec := xml.NewDecoder(bufio.NewReaderSize(io.LimitReader(tc, MaxRead), 1024))
	dec.Strict = true
	clientCert := len(tc.ConnectionState().PeerCertificates) > 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if t.Name.Space == nsStreams && t.Name.Local == "stream" {
				io.WriteString(tc, "</stream:stream>")
				return
			}
		case xml.StartElement:
			switch {
			case t.Name.Space == nsStreams && t.Name.Local == "stream":
				h := readHeader(t)
				if h.to == "" {
					h.to = pre.to
				}
				if !strings.EqualFold(strings.TrimSuffix(h.to, "."), strings.TrimSuffix(pre.to, ".")) || h.ns != pre.ns {
					io.WriteString(tc, s.header(h)+streamError("host-unknown"))
					return
				}
				if _, err := io.WriteString(tc, s.header(h)+"<stream:features>"+s.features(h, clientCert)+"</stream:features>"); err != nil {
					return
				}
			case t.Name.Space == nsSASL && t.Name.Local == "auth":
				if dec.Skip() != nil {
					return
				}
				if _, err := io.WriteString(tc, "<failure xmlns='"+nsSASL+"'><not-authorized/></failure>"); err != nil {
					return
				}
			default:
				if dec.Skip() != nil {
					return
				}
			}
		}
	}
}

// features are the stream features over TLS.
func (s *Sim) features(h stream, clientCert bool) string {
	var b strings.Builder
	mechs := s.cfg.Mechanisms
	if h.ns == nsServer {
		mechs = nil
		if clientCert {
			mechs = []string{"EXTERNAL"}
		}
	}
	if len(mechs) > 0 {
		b.WriteString("<mechanisms xmlns='" + nsSASL + "'>")
		for _, m := range mechs {
			b.WriteString("<mechanism>" + escape(m) + "</mechanism>")
		}
		b.WriteString("</mechanisms>")
	}
	if h.ns == nsServer && s.cfg.Dialback {
		b.WriteString("<dialback xmlns='" + nsDialbackFeature + "'><errors/></dialback>")
	}
	return b.String()
}

func escape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
