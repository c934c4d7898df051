package testtool

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser starts Debian's headless chromium (Require'd: skipped where it
// cannot be installed, failing in CI) with a window of width x height and
// page scripts off, since the daemon's pages must not need them; the
// returned context drives it and ends with the test, and at the latest
// after timeout.
func Browser(t testing.TB, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	chromium := Require(t, "chromium", "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root in CI containers
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("blink-settings", "scriptEnabled=false"),
		chromedp.WindowSize(width, height),
		chromedp.UserDataDir(t.TempDir()),
	)
	// The timeout is on the allocator's parent: it bounds the whole
	// browser, which lives as long as the first Run's context.
	tctx, cancelT := context.WithTimeout(context.Background(), timeout)
	actx, cancelA := chromedp.NewExecAllocator(tctx, opts...)
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelC()
		cancelA()
		cancelT()
	})
	return ctx
}

// ArtifactDir is where tests leave files for people (screenshots):
// $XMPPCERT_ARTIFACTS when set (CI uploads it), else the test's
// temporary directory.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("XMPPCERT_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}
