package config

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestTOMLBombs: files that make the TOML library allocate gigabytes from
// a few kilobytes are refused before it sees them, within a second and
// 100 MB, with the line of the excess.
func TestTOMLBombs(t *testing.T) {
	bombs := map[string]struct {
		data string
		line int
		want string
	}{
		"a key of 8,000 dotted parts":  {"[watch]\n" + strings.Repeat("a.", 8000) + "a = 1\n", 2, "more than 32 dotted parts"},
		"a header of 8,000 parts":      {"\n\n[" + strings.Repeat("a.", 8000) + "a]\n", 3, "more than 32 dotted parts"},
		"quoted parts":                 {`x = 1` + "\n" + strings.Repeat(`"a". `, 5000) + "a = 1\n", 2, "more than 32 dotted parts"},
		"4,000 nested inline tables":   {"x = " + strings.Repeat("{a = ", 4000) + "1" + strings.Repeat("}", 4000) + "\n", 1, "nested more than 32 deep"},
		"10,000 nested arrays":         {"x = " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "\n", 1, "nested more than 32 deep"},
		"a bomb on every line, 600 KB": {strings.Repeat(strings.Repeat("a.", 100)+"a = 1\n", 3000), 1, "more than 32 dotted parts"},
	}
	for name, b := range bombs {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err := Parse("bomb.toml", []byte(b.data))
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		var list ErrorList
		if !errors.As(err, &list) || len(list) != 1 || list[0].Line != b.line || !strings.Contains(list[0].Msg, b.want) {
			t.Errorf("%s: %v; want one error at line %d saying %q", name, err, b.line, b.want)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 100<<20 || took > time.Second {
			t.Errorf("%s: refused after %v and %d MB allocated; want under 1 s and 100 MB", name, took, alloc>>20)
		}
	}
}

// TestPrescanFollowsStrings: brackets, braces, dots and quotes inside
// strings and comments are not structure, and what real configurations
// hold passes.
func TestPrescanFollowsStrings(t *testing.T) {
	deep := strings.Repeat("[{.", 200)
	for name, data := range map[string]string{
		"basic string":      "x = \"" + deep + "\\\" " + deep + "\"\n",
		"literal string":    "x = '" + deep + "'\n",
		"multi-line basic":  "x = \"\"\"\n" + deep + "\n\"\" " + deep + "\"\"\"\"\"\n",
		"multi-line lit":    "x = '''\n" + deep + "\n''" + deep + "'''''\n",
		"comment":           "# " + deep + "\nx = 1 # " + deep + "\n",
		"32 parts, 32 deep": strings.Repeat("a.", 31) + "a = " + strings.Repeat("[", 31) + strings.Repeat("]", 31) + "\n",
		"floats and dates":  "x = [1.5, 2.5e3, 1979-05-27T07:32:00.999999-07:00]\ny = {a.b.c = 0.1}\n",
		"contrib example":   oneHost,
	} {
		if e := prescan([]byte(data)); e != nil {
			t.Errorf("%s: %s at line %d", name, e.Msg, e.Line)
		}
	}
	// Line numbers count the newlines inside multi-line strings.
	data := "x = \"\"\"\n\n\n\"\"\"\ny = '''\n'''\n" + strings.Repeat("a.", 40) + "a = 1\n"
	if e := prescan([]byte(data)); e == nil || e.Line != 7 {
		t.Errorf("after multi-line strings: %+v; want the excess at line 7", e)
	}
}

// FuzzPrescan: any input is scanned without a panic, and an excess is
// reported at a line of the input.
func FuzzPrescan(f *testing.F) {
	f.Add([]byte(oneHost))
	f.Add([]byte("x = \"\"\"a\\\n\"\"\"\"\"\ny = '''\n'''''\n[a.\"b\".c]\nz = [{a = [1.5]}]\n"))
	f.Add([]byte(strings.Repeat("a.", 40) + "a = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e := prescan(data)
		if e != nil && (e.Line < 1 || e.Line > bytes.Count(data, []byte("\n"))+1) {
			t.Fatalf("excess at line %d of a %d-line input", e.Line, bytes.Count(data, []byte("\n"))+1)
		}
	})
}
