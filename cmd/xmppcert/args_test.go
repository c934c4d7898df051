package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	app := newApp(strings.NewReader(""), io.Discard, io.Discard)
	for _, tc := range []struct{ in, want string }{
		{"xmppcert issue example.org --component c.example.org --json", "xmppcert issue --component c.example.org --json example.org"},
		{"xmppcert --state-dir /s issue example.org -c c.example.org", "xmppcert --state-dir /s issue -c c.example.org example.org"},
		{"xmppcert issue example.org --days=30 --reuse-key", "xmppcert issue --days=30 --reuse-key example.org"},
		{"xmppcert ca serve --listen 127.0.0.1:0", "xmppcert ca serve --listen 127.0.0.1:0"},
		{"xmppcert check cert.pem --domain example.org -", "xmppcert check --domain example.org cert.pem -"},
		{"xmppcert issue -- -weird", "xmppcert issue -- -weird"},
		{"xmppcert issue example.org --component", "xmppcert issue --component example.org"},
		{"xmppcert nosuch --x y", "xmppcert nosuch --x y"},
		// Global flags after the command name go in front of it with
		// their values, unless the command defines the flag itself.
		{"xmppcert daemon --config F", "xmppcert --config F daemon"},
		{"xmppcert daemon --config=F", "xmppcert --config=F daemon"},
		{"xmppcert daemon -config F --listen 127.0.0.1:0", "xmppcert -config F daemon --listen 127.0.0.1:0"},
		{"xmppcert renew --state-dir D --force", "xmppcert --state-dir D renew --force"},
		{"xmppcert --json renew --state-dir=D --force -q", "xmppcert --json --state-dir=D renew --force -q"},
		{"xmppcert pin publish X --state-dir D", "xmppcert --state-dir D pin publish X"},
		{"xmppcert pin --state-dir D publish X", "xmppcert --state-dir D pin publish X"},
		{"xmppcert ca root --json", "xmppcert --json ca root"},
		{"xmppcert ca init --json --state-dir D", "xmppcert --state-dir D ca init --json"},
		{"xmppcert issue example.org --state-dir D --hook --config", "xmppcert --state-dir D issue --hook --config example.org"},
		{"xmppcert inspect cert.pem --state-dir /s", "xmppcert --state-dir /s inspect cert.pem"},
		{"xmppcert issue example.org -- --state-dir D", "xmppcert issue example.org -- --state-dir D"},
		{"xmppcert issue example.org --config F -- --config G", "xmppcert --config F issue example.org -- --config G"},
		// Without its value a global flag stays put: in front of the
		// command it would take the command name as its value.
		{"xmppcert daemon --config", "xmppcert daemon --config"},
		{"xmppcert daemon ---config F", "xmppcert daemon ---config F"},
	} {
		got := permuteArgs(app, strings.Fields(tc.in))
		if want := strings.Fields(tc.want); !slices.Equal(got, want) {
			t.Errorf("permuteArgs(%q)\n got %q\nwant %q", tc.in, got, want)
		}
	}
}

// FuzzPermuteArgs checks that reordering never loses, invents or panics
// on an argument.
func FuzzPermuteArgs(f *testing.F) {
	f.Add("issue example.org --component c.example.org --json")
	f.Add("--state-dir /s ca serve --listen x -- --y")
	f.Add("pin publish x --state-dir /s --config=c -q -- --json")
	f.Add("daemon --config")
	app := newApp(strings.NewReader(""), io.Discard, io.Discard)
	f.Fuzz(func(t *testing.T, s string) {
		args := append([]string{"xmppcert"}, strings.Fields(s)...)
		got := permuteArgs(app, args)
		a, b := slices.Clone(args), slices.Clone(got)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Fatalf("permuteArgs(%q) = %q: not a permutation", args, got)
		}
	})
}
