package testdns

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/dnsupdate"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// Zone is a zone for StartKnot to serve.
type Zone struct {
	// Name is the zone's apex, e.g. "example.org" (a trailing dot is
	// optional).
	Name string
	// Records are more records in zone-file syntax, with $ORIGIN the
	// apex and $TTL 60. The zone always has its SOA, "@ NS ns1" and
	// "ns1 A 127.0.0.1".
	Records string
	// Updatable lets the harness's TSIG key update the zone. Without it
	// the zone has no update ACL, and Knot answers an update signed with
	// the key with NOTAUTH/BADKEY.
	Updatable bool
	// UpdateTypes, when Updatable, restricts updates to these record
	// types (Knot's acl update-type), e.g. []string{"A"}.
	UpdateTypes []string
	// Signed has knotd sign the zone itself (dnssec-signing: on, an
	// ECDSA P-256 KSK and ZSK, NSEC) and re-sign it after every update;
	// its trust anchor is then in Knot.Anchors.
	Signed bool
}

// KnotOptions configures StartKnot.
type KnotOptions struct {
	// Zones are the zones to serve; at least one.
	Zones []Zone
	// KeyName is the TSIG key's name: "xmppcert-update." when empty. The
	// key's algorithm is hmac-sha256 and its secret random.
	KeyName string
}

// Knot is a running knotd, authoritative for the zones it was started
// with, over UDP and TCP on 127.0.0.1.
type Knot struct {
	// Addr is where knotd answers: "127.0.0.1:PORT".
	Addr string
	// KeyName, Algorithm and Secret are the TSIG key that may update
	// the Updatable zones (name fully qualified, Secret in base64).
	KeyName, Algorithm, Secret string
	// Dir holds the configuration, zone files, key store and journal.
	Dir string
	// Zones are the zones served (as given, names fully qualified and
	// lower case).
	Zones []Zone
	// Anchors holds the trust anchor of each Signed zone, by zone name
	// (fully qualified, lower case).
	Anchors map[string]Anchor

	log *testtool.LockedBuffer
}

// Anchor is the trust anchor of a zone that knotd signs: its key-signing
// keys (DNSKEY records with the SEP flag) as knotd serves them, and
// their DS records (SHA-256). A validator that trusts it validates the
// zone without a chain from the root.
type Anchor struct {
	// Zone is the zone's name, fully qualified.
	Zone string
	// DNSKEY are the zone's key-signing keys.
	DNSKEY []*dns.DNSKEY
	// DS are the DS records of the keys in DNSKEY, digest SHA-256.
	DS []*dns.DS
}

// String returns the DS records in zone-file syntax, one per line: the
// form of Unbound's trust-anchor-file and of ldns-dane's -k keyfile.
func (a Anchor) String() string {
	var b strings.Builder
	for _, ds := range a.DS {
		b.WriteString(ds.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteFile writes String to a new file in a temporary directory of the
// test and returns its path (for ldns-dane -k and the like).
func (a Anchor) WriteFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), strings.TrimSuffix(a.Zone, ".")+".anchor")
	if err := os.WriteFile(path, []byte(a.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// StartKnot starts knotd with a fresh configuration, zone files and
// databases in a temporary directory, on a free port of 127.0.0.1, and
// waits until it answers for every zone over UDP and TCP (and, for
// signed zones, serves signed DNSKEY records). knotd stops when the test
// ends; its log is printed when the test failed.
func StartKnot(t testing.TB, opts KnotOptions) *Knot {
	t.Helper()
	knotd := testtool.Require(t, "knotd", "knot")
	if len(opts.Zones) == 0 {
		t.Fatal("testdns.StartKnot: no zones")
	}
	dir := shortTempDir(t, "knot")
	for _, d := range []string{"run", "zones", "db"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	k := &Knot{
		KeyName:   dns.CanonicalName(opts.KeyName),
		Algorithm: "hmac-sha256",
		Secret:    base64.StdEncoding.EncodeToString(secret),
		Dir:       dir,
		Anchors:   map[string]Anchor{},
	}
	if opts.KeyName == "" {
		k.KeyName = "xmppcert-update."
	}
	for _, z := range opts.Zones {
		z.Name = dns.CanonicalName(z.Name)
		if _, ok := dns.IsDomainName(z.Name); !ok || z.Name == "." {
			t.Fatalf("testdns.StartKnot: zone %q is not a domain name", z.Name)
		}
		k.Zones = append(k.Zones, z)
		content := fmt.Sprintf("$ORIGIN %s\n$TTL 60\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n%s\n", z.Name, z.Records)
		if err := os.WriteFile(filepath.Join(dir, "zones", z.Name+"zone"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		k.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		confPath := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(confPath, []byte(k.config(port)), 0o600); err != nil {
			t.Fatal(err)
		}
		k.log = &testtool.LockedBuffer{}
		p, err := startProcess(k.log, knotd, "-c", confPath)
		if err != nil {
			t.Fatalf("starting knotd: %v", err)
		}
		if lastErr = p.waitReady("knotd", k.ready); lastErr == nil {
			t.Cleanup(func() {
				p.stop()
				if t.Failed() {
					t.Logf("knotd log:\n%s", k.log.String())
				}
			})
			return k
		}
		p.stop()
		// A fresh key store: a failed start may have left keys behind
		// that the anchors would then disagree with.
		os.RemoveAll(filepath.Join(dir, "db"))
		os.Mkdir(filepath.Join(dir, "db"), 0o700)
		clear(k.Anchors)
	}
	t.Fatalf("knotd did not start: %v\n%s", lastErr, k.log.String())
	return nil
}

// config is knotd's configuration for listening on port.
func (k *Knot) config(port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    rundir: "%[1]s/run"
    listen: 127.0.0.1@%[2]d
    background-workers: 1
    udp-workers: 2
    tcp-workers: 2
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s/db"
key:
  - id: %[3]s
    algorithm: %[4]s
    secret: %[5]s
policy:
  - id: testdns
    algorithm: ecdsap256sha256
    nsec3: off
    dnskey-ttl: 60
    zone-max-ttl: 60
template:
  - id: default
    storage: "%[1]s/zones"
    file: "%%s.zone"
`, k.Dir, port, k.KeyName, k.Algorithm, k.Secret)
	b.WriteString("acl:\n")
	for i, z := range k.Zones {
		if !z.Updatable {
			continue
		}
		fmt.Fprintf(&b, "  - id: update%d\n    key: %s\n    action: update\n", i, k.KeyName)
		if len(z.UpdateTypes) > 0 {
			fmt.Fprintf(&b, "    update-type: [%s]\n", strings.Join(z.UpdateTypes, ", "))
		}
	}
	b.WriteString("zone:\n")
	for i, z := range k.Zones {
		fmt.Fprintf(&b, "  - domain: %s\n", z.Name)
		if z.Updatable {
			fmt.Fprintf(&b, "    acl: update%d\n", i)
		}
		if z.Signed {
			b.WriteString("    dnssec-signing: on\n    dnssec-policy: testdns\n")
		}
	}
	return b.String()
}

// ready checks that knotd answers the SOA of every zone over UDP and TCP
// and, for signed zones, serves DNSKEY records with signatures; it then
// records the signed zones' trust anchors.
func (k *Knot) ready() error {
	for _, network := range []string{"udp", "tcp"} {
		for _, z := range k.Zones {
			m := new(dns.Msg)
			m.SetQuestion(z.Name, dns.TypeSOA)
			m.RecursionDesired = false
			c := &dns.Client{Net: network, Timeout: time.Second}
			r, _, err := c.Exchange(m, k.Addr)
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				return fmt.Errorf("SOA %s: %s", z.Name, dns.RcodeToString[r.Rcode])
			}
		}
	}
	for _, z := range k.Zones {
		if !z.Signed {
			continue
		}
		a, err := k.anchor(z.Name)
		if err != nil {
			return err
		}
		k.Anchors[z.Name] = a
	}
	return nil
}

// anchor queries zone's DNSKEY RRset and returns its key-signing keys
// and their DS records, once the RRset is there and signed.
func (k *Knot) anchor(zone string) (Anchor, error) {
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeDNSKEY)
	m.RecursionDesired = false
	m.SetEdns0(4096, true)
	c := &dns.Client{Net: "tcp", Timeout: time.Second}
	r, _, err := c.Exchange(m, k.Addr)
	if err != nil {
		return Anchor{}, err
	}
	a := Anchor{Zone: zone}
	signed := false
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.DNSKEY:
			if rr.Flags&dns.SEP != 0 {
				a.DNSKEY = append(a.DNSKEY, rr)
				ds := rr.ToDS(dns.SHA256)
				if ds == nil {
					return Anchor{}, fmt.Errorf("DNSKEY of %s: cannot make its DS", zone)
				}
				a.DS = append(a.DS, ds)
			}
		case *dns.RRSIG:
			if rr.TypeCovered == dns.TypeDNSKEY {
				signed = true
			}
		}
	}
	if len(a.DNSKEY) == 0 || !signed {
		return Anchor{}, fmt.Errorf("%s is not signed yet (no signed DNSKEY with the SEP flag)", zone)
	}
	return a, nil
}

// Log returns knotd's log so far.
func (k *Knot) Log() string { return k.log.String() }

// Client returns a dynamic-update client for knotd with the harness's
// TSIG key.
func (k *Knot) Client() *dnsupdate.Client {
	return &dnsupdate.Client{Server: k.Addr, KeyName: k.KeyName, Algorithm: k.Algorithm, Secret: k.Secret, Timeout: 5 * time.Second}
}

// Records returns the records of type qtype at name, asked straight
// from knotd over TCP (no cache in between); the answer must be
// authoritative.
func (k *Knot) Records(t testing.TB, name string, qtype uint16) []dns.RR {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, k.Addr)
	if err != nil {
		t.Fatalf("%s %s: %v", dns.TypeToString[qtype], name, err)
	}
	if !r.Authoritative {
		t.Fatalf("%s %s: answer from %s is not authoritative (%s)", dns.TypeToString[qtype], name, k.Addr, dns.RcodeToString[r.Rcode])
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, dns.Fqdn(name)) {
			out = append(out, rr)
		}
	}
	return out
}

// TXT returns the TXT values at name, straight from knotd.
func (k *Knot) TXT(t testing.TB, name string) []string {
	t.Helper()
	var out []string
	for _, rr := range k.Records(t, name, dns.TypeTXT) {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out
}

// KdigTXT returns the TXT values at name as Knot's own kdig sees them:
// a second opinion that does not share our DNS library.
func (k *Knot) KdigTXT(t testing.TB, name string) []string {
	t.Helper()
	var vals []string
	for _, l := range k.Kdig(t, name, "TXT") {
		v, err := strconv.Unquote(l)
		if err != nil {
			t.Fatalf("kdig printed %q", l)
		}
		vals = append(vals, v)
	}
	return vals
}

// Kdig returns the records of type qtype at name as kdig +short prints
// them, one per line, asking knotd directly.
func (k *Knot) Kdig(t testing.TB, name, qtype string) []string {
	t.Helper()
	kdig := testtool.Require(t, "kdig", "knot-dnsutils")
	host, port, _ := net.SplitHostPort(k.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kdig, "@"+host, "-p", port, "+short", "+norecurse", name, qtype).CombinedOutput()
	if err != nil {
		t.Fatalf("kdig: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// BreakAnchor replaces the trust anchor of zone in o with a DS that
// matches none of its keys: a validator then finds the zone bogus (every
// answer SERVFAIL, and answered with checking disabled).
func (o UnboundOptions) BreakAnchor(zone string) UnboundOptions {
	for i, a := range o.Anchors {
		if a.Zone == dns.CanonicalName(zone) {
			ds := *a.DS[0]
			ds.Digest = strings.Repeat("00", 32)
			o.Anchors[i] = Anchor{Zone: a.Zone, DS: []*dns.DS{&ds}}
		}
	}
	return o
}

// UnboundOptions returns options for StartUnbound that send every zone
// of k to knotd and trust the signed zones' anchors.
func (k *Knot) UnboundOptions() UnboundOptions {
	o := UnboundOptions{Stubs: map[string]string{}}
	for _, z := range k.Zones {
		o.Stubs[z.Name] = k.Addr
	}
	names := make([]string, 0, len(k.Anchors))
	for name := range k.Anchors {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		o.Anchors = append(o.Anchors, k.Anchors[name])
	}
	return o
}
