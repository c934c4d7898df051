package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/testfs"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// benchRenewEnv gives the size of TestRenewNothingDueScale, which
// bench/renew.sh runs (README, "Renewal when nothing is due").
const benchRenewEnv = "XMPPCERT_BENCH_RENEW_LINEAGES"

// TestRenewNothingDueScale is the renewal benchmark at scale: N lineages
// of the embedded CA (a host and a component each, 90 days, issued in
// this process, as fast as the CA signs), then `xmppcert renew --quiet`
// over them as a whole process, five times: nothing is due, so nothing
// may change. Prints the median wall time and the peak RSS against the
// targets (under 0.5 s and 100 MB for 10,000 lineages). A loaded machine
// may miss an absolute time, so the time fails the test only far beyond
// its target (ten times: a regression, not load); the peak RSS, which
// load does not change, fails it at 100 MB.
func TestRenewNothingDueScale(t *testing.T) {
	n := benchSize(t, benchRenewEnv)
	bin := buildXmppcert(t)
	state := filepath.Join(t.TempDir(), "state")
	ca, err := lifecycle.OpenCA(state, localca.Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	store := acme.DiskStore{Dir: state}
	start := time.Now()
	for i := range n {
		host := fmt.Sprintf("h%d.example.org", i)
		req, err := acme.NewRequest(host, xmppaddr.RoleHost, []string{"conference." + host}, acme.KeyECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		req.CA, req.Days = "local", 90
		if _, err := acme.Obtain(context.Background(), store, ca, req); err != nil {
			t.Fatal(err)
		}
	}
	ca.Close()
	t.Logf("issued %d lineages in %v", n, time.Since(start).Round(time.Second))
	before := testfs.Stamps(t, state)

	var walls []time.Duration
	var peak int64
	for range 5 {
		cmd := exec.Command(bin, "--state-dir", state, "renew", "--quiet")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		walls = append(walls, time.Since(start))
		if err != nil {
			t.Fatalf("renew: %v\n%s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			peak = max(peak, ru.Maxrss*1024)
		}
	}
	if d := diff(before, testfs.Stamps(t, state)); d != nil {
		t.Errorf("renew with nothing due changed the state directory: %q", d)
	}
	med := median(walls)
	const target, limit, rssLimit = 500 * time.Millisecond, 5 * time.Second, 100 << 20
	t.Logf("xmppcert renew, %d lineages, nothing due: median %.1f ms of %d runs (min %.1f, max %.1f), peak RSS %.1f MB; target (10,000 lineages) under %v and 100 MB: %s",
		n, ms(med), len(walls), ms(slices.Min(walls)), ms(slices.Max(walls)), float64(peak)/1e6, target, metOrNot(med < target && peak < rssLimit))
	if med > limit {
		t.Errorf("median %v: over %v, ten times the target", med, limit)
	}
	if peak >= rssLimit {
		t.Errorf("peak RSS %d bytes: over 100 MB", peak)
	}
}
