package config

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Where keys are. BurntSushi/toml reports the position of syntax errors,
// and of decoding errors through the last key's position, but it keeps
// one position per dotted key name: every [[host]] shares "host.domain",
// and MetaData has the position of the last one only (and does not
// export it). So once the library has accepted the syntax, positions
// scans the source itself and records where every key, table header and
// array element starts, under an indexed path such as
// "host[1].pins.tlsa.ttl" or "host[0].components[2]". The scanner only
// runs on text the library parsed, so it need not diagnose anything.

// pos is a 1-based line and column (in characters).
type pos struct{ Line, Col int }

// keyIndex maps indexed paths to positions.
type keyIndex struct {
	at map[string]pos
	// plain maps a path without indices (toml.Key.String form) to the
	// indexed paths it stands for, in source order.
	plain map[string][]string
}

// lookup returns the position of path, or of its nearest ancestor that
// has one (a missing key is reported at its table).
func (ix *keyIndex) lookup(path string) (pos, bool) {
	for path != "" {
		if p, ok := ix.at[path]; ok {
			return p, true
		}
		path = parentPath(path)
	}
	return pos{}, false
}

// parentPath drops the last segment or index of an indexed path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i > 0 {
			return path[:i]
		}
	}
	inQuote := false
	last := -1
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '"':
			inQuote = !inQuote
		case '\\':
			if inQuote {
				i++
			}
		case '.':
			if !inQuote {
				last = i
			}
		}
	}
	if last < 0 {
		return ""
	}
	return path[:last]
}

// segment is one key of an indexed path.
type segment struct {
	name  string
	index int // -1: not an array element
}

func pathString(segs []segment) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(toml.Key{s.name}.String())
		if s.index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		}
	}
	return b.String()
}

func plainString(segs []segment) string {
	k := make(toml.Key, len(segs))
	for i, s := range segs {
		k[i] = s.name
	}
	return k.String()
}

// scanner walks TOML source that the library has already accepted.
type scanner struct {
	src  string
	i    int
	line int
	col  int // in characters, counted as the scanner advances
	ix   *keyIndex
	// arrays counts the elements of each array of tables, by the
	// indexed path of the array ("host", "host[0].x").
	arrays map[string]int
}

// positions indexes every key, header and array element of src.
func positions(src string) *keyIndex {
	s := &scanner{src: src, line: 1, col: 1, ix: &keyIndex{at: map[string]pos{}, plain: map[string][]string{}}, arrays: map[string]int{}}
	s.document()
	return s.ix
}

func (s *scanner) here() pos { return pos{Line: s.line, Col: s.col} }

func (s *scanner) record(segs []segment, p pos) {
	k := pathString(segs)
	if _, ok := s.ix.at[k]; ok {
		return
	}
	s.ix.at[k] = p
	pl := plainString(segs)
	s.ix.plain[pl] = append(s.ix.plain[pl], k)
}

func (s *scanner) eof() bool { return s.i >= len(s.src) }

func (s *scanner) peek(str string) bool { return strings.HasPrefix(s.src[s.i:], str) }

// advance moves past n bytes, counting lines.
func (s *scanner) advance(n int) {
	for ; n > 0 && s.i < len(s.src); n-- {
		switch c := s.src[s.i]; {
		case c == '\n':
			s.line++
			s.col = 1
		case utf8.RuneStart(c):
			s.col++
		}
		s.i++
	}
}

// space skips blanks, and with newlines also line ends and comments.
func (s *scanner) space(newlines bool) {
	for !s.eof() {
		switch c := s.src[s.i]; {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance(1)
		case newlines && c == '\n':
			s.advance(1)
		case newlines && c == '#':
			s.toEOL()
		default:
			return
		}
	}
}

func (s *scanner) toEOL() {
	for !s.eof() && s.src[s.i] != '\n' {
		s.advance(1)
	}
}

func (s *scanner) document() {
	var table []segment
	for !s.eof() {
		start := s.i
		s.space(true)
		if s.eof() {
			return
		}
		switch {
		case s.peek("[["):
			p := s.here()
			s.advance(2)
			table = s.header(true)
			s.record(table, p)
		case s.peek("["):
			p := s.here()
			s.advance(1)
			table = s.header(false)
			s.record(table, p)
		default:
			s.keyval(table)
		}
		s.space(false)
		if !s.eof() && s.src[s.i] == '#' {
			s.toEOL()
		}
		if s.i == start { // never loop without progress
			s.advance(1)
		}
	}
}

// header reads a table header's key and its closing bracket(s) and
// returns the table's indexed path: every prefix that is an array of
// tables takes its current element, and a [[header]] a new element.
func (s *scanner) header(array bool) []segment {
	s.space(false)
	names := s.key()
	s.space(false)
	if array {
		if s.peek("]]") {
			s.advance(2)
		}
	} else if s.peek("]") {
		s.advance(1)
	}
	var segs []segment
	for i, n := range names {
		segs = append(segs, segment{name: n, index: -1})
		k := pathString(segs)
		if array && i == len(names)-1 {
			segs[i].index = s.arrays[k]
			s.arrays[k]++
		} else if c, ok := s.arrays[k]; ok {
			segs[i].index = c - 1
		}
	}
	return segs
}

// key reads a dotted key.
func (s *scanner) key() []string {
	var names []string
	for !s.eof() {
		s.space(false)
		names = append(names, s.simpleKey())
		s.space(false)
		if s.eof() || s.src[s.i] != '.' {
			break
		}
		s.advance(1)
	}
	return names
}

func (s *scanner) simpleKey() string {
	if s.eof() {
		return ""
	}
	switch s.src[s.i] {
	case '"':
		start := s.i
		s.basicString()
		if u, err := strconv.Unquote(s.src[start:s.i]); err == nil {
			return u
		}
		return strings.Trim(s.src[start:s.i], `"`)
	case '\'':
		start := s.i
		s.literalString()
		return strings.Trim(s.src[start:s.i], "'")
	}
	start := s.i
	for !s.eof() {
		c := s.src[s.i]
		if c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			s.advance(1)
			continue
		}
		break
	}
	return s.src[start:s.i]
}

// keyval reads KEY = VALUE in table.
func (s *scanner) keyval(table []segment) {
	p := s.here()
	names := s.key()
	path := append([]segment(nil), table...)
	for _, n := range names {
		path = append(path, segment{name: n, index: -1})
		s.record(path, p)
	}
	s.space(false)
	if !s.eof() && s.src[s.i] == '=' {
		s.advance(1)
	}
	s.space(false)
	s.value(path)
}

func (s *scanner) value(path []segment) {
	if s.eof() {
		return
	}
	switch c := s.src[s.i]; {
	case c == '"':
		s.basicString()
	case c == '\'':
		s.literalString()
	case c == '{':
		s.advance(1)
		for !s.eof() {
			s.space(true)
			if s.eof() || s.src[s.i] == '}' {
				s.advance(1)
				return
			}
			before := s.i
			s.keyval(path)
			s.space(true)
			if !s.eof() && s.src[s.i] == ',' {
				s.advance(1)
			}
			if s.i == before {
				s.advance(1)
			}
		}
	case c == '[':
		s.advance(1)
		for n := 0; !s.eof(); n++ {
			s.space(true)
			if s.eof() || s.src[s.i] == ']' {
				s.advance(1)
				return
			}
			before := s.i
			elem := append(append([]segment(nil), path[:len(path)-1]...), segment{name: path[len(path)-1].name, index: n})
			s.record(elem, s.here())
			s.value(elem)
			s.space(true)
			if !s.eof() && s.src[s.i] == ',' {
				s.advance(1)
			}
			if s.i == before {
				s.advance(1)
			}
		}
	default: // number, boolean, date-time
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.src[s.i])) {
			s.advance(1)
		}
	}
}

// basicString skips a "string" or """multi-line string""".
func (s *scanner) basicString() { s.quoted('"', true) }

// literalString skips a literal string, single or triple quoted.
func (s *scanner) literalString() { s.quoted('\'', false) }

func (s *scanner) quoted(q byte, escapes bool) {
	triple := strings.Repeat(string(q), 3)
	if s.peek(triple) {
		s.advance(3)
		for !s.eof() {
			if escapes && s.src[s.i] == '\\' {
				s.advance(2)
				continue
			}
			if s.peek(triple) {
				s.advance(3)
				for k := 0; k < 2 && !s.eof() && s.src[s.i] == q; k++ { // """"" ends with quotes
					s.advance(1)
				}
				return
			}
			s.advance(1)
		}
		return
	}
	s.advance(1)
	for !s.eof() {
		c := s.src[s.i]
		switch {
		case escapes && c == '\\':
			s.advance(2)
		case c == q:
			s.advance(1)
			return
		case c == '\n':
			return
		default:
			s.advance(1)
		}
	}
}
