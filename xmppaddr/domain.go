package xmppaddr

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// CanonicalDomain returns the form of a domain that reference identities
// are made of: IDNA2008 (UTS #46 lookup mapping) A-labels, ASCII lower case,
// one trailing dot removed. It refuses empty, over-long and invalid labels,
// so that no reference can ever match something by accident.
func CanonicalDomain(domain string) (string, error) {
	d := strings.TrimSuffix(domain, ".")
	if d == "" {
		return "", errors.New("empty domain")
	}
	// IDNA replaces invalid UTF-8 by U+FFFD and may then accept the
	// result: a different name than the one given.
	if !utf8.ValidString(d) {
		return "", fmt.Errorf("invalid domain %q: not UTF-8", domain)
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("invalid domain %q: %v", domain, err)
	}
	if err := checkLabels(a); err != nil {
		return "", fmt.Errorf("invalid domain %q: %v", domain, err)
	}
	return a, nil
}

// checkLabels enforces the DNS length rules that IDNA lookup leaves out:
// no empty label, labels of at most 63 octets, names of at most 253.
func checkLabels(name string) error {
	if len(name) > 253 {
		return errors.New("longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		switch {
		case label == "":
			return errors.New("empty label")
		case len(label) > 63:
			return fmt.Errorf("label %q longer than 63 characters", label)
		}
	}
	return nil
}

// presentedHostname canonicalizes a host name as a certificate presents it
// in an IA5String (dNSName, the name part of an SRVName): ASCII lower case,
// letters, digits, hyphens and underscores, with at most a leading "*"
// label. It reports why a name is unusable rather than guessing.
func presentedHostname(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty name")
	}
	if strings.HasSuffix(s, ".") {
		return "", errors.New("trailing dot (certificates carry names without it)")
	}
	s = strings.ToLower(s)
	if err := checkLabels(s); err != nil {
		return "", err
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return "", errors.New("non-ASCII character (IDNs must be A-labels, xn--...)")
		}
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '*'
		if !ok {
			return "", fmt.Errorf("character %q is not allowed in a host name", c)
		}
	}
	return s, nil
}
