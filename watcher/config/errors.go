package config

import (
	"strconv"
	"strings"
)

// Error is one problem in a configuration file.
type Error struct {
	// File is the configuration's path (Parse's name).
	File string
	// Line and Col locate the key, header or array element at fault,
	// 1-based; 0 when the problem belongs to no place in the file (a
	// file that cannot be read, nothing configured).
	Line, Col int
	// Key is the dotted key at fault ("watch.interval"), without array
	// indices; empty for syntax errors and whole-file problems.
	Key string
	// Msg says what is wrong and what to do, on one line. It never holds
	// a secret.
	Msg string
}

// Error is "FILE:LINE:COL: KEY: MSG", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteString(":" + strconv.Itoa(e.Col))
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found, in file order. Load and Parse return
// one (never empty) when the configuration is refused.
type ErrorList []*Error

// MaxErrors is the most problems an ErrorList holds; a file with more
// has a bigger problem than any one of them.
const MaxErrors = 20

// Error is one problem per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.As find the *Error values.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}
