package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/testxmpp"
	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/web"
)

// Our domain and the peer's, for TestOurCertificateAtPeers.
const ours, peer = "ours.example", "peer.example"

// federation is one run of TestOurCertificateAtPeers: a state directory
// with our lineage, a daemon watching one s2s peer, and what it saw.
type federation struct {
	state, cfgFile string
	engine         *lifecycle.Engine
	peerCA         *testpki.CA
	logs           testtool.LockedBuffer
	d              *Daemon
}

// newFederation issues our lineage from the embedded CA (the daemon's
// own renewal run, with no peer configured yet).
func newFederation(t *testing.T) *federation {
	dir := t.TempDir()
	f := &federation{state: filepath.Join(dir, "state"), cfgFile: filepath.Join(dir, "xmppcert.toml"), peerCA: testpki.NewRoot("Peer Root", nil)}
	f.engine = lifecycle.OnDisk(f.state)
	f.configure(t, "127.0.0.1:1")
	d := f.daemon(t)
	if err := d.renew(context.Background()); err != nil {
		t.Fatalf("issuing %s: %v\n%s", ours, err, f.logs.String())
	}
	d.Close(context.Background())
	return f
}

func (f *federation) configure(t *testing.T, s2s string) {
	cfg := fmt.Sprintf("state_dir = %q\n[[host]]\ndomain = %q\n[watch]\nown_hosts = false\nfrom = %q\nfull_interval = \"never\"\n"+
		"[[watch.peer]]\ndomain = %q\nservice = \"xmpp-server\"\nconnect = %q\n", f.state, ours, ours, peer, s2s)
	if err := os.WriteFile(f.cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *federation) daemon(t *testing.T) *Daemon {
	cfg, err := config.Load(f.cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, Deps{Engine: f.engine, Roots: f.peerCA.Pool(), Logger: slog.New(slog.NewTextHandler(&f.logs, nil)), NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// watch points the daemon at the peer's s2s address.
func (f *federation) watch(t *testing.T, s2s string) {
	f.configure(t, s2s)
	f.d = f.daemon(t)
}

// sweep probes the peer and returns its endpoint as the API shows it.
func (f *federation) sweep(t *testing.T) web.EndpointStatus {
	t.Helper()
	if _, err := f.d.SweepOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	eps := endpoints(t, f.d.Handler())
	if len(eps) != 1 {
		t.Fatalf("%d endpoints, want the peer's s2s", len(eps))
	}
	e := eps[0]
	t.Logf("our certificate: %q (SASL EXTERNAL %q: %q)", e.OurCertificate, e.Latest.External, e.Latest.ExternalReason)
	return e
}

// caFile writes PEM certificates into a file the server is given.
func caFile(t *testing.T, certs ...*x509.Certificate) string {
	p := filepath.Join(t.TempDir(), "trusted.pem")
	if err := os.WriteFile(p, testpki.PEM(certs...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// embeddedRoot is the embedded CA's root certificate.
func (f *federation) embeddedRoot(t *testing.T) *x509.Certificate {
	pemBytes, err := localca.RootPEM(lifecycle.CADir(f.state))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		t.Fatalf("no PEM in the embedded CA's root: %q", pemBytes)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantLost checks the external-lost warning on the endpoint.
func wantLost(t *testing.T, e web.EndpointStatus) {
	t.Helper()
	for _, c := range e.Unacknowledged {
		if c.Kind == changes.ExternalLost {
			if c.Severity != changes.Warning || !strings.Contains(c.Text, "the peer no longer accepts our certificate") {
				t.Errorf("external-lost change %+v", c)
			}
			return
		}
	}
	t.Errorf("unacknowledged changes %+v; want an external-lost warning", e.Unacknowledged)
}

// TestOurCertificateAtPeers: the daemon presents our own lineage's
// certificate (watch.from's) to the s2s peers it watches and records what
// each does with it, against real servers that trust our CA and then,
// restarted, another one: a change from accepted is an external-lost
// warning ("the peer no longer accepts our certificate").
func TestOurCertificateAtPeers(t *testing.T) {
	// Prosody takes the embedded CA's certificate by SASL EXTERNAL, and
	// trusting another CA offers dialback only.
	t.Run("prosody", func(t *testing.T) {
		testtool.Require(t, "prosody", "prosody")
		f := newFederation(t)
		cert, key := testxmpp.IssueLeaf(t, f.peerCA, t.TempDir(), "peer", peer)
		p := testxmpp.StartProsody(t, testxmpp.ProsodyOptions{
			VirtualHosts:         []testxmpp.VirtualHost{{Domain: peer, CertFile: cert, KeyFile: key}},
			CAFile:               caFile(t, f.embeddedRoot(t)),
			S2SRequireEncryption: true,
		})
		f.watch(t, p.S2SAddr)
		if e := f.sweep(t); e.OurCertificate != watcher.OurCertAccepted {
			t.Fatalf("Prosody trusting our CA: our certificate %q; want accepted\n%s", e.OurCertificate, p.Log())
		}
		if err := os.WriteFile(p.Options.CAFile, testpki.PEM(testpki.NewRoot("Not Ours", nil).Cert), 0o644); err != nil {
			t.Fatal(err)
		}
		p.Restart(t)
		e := f.sweep(t)
		if e.OurCertificate != watcher.OurCertDialbackOnly {
			t.Fatalf("Prosody trusting another CA: our certificate %q; want dialback only\n%s", e.OurCertificate, p.Log())
		}
		wantLost(t, e)
	})

	// ejabberd 23.01 cannot take the embedded CA's certificate: its
	// check crashes on the XmppAddr (README, "what peers do"), and the
	// stream closes. A lineage from a public CA (DNS-IDs only) is
	// accepted by EXTERNAL, and refused once ejabberd trusts another CA.
	t.Run("ejabberd", func(t *testing.T) {
		testtool.Require(t, "ejabberdctl", "ejabberd")
		f := newFederation(t)
		public := testpki.NewRoot("A Public CA", nil)
		cert, key := testxmpp.IssueLeaf(t, f.peerCA, t.TempDir(), "peer", peer)
		e := testxmpp.StartEjabberd(t, testxmpp.EjabberdOptions{
			Hosts:          []testxmpp.EjabberdHost{{Domain: peer, CertFile: cert, KeyFile: key}},
			CAFile:         caFile(t, f.embeddedRoot(t), public.Cert),
			S2SUseStartTLS: "required",
		})
		f.watch(t, e.S2SAddr)
		ep := f.sweep(t)
		if ep.OurCertificate == watcher.OurCertAccepted || !strings.Contains(ep.Latest.ExternalReason, "closed the stream") {
			t.Fatalf("ejabberd with the embedded CA's certificate: our certificate %q (%q); want the stream closed by the crash\n%s", ep.OurCertificate, ep.Latest.ExternalReason, e.Log())
		}

		leaf, leafKey := public.Leaf(func(c *x509.Certificate) {
			c.Subject.CommonName = ours
			c.NotBefore, c.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour)
			c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS(ours)))
		})
		req, err := acme.NewRequest(ours, 0, nil, acme.KeyECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		next, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.engine.Store.Write(req, &acme.Issued{Chain: []*x509.Certificate{leaf}, Key: leafKey, Issuer: "A Public CA"}, next); err != nil {
			t.Fatal(err)
		}
		if ep := f.sweep(t); ep.OurCertificate != watcher.OurCertAccepted {
			t.Fatalf("ejabberd trusting the public CA: our certificate %q; want accepted\n%s", ep.OurCertificate, e.Log())
		}
		if err := os.WriteFile(e.Options.CAFile, testpki.PEM(testpki.NewRoot("Not Ours", nil).Cert), 0o644); err != nil {
			t.Fatal(err)
		}
		e.Restart(t)
		ep = f.sweep(t)
		if ep.OurCertificate != watcher.OurCertRefused || ep.Latest.ExternalReason == "" {
			t.Fatalf("ejabberd trusting another CA: our certificate %q (%q); want refused with its reason\n%s", ep.OurCertificate, ep.Latest.ExternalReason, e.Log())
		}
		wantLost(t, ep)
	})
}
