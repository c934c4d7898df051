// Package dnsupdate changes records in a DNS zone by dynamic update
// (RFC 2136) signed with a TSIG key (RFC 8945), the standard way to let
// a program change a zone on BIND, Knot, PowerDNS and friends.
//
// xmppcert needs it twice: the dns-01 ACME challenge adds and deletes a
// TXT record (acme/challenge), and pinning publishes DANE TLSA records
// and rolls them over. Both share one Client, so that the key handling,
// the zone lookup and the error messages (one line, naming the server,
// the zone and the key, and saying what to check) are the same.
//
// A Client talks to one primary server. Zone finds the zone that holds a
// name, Query reads an RRset from the primary, and Update sends one
// UPDATE message that deletes and adds records together: the server
// applies it atomically, so a reader never sees the zone between the
// two.
package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds each exchange of a Client whose Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Client sends dynamic updates and queries to a zone's primary server.
// The zero value is not usable: Server is required. A Client holds no
// state, so it is safe for concurrent use and may be copied.
//
// On the server, the key needs the right to update the zone, e.g. for
// Knot DNS an acl with "action: update" and the key, for BIND an
// "update-policy { grant KEY name NAME TYPE; };".
type Client struct {
	// Server is the primary server that accepts updates, as "host",
	// "host:port", "ipv6" or "[ipv6]:port" (port 53 when absent).
	Server string
	// KeyName is the TSIG key's name as configured on the server. Empty
	// means unsigned messages (for servers that allow updates by
	// address).
	KeyName string
	// Algorithm is the TSIG algorithm: hmac-sha256 when empty; see
	// TSIGAlgorithm for the others.
	Algorithm string
	// Secret is the TSIG secret in base64 (LoadTSIGSecret reads it from
	// a file).
	Secret string
	// Timeout bounds each exchange with Server (a zone lookup may take
	// several): DefaultTimeout when zero.
	Timeout time.Duration
}

// Validate checks the configuration without touching the network: the
// server address, the algorithm and the key (name and secret together).
// Run it when the configuration is read, so that a typo is reported
// before the first update is due.
func (c *Client) Validate() error {
	if _, err := HostPort(c.Server); err != nil {
		return fmt.Errorf("RFC 2136 server: %w", err)
	}
	if _, err := TSIGAlgorithm(c.Algorithm); err != nil {
		return err
	}
	switch {
	case c.KeyName == "" && c.Secret != "":
		return errors.New("RFC 2136: a TSIG secret without a key name")
	case c.KeyName != "":
		if _, ok := dns.IsDomainName(c.KeyName); !ok {
			return fmt.Errorf("TSIG key name %q is not a domain name", c.KeyName)
		}
		if c.Secret == "" {
			return fmt.Errorf("TSIG key %s has no secret", c.KeyName)
		}
		if _, err := decodeSecret(c.Secret); err != nil {
			return fmt.Errorf("TSIG secret of key %s: %w", c.KeyName, err)
		}
	}
	return nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c *Client) server() (string, error) {
	s, err := HostPort(c.Server)
	if err != nil {
		return "", fmt.Errorf("RFC 2136 server: %w", err)
	}
	return s, nil
}

// key returns the TSIG key, or nil for unsigned messages.
func (c *Client) key() (*tsigKey, error) {
	if c.KeyName == "" {
		return nil, nil
	}
	alg, err := TSIGAlgorithm(c.Algorithm)
	if err != nil {
		return nil, err
	}
	secret, err := decodeSecret(c.Secret)
	if err != nil {
		return nil, fmt.Errorf("TSIG secret of key %s: %w", c.KeyName, err)
	}
	return &tsigKey{name: dns.CanonicalName(c.KeyName), alg: alg, secret: secret}, nil
}

// keyDesc names the key in messages.
func keyDesc(keyName string) string {
	if keyName == "" {
		return "the TSIG key"
	}
	return "TSIG key " + strings.TrimSuffix(keyName, ".")
}

// Zone returns the zone (fully qualified, lower case) that holds fqdn on
// Server, found by asking Server for the SOA of fqdn: the zone to pass
// to Update. A name that is a CNAME gives a *CNAMEError: records cannot
// be added beside a CNAME.
func (c *Client) Zone(ctx context.Context, fqdn string) (string, error) {
	server, err := c.server()
	if err != nil {
		return "", err
	}
	return FindZone(ctx, server, fqdn, false, c.timeout())
}

// Query asks Server over TCP, without recursion, for the records of
// type qtype at name, and returns those of the answer that are at name
// itself (a CNAME is not followed). It reads what the primary holds
// right now, not what caches or secondaries hold: the base for deciding
// what an update must change. A name that does not exist gives no
// records and no error; an answer that is not authoritative is an error
// (Server is not the zone's primary).
//
// The query is not signed with the key: a primary answers anyone's
// queries, and Knot refuses (NOTAUTH/BADKEY) a query signed with a key
// that the zone's ACL does not name, even where updates are allowed by
// another rule.
func (c *Client) Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	server, err := c.server()
	if err != nil {
		return nil, err
	}
	name = dns.CanonicalName(name)
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, fmt.Errorf("querying %q: not a domain name", name)
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	r, err := exchange(ctx, m, server, c.timeout(), nil, "tcp")
	what := fmt.Sprintf("querying %s %s on %s", typeName(qtype), name, server)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	switch r.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	case dns.RcodeRefused, dns.RcodeNotAuth:
		return nil, fmt.Errorf("%s: refused (%s): the server does not serve a zone holding %s: check the server address", what, RcodeName(r.Rcode), name)
	default:
		return nil, fmt.Errorf("%s: the server answered %s", what, RcodeName(r.Rcode))
	}
	if !r.Authoritative {
		return nil, fmt.Errorf("%s: the answer is not authoritative: give the zone's primary server, not a resolver", what)
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		h := rr.Header()
		if h.Rrtype == qtype && strings.EqualFold(h.Name, name) {
			out = append(out, rr)
		}
	}
	return out, nil
}

// Update sends one UPDATE message for zone to Server: it deletes each
// record of remove (that exact record: name, type and data; other
// records of the RRset stay) and then adds each record of insert, with
// the TTL it carries. The server applies the whole message or none of
// it, so a record that is removed and another that is added at the same
// name change together. Deleting a record that is not there and adding
// one that is are no errors. The records are copied; the caller's are
// not changed. With nothing to insert or remove nothing is sent.
//
// An error from the server, the network or a bad answer signature is an
// *UpdateError, whose message names the server, zone and key and says
// what to check.
func (c *Client) Update(ctx context.Context, zone string, insert, remove []dns.RR) error {
	server, err := c.server()
	if err != nil {
		return err
	}
	key, err := c.key()
	if err != nil {
		return err
	}
	if _, ok := dns.IsDomainName(zone); !ok || zone == "" {
		return fmt.Errorf("RFC 2136: zone %q is not a domain name", zone)
	}
	zone = dns.CanonicalName(zone)
	if len(insert)+len(remove) == 0 {
		return nil
	}
	ue := &UpdateError{Server: server, Zone: zone, KeyName: c.KeyName, Rcode: -1}
	for _, rr := range slices.Concat(remove, insert) {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if !slices.Contains(ue.Names, name) {
			ue.Names = append(ue.Names, name)
		}
		if t := typeName(h.Rrtype); !slices.Contains(ue.Types, t) {
			ue.Types = append(ue.Types, t)
		}
	}
	for _, name := range ue.Names {
		if !dns.IsSubDomain(zone, name) {
			ue.Err = fmt.Errorf("%s is not inside zone %s: nothing sent; check the zone", name, zone)
			return ue
		}
	}

	m := new(dns.Msg)
	m.SetUpdate(zone)
	for _, rr := range remove {
		rr = dns.Copy(rr)
		h := rr.Header()
		h.Name = dns.CanonicalName(h.Name)
		h.Class = dns.ClassNONE
		h.Ttl = 0
		m.Ns = append(m.Ns, rr)
	}
	for _, rr := range insert {
		rr = dns.Copy(rr)
		h := rr.Header()
		h.Name = dns.CanonicalName(h.Name)
		h.Class = dns.ClassINET
		m.Ns = append(m.Ns, rr)
	}
	networks := []string{"udp", "tcp"}
	if m.Len() > dns.MinMsgSize {
		networks = []string{"tcp"}
	}
	r, err := exchange(ctx, m, server, c.timeout(), key, networks...)
	if r == nil {
		ue.Err = err
		return ue
	}
	ue.Rcode = r.Rcode
	if t := r.IsTsig(); t != nil {
		ue.TSIGError = int(t.Error)
	}
	ue.Err = err
	if ue.Rcode == dns.RcodeSuccess && ue.TSIGError == 0 && ue.Err == nil {
		return nil
	}
	return ue
}

// UpdateError is an update that the server refused, that did not reach
// it, or whose answer could not be trusted. It carries the facts, so a
// caller can tell a refusal (fix the key or the ACL) from a network
// error (try again); its message names them and what to check.
type UpdateError struct {
	// What describes the update for the message: "updating TYPE NAME"
	// unless the caller sets it (e.g. "dns-01: adding TXT NAME").
	What string
	// Server is the address the update went to (host:port).
	Server string
	// Zone is the zone updated (fully qualified).
	Zone string
	// KeyName is the TSIG key's name, "" for an unsigned update.
	KeyName string
	// Names and Types are the owner names and record types the update
	// touched, in the order they first appear.
	Names, Types []string
	// Rcode is the answer's response code, -1 when there was no
	// answer.
	Rcode int
	// TSIGError is the TSIG error of the answer (dns.RcodeBadSig,
	// dns.RcodeBadKey, dns.RcodeBadTime), 0 when none.
	TSIGError int
	// Err is the network error when there was no answer, or the reason
	// the answer's signature did not verify.
	Err error
}

// Error is one line: what was updated, in which zone on which server,
// and Reason.
func (e *UpdateError) Error() string {
	return fmt.Sprintf("%s in zone %s on %s: %s", e.what(), e.Zone, e.Server, e.Reason())
}

// Unwrap returns Err.
func (e *UpdateError) Unwrap() error { return e.Err }

// Refused reports whether the server answered and did not apply the
// update (a wrong key, an ACL, a zone it does not serve): retrying the
// same update will not help.
func (e *UpdateError) Refused() bool {
	return e.Rcode > 0 || e.TSIGError != 0
}

func (e *UpdateError) what() string {
	if e.What != "" {
		return e.What
	}
	return "updating " + strings.Join(e.Types, "/") + " " + e.names()
}

// names lists the owner names for a message, at most three.
func (e *UpdateError) names() string {
	switch n := len(e.Names); {
	case n == 0:
		return "(no records)"
	case n <= 3:
		return strings.Join(e.Names, ", ")
	default:
		return fmt.Sprintf("%s and %d more names", strings.Join(e.Names[:2], ", "), n-2)
	}
}

// Reason says, in one line, why the update failed (with the response
// code) and what to check.
func (e *UpdateError) Reason() string {
	if e.Rcode < 0 {
		if e.Err == nil {
			return "no answer"
		}
		return e.Err.Error()
	}
	keyDesc := keyDesc(e.KeyName)
	if p := tsigError(e.Rcode, e.TSIGError, e.KeyName, e.Zone); p != "" {
		return p
	}
	switch e.Rcode {
	case dns.RcodeSuccess:
		if e.Err != nil {
			return fmt.Sprintf("the answer's TSIG signature does not verify (%v): check the secret of %s", e.Err, keyDesc)
		}
		return "succeeded"
	case dns.RcodeRefused:
		return fmt.Sprintf("refused (REFUSED): check that the server is the primary for zone %s and that its ACL lets %s update it, %s records at %s included", e.Zone, keyDesc, strings.Join(e.Types, "/"), e.names())
	case dns.RcodeNotAuth:
		if e.KeyName == "" {
			return fmt.Sprintf("refused (NOTAUTH): the server is not authoritative for zone %s or wants a TSIG key: check the zone and the key", e.Zone)
		}
		return fmt.Sprintf("refused (NOTAUTH): the server is not authoritative for zone %s or rejects %s: check the zone, the key name, algorithm and secret", e.Zone, keyDesc)
	case dns.RcodeNotZone:
		return fmt.Sprintf("refused (NOTZONE): %s is not inside zone %s: check the zone", e.names(), e.Zone)
	case dns.RcodeServerFailure:
		return "the server failed (SERVFAIL): see its log"
	case dns.RcodeNotImplemented:
		return "the server does not implement dynamic update (NOTIMP)"
	default:
		return "the server answered " + RcodeName(e.Rcode)
	}
}

// tsigError describes a TSIG error the server answered an update with,
// or returns "" for none.
func tsigError(rcode, tsigErr int, keyName, zone string) string {
	kd := keyDesc(keyName)
	switch tsigErr {
	case dns.RcodeBadSig:
		return fmt.Sprintf("refused (%s/BADSIG): the server does not accept the signature: check the secret of %s", RcodeName(rcode), kd)
	case dns.RcodeBadKey:
		return fmt.Sprintf("refused (%s/BADKEY): the server does not know %s with this algorithm, or its update ACL for zone %s does not name the key: check the key name and algorithm and the zone's update ACL", RcodeName(rcode), kd, zone)
	case dns.RcodeBadTime:
		return fmt.Sprintf("refused (%s/BADTIME): this host's clock and the server's differ by more than 5 minutes: check NTP", RcodeName(rcode))
	}
	return ""
}

// CNAMEError is a name that is a CNAME, found while looking for its
// zone: no other record can be added beside a CNAME, so the update
// belongs in the target's zone.
type CNAMEError struct {
	// Name is the name looked up; Target is the CNAME's target.
	Name, Target string
}

// Error says what the name is and what to do.
func (e *CNAMEError) Error() string {
	return fmt.Sprintf("%s is a CNAME to %s: records cannot be added beside a CNAME; update %s in its zone instead, or remove the CNAME", e.Name, e.Target, e.Target)
}

// FindZone finds the zone that holds fqdn by asking server for its SOA:
// the SOA comes back in the answer (fqdn is the apex) or in the
// authority section (a name inside the zone); a server that leaves the
// authority section out is asked again one label up. recursive sets the
// RD bit (server is a resolver) or clears it (an authoritative server).
// Each query is bounded by timeout. A CNAME at fqdn gives a *CNAMEError.
func FindZone(ctx context.Context, server, fqdn string, recursive bool, timeout time.Duration) (string, error) {
	fqdn = dns.Fqdn(fqdn)
	for name := fqdn; ; {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeSOA)
		m.RecursionDesired = recursive
		r, err := exchange(ctx, m, server, timeout, nil, "udp", "tcp")
		if err != nil {
			return "", fmt.Errorf("finding the zone of %s: SOA query to %s: %w", fqdn, server, err)
		}
		switch r.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
		case dns.RcodeRefused, dns.RcodeNotAuth:
			return "", fmt.Errorf("finding the zone of %s: %s answered the SOA query with %s: it does not serve a zone holding that name; check the server address or give the zone", fqdn, server, RcodeName(r.Rcode))
		default:
			return "", fmt.Errorf("finding the zone of %s: %s answered the SOA query with %s", fqdn, server, RcodeName(r.Rcode))
		}
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.SOA:
				if strings.EqualFold(rr.Hdr.Name, name) {
					return strings.ToLower(name), nil
				}
			case *dns.CNAME:
				if strings.EqualFold(rr.Hdr.Name, fqdn) {
					return "", &CNAMEError{Name: fqdn, Target: rr.Target}
				}
			}
		}
		for _, rr := range r.Ns {
			if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, fqdn) {
				return strings.ToLower(soa.Hdr.Name), nil
			}
		}
		if name == "." {
			return "", fmt.Errorf("finding the zone of %s: %s returned no SOA record for it", fqdn, server)
		}
		i, _ := dns.NextLabel(name, 0)
		name = name[i:]
		if name == "" {
			name = "."
		}
	}
}

// Exchange sends the unsigned message m to addr over UDP and retries
// over TCP when the answer is truncated; the exchange is bounded by
// timeout and ctx. Errors are short, one line ("timed out", "connection
// refused"), for messages that name the server themselves.
func Exchange(ctx context.Context, m *dns.Msg, addr string, timeout time.Duration) (*dns.Msg, error) {
	return exchange(ctx, m, addr, timeout, nil, "udp", "tcp")
}

// exchange sends m to addr over the first of networks and retries over
// the next when the answer is truncated. The query is bounded by timeout
// and ctx. With key the message is signed and the answer's signature
// checked; an answer whose signature does not verify is returned
// together with the error.
func exchange(ctx context.Context, m *dns.Msg, addr string, timeout time.Duration, key *tsigKey, networks ...string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r *dns.Msg
	var err error
	for _, network := range networks {
		c := &dns.Client{Net: network, Timeout: timeout}
		q := m.Copy()
		if key != nil {
			c.TsigSecret = map[string]string{key.name: key.secret}
			q.SetTsig(key.name, key.alg, 300, time.Now().Unix())
		}
		r, _, err = c.ExchangeContext(ctx, q, addr)
		if r != nil && r.Id != q.Id {
			r = nil
		}
		if err == nil && r != nil && r.Truncated {
			continue
		}
		break
	}
	if r == nil && err == nil {
		err = errors.New("no answer")
	}
	if err != nil && r == nil {
		return nil, shortNetErr(err)
	}
	return r, err
}

// shortNetErr drops the "read udp 127.0.0.1:1234->" noise from network
// errors so that messages stay one readable line.
func shortNetErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("timed out")
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// RcodeName names a DNS response code ("REFUSED"), or "RCODEn" for one
// without a name, for messages.
func RcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rc)
}

// typeName names a record type ("TLSA").
func typeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// HostPort turns a server address as operators write it ("host",
// "host:port", "ipv6" or "[ipv6]:port") into host:port, with port 53
// when absent. The error says what is wrong with the address.
func HostPort(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty server address")
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		if host == "" {
			return "", fmt.Errorf("server address %q has no host", s)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("server address %q has an invalid port", s)
		}
		return net.JoinHostPort(host, port), nil
	}
	if strings.ContainsAny(s, "[]/ ") || (strings.Contains(s, ":") && net.ParseIP(s) == nil) {
		return "", fmt.Errorf("server address %q is not host or host:port", s)
	}
	return net.JoinHostPort(s, "53"), nil
}
