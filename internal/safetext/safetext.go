// Package safetext keeps text that a certificate, a peer or a file
// supplied from acting on the terminal that shows it: a CN holding
// ESC]0;...BEL (window title), ESC[2J (clear screen), OSC 52 (clipboard)
// or a bidi override that reorders what the operator reads.
//
// Writer passes newlines, tabs and printable text through and writes
// every other C0 control, DEL, C1 control, bidi control and byte that is
// not UTF-8 as a visible escape (\x1b, \u202e, \xff): what the operator
// sees is what was there, and nothing is acted on. Inside a JSON string
// those escapes are valid JSON for the same characters, so JSON output
// passed through a Writer decodes to exactly the same values.
package safetext

import (
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// Escape is what Writer makes of s.
func Escape(s string) string {
	var out []byte
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		out = appendRune(out, r, s[:size])
		s = s[size:]
	}
	return string(out)
}

// unsafe reports whether r must not reach a terminal as it is.
func unsafe(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r < 0x20 || r == 0x7f: // C0, DEL
		return true
	case r >= 0x80 && r <= 0x9f: // C1, CSI among them
		return true
	case r == 0x061c || r == 0x200e || r == 0x200f: // ALM, LRM, RLM
		return true
	case r >= 0x202a && r <= 0x202e: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	}
	return false
}

// appendRune appends r, decoded from raw, or its escape.
func appendRune(out []byte, r rune, raw string) []byte {
	switch {
	case r == utf8.RuneError && len(raw) == 1:
		return fmt.Appendf(out, `\x%02x`, raw[0])
	case !unsafe(r):
		return append(out, raw...)
	case r < 0x80:
		return fmt.Appendf(out, `\x%02x`, r)
	}
	return fmt.Appendf(out, `\u%04x`, r)
}

// Writer escapes what is written through it (see the package
// documentation). A rune split across two writes is held back until it
// is whole; Flush writes what is held back. It is safe for concurrent
// use: a command's output and the logs of its libraries' goroutines
// share one.
type Writer struct {
	w    io.Writer
	mu   sync.Mutex
	held []byte // the start of a rune whose rest has not been written yet
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes p and writes it, and reports len(p) when all of it was
// written or held back.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := append(w.held, p...)
	w.held = nil
	var out []byte
	for len(buf) > 0 {
		if !utf8.FullRune(buf) {
			w.held = append([]byte(nil), buf...)
			break
		}
		r, size := utf8.DecodeRune(buf)
		out = appendRune(out, r, string(buf[:size]))
		buf = buf[size:]
	}
	if len(out) > 0 {
		if _, err := w.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes a rune start that is still held back, escaped byte by
// byte: no rest will come.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.held) == 0 {
		return nil
	}
	var out []byte
	for _, b := range w.held {
		out = fmt.Appendf(out, `\x%02x`, b)
	}
	w.held = nil
	_, err := w.w.Write(out)
	return err
}
