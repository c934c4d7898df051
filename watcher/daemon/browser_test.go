package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmppsim"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// maxCellHeight is the tallest a table cell of the dashboard may be at
// 1280x800, in CSS pixels: four lines of text and the padding. The
// certificate column once grew to one character per line and twelve
// lines of fingerprint.
const maxCellHeight = 96

// TestBrowserOverview drives Debian's headless chromium at 1280x800
// through the daemon's dashboard after a real sweep of 50 endpoints (an
// XMPP simulator answering for 50 domains, c2s and s2s with dialback)
// with their full scans, and through the certificates page of a lineage
// the daemon issued: no table cell is taller than maxCellHeight, every
// endpoint grades PASS (SSLv2 and the suites are known from the full
// scan), the summary strip counts them, and screenshots of both pages
// are saved ($XMPPCERT_ARTIFACTS when set).
func TestBrowserOverview(t *testing.T) {
	ctx := testtool.Browser(t, 1280, 800, 60*time.Second)
	const n = 50
	sim, err := xmppsim.New(xmppsim.Config{Dialback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var domains []string
	for i := range n {
		domains = append(domains, sim.Domain(i+1))
	}
	if err := sim.Prepare(context.Background(), domains, 0); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var file strings.Builder
	fmt.Fprintf(&file, "state_dir = %q\n[[host]]\ndomain = \"example.org\"\ncomponents = [\"muc.example.org\"]\n", filepath.Join(dir, "state"))
	fmt.Fprintf(&file, "[watch]\ninterval = \"1h\"\nfull_interval = \"1h\"\ntimeout = \"20s\"\nconcurrency = 16\nown_hosts = false\nfrom = \"watcher.example\"\n")
	for i, d := range domains {
		svc := "xmpp-client"
		if i%2 == 1 {
			svc = "xmpp-server"
		}
		fmt.Fprintf(&file, "[[watch.peer]]\ndomain = %q\nservice = %q\nconnect = %q\n", d, svc, sim.Addr())
	}
	path := filepath.Join(dir, "xmppcert.toml")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs testtool.LockedBuffer
	d, err := New(cfg, Deps{Engine: lifecycle.OnDisk(cfg.StateDir), Roots: sim.Roots(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	if err := d.renew(context.Background()); err != nil {
		t.Fatalf("issuing example.org: %v\n%s", err, logs.String())
	}
	res, err := d.SweepOnce(context.Background())
	if err != nil || res.Observations != n || res.FullScans != n {
		t.Fatalf("sweep: %+v, %v; want %d endpoints observed, each with its full scan\n%s", res, err, n, logs.String())
	}
	ts := httptest.NewServer(d.Handler())
	defer ts.Close()

	// cells measures every cell of a table: its height and, for the
	// report, its text.
	type cell struct {
		Height float64 `json:"h"`
		Text   string  `json:"t"`
	}
	cells := func(sel string) []cell {
		t.Helper()
		js := `Array.from(document.querySelectorAll(` + "`" + `${sel}` + "`" + `)).map(c => ({h: c.getBoundingClientRect().height, t: c.innerText}))`
		js = strings.Replace(js, "${sel}", sel, 1)
		out, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[[]cell](js))
		if err != nil {
			t.Fatalf("measuring %s: %v", sel, err)
		}
		return out
	}
	checkHeights := func(page string, cs []cell) {
		t.Helper()
		var top float64
		for _, c := range cs {
			top = max(top, c.Height)
			if c.Height > maxCellHeight {
				t.Errorf("%s: a cell is %.0f px tall (limit %d): %q", page, c.Height, maxCellHeight, c.Text)
			}
		}
		t.Logf("%s: %d cells, the tallest %.0f px", page, len(cs), top)
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(testtool.ArtifactDir(t), name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", p, len(png))
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#endpoints"))); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	checkHeights("dashboard", cells("#endpoints td"))
	grades := cells("#endpoints td .grade")
	if len(grades) != n {
		t.Errorf("%d grades on the dashboard, want %d", len(grades), n)
	}
	for _, g := range grades {
		if g.Text != "PASS" {
			t.Errorf("a healthy endpoint grades %q after its full scan, want PASS", g.Text)
		}
	}
	strip := cells("#summary li")
	var summary []string
	for _, c := range strip {
		summary = append(summary, c.Text)
	}
	want := []string{"50 endpoints", "50 encrypted", "50 authenticated", "0 with warnings", "50 manifesto pass", "0 of 1 lineage due or with problems"}
	if strings.Join(summary, "|") != strings.Join(want, "|") {
		t.Errorf("summary strip %q, want %q", summary, want)
	}
	shot("daemon-overview-1280x800.png")

	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/lineages"), chromedp.WaitVisible(chromedp.CSS("#lineages"))); err != nil {
		t.Fatalf("certificates page: %v", err)
	}
	lc := cells("#lineages td")
	checkHeights("certificates", lc)
	if len(lc) == 0 || !strings.Contains(lc[0].Text, "example.org") || !strings.Contains(lc[1].Text, "muc.example.org (component)") {
		t.Errorf("certificates page: %+v; want example.org with its component", lc)
	}
	shot("daemon-lineages-1280x800.png")
}
