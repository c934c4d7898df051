package watcher

import (
	"slices"
	"strconv"
	"time"

	"github.com/xmppcert/xmppcert/internal/oneline"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Observation is what one probe of one endpoint showed, reduced to what
// history keeps and what changes are judged on (certificate chain, SPKI,
// identities matched, TLS version/cipher/group, STARTTLS required,
// dialback, SASL mechanisms, EXTERNAL result). Two observations of an unchanged endpoint are Equal;
// At is not part of what is compared.
type Observation struct {
	// Endpoint is where it was seen.
	Endpoint EndpointKey `json:"endpoint"`
	// At is when it was seen.
	At time.Time `json:"at"`
	// Reachable is false when no TLS session was established; Failure is
	// then the probe's classification (probe.Code).
	Reachable bool   `json:"reachable"`
	Failure   string `json:"failure,omitempty"`
	// Chain is the presented chain, leaf first.
	Chain []CertSummary `json:"chain,omitempty"`
	// Valid is the identity verdict for the domain and service, and
	// Matched the identities that matched ("TYPE value"), sorted.
	Valid   bool     `json:"valid"`
	Matched []string `json:"matched,omitempty"`
	// TLSVersion, Cipher and Group are the negotiated session's.
	TLSVersion    string `json:"tls_version,omitempty"`
	Cipher        string `json:"cipher,omitempty"`
	Group         string `json:"group,omitempty"`
	ForwardSecret bool   `json:"forward_secret"`
	// StartTLSRequired is true when STARTTLS is offered with
	// <required/> (or the endpoint is direct TLS).
	StartTLSRequired bool `json:"starttls_required"`
	// Dialback is true when an s2s endpoint offers dialback after TLS.
	Dialback bool `json:"dialback"`
	// SASL are the mechanisms offered after TLS, sorted.
	SASL []string `json:"sasl,omitempty"`
	// External is the SASL EXTERNAL result when the probe presented a
	// certificate (the daemon presents our own lineage's to s2s peers):
	// "success", "failure", "not-offered", "error"; empty when none was
	// presented or the stream ended before the features after TLS.
	External string `json:"external,omitempty"`
	// ExternalReason is the peer's reason for a "failure" (the SASL
	// condition and its text) or why the attempt broke off ("error").
	ExternalReason string `json:"external_reason,omitempty"`
}

// maxReason bounds ExternalReason, a peer's text, in runes.
const maxReason = 300

// Our-certificate verdicts: what a peer did with the certificate the
// probe presented as our domain's (OurCertificate).
const (
	OurCertAccepted     = "accepted"      // SASL EXTERNAL succeeded
	OurCertRefused      = "refused"       // EXTERNAL offered and failed
	OurCertDialbackOnly = "dialback only" // EXTERNAL not offered; dialback is
	OurCertNotOffered   = "not offered"   // neither EXTERNAL nor dialback
)

// OurCertificate says what the peer did with the certificate presented
// as ours: one of the OurCert* verdicts, External itself for an attempt
// that broke off, empty when none was presented.
func (o Observation) OurCertificate() string {
	switch o.External {
	case "success":
		return OurCertAccepted
	case "failure":
		return OurCertRefused
	case "not-offered":
		if o.Dialback {
			return OurCertDialbackOnly
		}
		return OurCertNotOffered
	}
	return o.External
}

// EndpointKey names an endpoint: a domain's service at one target,
// port and address.
type EndpointKey struct {
	Domain    string           `json:"domain"`
	Service   xmppaddr.Service `json:"service"`
	Host      string           `json:"host"`
	Port      uint16           `json:"port"`
	Address   string           `json:"address"`
	DirectTLS bool             `json:"direct_tls"`
}

// String is a stable, readable key: "domain service host:port address
// starttls|direct-tls" ("domain service host" without a port).
func (k EndpointKey) String() string {
	if k.Port == 0 && k.Address == "" {
		// Not a TCP endpoint: a CT log's alert names the domain, "ct"
		// and the log.
		return k.Domain + " " + string(k.Service) + " " + k.Host
	}
	how := "starttls"
	if k.DirectTLS {
		how = "direct-tls"
	}
	return k.Domain + " " + string(k.Service) + " " + k.Host + ":" + strconv.Itoa(int(k.Port)) + " " + k.Address + " " + how
}

// CertSummary is what history keeps of a presented certificate.
type CertSummary struct {
	// SHA256 and SPKISHA256 are hex digests of the DER certificate and of
	// its SubjectPublicKeyInfo: a renewal with the same key changes the
	// first only.
	SHA256     string    `json:"sha256"`
	SPKISHA256 string    `json:"spki_sha256"`
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	NotAfter   time.Time `json:"not_after"`
}

// Observations reduces a probe result to one observation per endpoint,
// in the result's order.
func Observations(r probe.Result) []Observation {
	out := make([]Observation, 0, len(r.Endpoints))
	for _, e := range r.Endpoints {
		o := Observation{
			Endpoint: EndpointKey{Domain: r.Domain, Service: r.Service, Host: e.Host, Port: e.Port, Address: e.Address, DirectTLS: e.DirectTLS},
			At:       r.CheckedAt,
			Failure:  string(e.Failure),
		}
		if t := e.TLS; t != nil {
			o.Reachable = true
			o.TLSVersion, o.Cipher, o.Group, o.ForwardSecret = t.Version, t.Cipher, t.Group, t.ForwardSecret
			for _, c := range t.Chain {
				o.Chain = append(o.Chain, CertSummary{SHA256: c.SHA256, SPKISHA256: c.SPKISHA256, Subject: c.Subject, Issuer: c.Issuer, NotAfter: c.NotAfter})
			}
		}
		if v := e.Certificate; v != nil {
			o.Valid = v.Valid
			for _, m := range v.Matched {
				o.Matched = append(o.Matched, string(m.Type)+" "+m.Presented)
			}
			slices.Sort(o.Matched)
			o.Matched = slices.Compact(o.Matched)
		}
		o.StartTLSRequired = e.DirectTLS || e.StartTLS.Required
		if d := e.Dialback; d != nil {
			o.Dialback = d.AfterTLS
		}
		if e.AfterTLS != nil {
			o.SASL = slices.Sorted(slices.Values(e.AfterTLS.Features.Mechanisms))
		}
		if x := e.External; x != nil && (x.Attempted || x.Result == "not-offered") {
			o.External = x.Result
			switch {
			case x.Result == "failure" && x.Text != "":
				o.ExternalReason = oneline.Clip(x.Condition+": "+x.Text, maxReason)
			case x.Result == "failure":
				o.ExternalReason = oneline.Clip(x.Condition, maxReason)
			case x.Result == "error":
				o.ExternalReason = oneline.Clip(x.Error, maxReason)
			}
		}
		out = append(out, o)
	}
	return out
}

// Equal reports whether two observations show the same endpoint state:
// everything but At.
func (o Observation) Equal(p Observation) bool {
	o.At, p.At = time.Time{}, time.Time{}
	return o.Endpoint == p.Endpoint && o.Reachable == p.Reachable && o.Failure == p.Failure &&
		slices.EqualFunc(o.Chain, p.Chain, func(a, b CertSummary) bool { return a.SHA256 == b.SHA256 }) &&
		o.Valid == p.Valid && slices.Equal(o.Matched, p.Matched) &&
		o.TLSVersion == p.TLSVersion && o.Cipher == p.Cipher && o.Group == p.Group && o.ForwardSecret == p.ForwardSecret &&
		o.StartTLSRequired == p.StartTLSRequired && o.Dialback == p.Dialback &&
		slices.Equal(o.SASL, p.SASL) && o.External == p.External && o.ExternalReason == p.ExternalReason
}
