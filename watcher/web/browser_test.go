package web

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestBrowserDashboard drives Debian's headless chromium through the
// dashboard as an operator would, without any JavaScript of ours: the
// table, the change warning, the endpoint's history and diff, and the
// acknowledge button (a plain form POST, through the CSRF checks). It
// saves screenshots of both pages.
func TestBrowserDashboard(t *testing.T) {
	ctx := testtool.Browser(t, 1500, 1000, 30*time.Second)
	f := newFixture(t)
	s, logs := newServer(t, f, nil)
	ts := httptest.NewServer(s)
	defer ts.Close()
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	}()

	dir := testtool.ArtifactDir(t)
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
	if w := text(org + " .warnbox"); !strings.Contains(w, "1 unacknowledged change") || !strings.Contains(w, "unexpected key change") {
		t.Errorf("example.org's warning: %q", w)
	}
	table := text("#endpoints")
	for _, want := range []string{"example.org", "example.net", "down.example", "certificate, dialback", "TLS 1.3", "TLS_AES_128_GCM_SHA256",
		"CN=example.org", "BB:BB:00:00…", "unreachable", `CN=<script>alert("x")</script>`, "PASS"} {
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
	// The details the table leaves out are on the endpoint's page.
	if page := text("main"); !strings.Contains(page, "CN=R10,O=Let's Encrypt") || !strings.Contains(page, "meets the manifesto") || !strings.Contains(page, "BB:BB:00:00:00") {
		t.Errorf("the endpoint page lacks the issuer, the grade's summary or the whole fingerprint:\n%s", page)
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
