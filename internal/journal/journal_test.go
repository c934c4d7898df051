package journal

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestHandler: every record is one line prefixed with its priority,
// also through WithAttrs and WithGroup and from goroutines at once.
func TestHandler(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(NewHandler(&out, func(w io.Writer) slog.Handler {
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
	}))
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.Debug("d")
			log.With("a", 1).Info("i")
			log.WithGroup("g").Warn("w", "k", "v")
			log.Error("e")
		}()
	}
	wg.Wait()
	n := map[string]int{}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		n[line[:3]+" "+line[strings.Index(line, "msg="):]]++
	}
	want := map[string]int{"<7> msg=d": 20, "<6> msg=i a=1": 20, "<4> msg=w g.k=v": 20, "<3> msg=e": 20}
	if len(n) != len(want) {
		t.Fatalf("lines %v; want %v", n, want)
	}
	for k, v := range want {
		if n[k] != v {
			t.Errorf("%q: %d lines, want %d (all: %v)", k, n[k], v, n)
		}
	}
}

// TestAttached: JOURNAL_STREAM must name the file's device and inode.
func TestAttached(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv("JOURNAL_STREAM", "")
	if Attached(f) {
		t.Error("attached without JOURNAL_STREAM")
	}
	t.Setenv("JOURNAL_STREAM", "1:2")
	if Attached(f) {
		t.Error("attached to another stream")
	}
}
