package probe

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"

	"github.com/xmppcert/xmppcert/xmppaddr"
)

// findings derives the endpoint's dialback summary and its findings from
// what was observed; it runs once the endpoint is done.
func (p *prober) findings(e *Endpoint) {
	add := func(code string, sev xmppaddr.Severity, format string, args ...any) {
		e.Findings = append(e.Findings, xmppaddr.Finding{Code: code, Severity: sev, Text: fmt.Sprintf(format, args...)})
	}
	if b := e.BeforeTLS; b != nil {
		f := b.Features
		var other []string
		for _, m := range f.Mechanisms {
			if strings.EqualFold(m, "PLAIN") {
				add(FindingPlainBeforeTLS, xmppaddr.Error, "SASL PLAIN is offered before TLS: a client may send its password in the clear; require encryption (Prosody c2s_require_encryption, ejabberd starttls_required)")
			} else {
				other = append(other, m)
			}
		}
		if len(other) > 0 {
			add(FindingSASLBeforeTLS, xmppaddr.Warning, "SASL mechanisms offered before TLS: %s; authentication should only be possible over TLS", strings.Join(other, ", "))
		}
		switch {
		case e.Failure == CodeNoStartTLS:
			add(FindingNoStartTLS, xmppaddr.Error, "STARTTLS is not offered: every connection to this endpoint is plaintext; configure a certificate for %s", p.domain)
		case f.StartTLS && !f.StartTLSRequired:
			add(FindingStartTLSOptional, xmppaddr.Warning, "STARTTLS is offered but not required (no <required/>): peers may stay in plaintext; require encryption for %s", p.svc)
		}
		if f.Dialback && !f.StartTLSRequired {
			add(FindingDialbackBeforeTLS, xmppaddr.Warning, "dialback is offered before TLS while TLS is optional: servers may authenticate and federate unencrypted")
		}
	}
	if t := e.TLS; t != nil {
		if t.VersionID < tls.VersionTLS12 {
			add(FindingOldTLS, xmppaddr.Error, "negotiated %s, although the probe offered up to TLS 1.3: the manifesto wants TLS 1.2 or later preferred", t.Version)
		}
		if !t.ForwardSecret {
			add(FindingNoForwardSecrecy, xmppaddr.Error, "negotiated %s, which has no forward secrecy, although the probe offered (EC)DHE suites: prefer ECDHE suites", t.Cipher)
		}
		if e.DirectTLS && t.ALPNNegotiated == "" {
			add(FindingALPNNotNegotiated, xmppaddr.Info, "direct TLS without ALPN: the server did not choose %s (XEP-0368 recommends it, and multiplexers on port 443 need it)", strings.Join(t.ALPNOffered, ", "))
		}
		if len(t.Chain) == 0 {
			add(FindingNoCertificate, xmppaddr.Error, "the server presented no certificate")
		}
	}
	if d := e.Dialback; d != nil {
		if b := e.BeforeTLS; b != nil {
			d.BeforeTLS = b.Features.Dialback
			d.Errors = d.Errors || b.Features.DialbackErrors
			d.StreamNamespace = d.StreamNamespace || b.Header.DialbackNS
		}
		if a := e.AfterTLS; a != nil {
			d.AfterTLS = a.Features.Dialback
			d.Errors = d.Errors || a.Features.DialbackErrors
			d.StreamNamespace = d.StreamNamespace || a.Header.DialbackNS
		}
		d.Offered = d.BeforeTLS || d.AfterTLS
		if e.Completed && !d.AfterTLS {
			sev := xmppaddr.Info
			if e.Certificate != nil && !e.Certificate.Valid {
				sev = xmppaddr.Warning
			}
			add(FindingNoDialback, sev, "no dialback feature after TLS: peers that cannot authenticate the certificate have no fallback (XEP-0220)")
		}
		if p.opts.From == "" {
			add(FindingNoFrom, xmppaddr.Info, "probed without a from domain: servers decide on SASL EXTERNAL and dialback by it")
		}
	}
	if x := e.External; x != nil && e.Completed {
		switch x.Result {
		case "not-offered":
			add(FindingExternalNotOffered, xmppaddr.Warning, "a client certificate was presented but SASL EXTERNAL is not offered after TLS: the server does not accept it (untrusted, or no identity it knows)")
		case "failure":
			text := ""
			if x.Text != "" {
				text = fmt.Sprintf(" (%q)", x.Text)
			}
			add(FindingExternalFailed, xmppaddr.Warning, "SASL EXTERNAL was refused with <%s/>%s", x.Condition, text)
		}
	}
	if f := e.Full; f != nil && f.SNI != nil && f.SNI.WithoutSNI != "" && !f.SNI.Same {
		sev, what := xmppaddr.Warning, "which does not authenticate "+p.domain
		if f.SNI.WithoutSNIValid {
			sev, what = xmppaddr.Info, "which also authenticates "+p.domain
		}
		subject := ""
		if c := f.SNI.WithoutSNICertificate; c != nil {
			subject = " (" + c.Subject + ")"
		}
		add(FindingSNIDifferent, sev, "without SNI the server presents another certificate%s, %s: peers that send no SNI see it", subject, what)
	}
	slices.SortStableFunc(e.Findings, func(a, b xmppaddr.Finding) int { return cmp.Compare(b.Severity, a.Severity) })
}
