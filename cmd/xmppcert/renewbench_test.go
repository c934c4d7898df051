package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/testfs"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// benchRenewEnv gives the size of TestRenewNothingDueScale, which
// bench/renew.sh runs (README, "Renewal when nothing is due").
const benchRenewEnv = "XMPPCERT_BENCH_RENEW_LINEAGES"

// TestRenewNothingDueScale is the renewal benchmark at scale: N lineages
// of the embedded CA (a host and a component each, 90 days, issued by a
// child process, as fast as the CA signs), then `xmppcert renew --quiet`
// over them as a whole process, five times: nothing is due, so nothing
// may change. Prints the median wall time and the peak RSS against the
// targets (under 0.5 s and 100 MB for 10,000 lineages). A loaded machine
// may miss an absolute time, so the time fails the test only far beyond
// its target (ten times: a regression, not load); the peak RSS, which
// load does not change, fails it at 100 MB.
func TestRenewNothingDueScale(t *testing.T) {
	n := benchSize(t, benchRenewEnv)
	if state := os.Getenv(issueIntoEnv); state != "" {
		issueLineages(t, state, n)
		return
	}
	bin := buildXmppcert(t)
	state := filepath.Join(t.TempDir(), "state")
	issuer := exec.Command(os.Args[0], "-test.run=^TestRenewNothingDueScale$", "-test.count=1", "-test.v")
	issuer.Env = append(os.Environ(), issueIntoEnv+"="+state)
	out, err := issuer.CombinedOutput()
	if err != nil {
		t.Fatalf("issuing %d lineages in a child process: %v\n%s", n, err, out)
	}
	for l := range strings.Lines(string(out)) {
		if _, msg, ok := strings.Cut(l, ": issued "); ok {
			t.Log("issued " + strings.TrimSpace(msg))
		}
	}

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
	// A child's peak RSS as wait4 reports it is at least the parent's
	// peak when it starts it: Go starts children with CLONE_VM, and exec
	// records the shared memory's high-water mark as the child's. The
	// lineages are issued in another process so that this one stays
	// smaller than what it measures; its own peak is printed beside.
	floor := testtool.PeakRSS(t, "self")
	var before map[string]string
	b, err := os.ReadFile(stampsFile(state))
	if err == nil {
		err = json.Unmarshal(b, &before)
	}
	if err != nil {
		t.Fatalf("the state directory as issued, from the child: %v", err)
	}
	if d := diff(before, testfs.Stamps(t, state)); d != nil {
		t.Errorf("renew with nothing due changed the state directory: %q", d)
	}
	med := median(walls)
	const target, limit, rssLimit = 500 * time.Millisecond, 5 * time.Second, 100 << 20
	verdict := metOrNot(med < target && peak < rssLimit)
	if n != 10_000 {
		verdict = "not judged at this size"
	}
	t.Logf("xmppcert renew, %d lineages, nothing due: median %.1f ms of %d runs (min %.1f, max %.1f), peak RSS %.1f MB (this test process's own peak, below which no child's can be told: %.1f MB); target (10,000 lineages) under %v and 100 MB: %s",
		n, ms(med), len(walls), ms(slices.Min(walls)), ms(slices.Max(walls)), float64(peak)/1e6, float64(floor)/1e6, target, verdict)
	if med > limit {
		t.Errorf("median %v: over %v, ten times the target", med, limit)
	}
	if peak >= rssLimit {
		t.Errorf("peak RSS %d bytes: over 100 MB", peak)
	}
}

// issueIntoEnv, set to a state directory, makes TestRenewNothingDueScale
// the child process that issues its lineages there.
const issueIntoEnv = "XMPPCERT_TEST_ISSUE_INTO"

// issueLineages issues n lineages of the embedded CA into state, as fast
// as the CA signs: a host and a component each, 90 days.
func issueLineages(t *testing.T, state string, n int) {
	ca, err := lifecycle.OpenCA(state, localca.Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
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
	t.Logf("issued %d lineages in %v", n, time.Since(start).Round(time.Second))
	// What renew must leave as it is, described here: a description
	// of every file of 10,000 lineages would take the parent's memory
	// above what it measures.
	b, err := json.Marshal(testfs.Stamps(t, state))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stampsFile(state), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// stampsFile is where issueLineages describes the state directory it
// made (testfs.Stamps), beside it.
func stampsFile(state string) string { return state + ".stamps.json" }
