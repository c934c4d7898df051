package watcher

import (
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// TestObservations checks the reduction of a probe result and that
// Equal ignores the time but nothing that history must record.
func TestObservations(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	r := probe.Result{Domain: "example.org", Service: xmppaddr.ServiceServer, CheckedAt: at, Endpoints: []probe.Endpoint{{
		Host: "xmpp.example.org", Port: 5269, Address: "192.0.2.1:5269",
		StartTLS: probe.StartTLS{Offered: true, Required: true},
		TLS: &probe.TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", Group: "X25519", ForwardSecret: true,
			Chain: []probe.Certificate{{SHA256: "aa", SPKISHA256: "bb", Subject: "CN=xmpp.example.org", Issuer: "CN=CA"}}},
		Certificate: &xmppaddr.Result{Valid: true, Matched: []xmppaddr.Match{{Presented: "example.org", Type: xmppaddr.TypeXmppAddr}, {Presented: "example.org", Type: xmppaddr.TypeDNSName}}},
		Dialback:    &probe.Dialback{Offered: true, AfterTLS: true},
		AfterTLS:    &probe.Stream{Features: probe.Features{Mechanisms: []string{"SCRAM-SHA-1", "EXTERNAL"}}},
		External:    &probe.External{Offered: true, Attempted: true, Result: "success"},
	}, {
		Host: "xmpp.example.org", Port: 5270, Address: "192.0.2.1:5270", DirectTLS: true, Failure: "unreachable",
	}}}
	obs := Observations(r)
	if len(obs) != 2 {
		t.Fatalf("%d observations; want 2", len(obs))
	}
	o := obs[0]
	if !o.Reachable || !o.StartTLSRequired || !o.Dialback || o.External != "success" || o.Chain[0].SPKISHA256 != "bb" ||
		len(o.Matched) != 2 || o.Matched[0] != "XmppAddr example.org" || o.SASL[0] != "EXTERNAL" {
		t.Errorf("observation %+v", o)
	}
	if u := obs[1]; u.Reachable || u.Failure != "unreachable" || !u.StartTLSRequired || u.Endpoint.String() != "example.org xmpp-server xmpp.example.org:5270 192.0.2.1:5270 direct-tls" {
		t.Errorf("unreachable observation %+v (%s)", u, u.Endpoint)
	}
	later := o
	later.At = at.Add(time.Hour)
	if !o.Equal(later) {
		t.Errorf("observations an hour apart, otherwise the same, are not Equal")
	}
	for name, change := range map[string]func(*Observation){
		"certificate": func(p *Observation) { p.Chain = []CertSummary{{SHA256: "cc", SPKISHA256: "bb"}} },
		"cipher":      func(p *Observation) { p.Cipher = "TLS_AES_256_GCM_SHA384" },
		"starttls":    func(p *Observation) { p.StartTLSRequired = false },
		"dialback":    func(p *Observation) { p.Dialback = false },
		"sasl":        func(p *Observation) { p.SASL = []string{"SCRAM-SHA-1"} },
		"external":    func(p *Observation) { p.External = "failure" },
		"identities":  func(p *Observation) { p.Matched = p.Matched[:1] },
		"reachable":   func(p *Observation) { p.Reachable, p.Failure = false, "timeout" },
	} {
		p := o
		p.Chain, p.Matched, p.SASL = append([]CertSummary{}, o.Chain...), append([]string{}, o.Matched...), append([]string{}, o.SASL...)
		change(&p)
		if o.Equal(p) {
			t.Errorf("a changed %s is Equal", name)
		}
	}
}

// What a peer did with our certificate is recorded with the peer's
// reason (control characters escaped, bounded) and read back as a
// verdict; without a certificate presented there is none.
func TestOurCertificate(t *testing.T) {
	for _, tc := range []struct {
		x        *probe.External
		dialback bool
		want     string
		reason   string
	}{
		{&probe.External{Offered: true, Attempted: true, Result: "success"}, true, OurCertAccepted, ""},
		{&probe.External{Offered: true, Attempted: true, Result: "failure", Condition: "not-authorized", Text: "unable to verify\nthe first certificate"}, true, OurCertRefused, "not-authorized: unable to verify?the first certificate"},
		{&probe.External{Result: "not-offered"}, true, OurCertDialbackOnly, ""},
		{&probe.External{Result: "not-offered"}, false, OurCertNotOffered, ""},
		{&probe.External{Offered: true, Attempted: true, Result: "error", Error: "the server closed the stream"}, true, "error", "the server closed the stream"},
		{&probe.External{Result: "not-reached"}, true, "", ""},
		{nil, true, "", ""},
	} {
		r := probe.Result{Domain: "example.org", Service: xmppaddr.ServiceServer, Endpoints: []probe.Endpoint{{
			Host: "xmpp.example.org", Port: 5269, Address: "192.0.2.1:5269", TLS: &probe.TLSInfo{},
			Dialback: &probe.Dialback{AfterTLS: tc.dialback}, External: tc.x,
		}}}
		o := Observations(r)[0]
		if got := o.OurCertificate(); got != tc.want || o.ExternalReason != tc.reason {
			t.Errorf("%+v, dialback %v: %q (%q); want %q (%q)", tc.x, tc.dialback, got, o.ExternalReason, tc.want, tc.reason)
		}
	}
	long := strings.Repeat("x", 1000)
	o := Observations(probe.Result{Endpoints: []probe.Endpoint{{TLS: &probe.TLSInfo{},
		External: &probe.External{Attempted: true, Result: "failure", Condition: "not-authorized", Text: long}}}})[0]
	if n := len([]rune(o.ExternalReason)); n > maxReason+len("...") {
		t.Errorf("a peer's reason of 1,000 characters is kept as %d", n)
	}
}
