// Package oneline keeps what xmppcert quotes from operator input (a
// secret file's first bytes, a hook's output) to one short line, so
// that every error stays the one-line message the CLI promises.
package oneline

import "strings"

// Clip cuts s to at most n runes, marked with "...", and replaces
// control characters (newlines among them) with '?'.
func Clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "..."
	}
	return s
}
