package challenge

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
)

const (
	defaultTXTTTL        = 60 * time.Second
	defaultUpdateTimeout = 10 * time.Second
)

// RFC2136 solves dns-01 by DNS dynamic update (RFC 2136) signed with a
// TSIG key (RFC 8945): Present adds the TXT record
// _acme-challenge.NAME. with the challenge's value, CleanUp deletes
// exactly that record (other TXT records at the name stay), and Wait
// polls Server (and Propagation's servers) until the record is visible.
//
// On the server, the key needs the right to update the zone, e.g. for
// Knot DNS an acl with "action: update" and the key, for BIND
// "update-policy { grant KEY name _acme-challenge.NAME. TXT; };".
//
// Use it through a pointer; it must not be copied after first use. It is
// safe for concurrent use.
type RFC2136 struct {
	// Server is the primary server that accepts updates, as "host" or
	// "host:port" (port 53 when absent).
	Server string
	// Zone is the zone to update. When empty, it is found by asking
	// Server for the SOA of the challenge name.
	Zone string
	// KeyName is the TSIG key's name as configured on the server. Empty
	// means unsigned updates (for servers that allow updates by address).
	KeyName string
	// Algorithm is the TSIG algorithm: hmac-sha256 when empty; see
	// TSIGAlgorithm for the others.
	Algorithm string
	// Secret is the TSIG secret in base64 (LoadTSIGSecret reads it from
	// a file).
	Secret string
	// TTL of the TXT record: 60 s when zero. It is rounded down to whole
	// seconds.
	TTL time.Duration
	// Timeout bounds each update and zone lookup: 10 s when zero.
	Timeout time.Duration
	// Propagation bounds Wait; Server is always polled, then the servers
	// it lists.
	Propagation Propagation

	mu    sync.Mutex
	zones map[string]string // challenge fqdn -> zone
}

// Validate checks the configuration without touching the network: the
// server address, the algorithm, the key (name and secret together) and
// the zone's spelling.
func (s *RFC2136) Validate() error {
	if _, err := hostPort(s.Server); err != nil {
		return fmt.Errorf("dns-01 RFC 2136 server: %w", err)
	}
	if s.Zone != "" {
		if _, ok := dns.IsDomainName(s.Zone); !ok {
			return fmt.Errorf("dns-01 RFC 2136 zone %q is not a domain name", s.Zone)
		}
	}
	if _, err := TSIGAlgorithm(s.Algorithm); err != nil {
		return err
	}
	switch {
	case s.KeyName == "" && s.Secret != "":
		return errors.New("dns-01 RFC 2136: a TSIG secret without a key name")
	case s.KeyName != "":
		if _, ok := dns.IsDomainName(s.KeyName); !ok {
			return fmt.Errorf("TSIG key name %q is not a domain name", s.KeyName)
		}
		if s.Secret == "" {
			return fmt.Errorf("TSIG key %s has no secret", s.KeyName)
		}
		if _, err := decodeSecret(s.Secret); err != nil {
			return fmt.Errorf("TSIG secret of key %s: %w", s.KeyName, err)
		}
	}
	if err := s.Propagation.validate(); err != nil {
		return fmt.Errorf("dns-01 RFC 2136 propagation check: %w", err)
	}
	return nil
}

// Present adds the challenge's TXT record by dynamic update.
func (s *RFC2136) Present(ctx context.Context, chal acme.Challenge) error {
	fqdn, value, err := dnsRecord(chal)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	return s.update(ctx, fqdn, value, true)
}

// CleanUp deletes the TXT record that Present added and nothing else. It
// runs even when ctx is already cancelled, bounded by Timeout.
func (s *RFC2136) CleanUp(ctx context.Context, chal acme.Challenge) error {
	fqdn, value, err := dnsRecord(chal)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout())
	defer cancel()
	err = s.update(ctx, fqdn, value, false)
	s.mu.Lock()
	delete(s.zones, fqdn)
	s.mu.Unlock()
	return err
}

// Wait polls Server, then Propagation's servers, until each answers the
// TXT query with the challenge's value, or Propagation.Timeout passes.
func (s *RFC2136) Wait(ctx context.Context, chal acme.Challenge) error {
	fqdn, value, err := dnsRecord(chal)
	if err != nil {
		return err
	}
	server, err := hostPort(s.Server)
	if err != nil {
		return fmt.Errorf("dns-01 RFC 2136 server: %w", err)
	}
	s.mu.Lock()
	zone := s.zones[fqdn]
	s.mu.Unlock()
	if zone == "" && s.Zone != "" {
		zone = dns.Fqdn(s.Zone)
	}
	fixed := []nameserver{{label: server, addrs: []string{server}}}
	return s.Propagation.wait(ctx, fqdn, value, zone, fixed, s.Propagation.Resolver != "",
		"check that the update reached the zone and that secondaries transfer it (NOTIFY/IXFR), or allow a longer propagation timeout")
}

func (s *RFC2136) timeout() time.Duration {
	if s.Timeout <= 0 {
		return defaultUpdateTimeout
	}
	return s.Timeout
}

func (s *RFC2136) key() (*tsigKey, error) {
	if s.KeyName == "" {
		return nil, nil
	}
	alg, err := TSIGAlgorithm(s.Algorithm)
	if err != nil {
		return nil, err
	}
	secret, err := decodeSecret(s.Secret)
	if err != nil {
		return nil, fmt.Errorf("TSIG secret of key %s: %w", s.KeyName, err)
	}
	return &tsigKey{name: dns.CanonicalName(s.KeyName), alg: alg, secret: secret}, nil
}

// zoneFor returns the zone to update for fqdn: Zone, or the one Server
// holds it in.
func (s *RFC2136) zoneFor(ctx context.Context, server, fqdn string) (string, error) {
	if s.Zone != "" {
		zone := dns.CanonicalName(s.Zone)
		if !dns.IsSubDomain(zone, fqdn) {
			return "", fmt.Errorf("dns-01: %s is not inside zone %s", fqdn, zone)
		}
		return zone, nil
	}
	s.mu.Lock()
	zone := s.zones[fqdn]
	s.mu.Unlock()
	if zone != "" {
		return zone, nil
	}
	zone, err := findZone(ctx, server, fqdn, false, s.timeout())
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if s.zones == nil {
		s.zones = make(map[string]string)
	}
	s.zones[fqdn] = zone
	s.mu.Unlock()
	return zone, nil
}

// update adds (or deletes) the TXT record fqdn with value.
func (s *RFC2136) update(ctx context.Context, fqdn, value string, add bool) error {
	server, err := hostPort(s.Server)
	if err != nil {
		return fmt.Errorf("dns-01 RFC 2136 server: %w", err)
	}
	key, err := s.key()
	if err != nil {
		return err
	}
	zone, err := s.zoneFor(ctx, server, fqdn)
	if err != nil {
		return err
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = defaultTXTTTL
	}
	rr := &dns.TXT{
		Hdr: dns.RR_Header{Name: fqdn, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: uint32(ttl / time.Second)},
		Txt: []string{value},
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	verb := "adding"
	if add {
		m.Insert([]dns.RR{rr})
	} else {
		verb = "deleting"
		m.Remove([]dns.RR{rr})
	}
	r, err := exchange(ctx, m, server, s.timeout(), key)
	return updateError(verb, fqdn, zone, server, s.KeyName, r, err)
}

// updateError turns an update's answer into nil or an error that names
// the response code and what to check.
func updateError(verb, fqdn, zone, server, keyName string, r *dns.Msg, err error) error {
	what := fmt.Sprintf("dns-01: %s TXT %s in zone %s on %s", verb, fqdn, zone, server)
	if r == nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	keyDesc := "the TSIG key"
	if keyName != "" {
		keyDesc = "TSIG key " + strings.TrimSuffix(keyName, ".")
	}
	tsigErr := 0
	if t := r.IsTsig(); t != nil {
		tsigErr = int(t.Error)
	}
	switch {
	case tsigErr == dns.RcodeBadSig:
		return fmt.Errorf("%s: refused (%s/BADSIG): the server does not accept the signature: check the secret of %s", what, rcodeName(r.Rcode), keyDesc)
	case tsigErr == dns.RcodeBadKey:
		return fmt.Errorf("%s: refused (%s/BADKEY): the server does not know %s with this algorithm, or its update ACL for zone %s does not name the key: check the key name and algorithm and the zone's update ACL", what, rcodeName(r.Rcode), keyDesc, zone)
	case tsigErr == dns.RcodeBadTime:
		return fmt.Errorf("%s: refused (%s/BADTIME): this host's clock and the server's differ by more than 5 minutes: check NTP", what, rcodeName(r.Rcode))
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
		if err != nil {
			return fmt.Errorf("%s: the answer's TSIG signature does not verify (%v): check the secret of %s", what, err, keyDesc)
		}
		return nil
	case dns.RcodeRefused:
		return fmt.Errorf("%s: refused (REFUSED): check that the server is the primary for zone %s and that its ACL lets %s update it, TXT records at %s included", what, zone, keyDesc, fqdn)
	case dns.RcodeNotAuth:
		if keyName == "" {
			return fmt.Errorf("%s: refused (NOTAUTH): the server is not authoritative for zone %s or wants a TSIG key: check the zone and the key", what, zone)
		}
		return fmt.Errorf("%s: refused (NOTAUTH): the server is not authoritative for zone %s or rejects %s: check the zone, the key name, algorithm and secret", what, zone, keyDesc)
	case dns.RcodeNotZone:
		return fmt.Errorf("%s: refused (NOTZONE): %s is not inside zone %s: check the zone", what, fqdn, zone)
	case dns.RcodeServerFailure:
		return fmt.Errorf("%s: the server failed (SERVFAIL): see its log", what)
	case dns.RcodeNotImplemented:
		return fmt.Errorf("%s: the server does not implement dynamic update (NOTIMP)", what)
	default:
		return fmt.Errorf("%s: the server answered %s", what, rcodeName(r.Rcode))
	}
}

// dnsRecord returns the challenge's TXT name (fully qualified) and value.
func dnsRecord(chal acme.Challenge) (fqdn, value string, err error) {
	if chal.Identifier.Type != "" && chal.Identifier.Type != "dns" {
		return "", "", fmt.Errorf("dns-01 cannot validate a %s identifier (%s)", chal.Identifier.Type, chal.Identifier.Value)
	}
	name := strings.TrimPrefix(chal.Identifier.Value, "*.")
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return "", "", fmt.Errorf("dns-01: %q is not a domain name", chal.Identifier.Value)
	}
	chal.Identifier.Value = name
	return dns.CanonicalName(chal.DNS01TXTRecordName()), chal.DNS01KeyAuthorization(), nil
}

var tsigAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// TSIGAlgorithm returns the wire name (e.g. "hmac-sha256.") of a TSIG
// algorithm given as hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384
// or hmac-sha512, in any case, with or without the trailing dot; empty
// means hmac-sha256. hmac-md5 is refused: it is deprecated and not
// supported by miekg/dns.
func TSIGAlgorithm(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if n == "" {
		return dns.HmacSHA256, nil
	}
	if alg, ok := tsigAlgorithms[n]; ok {
		return alg, nil
	}
	return "", fmt.Errorf("unknown TSIG algorithm %q: use hmac-sha256 (default), hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1", oneLine(name, 40))
}

const maxSecretFile = 64 << 10

// LoadTSIGSecret reads a TSIG secret from a file and returns it in
// base64, ready for RFC2136.Secret. The file holds the secret alone
// (as printed by "tsig-keygen" or "keymgr -t" after "secret"), a BIND
// key clause, or a Knot "key:" section, each with exactly one secret.
// Every error is one line and never shows the file's content.
func LoadTSIGSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read TSIG secret file %s: %v", path, pathErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("cannot read TSIG secret file %s: %v", path, pathErr(err))
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("TSIG secret file %s is too large to hold a key", path)
	}
	secret, err := ParseTSIGSecret(data)
	if err != nil {
		return "", fmt.Errorf("TSIG secret file %s: %w", path, err)
	}
	return secret, nil
}

func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

var secretRE = regexp.MustCompile(`(?m)(?:^|[\s{;])secret(?:\s*:\s*|\s+)"?([^"\s;]*)`)

// ParseTSIGSecret extracts the base64 TSIG secret from the content of a
// secret file (see LoadTSIGSecret) and returns it in canonical, padded
// base64. The error never quotes the content.
func ParseTSIGSecret(data []byte) (string, error) {
	text := strings.TrimSpace(string(data))
	if text == "" {
		return "", errors.New("empty: it should hold the base64 secret")
	}
	candidate := text
	if m := secretRE.FindAllStringSubmatch(text, -1); len(m) > 0 {
		if len(m) > 1 {
			return "", fmt.Errorf("holds %d secrets: give a file with one key", len(m))
		}
		candidate = m[0][1]
	}
	secret, err := decodeSecret(candidate)
	if err != nil {
		return "", err
	}
	return secret, nil
}

// decodeSecret checks that s is base64 (padded or not) and returns it
// padded.
func decodeSecret(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty: it should hold the base64 secret")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return "", errors.New("not base64: it should hold the secret as tsig-keygen or keymgr print it")
	}
	if len(b) == 0 {
		return "", errors.New("empty: it should hold the base64 secret")
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// oneLine shortens s to at most n bytes on one line, for quoting
// operator input in messages.
func oneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "..."
	}
	return s
}
