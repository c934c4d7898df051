package daemon

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestMetricsLint: Prometheus' own promtool finds nothing to object to
// in /metrics with an endpoint and a lineage in it (names, help texts,
// units, counters, info series).
func TestMetricsLint(t *testing.T) {
	promtool := testtool.Require(t, "promtool", "prometheus")
	f := newFixture(t)
	state := filepath.Join(f.dir, "state")
	issueLocal(t, lifecycle.OnDisk(state))
	var logs testtool.LockedBuffer
	d := f.newDaemon(t, &logs, true)
	defer d.Close(context.Background())
	if _, err := d.SweepOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	body := string(getOK(t, srv.URL, "/metrics"))
	for _, want := range []string{"probe_success{", "xmppcert_lineage_version{lineage=\"example.org\"} 1", "xmppcert_lineage_expiry_timestamp_seconds{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
