package testdns

import (
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Fake is an in-process stand-in for a validating recursive resolver,
// for tests of code that reads DNS (SRV, TLSA, addresses) and must see
// particular answers, where running Knot and Unbound would be beside
// the point. It answers from a fixed set of records and behaves, for
// the tests that use it, as a validating resolver would:
//
//   - a name under a signed zone is answered with the AD bit set, when
//     the query asks for DNSSEC (EDNS0 with the DO bit), as for a signed
//     zone whose chain of trust holds;
//   - a name under a ServFail zone gets SERVFAIL, as a validating
//     resolver answers for broken signatures (or any other failure);
//   - a name with records answers those of the asked type, or none
//     (NOERROR, NODATA) when it has only others;
//   - a name without records gets NXDOMAIN, even one with records
//     below it (an empty non-terminal);
//   - a message with other than one question gets FORMERR.
//
// A zone, in StartFake's signed list and in ServFail, is a domain name
// standing for itself and every name below it, or "=name." standing for
// that name alone. Names compare case-insensitively, and a trailing dot
// is optional.
//
// It answers over UDP only, and never truncates: answers are sent whole
// whatever their size, and a query with EDNS0 gets an EDNS0 record
// (4096 bytes, the query's DO bit) in its answer. Every record is
// answered as added, with its TTL, and no additional or authority
// section.
//
// A Fake is safe for concurrent use: tests may add records or change
// the failing zones while the code under test queries it.
type Fake struct {
	// Addr is where the fake answers, over UDP: "127.0.0.1:PORT".
	Addr string

	mu      sync.Mutex
	records map[string][]dns.RR // by canonical owner name
	signed  []string            // zones answered with AD
	failing []string            // zones answered with SERVFAIL
	queries []dns.Question
}

// StartFake starts a Fake on a random UDP port of 127.0.0.1, without
// records, with signed as its signed zones (see Fake), stopped when the
// test ends.
func StartFake(t testing.TB, signed ...string) *Fake {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Fake{Addr: pc.LocalAddr().String(), records: map[string][]dns.RR{}, signed: signed}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(f.serve), NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return f
}

// Add adds records, each a line in zone-file form with an absolute
// owner name, e.g. "xmpp.example.test. 300 IN A 127.0.0.1". A line that
// does not parse fails the test.
func (f *Fake) Add(t testing.TB, lines ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		name := dns.CanonicalName(rr.Header().Name)
		f.records[name] = append(f.records[name], rr)
	}
}

// ServFail makes the fake answer SERVFAIL for names in zones (see Fake),
// from now on, in place of the zones of an earlier call; no zones ends
// the failures.
func (f *Fake) ServFail(zones ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = zones
}

// Queries returns the questions the fake was asked so far, in order.
func (f *Fake) Queries() []dns.Question {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.queries)
}

// under says whether name (canonical) is in one of zones: at or below a
// zone, or equal to a zone written "=name.".
func under(name string, zones []string) bool {
	return slices.ContainsFunc(zones, func(z string) bool {
		if exact, ok := strings.CutPrefix(z, "="); ok {
			return dns.CanonicalName(exact) == name
		}
		return dns.IsSubDomain(dns.CanonicalName(z), name)
	})
}

func (f *Fake) serve(w dns.ResponseWriter, q *dns.Msg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = true
	if len(q.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	qq := q.Question[0]
	f.queries = append(f.queries, qq)
	name := dns.CanonicalName(qq.Name)
	opt := q.IsEdns0()
	switch {
	case under(name, f.failing):
		m.Rcode = dns.RcodeServerFailure
		w.WriteMsg(m)
		return
	case under(name, f.signed) && opt != nil && opt.Do():
		m.AuthenticatedData = true
	}
	rrs, exists := f.records[name]
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	for _, rr := range rrs {
		if rr.Header().Rrtype == qq.Qtype {
			m.Answer = append(m.Answer, rr)
		}
	}
	if opt != nil {
		m.SetEdns0(4096, opt.Do())
	}
	w.WriteMsg(m)
}
