package safetext

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"example.org\tline\n", "example.org\tline\n"},
		{"CN=\x1b]0;owned\x07\x1b[2J", `CN=\x1b]0;owned\x07\x1b[2J`},
		{"\x1b]52;c;Y2xpcA==\x07", `\x1b]52;c;Y2xpcA==\x07`},
		{"admin\u202egro.elpmaxe", `admin\u202egro.elpmaxe`},
		{"csi \u009b2J del \x7f", `csi \u009b2J del \x7f`},
		{"bad \xff\xfe utf-8", `bad \xff\xfe utf-8`},
		{"ümlaut, 日本, emoji 🔒", "ümlaut, 日本, emoji 🔒"},
	} {
		if got := Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestWriterJSON: JSON passed through a Writer decodes to the same value,
// bidi overrides and all, and carries no raw control.
func TestWriterJSON(t *testing.T) {
	v := map[string]string{"cn": "\x1b]0;x\x07 admin\u202eevil \u0085 ok"}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Write(raw)
	w.Flush()
	var back map[string]string
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back["cn"] != v["cn"] {
		t.Fatalf("%s decodes to %q, %v; want %q", b.Bytes(), back["cn"], err, v["cn"])
	}
	checkSafe(t, b.Bytes())
}

func checkSafe(t *testing.T, out []byte) {
	t.Helper()
	for len(out) > 0 {
		r, size := utf8.DecodeRune(out)
		if r == utf8.RuneError && size == 1 {
			t.Fatalf("invalid UTF-8 left in %q", out)
		}
		if unsafe(r) {
			t.Fatalf("unsafe rune %U left in the output", r)
		}
		out = out[size:]
	}
}

// FuzzWriter: whatever is written, and however it is split into writes,
// the output holds nothing a terminal acts on, is valid UTF-8, and is
// the same as one Escape of the whole.
func FuzzWriter(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[2J", "a\u202eb", "\xe6\x97", "日本\xff", "\u0085\n\t"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		n := int(chunk)%7 + 1
		var b bytes.Buffer
		w := NewWriter(&b)
		for i := 0; i < len(in); i += n {
			w.Write(in[i:min(i+n, len(in))])
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		checkSafe(t, b.Bytes())
		if want := Escape(string(in)); b.String() != want {
			t.Fatalf("written in chunks of %d: %q; one Escape gives %q", n, b.String(), want)
		}
	})
}
