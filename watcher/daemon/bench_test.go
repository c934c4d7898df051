package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// BenchmarkSweep measures one sweep of 100 peers served by one fake
// server (probe, one history commit, classification, dispatch), after a
// first sweep, so that it is the steady state of unchanged endpoints.
func BenchmarkSweep(b *testing.B) {
	ca := testpki.NewRoot("Bench Root", nil)
	srv := xmpptlstest.Start(b, xmpptlstest.Config{Certificate: *leaf(ca)})
	dir := b.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "state_dir = %q\n[watch]\ninterval = \"1m\"\nconcurrency = 32\nown_hosts = false\n", filepath.Join(dir, "state"))
	for i := range 100 {
		fmt.Fprintf(&cfg, "[[watch.peer]]\ndomain = \"peer%d.example\"\nservice = \"xmpp-client\"\nconnect = %q\n", i, srv.Addr)
	}
	file := filepath.Join(dir, "xmppcert.toml")
	if err := os.WriteFile(file, []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	c, err := config.Load(file)
	if err != nil {
		b.Fatal(err)
	}
	d, err := New(c, Deps{Roots: ca.Pool(), Logger: slog.New(slog.DiscardHandler), NoSignals: true})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close(context.Background())
	if _, err := d.SweepOnce(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := d.SweepOnce(context.Background())
		if err != nil || res.Observations != 100 {
			b.Fatalf("sweep: %+v %v", res, err)
		}
	}
}
