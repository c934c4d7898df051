package xmppaddr

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Options says what a certificate chain must prove.
type Options struct {
	// Domain is the XMPP domain the peer wants to reach: a JID's
	// domainpart, a stream's to, or a configured host. Never an SRV target.
	Domain string
	// Service selects the reference identities and the EKU policy.
	Service Service
	// Profile selects the matching rules; empty means ProfileRFC9525.
	Profile Profile
	// Roots are the trust anchors; nil means the system roots.
	Roots *x509.CertPool
	// Anchors are the same trust anchors as certificates, when the caller
	// has them (a roots file): the OpenSSL chain model, which predicts the
	// OpenSSL-based peers, builds its path from them. Without them it
	// uses the anchors of the chains crypto/x509 built, and when
	// crypto/x509 built none, those peers are predicted to refuse too.
	Anchors []*x509.Certificate
	// CurrentTime is the time to validate at; zero means now.
	CurrentTime time.Time
}

// Result is the verdict on a certificate chain for a domain and service,
// with everything that explains it.
type Result struct {
	Domain  string  `json:"domain"`
	Service Service `json:"service"`
	Profile Profile `json:"profile"`
	// Valid is true when the chain validates, a reference identity
	// matched, and the EKU policy holds: exactly when no finding is an Error.
	Valid bool `json:"valid"`
	// References are the identities looked for.
	References []Reference `json:"references"`
	// Matched lists every reference found, with the presented identifier
	// that matched it.
	Matched []Match `json:"matched"`
	// Presented lists what the leaf certificate presents.
	Presented []Identifier `json:"presented"`
	// Findings explain the verdict, errors first.
	Findings []Finding `json:"findings"`
	// Peers predict what widely deployed XMPP software does with this
	// certificate for this service.
	Peers []PeerVerdict `json:"peers"`
	// Chain is the validated chain, leaf first, or nil when it did not
	// validate.
	Chain []*x509.Certificate `json:"-"`
}

// Verify decides whether chain (leaf first, then any intermediates) proves
// opts.Domain for opts.Service. It returns an error only when the options
// themselves are unusable (an invalid domain, an unknown service or
// profile, an empty chain); everything about the certificate is in the
// Result.
func Verify(chain []*x509.Certificate, opts Options) (*Result, error) {
	if len(chain) == 0 {
		return nil, errors.New("no certificate to verify")
	}
	profile, refs, err := opts.references()
	if err != nil {
		return nil, err
	}
	now := opts.CurrentTime
	if now.IsZero() {
		now = time.Now()
	}
	chain, fs := leafFirst(chain)
	leaf := chain[0]
	pres := Identities(leaf)
	res := &Result{Domain: refs[0].Value, Service: opts.Service, Profile: profile, References: refs, Presented: pres.Identifiers}
	fs = append(fs, pres.Findings...)
	fs = append(fs, leafFindings(leaf)...)

	verified, chainErr := verifyChain(chain, opts.Roots, now)
	policyChains := [][]*x509.Certificate{chain}
	if chainErr != nil {
		fs = append(fs, *chainErr)
	} else {
		policyChains = verified
	}
	// The EKU policy holds when any chain Go built satisfies it: a CA
	// reachable by two paths may restrict one of them only.
	serverChain, serverOK := chainFor(policyChains, x509.ExtKeyUsageServerAuth)
	_, clientOK := chainFor(policyChains, x509.ExtKeyUsageClientAuth)
	if chainErr == nil {
		res.Chain = serverChain
		fs = append(fs, applyNameConstraints(res.Presented, serverChain)...)
	}
	fs = append(fs, ekuFindings(opts.Service, serverOK, clientOK, serverChain)...)

	res.Matched = nonNil(matchIdentities(refs, res.Presented, profile))
	fs = append(fs, identityFindings(res, profile)...)
	if chainErr == nil {
		fs = append(fs, expiryFindings(leaf, now)...)
	}
	if leafHasCriticalOtherNameOnlySAN(leaf) {
		fs = append(fs, Finding{CodeCriticalSANOtherOnly, Info,
			"the critical subjectAltName holds only otherNames: Go's crypto/x509 treats it as an unhandled critical extension and refuses the certificate"})
	}

	slices.SortStableFunc(fs, func(a, b Finding) int { return cmp.Compare(b.Severity, a.Severity) })
	res.Findings = nonNil(fs)
	res.Valid = !slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == Error })
	chains := chainVerdicts{goOK: chainErr == nil, openssl: "the chain does not validate"}
	if anchors := anchorsFor(opts.Anchors, verified); anchors != nil {
		chains.openssl = opensslVerify(leaf, chain[1:], anchors, now, verified)
	}
	res.Peers = predictPeers(res, leaf, pres, opts.Domain, chains, serverOK, clientOK)
	return res, nil
}

// verifyChain validates the path with crypto/x509 without a DNSName (names
// are ours to match) and without an EKU requirement (ours to apply per
// service), and returns every chain Go built. A critical SAN holding
// only otherNames is ours to handle, so it is not left for crypto/x509 to
// refuse as an unhandled critical extension.
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, now time.Time) ([][]*x509.Certificate, *Finding) {
	leaf := chain[0]
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	if i := slices.IndexFunc(leaf.UnhandledCriticalExtensions, OIDSAN.Equal); i >= 0 {
		c := *leaf
		c.UnhandledCriticalExtensions = slices.Delete(slices.Clone(leaf.UnhandledCriticalExtensions), i, i+1)
		leaf = &c
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err == nil {
		for _, c := range chains {
			c[0] = chain[0]
		}
		return chains, nil
	}
	return nil, chainFinding(err, now)
}

// anchorsFor returns the given trust anchors, or else the anchors of the
// chains crypto/x509 built (nil when it built none).
func anchorsFor(given []*x509.Certificate, verified [][]*x509.Certificate) []*x509.Certificate {
	if given != nil {
		return given
	}
	var out []*x509.Certificate
	for _, c := range verified {
		if top := c[len(c)-1]; !slices.ContainsFunc(out, top.Equal) {
			out = append(out, top)
		}
	}
	return out
}

// chainFor returns the first chain whose EKUs permit usage, and true; or
// the first chain and false when none does.
func chainFor(chains [][]*x509.Certificate, usage x509.ExtKeyUsage) ([]*x509.Certificate, bool) {
	for _, c := range chains {
		if chainAllows(c, usage) {
			return c, true
		}
	}
	return chains[0], false
}

// chainFinding turns a crypto/x509 error into a finding that says what to do.
func chainFinding(err error, now time.Time) *Finding {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		issuer := ""
		if unknown.Cert != nil {
			issuer = unknown.Cert.Issuer.String()
		}
		return &Finding{CodeChainUntrusted, Error, fmt.Sprintf(
			"the chain does not lead to a trusted root (issuer %q): append the intermediates after the leaf, or trust the root that issued it", printable(issuer))}
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		c := invalid.Cert
		return &Finding{CodeChainExpired, Error, fmt.Sprintf(
			"certificate %q is not valid at %s: valid from %s to %s", printable(c.Subject.String()),
			now.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))}
	case errors.As(err, &invalid) && invalid.Reason == x509.CANotAuthorizedForThisName:
		return &Finding{CodeNameConstraint, Error, "a CA's name constraints forbid a name in the certificate: " + err.Error()}
	}
	return &Finding{CodeChainInvalid, Error, "the chain does not validate: " + err.Error()}
}

// applyNameConstraints holds SRV-IDs and XmppAddrs to the dNSName
// constraints of every CA in the chain, which crypto/x509 applies only to
// dNSNames. An identity outside them is refused and makes the chain
// invalid, as RFC 5280 path validation does for a dNSName.
func applyNameConstraints(ids []Identifier, chain []*x509.Certificate) []Finding {
	var fs []Finding
	for i := range ids {
		id := &ids[i]
		if !id.usable() || (id.Type != TypeSRVName && id.Type != TypeXmppAddr) {
			continue
		}
		host := strings.TrimPrefix(id.Domain, "*.")
		for _, ca := range chain[1:] {
			if why := dnsConstraintViolation(ca, host); why != "" {
				id.Ignored = "outside the name constraints of " + printable(ca.Subject.CommonName)
				fs = append(fs, Finding{CodeNameConstraint, Error, fmt.Sprintf(
					"%s %q is refused: its domain %s %s of CA %q", id.Type, id.Value, host, why, printable(ca.Subject.String()))})
				break
			}
		}
	}
	return fs
}

// dnsConstraintViolation says how host breaks ca's dNSName constraints, or
// returns "" when it does not.
func dnsConstraintViolation(ca *x509.Certificate, host string) string {
	for _, c := range ca.ExcludedDNSDomains {
		if withinDNSConstraint(host, c) {
			return "is excluded by the constraint " + c
		}
	}
	if len(ca.PermittedDNSDomains) == 0 {
		return ""
	}
	for _, c := range ca.PermittedDNSDomains {
		if withinDNSConstraint(host, c) {
			return ""
		}
	}
	return "is outside the permitted domains " + strings.Join(ca.PermittedDNSDomains, ", ")
}

// withinDNSConstraint applies an RFC 5280 dNSName constraint the way
// crypto/x509 does: "example.org" covers it and every name below it,
// ".example.org" only the names below it.
func withinDNSConstraint(host, constraint string) bool {
	constraint = strings.ToLower(constraint)
	if constraint == "" {
		return true
	}
	if strings.HasPrefix(constraint, ".") {
		return strings.HasSuffix(host, constraint)
	}
	return host == constraint || strings.HasSuffix(host, "."+constraint)
}

// chainAllows reports whether every certificate in the chain permits the
// usage, the way crypto/x509 nests EKUs: no EKU or anyExtendedKeyUsage
// permits everything.
func chainAllows(chain []*x509.Certificate, usage x509.ExtKeyUsage) bool {
	for _, c := range chain {
		if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
			continue
		}
		if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) && !slices.Contains(c.ExtKeyUsage, usage) {
			return false
		}
	}
	return true
}

// ejabberdClientAuthFix is the first ejabberd release that accepts a
// connecting server's certificate without the clientAuth EKU.
const ejabberdClientAuthFix = "25.07"

// ekuFindings applies the EKU policy: every service needs serverAuth; s2s
// also presents the certificate as a TLS client certificate, which some
// peers refuse without clientAuth. chain is the chain the policy was
// judged on: the finding names the certificate in it that restricts the
// usage, which is not always the leaf.
func ekuFindings(svc Service, serverOK, clientOK bool, chain []*x509.Certificate) []Finding {
	var fs []Finding
	if !serverOK {
		text := "the leaf's extended key usage does not permit serverAuth, so no peer accepts it as a server certificate: reissue with serverAuth"
		if i := restricting(chain, x509.ExtKeyUsageServerAuth); i > 0 {
			text = fmt.Sprintf("the leaf permits serverAuth, but the CA certificate %q in its chain restricts its extended key usage to exclude it, so peers refuse the chain: have the certificate issued under a CA that permits serverAuth",
				chain[i].Subject.String())
		}
		fs = append(fs, Finding{CodeEKUNoServerAuth, Error, text})
	}
	if svc == ServiceServer && !clientOK {
		fs = append(fs, Finding{CodeEKUNoClientAuth, Warning,
			"no clientAuth extended key usage (Let's Encrypt stopped issuing it in 2026): when this server connects out it presents the certificate as a TLS client certificate, which ejabberd before " +
				ejabberdClientAuthFix + ", Prosody 13.0.0 (fixed in 13.0.1) and Metronome refuse, so those connections fall back to Server Dialback (XEP-0220) where offered; Prosody 0.12 accepts it (it does not check the EKU)"})
	}
	return fs
}

// restricting returns the index of the first certificate in chain whose
// EKUs exclude usage, or -1.
func restricting(chain []*x509.Certificate, usage x509.ExtKeyUsage) int {
	return slices.IndexFunc(chain, func(c *x509.Certificate) bool { return !chainAllows([]*x509.Certificate{c}, usage) })
}

// identityFindings explains the matching: why nothing matched, what a
// wildcard or SRV-ID nearly covered, and what happened to the CN.
func identityFindings(res *Result, profile Profile) []Finding {
	var fs []Finding
	usedCN := slices.ContainsFunc(res.Matched, func(m Match) bool { return m.Type == TypeCN })
	if len(res.Matched) == 0 {
		var wanted []string
		for _, r := range res.References {
			wanted = append(wanted, r.String())
		}
		fs = append(fs, Finding{CodeNoMatch, Error, fmt.Sprintf(
			"no presented identity matches %s for %s: looked for %s", res.Domain, res.Service, strings.Join(wanted, ", "))})
		fs = append(fs, nearMisses(res.References, res.Presented)...)
	}
	if !slices.ContainsFunc(res.Matched, func(m Match) bool { return m.ReferenceType == RefSRVID }) {
		fs = append(fs, otherServiceSRV(res.References, res.Presented)...)
	}
	for _, id := range res.Presented {
		if id.Type != TypeCN {
			continue
		}
		cnWouldMatch := id.usable() && matchHost(res.References[0].Domain, id.Domain, id.wildcard)
		switch {
		case usedCN:
			if cnWouldMatch {
				fs = append(fs, Finding{CodeCNUsed, Warning, fmt.Sprintf(
					"matched only through the subject CN %q, which RFC 9525 peers never use: put %s in a dNSName", id.Value, res.Domain)})
			}
		case len(res.Matched) == 0 && cnWouldMatch && !hasSupportedSAN(res.Presented):
			// Only under rfc9525: rfc6125 would have matched through this CN.
			fs = append(fs, Finding{CodeCNOnly, Warning, fmt.Sprintf(
				"%s is only in the subject CN, which RFC 9525 never uses (the rfc6125 profile would): put it in a dNSName", res.Domain)})
		default:
			fs = append(fs, Finding{CodeCNIgnored, Info, fmt.Sprintf("subject CN %q is not used for identity (%s)", id.Value, cnReason(profile))})
		}
	}
	return fs
}

func cnReason(p Profile) string {
	if p == ProfileRFC6125 {
		return "RFC 6125 uses it only when there is no dNSName, SRVName, XmppAddr or URI"
	}
	return "RFC 9525 never uses it"
}

// expiryFindings warns when less than a third of the leaf's lifetime (and
// at most 30 days) remains: past that point a renewal is overdue.
func expiryFindings(leaf *x509.Certificate, now time.Time) []Finding {
	left := leaf.NotAfter.Sub(now)
	threshold := min(leaf.NotAfter.Sub(leaf.NotBefore)/3, 30*24*time.Hour)
	if left >= threshold {
		return nil
	}
	return []Finding{{CodeExpiresSoon, Warning, fmt.Sprintf(
		"expires in %.1f days (%s): renewal is overdue once a third of the lifetime remains",
		left.Hours()/24, leaf.NotAfter.UTC().Format(time.RFC3339))}}
}

// leafHasCriticalOtherNameOnlySAN is true for a critical SAN extension
// that crypto/x509 finds nothing in, i.e. that it would refuse.
func leafHasCriticalOtherNameOnlySAN(leaf *x509.Certificate) bool {
	return slices.ContainsFunc(leaf.UnhandledCriticalExtensions, OIDSAN.Equal)
}

// Unparseable is the verdict on a chain whose certificate index (of
// count) crypto/x509 refuses to parse, with cause its error: not valid,
// with a finding that names what Go refused and says which peers refuse
// it. A peer built on crypto/x509 never gets as far as the names;
// OpenSSL parses such certificates, so what the OpenSSL-based peers
// decide depends on contents xmppcert cannot read. opts are checked as
// Verify checks them.
func Unparseable(index, count int, cause error, opts Options) (*Result, error) {
	profile, refs, err := opts.references()
	if err != nil {
		return nil, err
	}
	which := "the leaf"
	if index > 0 {
		which = fmt.Sprintf("certificate %d of %d", index+1, count)
	}
	f := Finding{CodeUnparseable, Error, fmt.Sprintf(
		"crypto/x509 cannot parse %s (%v): Go-based peers refuse it before reading any name; OpenSSL-based peers (Prosody, ejabberd) parse it and judge it by its chain and names: reissue it without the field Go refuses",
		which, cause)}
	return &Result{Domain: refs[0].Value, Service: opts.Service, Profile: profile, References: refs,
		Matched: []Match{}, Presented: []Identifier{}, Findings: []Finding{f}, Peers: []PeerVerdict{}}, nil
}

// references checks the options' profile, domain and service, and
// returns the profile and the reference identities.
func (opts Options) references() (Profile, []Reference, error) {
	profile, err := ParseProfile(string(opts.Profile))
	if err != nil {
		return "", nil, err
	}
	refs, err := References(opts.Domain, opts.Service)
	return profile, refs, err
}
