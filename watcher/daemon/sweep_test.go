package daemon

import (
	"bufio"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// testIssuer signs whatever key it is given with a testpki CA.
type testIssuer struct{ ca *testpki.CA }

func (i testIssuer) Name() string { return "test CA" }

func (i testIssuer) Issue(_ context.Context, req acme.Request, key crypto.Signer) (*acme.Issued, error) {
	san, err := xmppaddr.SANExtension(req.XMPPNames(), false)
	if err != nil {
		return nil, err
	}
	tmpl := testpki.LeafTemplate()
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, san)
	der, err := x509.CreateCertificate(nil, tmpl, i.ca.Cert, key.Public(), i.ca.Key)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &acme.Issued{Chain: []*x509.Certificate{c}, Key: key, Issuer: i.Name()}, nil
}

// seen is an observation of domain's c2s endpoint presenting c.
func seen(c *x509.Certificate) watcher.Observation {
	sum := sha256.Sum256(c.Raw)
	return watcher.Observation{
		Endpoint:  watcher.EndpointKey{Domain: domain, Service: xmppaddr.ServiceClient, Host: domain, Port: 5222, Address: "127.0.0.1"},
		Reachable: true,
		Chain: []watcher.CertSummary{{SHA256: hex.EncodeToString(sum[:]), SPKISHA256: acme.SPKIDigest(c.PublicKey),
			Subject: c.Subject.String(), Issuer: c.Issuer.String(), NotAfter: c.NotAfter}},
	}
}

// TestRenewalToAnnouncedKey: a renewal moves the lineage to the next key
// its previous version announced. Once it is written, that key is the
// lineage's current key and a new next key is announced; the daemon must
// still know it was pre-announced, so that seeing it at the server is
// renewal-next-key (info), not "a key that was not pre-announced".
func TestRenewalToAnnouncedKey(t *testing.T) {
	state := t.TempDir()
	store := acme.DiskStore{Dir: state}
	req, err := acme.NewRequest(domain, xmppaddr.RoleHost, nil, acme.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	iss := testIssuer{testpki.NewRoot("Lineage Root", nil)}
	v1, err := acme.Obtain(context.Background(), store, iss, req)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := acme.Obtain(context.Background(), store, iss, req)
	if err != nil {
		t.Fatal(err)
	}
	if v2.KeyChoice != acme.KeyNext || !v2.Lineage.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(v1.Lineage.NextKey.Public()) {
		t.Fatalf("the renewal did not move to the announced next key (%s)", v2.KeyChoice)
	}

	cfg := &config.Config{StateDir: state, Hosts: []config.Host{{Domain: domain}}}
	d := &Daemon{log: slog.New(slog.DiscardHandler)}
	ctx := d.expectations(cfg)[domain]
	got := changes.Classify(new(seen(v1.Lineage.Chain[0])), seen(v2.Lineage.Chain[0]), ctx)
	if len(got) != 1 || got[0].Kind != changes.RenewalNextKey || got[0].Severity != changes.Info {
		t.Errorf("renewal to the announced key classified as %+v; want renewal-next-key (info) alone", got)
	}

	// A key nobody announced is still a surprise.
	stranger, _ := iss.ca.Leaf(nil)
	got = changes.Classify(new(seen(v2.Lineage.Chain[0])), seen(stranger), ctx)
	if len(got) == 0 || got[0].Kind != changes.KeyChanged {
		t.Errorf("an unannounced key classified as %+v; want key-changed", got)
	}
}

// TestSweepRoots: watch.trust_roots are added to Deps.Roots for the
// sweep, without changing Deps.Roots itself.
func TestSweepRoots(t *testing.T) {
	base, extra := testpki.NewRoot("Base Root", nil), testpki.NewRoot("Extra Root", nil)
	d := &Daemon{deps: Deps{Roots: base.Pool()}, log: slog.New(slog.DiscardHandler)}
	if got := d.roots(&config.Config{}); got != d.deps.Roots {
		t.Errorf("without trust_roots the sweep does not use Deps.Roots as it is")
	}
	pool := d.roots(&config.Config{Watch: config.Watch{TrustRoots: []*x509.Certificate{extra.Cert}}})
	for _, ca := range []*testpki.CA{base, extra} {
		leaf, _ := ca.Leaf(nil)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testpki.At}); err != nil {
			t.Errorf("a certificate from %s is not trusted: %v", ca.Cert.Subject.CommonName, err)
		}
	}
	leaf, _ := extra.Leaf(nil)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: d.deps.Roots, CurrentTime: testpki.At}); err == nil {
		t.Errorf("Deps.Roots gained the trust roots")
	}
}

// TestSweepFrom: s2s probes of our own hosts carry no stream from when
// watch.from is one of our names (our servers refuse a stream from a
// domain they serve); peers get watch.from.
func TestSweepFrom(t *testing.T) {
	dns := testdns.StartFake(t)
	for _, d := range []string{domain, "peer.example"} {
		dns.Add(t, fmt.Sprintf("_xmpp-server._tcp.%s. 60 IN SRV 0 0 5269 xmpp.%[1]s.", d), fmt.Sprintf("xmpp.%s. 60 IN A 127.0.0.1", d))
	}
	// Every connection lands here; the server reads the s2s stream
	// header and hangs up.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	headers := map[string]string{} // by to
	toRE := regexp.MustCompile(`\sto=['"]([^'"]+)['"]`)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					chunk, err := r.ReadString('>')
					if err != nil {
						return
					}
					if m := toRE.FindStringSubmatch(chunk); m != nil && strings.Contains(chunk, "jabber:server") {
						mu.Lock()
						headers[m[1]] = chunk
						mu.Unlock()
						return
					}
				}
			}()
		}
	}()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "xmppcert.toml"), []byte(fmt.Sprintf(`state_dir = %q
[[host]]
domain = %q
[watch]
timeout = "2s"
[[watch.peer]]
domain = "peer.example"
[http]
listen = "127.0.0.1:0"
`, filepath.Join(dir, "state"), domain)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Watch.From != domain {
		t.Fatalf("watch.from defaults to %q, want %s", cfg.Watch.From, domain)
	}
	d, err := New(cfg, Deps{
		Resolver: dns.Addr,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, ln.Addr().String())
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	if _, err := d.SweepOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	fromRE := regexp.MustCompile(`\sfrom=['"]([^'"]+)['"]`)
	for to, want := range map[string]string{domain: "", "peer.example": domain} {
		h, ok := headers[to]
		if !ok {
			t.Errorf("no s2s stream header to %s: %q", to, headers)
			continue
		}
		got := ""
		if m := fromRE.FindStringSubmatch(h); m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("the s2s stream to %s is from %q, want %q: %s", to, got, want, h)
		}
	}
}
