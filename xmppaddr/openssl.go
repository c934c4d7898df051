package xmppaddr

import (
	"bytes"
	"crypto/dsa" //nolint:staticcheck // OpenSSL still verifies DSA chains; the model must size their keys
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The OpenSSL chain model predicts X509_verify_cert of OpenSSL 3 as
// Prosody (LuaSec) and ejabberd (fast_tls) run it on a peer's chain: the
// library's default flags (trusted-first path building, no partial
// chains, no x509_strict, no revocation), no purpose (Prosody ignores it;
// ejabberd's clientAuth demand is judged apart), and authentication
// security level 2, which Debian's system configuration sets for every
// TLS context. It departs from crypto/x509 where OpenSSL does: it builds
// one path (the first issuer found, trust store first) instead of every
// path; a trust anchor must be self-signed as OpenSSL defines it (its
// subject is its issuer and its authority key identifier, if any, names
// its own key) unless its own issuer is in the trust store; only the
// anchor may be a CA by key usage alone, every intermediate needs
// basicConstraints cA; self-issued intermediates count neither against
// path length nor for name constraints; name constraints cover directory
// names, are matched byte-wise without checking the names' syntax and
// never apply to an otherName type they do not list (so SRV-IDs and
// XmppAddrs escape DNS constraints); and a certificate is expired at its
// notAfter second.

// opensslMaxDepth is X509_VERIFY_PARAM's default depth limit (100
// intermediates) plus the leaf and the anchor.
const opensslMaxDepth = 102

// opensslNameCheckMax is NAME_CHECK_MAX: more names times constraints
// than this and OpenSSL refuses the chain instead of checking them.
const opensslNameCheckMax = 1 << 20

// opensslVerify returns "" when OpenSSL would verify the chain that
// leaf, the untrusted certificates sent with it and the trust anchors
// make at now, or what OpenSSL would report (its verify error's words).
// proven are chains whose signatures are already verified (crypto/x509's
// own chains): a certificate and its issuer next to each other in one of
// them need no second signature check.
func opensslVerify(leaf *x509.Certificate, untrusted, anchors []*x509.Certificate, now time.Time, proven [][]*x509.Certificate) string {
	chain, why := opensslBuild(leaf, untrusted, anchors, now)
	if why != "" {
		return why
	}
	if why := opensslExtensions(chain); why != "" {
		return why
	}
	if why := opensslNameConstraints(chain); why != "" {
		return why
	}
	if why := opensslSignaturesAndTimes(chain, now, proven); why != "" {
		return why
	}
	return opensslSecurityLevel(chain)
}

// opensslBuild is build_chain: from the leaf, each step takes the first
// issuer in the trust store (one valid at now preferred), else among the
// untrusted certificates, until a self-signed certificate; a certificate
// equal to a trust anchor is trusted. It returns the chain, or why
// OpenSSL finds none.
func opensslBuild(leaf *x509.Certificate, untrusted, anchors []*x509.Certificate, now time.Time) ([]*x509.Certificate, string) {
	chain := []*x509.Certificate{leaf}
	trusted := -1
	if slices.ContainsFunc(anchors, leaf.Equal) {
		trusted = 0
	}
	for len(chain) < opensslMaxDepth {
		cur := chain[len(chain)-1]
		if opensslSelfSigned(cur) {
			break
		}
		issuer := opensslFindIssuer(cur, anchors, chain, now)
		if issuer != nil {
			if trusted < 0 {
				trusted = len(chain)
			}
			chain = append(chain, issuer)
			continue
		}
		if trusted >= 0 {
			break // only the trust store is searched above a trust anchor
		}
		issuer = opensslFindIssuer(cur, untrusted, chain, now)
		if issuer == nil {
			break
		}
		chain = append(chain, issuer)
		if slices.ContainsFunc(anchors, issuer.Equal) {
			trusted = len(chain) - 1
		}
	}
	top := chain[len(chain)-1]
	switch {
	case trusted < 0 && opensslSelfSigned(top) && len(chain) == 1:
		return nil, "self-signed certificate"
	case trusted < 0 && opensslSelfSigned(top):
		return nil, "self-signed certificate in certificate chain"
	case trusted < 0:
		return nil, "unable to get local issuer certificate"
	case !opensslSelfSigned(top):
		return nil, "unable to get issuer certificate"
	}
	return chain, ""
}

// opensslFindIssuer is find_issuer and X509_STORE_CTX_get1_issuer: the
// first candidate that likely issued cert and is valid at now, else the
// matching one that expires last.
func opensslFindIssuer(cert *x509.Certificate, candidates, chain []*x509.Certificate, now time.Time) *x509.Certificate {
	var best *x509.Certificate
	for _, c := range candidates {
		if !opensslLikelyIssued(c, cert) || slices.ContainsFunc(chain, c.Equal) {
			continue
		}
		if opensslTimeValid(c, now) {
			return c
		}
		if best == nil || c.NotAfter.After(best.NotAfter) {
			best = c
		}
	}
	return best
}

// opensslLikelyIssued is ossl_x509_likely_issued: both certificates'
// extensions are valid, issuer's subject is cert's issuer, and cert's
// authority key identifier (when present) agrees with issuer.
func opensslLikelyIssued(issuer, cert *x509.Certificate) bool {
	return opensslValidExtensions(issuer) && opensslValidExtensions(cert) &&
		bytes.Equal(issuer.RawSubject, cert.RawIssuer) && opensslAKIMatches(issuer, cert) &&
		signatureKeyMatches(issuer.PublicKeyAlgorithm, cert.SignatureAlgorithm)
}

// signatureKeyMatches is check_sig_alg_match: a certificate signed with
// an algorithm of one key type is not issued by a key of another.
func signatureKeyMatches(key x509.PublicKeyAlgorithm, sig x509.SignatureAlgorithm) bool {
	switch sig {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
		return key == x509.RSA
	case x509.DSAWithSHA1, x509.DSAWithSHA256:
		return key == x509.DSA
	case x509.ECDSAWithSHA1, x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
		return key == x509.ECDSA
	case x509.PureEd25519:
		return key == x509.Ed25519
	}
	return true
}

// opensslSelfIssued is EXFLAG_SI: the certificate names itself as issuer.
func opensslSelfIssued(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer)
}

// opensslSelfSigned is EXFLAG_SS: self-issued, and its authority key
// identifier (when present) points at its own key.
func opensslSelfSigned(c *x509.Certificate) bool {
	return opensslSelfIssued(c) && opensslAKIMatches(c, c)
}

// kuRejectsCertSign is ku_reject(x, KU_KEY_CERT_SIGN).
func kuRejectsCertSign(c *x509.Certificate) bool {
	return hasExtension(c, oidKeyUsage) && c.KeyUsage&x509.KeyUsageCertSign == 0
}

var (
	oidKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstr    = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidNameConstr     = asn1.ObjectIdentifier{2, 5, 29, 30}
)

func hasExtension(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	return slices.ContainsFunc(c.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(oid) })
}

// opensslAKIMatches is X509_check_akid: a key identifier must equal the
// issuer's subject key identifier when both exist; an issuer name and
// serial, when present, must be the issuer's issuer and serial.
func opensslAKIMatches(issuer, cert *x509.Certificate) bool {
	var raw []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidAuthorityKeyID) {
			raw = e.Value
		}
	}
	if raw == nil {
		return true
	}
	in := cryptobyte.String(raw)
	var aki cryptobyte.String
	if !in.ReadASN1(&aki, cbasn1.SEQUENCE) {
		return false
	}
	var keyID, names cryptobyte.String
	var hasKeyID, hasNames, hasSerial bool
	if !aki.ReadOptionalASN1(&keyID, &hasKeyID, cbasn1.Tag(0).ContextSpecific()) ||
		!aki.ReadOptionalASN1(&names, &hasNames, cbasn1.Tag(1).ContextSpecific().Constructed()) {
		return false
	}
	serial := new(big.Int)
	if aki.PeekASN1Tag(cbasn1.Tag(2).ContextSpecific()) {
		var s cryptobyte.String
		if !aki.ReadASN1(&s, cbasn1.Tag(2).ContextSpecific()) {
			return false
		}
		serial.SetBytes(s)
		hasSerial = true
	}
	if hasKeyID && len(issuer.SubjectKeyId) > 0 && !bytes.Equal(keyID, issuer.SubjectKeyId) {
		return false
	}
	if hasSerial && serial.Cmp(issuer.SerialNumber) != 0 {
		return false
	}
	if hasNames {
		for !names.Empty() {
			var v cryptobyte.String
			var tag cbasn1.Tag
			if !names.ReadAnyASN1(&v, &tag) {
				return false
			}
			if tag == cbasn1.Tag(4).ContextSpecific().Constructed() && !bytes.Equal(v, issuer.RawIssuer) {
				return false
			}
		}
	}
	return true
}

// opensslValidExtensions is the EXFLAG_INVALID test of
// ossl_x509v3_cache_extensions for what crypto/x509 parses without
// complaint: a keyUsage extension with no bit set (RFC 5280 4.2.1.3),
// and a subjectAltName or nameConstraints extension that does not decode
// as GeneralNames (crypto/x509 skips name forms it does not know).
func opensslValidExtensions(c *x509.Certificate) bool {
	if hasExtension(c, oidKeyUsage) && c.KeyUsage == 0 {
		return false
	}
	for _, e := range c.Extensions {
		switch {
		case e.Id.Equal(OIDSAN) && !decodesAsGeneralNames(e.Value):
			return false
		case e.Id.Equal(oidNameConstr) && !decodesAsNameConstraints(e.Value):
			return false
		}
	}
	return true
}

// decodesAsGeneralNames reports whether der is a SEQUENCE of
// GeneralNames, each one of the nine forms RFC 5280 defines, primitive or
// constructed as the form requires.
func decodesAsGeneralNames(der []byte) bool {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return false
	}
	for !seq.Empty() {
		if !readGeneralName(&seq) {
			return false
		}
	}
	return true
}

// readGeneralName reads one GeneralName off s, reporting whether it is
// one of the defined forms with the right construction.
func readGeneralName(s *cryptobyte.String) bool {
	var v cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&v, &tag) || tag&0xc0 != 0x80 {
		return false
	}
	constructed := tag&0x20 != 0
	switch int(tag &^ 0xe0) {
	case tagOtherName:
		var oid asn1.ObjectIdentifier
		var value cryptobyte.String
		return constructed && v.ReadASN1ObjectIdentifier(&oid) && v.ReadASN1(&value, cbasn1.Tag(0).ContextSpecific().Constructed()) && v.Empty()
	case tagEmail, tagDNSName, tagURI, tagIPAddress, tagRegisteredID:
		return !constructed
	case tagX400Address, tagDirectoryName, tagEDIPartyName:
		return constructed
	}
	return false
}

// decodesAsNameConstraints reports whether der is a NameConstraints
// whose subtrees' bases decode as GeneralNames.
func decodesAsNameConstraints(der []byte) bool {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return false
	}
	for _, tag := range []int{0, 1} {
		var trees cryptobyte.String
		var present bool
		if !seq.ReadOptionalASN1(&trees, &present, cbasn1.Tag(tag).ContextSpecific().Constructed()) {
			return false
		}
		for !trees.Empty() {
			var sub cryptobyte.String
			if !trees.ReadASN1(&sub, cbasn1.SEQUENCE) || !readGeneralName(&sub) {
				return false
			}
		}
	}
	return seq.Empty()
}

// opensslSupported are the extensions X509_supported_extension knows: a
// critical extension of any other type fails the chain.
var opensslSupported = []asn1.ObjectIdentifier{
	{2, 16, 840, 1, 113730, 1, 1}, // Netscape certificate type
	oidKeyUsage, OIDSAN, oidBasicConstr,
	{2, 5, 29, 32},               // certificatePolicies
	{2, 5, 29, 37},               // extKeyUsage
	{2, 5, 29, 36},               // policyConstraints
	{1, 3, 6, 1, 5, 5, 7, 1, 14}, // proxyCertInfo
	oidNameConstr,
	{2, 5, 29, 33},              // policyMappings
	{2, 5, 29, 54},              // inhibitAnyPolicy
	{1, 3, 6, 1, 5, 5, 7, 1, 7}, // IP address blocks (RFC 3779)
	{1, 3, 6, 1, 5, 5, 7, 1, 8}, // AS identifiers (RFC 3779)
}

// opensslExtensions is check_chain_extensions without x509_strict: no
// critical extension OpenSSL does not know, every certificate above the
// leaf a CA as X509_check_ca sees it, and path lengths that hold, with
// self-issued intermediates not counted.
func opensslExtensions(chain []*x509.Certificate) string {
	plen := 0
	for i, c := range chain {
		for _, e := range c.Extensions {
			if e.Critical && !slices.ContainsFunc(opensslSupported, e.Id.Equal) {
				return "unhandled critical extension"
			}
		}
		// X509_V_FLAG_X509_STRICT is implicit for intermediate CAs: only
		// the trust anchor may be a CA by key usage alone.
		if ca := opensslCheckCA(c); i > 0 && (ca == 0 || i+1 < len(chain) && ca != 1) {
			return "invalid CA certificate"
		}
		if i > 1 && c.BasicConstraintsValid && c.IsCA && (c.MaxPathLen > 0 || c.MaxPathLenZero) && plen > c.MaxPathLen {
			return "path length constraint exceeded"
		}
		if i > 0 && !opensslSelfIssued(c) {
			plen++
		}
	}
	return ""
}

// opensslCheckCA is X509_check_ca: 0 when the certificate is no CA (its
// extensions are invalid, or a key usage forbids signing certificates, or
// basicConstraints says cA FALSE), 1 for basicConstraints cA, and without
// basicConstraints 3 for a version 1 self-signed certificate, 4 for one
// with a key usage (which permits signing certificates).
func opensslCheckCA(c *x509.Certificate) int {
	switch {
	case !opensslValidExtensions(c) || kuRejectsCertSign(c):
		return 0
	case hasExtension(c, oidBasicConstr) && c.IsCA:
		return 1
	case hasExtension(c, oidBasicConstr):
		return 0
	case c.Version == 1 && opensslSelfSigned(c):
		return 3
	case hasExtension(c, oidKeyUsage):
		return 4
	}
	return 0
}

// opensslSignaturesAndTimes is internal_verify: every certificate's
// signature by its issuer's key (a self-signed trust anchor's own
// signature is not checked), and every certificate valid at now, expired
// from its notAfter second on. A signature crypto/x509 cannot check
// (DSA, which OpenSSL verifies) is taken as good.
func opensslSignaturesAndTimes(chain []*x509.Certificate, now time.Time, proven [][]*x509.Certificate) string {
	for i, c := range chain {
		if i+1 < len(chain) && !provenPair(proven, c, chain[i+1]) {
			err := chain[i+1].CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature)
			if err != nil && !errors.Is(err, x509.ErrUnsupportedAlgorithm) {
				return "certificate signature failure"
			}
		}
		if now.Before(c.NotBefore) {
			return "certificate is not yet valid"
		}
		if !now.Before(c.NotAfter.Truncate(time.Second)) {
			return "certificate has expired"
		}
	}
	return ""
}

// provenPair reports whether issuer follows c in one of the chains.
func provenPair(chains [][]*x509.Certificate, c, issuer *x509.Certificate) bool {
	for _, chain := range chains {
		for k := 0; k+1 < len(chain); k++ {
			if chain[k].Equal(c) && chain[k+1].Equal(issuer) {
				return true
			}
		}
	}
	return false
}

// opensslTimeValid is ossl_x509_check_cert_time without reporting.
func opensslTimeValid(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && now.Before(c.NotAfter.Truncate(time.Second))
}

// opensslSecurityLevel is check_key_level and check_sig_level at
// authentication security level 2: every key in the chain must give 112
// bits of security, and every signature but the trust anchor's own a
// digest stronger than SHA-1 (crypto/x509's CheckSignature still takes
// SHA-1, as OpenSSL below that level does).
func opensslSecurityLevel(chain []*x509.Certificate) string {
	for i, c := range chain {
		bits := 0
		switch k := c.PublicKey.(type) {
		case *rsa.PublicKey:
			bits = k.N.BitLen()
		case *dsa.PublicKey:
			bits = k.P.BitLen()
		}
		if bits != 0 && bits < 2048 { // the curves crypto/x509 parses give 112 bits and more
			return fmt.Sprintf("certificate key too weak (%d bits) at security level 2", bits)
		}
		if i+1 < len(chain) && weakDigest(c.SignatureAlgorithm) {
			return "signature digest algorithm too weak at security level 2 (" + c.SignatureAlgorithm.String() + ")"
		}
	}
	return ""
}

// weakDigest reports a signature algorithm over MD2, MD5 or SHA-1.
func weakDigest(a x509.SignatureAlgorithm) bool {
	switch a {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return true
	}
	return false
}

// generalName is one GeneralName as OpenSSL's name constraint code sees
// it: its form (the context tag) and its contents.
type generalName struct {
	form  int
	value []byte
}

// ncSubtree is a GeneralSubtree: a base name, and whether its minimum
// and maximum are the only ones OpenSSL supports (0 and absent).
type ncSubtree struct {
	base   generalName
	minmax bool
}

// opensslNameConstraints is check_name_constraints: every certificate
// but a self-issued intermediate is held to the constraints of every
// certificate above it, the trust anchor included.
func opensslNameConstraints(chain []*x509.Certificate) string {
	for i := len(chain) - 1; i >= 0; i-- {
		if i != 0 && opensslSelfIssued(chain[i]) {
			continue
		}
		for j := len(chain) - 1; j > i; j-- {
			permitted, excluded, ok := parseNameConstraints(chain[j])
			if !ok {
				continue
			}
			if why := opensslNCCheck(chain[i], permitted, excluded, i == 0); why != "" {
				return why
			}
		}
	}
	return ""
}

// opensslNCCheck is NAME_CONSTRAINTS_check, and for a leaf without a
// dNSName NAME_CONSTRAINTS_check_CN.
func opensslNCCheck(c *x509.Certificate, permitted, excluded []ncSubtree, leaf bool) string {
	var names []generalName
	entries := 0
	for _, atv := range c.Subject.Names {
		entries++
		if atv.Type.Equal(oidEmailAddress) {
			if s, ok := atv.Value.(string); ok {
				names = append(names, generalName{tagEmail, []byte(s)})
			}
		}
	}
	if entries > 0 {
		names = append([]generalName{{tagDirectoryName, nameContents(c.RawSubject)}}, names...)
	}
	san := sanGeneralNames(c)
	names = append(names, san...)
	if count := entries + len(san); count > 0 && len(permitted)+len(excluded) > opensslNameCheckMax/count {
		return "unspecified certificate verification error (too many name constraints to check)"
	}
	for _, n := range names {
		if why := opensslNCMatch(n, permitted, excluded); why != "" {
			return why
		}
	}
	if leaf && !slices.ContainsFunc(san, func(n generalName) bool { return n.form == tagDNSName }) {
		for _, atv := range c.Subject.Names {
			if s, ok := atv.Value.(string); ok && atv.Type.Equal(oidCN) && cnLooksLikeDNS(s) {
				if why := opensslNCMatch(generalName{tagDNSName, []byte(s)}, permitted, excluded); why != "" {
					return why
				}
			}
		}
	}
	return ""
}

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// opensslNCMatch is nc_match: when constraints of the name's form are
// permitted, one must match; none excluded may match.
func opensslNCMatch(n generalName, permitted, excluded []ncSubtree) string {
	match := 0
	for _, sub := range permitted {
		if !sameForm(n, sub.base) {
			continue
		}
		if !sub.minmax {
			return "unsupported name constraint minimum or maximum"
		}
		if match == 2 {
			continue
		}
		match = 1
		switch ok, why := ncMatchSingle(n, sub.base); {
		case why != "":
			return why
		case ok:
			match = 2
		}
	}
	if match == 1 {
		return "permitted subtree violation"
	}
	for _, sub := range excluded {
		if !sameForm(n, sub.base) {
			continue
		}
		if !sub.minmax {
			return "unsupported name constraint minimum or maximum"
		}
		switch ok, why := ncMatchSingle(n, sub.base); {
		case why != "":
			return why
		case ok:
			return "excluded subtree violation"
		}
	}
	return ""
}

// sameForm reports whether a constraint applies to a name: the same
// GeneralName form, and for otherNames the same type-id.
func sameForm(n, base generalName) bool {
	if n.form != base.form {
		return false
	}
	if n.form != tagOtherName {
		return true
	}
	a, b := cryptobyte.String(n.value), cryptobyte.String(base.value)
	var oa, ob asn1.ObjectIdentifier
	return a.ReadASN1ObjectIdentifier(&oa) && b.ReadASN1ObjectIdentifier(&ob) && oa.Equal(ob)
}

// ncMatchSingle is nc_match_single: whether the name is within the base,
// or why the pair cannot be checked.
func ncMatchSingle(n, base generalName) (bool, string) {
	switch n.form {
	case tagDirectoryName:
		return bytes.HasPrefix(n.value, base.value), ""
	case tagDNSName:
		return ncDNS(string(n.value), string(base.value)), ""
	case tagEmail:
		return ncEmail(string(n.value), string(base.value)), ""
	case tagURI:
		return ncURI(string(n.value), string(base.value))
	case tagIPAddress:
		return ncIP(n.value, base.value)
	}
	return false, "unsupported name constraint type"
}

// ncDNS is nc_dns: the base, compared without case, is the name's right
// end, at a label boundary unless the base starts with a dot; an empty
// base matches everything.
func ncDNS(name, base string) bool {
	if base == "" {
		return true
	}
	if len(name) < len(base) {
		return false
	}
	tail := name[len(name)-len(base):]
	if len(name) > len(base) && base[0] != '.' && name[len(name)-len(base)-1] != '.' {
		return false
	}
	return asciiLower(tail) == asciiLower(base)
}

// ncEmail is nc_email for ASCII addresses: a base with a local part must
// equal the address (the domain without case), a base starting with a dot
// is a suffix of its domain, any other base is its domain.
func ncEmail(addr, base string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	local, domain := addr[:at], addr[at+1:]
	if bi := strings.LastIndexByte(base, '@'); bi >= 0 {
		return base[:bi] == local && asciiLower(base[bi+1:]) == asciiLower(domain)
	}
	if base != "" && base[0] == '.' {
		return len(domain) > len(base) && asciiLower(domain[len(domain)-len(base):]) == asciiLower(base)
	}
	return asciiLower(domain) == asciiLower(base)
}

// ncURI is nc_uri: the host of a scheme://host URI, against the base as a
// host (equal) or, starting with a dot, a domain suffix.
func ncURI(uri, base string) (bool, string) {
	i := strings.IndexByte(uri, ':')
	if i < 0 || len(uri) < i+3 || uri[i+1:i+3] != "//" {
		return false, "unsupported or invalid name syntax"
	}
	host := uri[i+3:]
	if j := strings.IndexAny(host, ":/"); j >= 0 {
		host = host[:j]
	}
	if host == "" {
		return false, "unsupported or invalid name syntax"
	}
	if base != "" && base[0] == '.' {
		return len(host) > len(base) && asciiLower(host[len(host)-len(base):]) == asciiLower(base), ""
	}
	return asciiLower(host) == asciiLower(base), ""
}

// ncIP is nc_ip: the address under the base's mask.
func ncIP(ip, base []byte) (bool, string) {
	if len(ip) != 4 && len(ip) != 16 || len(base) != 8 && len(base) != 32 {
		return false, "unsupported or invalid name syntax"
	}
	if len(ip)*2 != len(base) {
		return false, ""
	}
	addr, mask := base[:len(ip)], base[len(ip):]
	for i := range ip {
		if ip[i]&mask[i] != addr[i]&mask[i] {
			return false, ""
		}
	}
	return true, ""
}

// cnLooksLikeDNS is cn2dnsid's test: letters, digits, underscores,
// hyphens and dots, at least two labels, no dot or hyphen at either end
// and no empty label.
func cnLooksLikeDNS(s string) bool {
	dots := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
			continue
		case i == 0 || i == len(s)-1:
			return false
		case c == '-':
			continue
		case c == '.' && s[i+1] != '.' && s[i-1] != '-' && s[i-1] != '.':
			dots = true
			continue
		}
		return false
	}
	return dots
}

// parseNameConstraints reads a certificate's nameConstraints extension
// into its permitted and excluded subtrees; ok is false without one.
func parseNameConstraints(c *x509.Certificate) (permitted, excluded []ncSubtree, ok bool) {
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidNameConstr) {
			continue
		}
		in := cryptobyte.String(e.Value)
		var seq cryptobyte.String
		if !in.ReadASN1(&seq, cbasn1.SEQUENCE) {
			return nil, nil, false
		}
		read := func(tag int) []ncSubtree {
			var trees cryptobyte.String
			var present bool
			if !seq.ReadOptionalASN1(&trees, &present, cbasn1.Tag(tag).ContextSpecific().Constructed()) || !present {
				return nil
			}
			var out []ncSubtree
			for !trees.Empty() {
				var sub cryptobyte.String
				if !trees.ReadASN1(&sub, cbasn1.SEQUENCE) {
					break
				}
				var v cryptobyte.String
				var t cbasn1.Tag
				if !sub.ReadAnyASN1(&v, &t) {
					break
				}
				out = append(out, ncSubtree{base: toGeneralName(t, v), minmax: minmaxDefault(sub)})
			}
			return out
		}
		return read(0), read(1), true
	}
	return nil, nil, false
}

// minmaxDefault reports whether a GeneralSubtree's remainder holds no
// maximum and a minimum of 0, if any.
func minmaxDefault(rest cryptobyte.String) bool {
	if rest.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()) {
		var m cryptobyte.String
		if !rest.ReadASN1(&m, cbasn1.Tag(0).ContextSpecific()) || len(m) != 1 || m[0] != 0 {
			return false
		}
	}
	return rest.Empty()
}

// sanGeneralNames returns the entries of the certificate's SAN
// extension.
func sanGeneralNames(c *x509.Certificate) []generalName {
	for _, e := range c.Extensions {
		if !e.Id.Equal(OIDSAN) {
			continue
		}
		in := cryptobyte.String(e.Value)
		var seq cryptobyte.String
		if !in.ReadASN1(&seq, cbasn1.SEQUENCE) {
			return nil
		}
		var out []generalName
		for !seq.Empty() {
			var v cryptobyte.String
			var t cbasn1.Tag
			if !seq.ReadAnyASN1(&v, &t) {
				break
			}
			out = append(out, toGeneralName(t, v))
		}
		return out
	}
	return nil
}

// toGeneralName keeps a GeneralName's form and contents; a directory
// name's contents are the Name's RDNs, as nameContents gives them.
func toGeneralName(t cbasn1.Tag, v cryptobyte.String) generalName {
	form := int(t &^ 0xe0)
	if form == tagDirectoryName {
		return generalName{form, nameContents(v)}
	}
	return generalName{form, v}
}

// nameContents returns the RDNs of a DER Name without the SEQUENCE
// around them, the part OpenSSL compares by prefix.
func nameContents(der []byte) []byte {
	in := cryptobyte.String(der)
	var rdns cryptobyte.String
	if !in.ReadASN1(&rdns, cbasn1.SEQUENCE) {
		return der
	}
	return rdns
}
