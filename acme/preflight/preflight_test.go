package preflight

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/pinning"
)

// refusingUpdater refuses the dns-01 key for the names in refuse.
type refusingUpdater struct{ refuse []string }

func (u refusingUpdater) CheckAccess(_ context.Context, domain string) error {
	if slices.Contains(u.refuse, domain) {
		return errors.New("NOTAUTH: the key may not update the zone")
	}
	return nil
}

// TestRun: the order's methods are narrowed to those every name's CAA
// permits; the address and dns-01 key checks run for the methods left;
// a resolver that fails, a name without address and a refused key each
// refuse the order with a finding naming the name.
func TestRun(t *testing.T) {
	dns := testdns.StartFake(t)
	dns.Add(t,
		`a.example.org. 60 IN CAA 0 issue "ca.example; validationmethods=dns-01,http-01"`,
		`b.example.org. 60 IN CAA 0 issue "ca.example; validationmethods=http-01,tls-alpn-01"`,
		`a.example.org. 60 IN A 192.0.2.1`,
		`b.example.org. 60 IN AAAA 2001:db8::1`,
	)
	iss := pinning.CAAIssuer{Domains: []string{"ca.example"}, Methods: []string{DNS01, HTTP01, TLSALPN01}}
	c := &Checker{Resolver: dns.Addr, DNSUpdate: refusingUpdater{}}
	r, err := c.Run(context.Background(), Order{Names: []string{"a.example.org", "b.example.org"}, Issuer: iss})
	if err != nil || !slices.Equal(r.Methods, []string{HTTP01}) {
		t.Fatalf("Run: methods %q, %v; want http-01 only\n%+v", r.Methods, err, r)
	}
	for _, f := range r.Findings {
		if f.Check == CheckDNSUpdate {
			t.Errorf("the dns-01 key was checked although CAA leaves only http-01: %+v", f)
		}
	}

	// c.example.org has no address; dns-01 is the only method for d,
	// whose key the server refuses.
	c.DNSUpdate = refusingUpdater{refuse: []string{"d.example.org"}}
	_, err = c.Run(context.Background(), Order{Names: []string{"c.example.org"}, Issuer: pinning.CAAIssuer{Domains: []string{"ca.example"}, Methods: []string{HTTP01}}})
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.HasPrefix(err.Error(), "pre-flight: address c.example.org: no A or AAAA record") {
		t.Errorf("a name without address: %v", err)
	}
	_, err = c.Run(context.Background(), Order{Names: []string{"d.example.org"}, Issuer: pinning.CAAIssuer{Domains: []string{"ca.example"}, Methods: []string{DNS01}}})
	if !errors.As(err, &refused) || err.Error() != "pre-flight: dns-update d.example.org: NOTAUTH: the key may not update the zone" {
		t.Errorf("a refused dns-01 key: %v", err)
	}
	// A standalone responder's address held by another program.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	c.Listen = map[string]string{HTTP01: held.Addr().String()}
	_, err = c.Run(context.Background(), Order{Names: []string{"a.example.org"}, Issuer: pinning.CAAIssuer{Domains: []string{"ca.example"}, Methods: []string{HTTP01}}})
	if !errors.As(err, &refused) || !strings.HasPrefix(err.Error(), "pre-flight: listen "+held.Addr().String()+": the http-01 responder cannot listen there: ") {
		t.Errorf("a held http-01 address: %v", err)
	}
	c.Listen = nil
	dns.ServFail("example.org")
	_, err = c.Run(context.Background(), Order{Names: []string{"a.example.org"}, Issuer: iss})
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "pre-flight: caa a.example.org: cannot read the CAA records: ") ||
		!strings.Contains(err.Error(), "(and 1 more failing checks)") {
		t.Errorf("a failing resolver: %v", err)
	}
}
