package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/internal/oneline"
	"github.com/xmppcert/xmppcert/internal/xmpptls"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// config is the xmpptls configuration for one endpoint.
func (p *prober) config(direct, omitSNI bool) xmpptls.Config {
	cfg := xmpptls.Config{
		Domain: p.domain, Service: p.svc, DirectTLS: direct, Timeout: p.opts.timeout(),
		Dial: p.opts.Dial, ClientCert: p.opts.ClientCert, OmitSNI: omitSNI,
	}
	if p.svc == xmppaddr.ServiceServer {
		cfg.From = p.opts.From
	}
	return cfg
}

// probeEndpoint runs the phases on one address and fills in e: connect,
// the stream before TLS and STARTTLS (or direct TLS at once), the
// handshake, the stream restarted over TLS, SASL EXTERNAL, and the Full
// extras.
func (p *prober) probeEndpoint(ctx context.Context, e *Endpoint) {
	defer func() { e.Timings.Total = ms(time.Since(p.begin)) }()
	defer p.findings(e)
	cfg := p.config(e.DirectTLS, false)

	start := time.Now()
	raw, err := xmpptls.DialTCP(ctx, e.Address, cfg)
	e.Timings.Connect = ms(time.Since(start))
	if err != nil {
		p.fail(e, "connect", err)
		return
	}
	c, err := xmpptls.NewConn(raw, cfg)
	if err != nil { // cannot happen: the options were checked
		raw.Close()
		p.fail(e, "connect", err)
		return
	}
	defer c.Close()

	if !e.DirectTLS {
		start = time.Now()
		h, f, err := c.Open(ctx)
		e.Timings.Stream = ms(time.Since(start))
		if h != nil {
			e.BeforeTLS = stream(h, f)
			e.StartTLS = StartTLS{Offered: f.StartTLS, Required: f.StartTLSRequired}
		}
		if err != nil {
			p.fail(e, "stream", err)
			return
		}
		if !f.StartTLS {
			p.fail(e, "stream", xmpptls.ErrNoStartTLS)
			return
		}
		start = time.Now()
		err = c.StartTLS(ctx)
		e.Timings.StartTLS = ms(time.Since(start))
		if err != nil {
			p.fail(e, "starttls", err)
			return
		}
	}

	start = time.Now()
	st, err := c.Handshake(ctx)
	e.Timings.TLS = ms(time.Since(start))
	if err != nil {
		p.fail(e, "tls", err)
		return
	}
	e.Encrypted = true
	e.Encryption = EncryptionStartTLS
	if e.DirectTLS {
		e.Encryption = EncryptionDirectTLS
	}
	e.TLS = p.tlsInfo(st, c.TLSConfig())
	if len(st.PeerCertificates) > 0 {
		e.leaf = st.PeerCertificates[0]
		if v, err := xmppaddr.Verify(st.PeerCertificates, p.verifyOptions()); err == nil {
			e.Certificate = v
		}
	}

	start = time.Now()
	h, f, err := c.Open(ctx)
	e.Timings.Features = ms(time.Since(start))
	if h != nil {
		e.AfterTLS = stream(h, f)
	}
	if err != nil {
		p.fail(e, "features", err)
		return
	}
	e.Completed = true

	if x := e.External; x != nil {
		x.Offered = f.HasMechanism("EXTERNAL")
		if !x.Offered {
			x.Result = "not-offered"
		} else {
			start = time.Now()
			r, err := c.AuthExternal(ctx)
			e.Timings.Auth = ms(time.Since(start))
			x.Attempted = true
			switch {
			case err != nil:
				x.Result, x.Error = "error", oneline.Clip(err.Error(), 300)
			case r.Success:
				x.Result = "success"
			default:
				x.Result, x.Condition, x.Text = "failure", r.Condition, oneline.Clip(r.Text, 300)
			}
		}
	}
	c.Close()

	switch {
	case len(st.PeerCertificates) == 0:
		e.Failure, e.Phase, e.Error = CodeTLSError, "tls", "the server completed TLS without a certificate"
	case e.Certificate != nil && !e.Certificate.Valid:
		e.Failure, e.Phase = certificateCode(e.Certificate)
		e.Error = firstError(e.Certificate)
	}
	e.OK = e.Failure == ""

	if p.opts.Full {
		start = time.Now()
		fctx := ctx
		if p.opts.FullDeadline > 0 {
			var cancel context.CancelFunc
			fctx, cancel = context.WithTimeout(p.outer, p.opts.FullDeadline)
			defer cancel()
		}
		e.Full = p.full(fctx, e, st)
		e.Timings.Full = ms(time.Since(start))
	}
}

func (p *prober) verifyOptions() xmppaddr.Options {
	return xmppaddr.Options{Domain: p.domain, Service: p.svc, Profile: p.opts.Profile, Roots: p.opts.Roots, CurrentTime: p.opts.now()}
}

// fail records the first failure of an endpoint.
func (p *prober) fail(e *Endpoint, phase string, err error) {
	if e.Failure != "" {
		return
	}
	e.Failure, e.Phase = classify(err)
	if e.Phase == "" {
		e.Phase = phase
	}
	e.Error = oneline.Clip(err.Error(), 400)
	var se *xmpptls.StreamError
	if errors.As(err, &se) {
		e.StreamError = &StreamError{Condition: se.Condition, Text: se.Text}
	}
	if e.Failure == CodeTimeout && !time.Now().Before(p.begin.Add(p.opts.deadline())) {
		e.Error += fmt.Sprintf(" (the probe's deadline of %v passed)", p.opts.deadline())
	}
}

// classify maps an error of xmpptls (or the context) to its code. The
// phase it returns is empty unless the error itself says which phase.
func classify(err error) (Code, string) {
	var (
		de *xmpptls.DialError
		se *xmpptls.StreamError
		te *xmpptls.TLSError
		pe *xmpptls.ProtocolError
		ne net.Error
	)
	switch {
	case errors.As(err, &de):
		if errors.Is(err, context.Canceled) {
			return CodeCanceled, ""
		}
		return CodeUnreachable, ""
	case errors.Is(err, context.Canceled):
		return CodeCanceled, ""
	case errors.Is(err, xmpptls.ErrTooLarge):
		return CodeTooLarge, ""
	case errors.As(err, &se):
		return CodeStreamError, ""
	case errors.Is(err, xmpptls.ErrNoFeatures):
		return CodeFeaturesMissing, ""
	case errors.Is(err, xmpptls.ErrNoStartTLS):
		return CodeNoStartTLS, ""
	case errors.Is(err, xmpptls.ErrStartTLSFailure):
		return CodeStartTLSFailure, ""
	case errors.As(err, &te):
		if _, ok := te.Alert(); ok {
			return CodeTLSAlert, ""
		}
		if isTimeout(err) {
			return CodeTimeout, ""
		}
		return CodeTLSError, ""
	}
	if _, ok := xmpptls.RemoteAlert(err); ok {
		return CodeTLSAlert, ""
	}
	switch {
	case isTimeout(err):
		return CodeTimeout, ""
	case errors.As(err, &pe):
		return CodeProtocolError, ""
	case errors.As(err, &ne):
		return CodeConnectionLost, ""
	}
	return CodeProtocolError, ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}

// certificateCode classifies an invalid certificate verdict by its most
// telling error finding.
func certificateCode(r *xmppaddr.Result) (Code, string) {
	has := func(code string) bool {
		return slices.ContainsFunc(r.Findings, func(f xmppaddr.Finding) bool { return f.Severity == xmppaddr.Error && f.Code == code })
	}
	switch {
	case has(xmppaddr.CodeChainExpired):
		return CodeCertificateExpired, "certificate"
	case has(xmppaddr.CodeChainUntrusted):
		return CodeCertificateUntrusted, "certificate"
	case has(xmppaddr.CodeNoMatch):
		return CodeCertificateNameMismatch, "certificate"
	}
	return CodeCertificateInvalid, "certificate"
}

func firstError(r *xmppaddr.Result) string {
	for _, f := range r.Findings {
		if f.Severity == xmppaddr.Error {
			return f.Code + ": " + f.Text
		}
	}
	return "the certificate is not valid"
}

// stream converts what xmpptls parsed. Lists are never nil.
func stream(h *xmpptls.StreamHeader, f *xmpptls.Features) *Stream {
	s := &Stream{
		Header: Header{Namespace: h.Namespace, DialbackNS: h.DialbackNS, From: h.From, ID: h.ID, Version: h.Version, Lang: h.Lang},
		Features: Features{
			Names: []FeatureName{}, Mechanisms: []string{},
		},
	}
	if f == nil {
		return s
	}
	for _, n := range f.Names {
		s.Features.Names = append(s.Features.Names, FeatureName{Namespace: n.Space, Name: n.Local})
	}
	s.Features.Dropped = f.Dropped
	s.Features.StartTLS, s.Features.StartTLSRequired = f.StartTLS, f.StartTLSRequired
	s.Features.Mechanisms = append(s.Features.Mechanisms, f.Mechanisms...)
	s.Features.Dialback, s.Features.DialbackErrors = f.Dialback, f.DialbackErrors
	return s
}

// tlsInfo describes the negotiated session and the presented chain.
func (p *prober) tlsInfo(st tls.ConnectionState, cfg *tls.Config) *TLSInfo {
	info := &TLSInfo{
		Version: tls.VersionName(st.Version), VersionID: st.Version,
		Cipher: tls.CipherSuiteName(st.CipherSuite), CipherID: st.CipherSuite,
		GroupID: uint16(st.CurveID), ForwardSecret: forwardSecret(st.Version, st.CipherSuite),
		SNI: cfg.ServerName, ALPNOffered: append([]string{}, cfg.NextProtos...), ALPNNegotiated: st.NegotiatedProtocol,
		OCSPStapled: len(st.OCSPResponse) > 0, Chain: []Certificate{},
	}
	if st.CurveID != 0 {
		info.Group = st.CurveID.String()
	}
	for _, c := range st.PeerCertificates {
		info.Chain = append(info.Chain, describe(c, p.opts.now()))
	}
	return info
}

// forwardSecret says whether a negotiated suite has forward secrecy:
// every TLS 1.3 suite does, and before it the ephemeral (EC)DHE ones.
func forwardSecret(version, suite uint16) bool {
	if version >= tls.VersionTLS13 {
		return true
	}
	name := tls.CipherSuiteName(suite)
	return strings.HasPrefix(name, "TLS_ECDHE_") || strings.HasPrefix(name, "TLS_DHE_")
}

// full runs the Full extras on an endpoint that reached TLS: the scan
// (when wired) and the handshake without SNI.
func (p *prober) full(ctx context.Context, e *Endpoint, st tls.ConnectionState) *Full {
	f := &Full{Notes: []string{}}
	if !e.Encrypted {
		f.Notes = append(f.Notes, "the endpoint never reached TLS: nothing to scan")
		return f
	}
	cfg := p.config(e.DirectTLS, false)
	if p.opts.FullScan != nil {
		dial := func(ctx context.Context) (net.Conn, error) {
			raw, err := xmpptls.DialTCP(ctx, e.Address, cfg)
			if err != nil {
				return nil, err
			}
			if err := xmpptls.PrepareTLS(ctx, raw, cfg); err != nil {
				raw.Close()
				return nil, err
			}
			return raw, nil
		}
		rep := p.opts.FullScan(ctx, dial, p.domain)
		f.Scan = &rep
	} else {
		f.Notes = append(f.Notes, "no TLS scanner is wired (Options.FullScan): versions and cipher suites were not enumerated")
	}
	f.SNI = p.sniCheck(ctx, e, st)
	return f
}

// sniCheck handshakes once more without SNI and compares the leaves.
func (p *prober) sniCheck(ctx context.Context, e *Endpoint, st tls.ConnectionState) *SNICheck {
	s := &SNICheck{}
	if len(st.PeerCertificates) > 0 {
		s.WithSNI = pinning.Hex(pinning.DigestsOf(st.PeerCertificates[0]).CertSHA256)
	}
	cfg := p.config(e.DirectTLS, true)
	cfg.ClientCert = nil
	raw, err := xmpptls.DialTCP(ctx, e.Address, cfg)
	if err != nil {
		s.Error = oneline.Clip(err.Error(), 300)
		return s
	}
	defer raw.Close()
	tc, res, err := xmpptls.Handshake(ctx, raw, cfg)
	if err != nil {
		s.Error = oneline.Clip(err.Error(), 300)
		return s
	}
	raw.SetDeadline(time.Now().Add(time.Second))
	tc.Close()
	chain := res.State.PeerCertificates
	if len(chain) == 0 {
		s.Error = "no certificate without SNI"
		return s
	}
	s.WithoutSNI = pinning.Hex(pinning.DigestsOf(chain[0]).CertSHA256)
	s.Same = s.WithoutSNI == s.WithSNI
	if v, err := xmppaddr.Verify(chain, p.verifyOptions()); err == nil {
		s.WithoutSNIValid = v.Valid
	}
	if !s.Same {
		c := describe(chain[0], p.opts.now())
		s.WithoutSNICertificate = &c
	}
	return s
}

// describe summarizes a certificate.
func describe(c *x509.Certificate, now time.Time) Certificate {
	d := pinning.DigestsOf(c)
	out := Certificate{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: fmt.Sprintf("%x", c.SerialNumber),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		DaysLeft: int(c.NotAfter.Sub(now).Hours() / 24),
		SHA256:   pinning.Hex(d.CertSHA256), SPKISHA256: pinning.Hex(d.SPKISHA256),
		SignatureAlgorithm: c.SignatureAlgorithm.String(), EKU: []string{}, IsCA: c.IsCA,
	}
	if c.NotAfter.Before(now) && out.DaysLeft == 0 {
		out.DaysLeft = -1
	}
	out.KeyType, out.KeySize = keyOf(c)
	for _, u := range c.ExtKeyUsage {
		out.EKU = append(out.EKU, ekuName(u))
	}
	for _, oid := range c.UnknownExtKeyUsage {
		out.EKU = append(out.EKU, oid.String())
	}
	return out
}
