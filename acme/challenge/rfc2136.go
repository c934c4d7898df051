package challenge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/dnsupdate"
)

const (
	defaultTXTTTL        = 60 * time.Second
	defaultUpdateTimeout = dnsupdate.DefaultTimeout
)

// RFC2136 solves dns-01 by DNS dynamic update (RFC 2136) signed with a
// TSIG key (RFC 8945): Present adds the TXT record
// _acme-challenge.NAME. with the challenge's value, CleanUp deletes
// exactly that record (other TXT records at the name stay), and Wait
// polls Server (and Propagation's servers) until the record is visible.
// The update itself (key, zone lookup, messages) is internal/dnsupdate's,
// which TLSA publishing shares.
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
	if err := s.client().Validate(); err != nil {
		return fmt.Errorf("dns-01 %w", err)
	}
	if s.Zone != "" {
		if _, ok := dns.IsDomainName(s.Zone); !ok {
			return fmt.Errorf("dns-01 RFC 2136 zone %q is not a domain name", s.Zone)
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

// CheckAccess asks Server, with the key, to delete a TXT value nobody
// publishes at domain's challenge name (_acme-challenge.DOMAIN): a no-op
// that a server accepts only from a key allowed to update that zone.
// The pre-flight runs it before an order, so that a key the server
// refuses is found before the CA's rate limit is spent. Its error is the
// *dnsupdate.UpdateError of the refusal, or the zone lookup's.
func (s *RFC2136) CheckAccess(ctx context.Context, domain string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	return s.update(ctx, "_acme-challenge."+dns.Fqdn(strings.TrimPrefix(domain, "*.")), "xmppcert-preflight-"+rand.Text(), false)
}

// Wait polls Server, then Propagation's servers, until each answers the
// TXT query with the challenge's value, or Propagation.Timeout passes.
func (s *RFC2136) Wait(ctx context.Context, chal acme.Challenge) error {
	fqdn, value, err := dnsRecord(chal)
	if err != nil {
		return err
	}
	server, err := dnsupdate.HostPort(s.Server)
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

// client is the dynamic-update client for Server and the key.
func (s *RFC2136) client() *dnsupdate.Client {
	return &dnsupdate.Client{Server: s.Server, KeyName: s.KeyName, Algorithm: s.Algorithm, Secret: s.Secret, Timeout: s.timeout()}
}

// zoneFor returns the zone to update for fqdn: Zone, or the one Server
// holds it in.
func (s *RFC2136) zoneFor(ctx context.Context, c *dnsupdate.Client, fqdn string) (string, error) {
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
	zone, err := c.Zone(ctx, fqdn)
	if err != nil {
		return "", zoneErr(err)
	}
	s.mu.Lock()
	if s.zones == nil {
		s.zones = make(map[string]string)
	}
	s.zones[fqdn] = zone
	s.mu.Unlock()
	return zone, nil
}

// zoneErr says what a failed zone lookup means for dns-01.
func zoneErr(err error) error {
	var ce *dnsupdate.CNAMEError
	if errors.As(err, &ce) {
		return fmt.Errorf("dns-01: %s is a CNAME to %s; dns-01 through a CNAME is not supported: remove the CNAME or update the target's zone yourself (DNS hook)", ce.Name, ce.Target)
	}
	return fmt.Errorf("dns-01: %w", err)
}

// update adds (or deletes) the TXT record fqdn with value.
func (s *RFC2136) update(ctx context.Context, fqdn, value string, add bool) error {
	c := s.client()
	if err := c.Validate(); err != nil {
		return fmt.Errorf("dns-01 %w", err)
	}
	zone, err := s.zoneFor(ctx, c, fqdn)
	if err != nil {
		return err
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = defaultTXTTTL
	}
	rr := []dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: fqdn, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: uint32(ttl / time.Second)},
		Txt: []string{value},
	}}
	verb := "adding"
	if add {
		err = c.Update(ctx, zone, rr, nil)
	} else {
		verb = "deleting"
		err = c.Update(ctx, zone, nil, rr)
	}
	var ue *dnsupdate.UpdateError
	if errors.As(err, &ue) {
		ue.What = fmt.Sprintf("dns-01: %s TXT %s", verb, fqdn)
	}
	return err
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

// TSIGAlgorithm returns the wire name (e.g. "hmac-sha256.") of a TSIG
// algorithm given as hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384
// or hmac-sha512, in any case, with or without the trailing dot; empty
// means hmac-sha256. It is dnsupdate.TSIGAlgorithm, kept here for the
// solver's users.
func TSIGAlgorithm(name string) (string, error) { return dnsupdate.TSIGAlgorithm(name) }

// LoadTSIGSecret reads a TSIG secret from a file and returns it in
// base64, ready for RFC2136.Secret. The file holds the secret alone
// (as printed by "tsig-keygen" or "keymgr -t" after "secret"), a BIND
// key clause, or a Knot "key:" section, each with exactly one secret.
// Every error is one line and never shows the file's content. It is
// dnsupdate.LoadTSIGSecret, kept here for the solver's users.
func LoadTSIGSecret(path string) (string, error) { return dnsupdate.LoadTSIGSecret(path) }

// ParseTSIGSecret extracts the base64 TSIG secret from the content of a
// secret file (see LoadTSIGSecret) and returns it in canonical, padded
// base64. The error never quotes the content. It is
// dnsupdate.ParseTSIGSecret, kept here for the solver's users.
func ParseTSIGSecret(data []byte) (string, error) { return dnsupdate.ParseTSIGSecret(data) }

// pathErr drops the operation and path from an *os.PathError: the
// messages name the file themselves.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
