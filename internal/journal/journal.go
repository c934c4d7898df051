// Package journal makes the daemon's log lines carry their priority when
// systemd's journal reads its standard error: sd-daemon(3) reads a
// "<N>" prefix (syslog's priorities: 3 error, 4 warning, 6 info, 7
// debug) as the line's priority, so that journalctl -p warning and the
// journal's colours tell errors from routine lines.
package journal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// Attached reports whether f is the stream systemd's journal reads:
// JOURNAL_STREAM names its device and inode (systemd.exec(5)), so a
// redirection by the service itself or a shell in between is not taken
// for it.
func Attached(f *os.File) bool {
	want := os.Getenv("JOURNAL_STREAM")
	if want == "" {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return want == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// Priority is the syslog priority of a slog level.
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

// Handler writes each record as newInner would, prefixed with "<N>", its
// priority, in one write.
type Handler struct {
	inner slog.Handler
	out   *output
}

// output is the buffer the inner handlers write into and the writer the
// prefixed line goes to, shared by a Handler and those derived from it.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
	w   io.Writer
}

// NewHandler returns a Handler writing to w; newInner makes the handler
// that formats a record (slog.NewTextHandler or slog.NewJSONHandler with
// the caller's options).
func NewHandler(w io.Writer, newInner func(io.Writer) slog.Handler) *Handler {
	out := &output{w: w}
	return &Handler{inner: newInner(&out.buf), out: out}
}

// Enabled is the inner handler's.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle formats r and writes it with its priority.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.buf.Reset()
	fmt.Fprintf(&h.out.buf, "<%d>", Priority(r.Level))
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	_, err := h.out.w.Write(h.out.buf.Bytes())
	return err
}

// WithAttrs is the inner handler's, writing the same way.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{inner: h.inner.WithAttrs(as), out: h.out}
}

// WithGroup is the inner handler's, writing the same way.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), out: h.out}
}
