package testdns

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// UnboundOptions configures StartUnbound.
type UnboundOptions struct {
	// Stubs maps each zone the resolver may resolve to the address
	// ("host:port") of an authoritative server for it (a stub-zone).
	// Names outside these zones are not meant to be queried: there are
	// no root hints to reach the Internet with.
	Stubs map[string]string
	// Anchors are the trust anchors: a zone with one validates (its
	// answers get the AD bit, or SERVFAIL when they do not verify
	// against it); a zone without one is insecure (no AD bit).
	Anchors []Anchor
}

// Unbound is a running validating unbound resolver on loopback.
//
// Programs such as ldns-dane take a resolver address without a port
// ("ldns-dane -r ADDRESS"), so StartUnbound listens on port 53 when it
// can: on a random address of 127.53.0.0/16 (Linux routes all of
// 127.0.0.0/8 to the loopback interface, so any such address can be
// bound without configuration, and concurrent tests do not collide, nor
// do they with a local resolver on 127.0.0.1:53 or 127.0.0.53:53).
// Binding port 53 needs root or CAP_NET_BIND_SERVICE; without it, or
// when a wildcard listener holds port 53, it falls back to a random
// port on 127.0.0.1 and Port53 is false (tests that need port 53 skip
// then).
type Unbound struct {
	// Addr is where unbound answers, "HOST:PORT", over UDP and TCP.
	Addr string
	// Host and Port are Addr's parts.
	Host string
	Port int
	// Port53 reports whether Port is 53, so that Host alone names the
	// resolver (ldns-dane -r Host).
	Port53 bool
	// Dir holds unbound.conf.
	Dir string

	log *testtool.LockedBuffer
}

// StartUnbound starts unbound in the foreground (-d) with its own
// configuration in a temporary directory: no chroot, no privilege drop,
// no remote control, module-config "validator iterator", a stub-zone
// for each of opts.Stubs, a trust-anchor for each of opts.Anchors,
// localhost allowed as upstream (do-not-query-localhost: no), and
// answers cached only until the end of the current second
// (cache-max-ttl: 0, cache-max-negative-ttl: 0, aggressive-nsec: no), so
// that a test sees a zone change almost at once (a name queried before
// a change may show the old answer until the second ends). It returns
// once unbound answers queries; unbound stops when the test ends, its
// log printed when the test failed.
func StartUnbound(t testing.TB, opts UnboundOptions) *Unbound {
	t.Helper()
	bin := testtool.Require(t, "unbound", "unbound")
	if len(opts.Stubs) == 0 {
		t.Fatal("testdns.StartUnbound: no stub zones")
	}
	u := &Unbound{Dir: shortTempDir(t, "unbound")}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		host, port, err := resolverAddr()
		if err != nil {
			t.Fatal(err)
		}
		u.Host, u.Port, u.Port53 = host, port, port == 53
		u.Addr = net.JoinHostPort(host, strconv.Itoa(port))
		conf, err := unboundConfig(u, opts)
		if err != nil {
			t.Fatal(err)
		}
		confPath := filepath.Join(u.Dir, "unbound.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		u.log = &testtool.LockedBuffer{}
		p, err := startProcess(u.log, bin, "-d", "-c", confPath)
		if err != nil {
			t.Fatalf("starting unbound: %v", err)
		}
		if lastErr = p.waitReady("unbound", u.ready); lastErr == nil {
			t.Cleanup(func() {
				p.stop()
				if t.Failed() {
					t.Logf("unbound log (%s):\n%s", u.Addr, u.log.String())
				}
			})
			return u
		}
		p.stop()
	}
	t.Fatalf("unbound did not start: %v\n%s", lastErr, u.log.String())
	return nil
}

// resolverAddr picks where unbound listens: port 53 of a random
// 127.53.x.y that is free for TCP and UDP, or else a free port of
// 127.0.0.1.
func resolverAddr() (string, int, error) {
	for range 10 {
		var b [2]byte
		rand.Read(b[:])
		host := fmt.Sprintf("127.53.%d.%d", b[0], 1+int(b[1])%254)
		err := probe53(host)
		if err == nil {
			return host, 53, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break // EACCES: not root; EADDRNOTAVAIL: no 127/8 on lo
		}
	}
	port, err := FreePort()
	return "127.0.0.1", port, err
}

// probe53 checks that host:53 can be bound for TCP and UDP.
func probe53(host string) error {
	addr := net.JoinHostPort(host, "53")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	return pc.Close()
}

// unboundConfig is unbound.conf for u and opts.
func unboundConfig(u *Unbound, opts UnboundOptions) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    verbosity: 1
    val-log-level: 2
    interface: %[1]s
    port: %[2]d
    interface-automatic: no
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "%[3]s"
    pidfile: "%[3]s/unbound.pid"
    use-syslog: no
    logfile: ""
    log-time-ascii: yes
    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "validator iterator"
    qname-minimisation: no
    trust-anchor-signaling: no
    root-key-sentinel: no
    cache-max-ttl: 0
    cache-max-negative-ttl: 0
    aggressive-nsec: no
    infra-host-ttl: 60
    outgoing-range: 64
    num-queries-per-thread: 32
    msg-cache-size: 1m
    rrset-cache-size: 1m
    key-cache-size: 1m
    neg-cache-size: 1m
`, u.Host, u.Port, u.Dir)
	zones := make([]string, 0, len(opts.Stubs))
	for z := range opts.Stubs {
		zones = append(zones, z)
	}
	slices.Sort(zones)
	for _, z := range zones {
		// Unbound serves some names itself (test., invalid., ...).
		fmt.Fprintf(&b, "    local-zone: %q nodefault\n", dns.CanonicalName(z))
	}
	for _, a := range opts.Anchors {
		if len(a.DS) == 0 {
			return "", fmt.Errorf("testdns.StartUnbound: the anchor of %s has no DS record", a.Zone)
		}
		for _, ds := range a.DS {
			fmt.Fprintf(&b, "    trust-anchor: %q\n", strings.ReplaceAll(ds.String(), "\t", " "))
		}
	}
	for _, z := range zones {
		host, port, err := net.SplitHostPort(opts.Stubs[z])
		if err != nil {
			return "", fmt.Errorf("testdns.StartUnbound: stub address of %s: %v", z, err)
		}
		fmt.Fprintf(&b, "stub-zone:\n    name: %q\n    stub-addr: %s@%s\n", dns.CanonicalName(z), host, port)
	}
	return b.String(), nil
}

// ready checks that unbound answers a query it resolves itself.
func (u *Unbound) ready() error {
	m := new(dns.Msg)
	m.SetQuestion("localhost.", dns.TypeA)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	r, _, err := c.Exchange(m, u.Addr)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("localhost. A: %s", dns.RcodeToString[r.Rcode])
	}
	return nil
}

// Log returns unbound's log so far.
func (u *Unbound) Log() string { return u.log.String() }

// Query asks unbound for qtype at name the way a validating stub does:
// recursion desired, EDNS with the DO bit, and the AD bit set in the
// query (RFC 6840 5.7). The answer's AuthenticatedData says whether
// unbound validated it; SERVFAIL is what a bogus answer gives.
func (u *Unbound) Query(t testing.TB, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true
	m.SetEdns0(4096, true)
	var r *dns.Msg
	var err error
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 5 * time.Second}
		r, _, err = c.Exchange(m, u.Addr)
		if err != nil || !r.Truncated {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s %s through unbound %s: %v", dns.TypeToString[qtype], name, u.Addr, err)
	}
	return r
}
