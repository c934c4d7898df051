package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/daemon"
)

// TestDaemonServesPOSH: a [[host]] whose [host.pins.posh] has no out_dir
// gets its documents written into STATE_DIR/posh/DOMAIN by the daemon's
// renewal run, and the daemon's HTTP server serves them at
// /.well-known/posh/SERVICE.json to requests for the host and its
// components, listing the lineage's certificate; other hosts get 404.
func TestDaemonServesPOSH(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgFile := filepath.Join(dir, "xmppcert.toml")
	text := "state_dir = " + `"` + state + `"` + `
[[host]]
domain = "example.org"
components = ["conference.example.org"]
[host.pins.posh]
expires = "1h"
[watch]
own_hosts = false
`
	if err := os.WriteFile(cfgFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if err := reconcile(state, cfg, false, logger)(context.Background()); err != nil {
		t.Fatal(err)
	}
	root := cfg.Hosts[0].POSHRoot(state)
	if root != filepath.Join(state, config.POSHDir, "example.org") {
		t.Fatalf("POSH root %s", root)
	}
	l, err := acme.DiskStore{Dir: state}.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(l.Chain[0].Raw)

	d, err := daemon.New(cfg, daemon.Deps{Logger: logger, NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	get := func(host, svc string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/.well-known/posh/"+svc+".json", nil)
		req.Host = host
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, host := range []string{"example.org", "conference.example.org:443"} {
		for _, svc := range []string{"xmpp-client", "xmpp-server"} {
			code, body := get(host, svc)
			if code != 200 {
				t.Fatalf("%s %s: %d %s", host, svc, code, body)
			}
			doc, err := pinning.ParsePOSH([]byte(body))
			if err != nil {
				t.Fatalf("%s %s: %v", host, svc, err)
			}
			if len(doc.Fingerprints) != 1 || !bytes.Equal(doc.Fingerprints[0].SHA256, want[:]) || doc.Expires != 3600 {
				t.Errorf("%s %s: %s; want the lineage's certificate %x, expires 3600", host, svc, body, want)
			}
		}
	}
	if code, _ := get("other.example", "xmpp-server"); code != 404 {
		t.Errorf("a host that is not ours: %d, want 404", code)
	}
}
