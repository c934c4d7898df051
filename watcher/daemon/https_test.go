package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()
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
