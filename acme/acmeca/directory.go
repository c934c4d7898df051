package acmeca

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
)

// Directory URLs of the public CAs --ca names.
const (
	LetsEncrypt        = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging = "https://acme-staging-v02.api.letsencrypt.org/directory"
	ZeroSSL            = "https://acme.zerossl.com/v2/DV90"
)

// KnownCAs maps the CA names --ca accepts to their directory URLs.
var KnownCAs = map[string]string{
	"letsencrypt":         LetsEncrypt,
	"letsencrypt-staging": LetsEncryptStaging,
	"zerossl":             ZeroSSL,
}

// publicCAs names the directories of publicly trusted CAs, which certify
// DNS names only (CA/Browser Forum Baseline Requirements), by host.
var publicCAs = map[string]string{
	"acme-v02.api.letsencrypt.org":         "Let's Encrypt",
	"acme-staging-v02.api.letsencrypt.org": "Let's Encrypt staging",
	"acme.zerossl.com":                     "ZeroSSL",
	"dv.acme-v02.api.pki.goog":             "Google Trust Services",
	"dv.acme-v02.test-api.pki.goog":        "Google Trust Services staging",
	"api.buypass.com":                      "Buypass",
	"api.test4.buypass.no":                 "Buypass test",
	"acme.ssl.com":                         "SSL.com",
}

// knownNames lists the --ca names for messages.
func knownNames() string {
	names := make([]string, 0, len(KnownCAs))
	for n := range KnownCAs {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ParseDirectory turns a --ca value other than "local" into an ACME
// directory URL: a known CA name (letsencrypt, letsencrypt-staging,
// zerossl) or an https URL. Plain http is accepted only for a loopback
// host (a test CA on this machine), where nobody can tamper with it.
func ParseDirectory(s string) (string, error) {
	if u, ok := KnownCAs[strings.ToLower(s)]; ok {
		return u, nil
	}
	if !strings.Contains(s, "://") {
		return "", fmt.Errorf("unknown CA %q: use local, %s, or an ACME directory URL (https://...)", s, knownNames())
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("CA directory URL %q is malformed: %v", s, err)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("CA directory URL %q has no host; give the full directory URL, such as https://ca.example.org/acme/directory", s)
	}
	if u.User != nil {
		return "", fmt.Errorf("CA directory URL %q carries credentials; ACME authenticates with the account key (and External Account Binding), remove them", s)
	}
	if u.Fragment != "" {
		return "", fmt.Errorf("CA directory URL %q has a #fragment; remove it", s)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return "", fmt.Errorf("CA directory URL %q has a bad port %q", s, p)
		}
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !IsLoopback(u.Hostname()) {
			return "", fmt.Errorf("CA directory URL %q is plain http to %s, which anyone on the path could tamper with; use https (http is only allowed for a CA on this machine: localhost, 127.0.0.1, ::1)", s, u.Hostname())
		}
	default:
		return "", fmt.Errorf("CA directory URL %q: scheme %q is not https; give an https:// directory URL", s, u.Scheme)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	return u.String(), nil
}

// IsLoopback reports whether host (a name or an address, without port)
// is this machine: localhost, a name under .localhost, or a loopback
// address.
func IsLoopback(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// IsPublic reports whether directory belongs to a publicly trusted CA
// that xmppcert knows of. Such CAs certify DNS names only: no SRV-ID, no
// XmppAddr.
func IsPublic(directory string) bool {
	u, err := url.Parse(directory)
	if err != nil {
		return false
	}
	_, ok := publicCAs[strings.ToLower(u.Hostname())]
	return ok
}

// DisplayName names a directory's CA for people: "Let's Encrypt" for a
// known one, else the directory's host.
func DisplayName(directory string) string {
	u, err := url.Parse(directory)
	if err != nil {
		return directory
	}
	if n, ok := publicCAs[strings.ToLower(u.Hostname())]; ok {
		return n
	}
	return "ACME CA " + u.Host
}
