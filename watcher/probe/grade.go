package probe

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/internal/tlsscan"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Status is the verdict on one manifesto requirement, and the overall
// verdict of a Grade. The values are stable.
type Status string

// Statuses.
const (
	// StatusPass: the evidence shows the requirement holds.
	StatusPass Status = "pass"
	// StatusFail: the evidence shows it does not.
	StatusFail Status = "fail"
	// StatusUnknown: there is no evidence either way (the endpoint failed
	// before it could be seen, or it needs Options.Full).
	StatusUnknown Status = "unknown"
)

// Requirement IDs: one per requirement of the 2014 "Public Statement
// Regarding Ubiquitous Encryption on the XMPP Network" that a probe can
// observe from outside. They are stable.
const (
	// RequirementEncryption: STARTTLS is required (<required/>) or the
	// endpoint is direct TLS. STARTTLS offered without <required/> fails
	// when authentication (SASL, dialback) is offered before TLS, and is
	// unknown otherwise; no STARTTLS fails.
	RequirementEncryption = "encryption-required"
	// RequirementTLS12: the negotiated version (the probe offers TLS 1.0
	// to 1.3) is TLS 1.2 or later; with a scan, TLS 1.2 or 1.3 is offered.
	RequirementTLS12 = "tls-1.2-preferred"
	// RequirementOldVersions: SSLv3, TLS 1.0 and TLS 1.1 are off. The
	// manifesto allows them as an option for old software, so this one
	// does not count towards the verdict. Needs a scan.
	RequirementOldVersions = "old-versions-by-option-only"
	// RequirementNoSSLv2: SSLv2 is refused. Needs a scan.
	RequirementNoSSLv2 = "no-sslv2"
	// RequirementFSPreferred: the negotiated suite has forward secrecy,
	// and with a scan that shows server preference, the server's first
	// TLS 1.2 choice has it too.
	RequirementFSPreferred = "forward-secrecy-preferred"
	// RequirementFSRequired: no suite without forward secrecy is
	// accepted. The manifesto asks to prefer or require, so this one does
	// not count towards the verdict. Needs a scan.
	RequirementFSRequired = "forward-secrecy-required"
	// RequirementAuthenticated: the certificate authenticates the domain
	// for the service (xmppaddr); for s2s an invalid certificate passes
	// when Server Dialback is offered after TLS, the fallback the
	// manifesto allows.
	RequirementAuthenticated = "authenticated"
)

// Requirement is one manifesto requirement with its verdict and the
// evidence for it.
type Requirement struct {
	// ID is one of the Requirement* constants.
	ID string `json:"id"`
	// Manifesto quotes the requirement.
	Manifesto string `json:"manifesto"`
	// Mandatory is true when the requirement counts towards the verdict.
	Mandatory bool `json:"mandatory"`
	// Status is the verdict: pass, fail or unknown.
	Status Status `json:"status"`
	// Evidence says what was observed, one fact per entry; for a domain,
	// each entry starts with the endpoint's address.
	Evidence []string `json:"evidence"`
}

// Grade is the manifesto grade of an endpoint or a whole probe.
type Grade struct {
	// Verdict is fail when a mandatory requirement fails, pass when every
	// mandatory requirement passes, unknown otherwise.
	Verdict Status `json:"verdict"`
	// Summary says the same in one line for people.
	Summary string `json:"summary"`
	// Requirements are in the order of the manifesto.
	Requirements []Requirement `json:"requirements"`
}

// requirements are the manifesto's words and whether each counts.
var requirements = []struct {
	id, text  string
	mandatory bool
}{
	{RequirementEncryption, "require the use of TLS for both client-to-server and server-to-server connections", true},
	{RequirementTLS12, "prefer the latest version of TLS (TLS 1.2)", true},
	{RequirementOldVersions, "provide a configuration option to negotiate TLS 1.1, TLS 1.0, or SSLv3 for backward compatibility", false},
	{RequirementNoSSLv2, "disable support for SSLv2", true},
	{RequirementFSPreferred, "prefer or require TLS cipher suites that enable forward secrecy (prefer)", true},
	{RequirementFSRequired, "prefer or require TLS cipher suites that enable forward secrecy (require)", false},
	{RequirementAuthenticated, "preferably with authentication (RFC 6125) but as a fallback using unauthenticated encryption in the form of TLS plus Server Dialback", true},
}

// gradeEndpoint grades one endpoint from what it showed.
func gradeEndpoint(e *Endpoint, svc xmppaddr.Service) Grade {
	var scan *tlsscan.Report
	if e.Full != nil {
		scan = e.Full.Scan
	}
	return gradeWith(e, svc, scan)
}

// GradeWithScan grades an endpoint probed without Options.Full from what
// it showed and an earlier full scan of it made at the time at, so that
// the requirements only a scan can show (versions, SSLv2, every suite)
// keep a verdict between full scans. Their evidence says when the scan
// ran.
func GradeWithScan(e *Endpoint, svc xmppaddr.Service, scan *tlsscan.Report, at time.Time) Grade {
	g := gradeWith(e, svc, scan)
	note := " (full scan of " + at.UTC().Format("2006-01-02 15:04 UTC") + ")"
	for i, r := range g.Requirements {
		switch r.ID {
		case RequirementOldVersions, RequirementNoSSLv2, RequirementFSRequired:
			for j := range r.Evidence {
				g.Requirements[i].Evidence[j] += note
			}
		}
	}
	return g
}

// gradeWith grades one endpoint from what it showed and a scan of it
// (nil for none).
func gradeWith(e *Endpoint, svc xmppaddr.Service, scan *tlsscan.Report) Grade {
	g := Grade{Requirements: []Requirement{}}
	for _, r := range requirements {
		var st Status
		var ev []string
		switch r.id {
		case RequirementEncryption:
			st, ev = gradeEncryption(e, svc)
		case RequirementTLS12:
			st, ev = gradeTLS12(e, scan)
		case RequirementOldVersions:
			st, ev = gradeOldVersions(scan)
		case RequirementNoSSLv2:
			st, ev = gradeSSLv2(scan)
		case RequirementFSPreferred:
			st, ev = gradeFSPreferred(e, scan)
		case RequirementFSRequired:
			st, ev = gradeFSRequired(scan)
		case RequirementAuthenticated:
			st, ev = gradeAuthenticated(e, svc)
		}
		g.Requirements = append(g.Requirements, Requirement{ID: r.id, Manifesto: r.text, Mandatory: r.mandatory, Status: st, Evidence: ev})
	}
	g.Verdict, g.Summary = verdict(g.Requirements)
	return g
}

// combine grades a domain from its endpoints: a requirement fails when
// it fails at any endpoint, is unknown when it is unknown at any other,
// and passes when it passes everywhere. Without endpoints everything is
// unknown.
func combine(eps []Endpoint) Grade {
	g := Grade{Requirements: []Requirement{}}
	for i, r := range requirements {
		req := Requirement{ID: r.id, Manifesto: r.text, Mandatory: r.mandatory, Status: StatusPass, Evidence: []string{}}
		if len(eps) == 0 {
			req.Status = StatusUnknown
			req.Evidence = append(req.Evidence, "no endpoint was probed")
		}
		for _, e := range eps {
			er := e.Grade.Requirements[i]
			switch {
			case er.Status == StatusFail:
				req.Status = StatusFail
			case er.Status == StatusUnknown && req.Status == StatusPass:
				req.Status = StatusUnknown
			}
			for _, ev := range er.Evidence {
				req.Evidence = append(req.Evidence, e.Address+": "+ev)
			}
		}
		g.Requirements = append(g.Requirements, req)
	}
	g.Verdict, g.Summary = verdict(g.Requirements)
	return g
}

// verdict decides from the mandatory requirements and says why.
func verdict(reqs []Requirement) (Status, string) {
	var failed, unknown, advisory []string
	for _, r := range reqs {
		switch {
		case !r.Mandatory && r.Status == StatusFail:
			advisory = append(advisory, r.ID)
		case !r.Mandatory:
		case r.Status == StatusFail:
			failed = append(failed, r.ID)
		case r.Status == StatusUnknown:
			unknown = append(unknown, r.ID)
		}
	}
	var s string
	v := StatusPass
	switch {
	case len(failed) > 0:
		v, s = StatusFail, "fails "+strings.Join(failed, ", ")
	case len(unknown) > 0:
		v, s = StatusUnknown, "no evidence for "+strings.Join(unknown, ", ")
	default:
		s = "every mandatory requirement holds"
	}
	if len(failed) > 0 && len(unknown) > 0 {
		s += "; no evidence for " + strings.Join(unknown, ", ")
	}
	if len(advisory) > 0 {
		s += "; advisory: " + strings.Join(advisory, ", ")
	}
	if strings.Contains(s, RequirementNoSSLv2) || strings.Contains(s, RequirementFSRequired) {
		s += " (a full scan enumerates versions and cipher suites)"
	}
	return v, string(v) + ": " + s
}

// featuresRead says whether the pre-TLS features were read completely.
func featuresRead(e *Endpoint) bool {
	return e.BeforeTLS != nil && (e.Phase != "stream" || e.Failure == CodeNoStartTLS)
}

func gradeEncryption(e *Endpoint, svc xmppaddr.Service) (Status, []string) {
	switch {
	case e.DirectTLS && e.Encrypted:
		return StatusPass, []string{"direct TLS: encrypted from the first byte"}
	case e.DirectTLS:
		return StatusUnknown, []string{fmt.Sprintf("direct TLS endpoint failed before TLS (%s)", e.Failure)}
	case !featuresRead(e):
		return StatusUnknown, []string{fmt.Sprintf("the stream features before TLS were not read (%s)", e.Failure)}
	case !e.StartTLS.Offered:
		return StatusFail, []string{"STARTTLS is not offered: the endpoint speaks plaintext only"}
	case e.StartTLS.Required:
		return StatusPass, []string{"STARTTLS is offered with <required/>"}
	}
	var before []string
	f := e.BeforeTLS.Features
	if len(f.Mechanisms) > 0 {
		before = append(before, "SASL "+strings.Join(f.Mechanisms, " "))
	}
	if svc == xmppaddr.ServiceServer && f.Dialback {
		before = append(before, "the dialback feature")
	}
	if svc == xmppaddr.ServiceServer && e.BeforeTLS.Header.DialbackNS {
		before = append(before, "the dialback namespace")
	}
	if len(before) > 0 {
		return StatusFail, []string{"STARTTLS is offered without <required/>, and authentication is possible before TLS (" + strings.Join(before, ", ") + ")"}
	}
	return StatusUnknown, []string{"STARTTLS is offered without <required/>; nothing to authenticate with is offered before TLS, so the server may still refuse plaintext later"}
}

// scanVersion looks a protocol up in a scan: whether it is offered, and
// whether the scan knows.
func scanVersion(scan *tlsscan.Report, name string) (offered, known bool, detail string) {
	if scan == nil {
		return false, false, ""
	}
	for _, v := range scan.Versions {
		if v.Name == name {
			return v.Offered, true, v.Detail
		}
	}
	return false, false, ""
}

func gradeTLS12(e *Endpoint, scan *tlsscan.Report) (Status, []string) {
	o12, k12, _ := scanVersion(scan, "TLSv1.2")
	o13, k13, _ := scanVersion(scan, "TLSv1.3")
	if k12 && k13 && !o12 && !o13 {
		return StatusFail, []string{"the scan found neither TLS 1.2 nor TLS 1.3 offered"}
	}
	if e.TLS == nil {
		if o12 || o13 {
			return StatusPass, []string{"the scan found TLS 1.2 or later offered"}
		}
		return StatusUnknown, []string{fmt.Sprintf("no TLS session (%s)", e.Failure)}
	}
	if e.TLS.VersionID >= tls.VersionTLS12 {
		return StatusPass, []string{"negotiated " + e.TLS.Version + " with a client offering TLS 1.0 to 1.3"}
	}
	return StatusFail, []string{"negotiated " + e.TLS.Version + " although the client offered up to TLS 1.3"}
}

func gradeOldVersions(scan *tlsscan.Report) (Status, []string) {
	if scan == nil {
		return StatusUnknown, []string{"needs a full scan"}
	}
	var offered, unknown []string
	for _, name := range []string{"SSLv3", "TLSv1.0", "TLSv1.1"} {
		o, k, _ := scanVersion(scan, name)
		switch {
		case !k:
			unknown = append(unknown, name)
		case o:
			offered = append(offered, name)
		}
	}
	switch {
	case len(offered) > 0:
		return StatusFail, []string{strings.Join(offered, ", ") + " offered: the manifesto allows old versions only as an option for old software; turn them off unless such peers matter"}
	case len(unknown) > 0:
		return StatusUnknown, []string{"the scan did not tell about " + strings.Join(unknown, ", ")}
	}
	return StatusPass, []string{"SSLv3, TLS 1.0 and TLS 1.1 are refused"}
}

func gradeSSLv2(scan *tlsscan.Report) (Status, []string) {
	if scan == nil {
		return StatusUnknown, []string{"needs a full scan (SSLv2 takes a hand-built ClientHello)"}
	}
	o, k, detail := scanVersion(scan, "SSLv2")
	switch {
	case !k:
		return StatusUnknown, []string{"the scan did not tell about SSLv2"}
	case o:
		return StatusFail, []string{"SSLv2 is offered"}
	}
	ev := "SSLv2 is refused"
	if detail != "" {
		ev += " (" + detail + ")"
	}
	return StatusPass, []string{ev}
}

func gradeFSPreferred(e *Endpoint, scan *tlsscan.Report) (Status, []string) {
	if e.TLS == nil {
		return StatusUnknown, []string{fmt.Sprintf("no TLS session (%s)", e.Failure)}
	}
	if !e.TLS.ForwardSecret {
		return StatusFail, []string{"negotiated " + e.TLS.Cipher + ", which has no forward secrecy"}
	}
	if scan != nil && scan.ServerPreference != nil && *scan.ServerPreference && len(scan.TLS12Ciphers) > 0 && !scan.TLS12Ciphers[0].ForwardSecret {
		return StatusFail, []string{"the server's first choice for TLS 1.2 is " + scan.TLS12Ciphers[0].Name + ", which has no forward secrecy"}
	}
	ev := "negotiated " + e.TLS.Cipher
	if e.TLS.Group != "" {
		ev += " with " + e.TLS.Group
	}
	return StatusPass, []string{ev + " (forward secret)"}
}

func gradeFSRequired(scan *tlsscan.Report) (Status, []string) {
	if scan == nil {
		return StatusUnknown, []string{"needs a full scan"}
	}
	if scan.NonForwardSecret {
		var names []string
		for _, c := range append(append([]tlsscan.Cipher{}, scan.TLS12Ciphers...), scan.TLS13Ciphers...) {
			if !c.ForwardSecret {
				names = append(names, c.Name)
			}
		}
		if len(names) > 6 {
			names = append(names[:6], fmt.Sprintf("and %d more", len(names)-6))
		}
		return StatusFail, []string{"suites without forward secrecy are accepted: " + strings.Join(names, ", ")}
	}
	if len(scan.TLS12Ciphers)+len(scan.TLS13Ciphers) == 0 {
		return StatusUnknown, []string{"the scan found no accepted cipher suite"}
	}
	return StatusPass, []string{fmt.Sprintf("every accepted suite is forward secret (%d TLS 1.2, %d TLS 1.3)", len(scan.TLS12Ciphers), len(scan.TLS13Ciphers))}
}

func gradeAuthenticated(e *Endpoint, svc xmppaddr.Service) (Status, []string) {
	c := e.Certificate
	if c == nil {
		return StatusUnknown, []string{fmt.Sprintf("no certificate was seen (%s)", e.Failure)}
	}
	if c.Valid {
		var via []string
		for _, m := range c.Matched {
			via = append(via, fmt.Sprintf("%s %s by %s %s", m.ReferenceType, m.Reference, m.Type, m.Presented))
		}
		return StatusPass, []string{fmt.Sprintf("the certificate authenticates %s for %s (%s)", c.Domain, c.Service, strings.Join(via, "; "))}
	}
	why := "the certificate does not authenticate " + c.Domain + " for " + string(c.Service) + ": " + firstError(c)
	if svc != xmppaddr.ServiceServer {
		return StatusFail, []string{why}
	}
	switch {
	case e.AfterTLS == nil:
		return StatusUnknown, []string{why, "whether dialback is offered after TLS is unknown (" + string(e.Failure) + ")"}
	case e.AfterTLS.Features.Dialback:
		return StatusPass, []string{why, "Server Dialback (XEP-0220) is offered after TLS: the manifesto's fallback of TLS plus dialback"}
	case e.AfterTLS.Header.DialbackNS:
		return StatusFail, []string{why, "no dialback feature after TLS (the stream declares the dialback namespace, but a server that offers dialback advertises the feature, XEP-0220 §2.1), so peers have no fallback"}
	}
	return StatusFail, []string{why, "no dialback is offered after TLS, so peers have no fallback"}
}
