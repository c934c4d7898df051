package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/testetcd"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// TestHTTPSFront: with [http.https], the daemon obtains its own
// certificate from pebble through certmagic, by http-01 answered on its
// plain listener and, in a second run, by tls-alpn-01 answered on its
// HTTPS listener; it serves its POSH documents over that HTTPS, PKIX-valid
// against pebble's root and over HTTP/2, and certmagic renews the 30-second certificate
// while the test watches, each step counted in /metrics.
func TestHTTPSFront(t *testing.T) {
	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) { testHTTPSFront(t, challenge) })
	}
}

func testHTTPSFront(t *testing.T, challenge string) {
	httpPort, tlsPort := testtool.FreePort(t), testtool.FreePort(t)
	p := acmecatest.StartPebble(t, acmecatest.PebbleOptions{HTTPPort: httpPort, TLSPort: tlsPort,
		ExtraProfiles: map[string]time.Duration{"seconds": 30 * time.Second}})
	dir := t.TempDir()
	roots := filepath.Join(dir, "pebble-roots.pem")
	if err := os.WriteFile(roots, p.RootsPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(filepath.Join(dir, "xmppcert.toml"), []byte(fmt.Sprintf(`state_dir = %q
[[host]]
domain = "example.org"
[host.pins.posh]
expires = "1h"
[watch]
own_hosts = false
[http]
listen = "127.0.0.1:%d"
[http.https]
listen = "127.0.0.1:%d"
names = ["example.org"]
ca = %q
trust_root = %q
agree_tos = true
email = "admin@example.org"
challenges = [%q]
profile = "seconds"
`, filepath.Join(dir, "state"), httpPort, tlsPort, p.Directory, roots, challenge)))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var logs testtool.LockedBuffer
	d, err := New(cfg, Deps{Engine: lifecycle.OnDisk(cfg.StateDir), Registry: reg, HTTPSRenewCheck: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	runFront(t, d, &logs)
	events := func(event string) float64 {
		return testutil.ToFloat64(d.health.httpsEvents.WithLabelValues(event))
	}
	var lastErr error
	waitUntil := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %v; cert_failed %v; last error %v", what, within, events("cert_failed"), lastErr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil("certificate", 30*time.Second, func() bool { return events("cert_obtained") >= 1 })

	pebbleRoots := x509.NewCertPool()
	pebbleRoots.AddCert(p.IssuingRoot)
	// https://example.org/ as a peer fetches it, example.org being this
	// listener.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", tlsPort))
		},
		TLSClientConfig: &tls.Config{RootCAs: pebbleRoots}}}
	served := func() *x509.Certificate {
		t.Helper()
		var resp *http.Response
		waitUntil("POSH document", 30*time.Second, func() bool {
			var err error
			resp, err = client.Get("https://example.org/.well-known/posh/xmpp-server.json")
			lastErr = err
			if err == nil && resp.StatusCode != http.StatusOK {
				lastErr = fmt.Errorf("status %s", resp.Status)
				resp.Body.Close()
			}
			return lastErr == nil
		})
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if _, err := pinning.ParsePOSH(body); err != nil {
			t.Errorf("POSH over HTTPS: %v\n%s", err, body)
		}
		if resp.ProtoMajor != 2 {
			t.Errorf("served over %s; want HTTP/2, which browsers ask for", resp.Proto)
		}
		return resp.TLS.PeerCertificates[0]
	}
	first := served()
	if !strings.Contains(strings.Join(first.DNSNames, " "), "example.org") {
		t.Errorf("served certificate for %v", first.DNSNames)
	}
	// The certificate lives 30 seconds: certmagic renews it in pebble's
	// renewal window (ARI), before the last third of that.
	obtained := events("cert_obtained")
	waitUntil("renewal", 40*time.Second, func() bool { return events("cert_obtained") > obtained })
	waitUntil("the renewed certificate served", 10*time.Second, func() bool { return served().SerialNumber.Cmp(first.SerialNumber) != 0 })
	if !strings.Contains(logs.String(), "renewal=true") {
		t.Errorf("the renewal is not logged")
	}
}

// TestHTTPSFrontLocal: with ca = "local" the embedded CA signs the HTTPS
// front's certificate through certmagic, with no ACME order, no challenge
// and no terms to accept, and the POSH documents are served over it,
// valid against the embedded CA's root. The issuer signs only for the
// front's names.
func TestHTTPSFrontLocal(t *testing.T) {
	httpPort, tlsPort := testtool.FreePort(t), testtool.FreePort(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfg, err := config.Parse(filepath.Join(dir, "xmppcert.toml"), []byte(fmt.Sprintf(`state_dir = %q
[[host]]
domain = "example.org"
[host.pins.posh]
expires = "1h"
[watch]
own_hosts = false
[http]
listen = "127.0.0.1:%d"
[http.https]
listen = "127.0.0.1:%d"
names = ["example.org"]
ca = "local"
`, state, httpPort, tlsPort)))
	if err != nil {
		t.Fatal(err)
	}
	var logs testtool.LockedBuffer
	d, err := New(cfg, Deps{Engine: lifecycle.OnDisk(cfg.StateDir), Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	runFront(t, d, &logs)
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(d.health.httpsEvents.WithLabelValues("cert_obtained")) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from the embedded CA within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rootPEM, err := localca.RootPEM(lifecycle.CADir(state))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", tlsPort))
		},
		TLSClientConfig: &tls.Config{RootCAs: roots}}}
	var resp *http.Response
	for {
		resp, err = client.Get("https://example.org/.well-known/posh/xmpp-server.json")
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("POSH over HTTPS signed by the embedded CA: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if _, err := pinning.ParsePOSH(body); err != nil {
		t.Errorf("POSH over HTTPS: %v\n%s", err, body)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if !slices.Contains(leaf.DNSNames, "example.org") || !strings.Contains(leaf.Issuer.String(), "xmppcert") {
		t.Errorf("served a certificate for %v from %s", leaf.DNSNames, leaf.Issuer)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"example.org", "elsewhere.example"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	if _, err := (localIssuer{engine: lifecycle.OnDisk(state), names: []string{"example.org"}}).Issue(context.Background(), csr); err == nil || !strings.Contains(err.Error(), `"elsewhere.example"`) {
		t.Errorf("a CSR for a name outside the front's: %v; want it refused, naming it", err)
	}
}

// runFront runs the daemon until the test ends, logging its log when the
// test failed.
func runFront(t *testing.T, d *Daemon, logs *testtool.LockedBuffer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
}

// TestHTTPSFrontCluster: two cluster nodes with the same [http.https]
// keep certmagic's storage in etcd: pebble receives one order, whichever
// node places it (its http-01 challenge answered by the node at the port
// pebble validates, from the shared storage), and both nodes serve the
// same certificate.
func TestHTTPSFrontCluster(t *testing.T) {
	e := testetcd.Start(t)
	validated := testtool.FreePort(t)
	p := acmecatest.StartPebble(t, acmecatest.PebbleOptions{HTTPPort: validated, TLSPort: testtool.FreePort(t)})
	dir := t.TempDir()
	roots := filepath.Join(dir, "pebble-roots.pem")
	keyFile := filepath.Join(dir, "cluster.key")
	for f, b := range map[string][]byte{roots: p.RootsPEM(), keyFile: []byte(strings.Repeat("5a", 32) + "\n")} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pebbleRoots := x509.NewCertPool()
	pebbleRoots.AddCert(p.IssuingRoot)
	var serials []string
	var fronts []int
	for i, httpPort := range []int{validated, testtool.FreePort(t)} {
		tlsPort := testtool.FreePort(t)
		fronts = append(fronts, tlsPort)
		cfg, err := config.Parse(filepath.Join(dir, fmt.Sprintf("node%d.toml", i)), []byte(fmt.Sprintf(`state_dir = %q
[[host]]
domain = "example.org"
[watch]
own_hosts = false
[http]
listen = "127.0.0.1:%d"
[http.https]
listen = "127.0.0.1:%d"
names = ["example.org"]
ca = %q
trust_root = %q
agree_tos = true
challenges = ["http-01"]
[cluster]
etcd_endpoints = [%q]
key_file = %q
node_id = "node%d"
`, filepath.Join(dir, fmt.Sprintf("state%d", i)), httpPort, tlsPort, p.Directory, roots, e.Endpoint, keyFile, i)))
		if err != nil {
			t.Fatal(err)
		}
		store, err := OpenCluster(context.Background(), cfg.Cluster, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		var logs testtool.LockedBuffer
		d, err := New(cfg, Deps{Engine: lifecycle.OnCluster(cfg.StateDir, store), Registry: prometheus.NewRegistry(),
			Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoSignals: true})
		if err != nil {
			t.Fatal(err)
		}
		runFront(t, d, &logs)
	}
	for _, port := range fronts {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
			},
			TLSClientConfig: &tls.Config{RootCAs: pebbleRoots}}}
		var lastErr error
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := client.Get("https://example.org/healthz")
			if err == nil {
				resp.Body.Close()
				serials = append(serials, resp.TLS.PeerCertificates[0].SerialNumber.String())
				break
			}
			lastErr = err
			if time.Now().After(deadline) {
				t.Fatalf("the front on port %d serves no certificate pebble signed within 60 s: %v", port, lastErr)
			}
		}
	}
	if serials[0] != serials[1] {
		t.Errorf("the nodes serve different certificates: serials %v", serials)
	}
	if orders := p.Orders(); len(orders) != 1 || orders[0].Status != http.StatusCreated {
		t.Errorf("pebble's orders %+v; want one, accepted", orders)
	}
}
