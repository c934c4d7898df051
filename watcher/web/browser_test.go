package web

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// artifactDir is where tests leave files for people: $XMPPCERT_ARTIFACTS
// when set (CI uploads it), else the test's temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("XMPPCERT_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestBrowserDashboard drives Debian's headless chromium through the
// dashboard as an operator would, without any JavaScript of ours: the
// table, the change warning, the endpoint's history and diff, and the
// acknowledge button (a plain form POST, through the CSRF checks). It
// saves screenshots of both pages.
func TestBrowserDashboard(t *testing.T) {
	chromium := testtool.Require(t, "chromium", "chromium")
	f := newFixture(t)
	s, logs := newServer(t, f, nil)
	ts := httptest.NewServer(s)
	defer ts.Close()
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	}()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root in CI containers
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("blink-settings", "scriptEnabled=false"), // the pages must not need it
		chromedp.WindowSize(1500, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	// The timeout is on the allocator's parent: it bounds the whole
	// browser, which lives as long as the first Run's context.
	tctx, cancelT := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelT()
	actx, cancelA := chromedp.NewExecAllocator(tctx, opts...)
	defer cancelA()
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancelC()

	dir := artifactDir(t)
	start := time.Now()
	org := chromedp.CSS(`tr[data-id="` + ID(f.keyOrg) + `"]`)
	text := func(sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	count := func(sel chromedp.CSSAll) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Nodes(sel, chromedp.AtLeast(0)))
		if err != nil {
			t.Fatalf("nodes %s: %v", sel, err)
		}
		return len(n)
	}
	shot := func() []byte {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		return png
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#endpoints"))); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if n := count("#endpoints tbody tr"); n != 3 {
		t.Errorf("%d table rows, want 3", n)
	}
	if banner := text(".banner.warning"); !strings.Contains(banner, "Unacknowledged changes on 1 endpoint") {
		t.Errorf("banner: %q", banner)
	}
	if w := text(org + " .warnbox"); !strings.Contains(w, "Unacknowledged change") || !strings.Contains(w, "unexpected key change") {
		t.Errorf("example.org's warning: %q", w)
	}
	table := text("#endpoints")
	for _, want := range []string{"example.org", "example.net", "down.example", "certificate, dialback", "TLS 1.3", "TLS_AES_128_GCM_SHA256",
		"CN=R10,O=Let's Encrypt", "BB:BB:00:00", "unreachable", `CN=<script>alert("x")</script>`, "PASS", "meets the manifesto"} {
		if !strings.Contains(table, want) {
			t.Errorf("table text lacks %q", want)
		}
	}
	// The hostile subject is text, not an element.
	if n := count("script"); n != 0 {
		t.Errorf("%d script elements on the dashboard", n)
	}
	dashPNG := shot()

	if err := chromedp.Do(ctx, chromedp.Click(org+" td.ep a"), chromedp.WaitVisible(chromedp.CSS("#history"))); err != nil {
		t.Fatalf("endpoint page: %v", err)
	}
	history := text("#history")
	for _, want := range []string{"Entry 2", "Entry 1", "unexpected key change", "certificate SHA-256", certA, certB, "first seen"} {
		if !strings.Contains(history, want) {
			t.Errorf("history lacks %q:\n%s", want, history)
		}
	}
	if strings.Index(history, "Entry 2") > strings.Index(history, "Entry 1") {
		t.Errorf("history not newest first")
	}
	pagePNG := shot()

	// The acknowledge button is a plain form POST (scripts are off).
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#unacknowledged button")), chromedp.WaitVisible(chromedp.CSS("#acknowledged"))); err != nil {
		t.Fatalf("acknowledging: %v", err)
	}
	if m := text("#acknowledged"); m != "No unacknowledged changes." {
		t.Errorf("after acknowledging: %q", m)
	}
	// Back on the dashboard the warning is gone.
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#endpoints"))); err != nil {
		t.Fatalf("dashboard after ack: %v", err)
	}
	if n := count(".warnbox, .banner.warning"); n != 0 {
		t.Errorf("%d warnings left after acknowledging", n)
	}

	for name, png := range map[string][]byte{"dashboard.png": dashPNG, "endpoint.png": pagePNG} {
		p := filepath.Join(dir, "web-"+name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", p, len(png))
	}
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}
