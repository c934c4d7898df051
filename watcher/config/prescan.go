package config

import "fmt"

// Limits the pre-scan holds a file to before the TOML library sees it.
// BurntSushi/toml's memory grows with the square of a key's dotted parts
// and of the nesting of inline tables and arrays (a 16 KB file of one key
// with 8,000 parts took 2.2 GB; 4,000 nested inline tables 1.1 GB), and
// the daemon parses its file again on SIGHUP, so whoever can write the
// file could exhaust the daemon's memory. No configuration of this
// program comes near either limit: its deepest key has four parts and its
// deepest value two levels.
const (
	// MaxKeyParts is the most dotted parts a key (or any dotted run of
	// bare words and quoted strings) may have.
	MaxKeyParts = 32
	// MaxNesting is the deepest nesting of arrays, inline tables and
	// table headers' brackets.
	MaxNesting = 32
)

// prescan checks data against MaxKeyParts and MaxNesting in one pass
// that follows TOML's strings and comments (the brackets, braces and dots
// inside them do not count) and nothing else: it does not validate, it
// only bounds what the library is given. It returns the first excess, at
// its line.
func prescan(data []byte) *Error {
	line, depth, parts := 1, 0, 1
	segment := false // the last token was a bare word or a quoted string
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\n':
			line++
			parts, segment = 1, false
		case c == ' ' || c == '\t' || c == '\r':
		case c == '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			end, lines := skipString(data, i)
			i, line = end, line+lines
			segment = true
		case c == '.':
			if segment {
				parts++
				if parts > MaxKeyParts {
					return &Error{Line: line, Msg: fmt.Sprintf("a key with more than %d dotted parts; no setting has more than four", MaxKeyParts)}
				}
			}
			segment = false
		case c == '[' || c == '{':
			depth++
			if depth > MaxNesting {
				return &Error{Line: line, Msg: fmt.Sprintf("arrays or tables nested more than %d deep; no setting nests more than two", MaxNesting)}
			}
			parts, segment = 1, false
		case c == ']' || c == '}':
			depth = max(depth-1, 0)
			parts, segment = 1, false
		case c == '=' || c == ',':
			parts, segment = 1, false
		default: // part of a bare key, a number, a date or a boolean
			segment = true
		}
	}
	return nil
}

// skipString returns the index of the last byte of the string that
// starts at data[i] (basic or literal, one- or multi-line) and how many
// newlines it holds. A one-line string ends at the end of its line, and
// any string at the end of data, when it is not closed there: the
// library reports that; the pre-scan only must not lose its place.
func skipString(data []byte, i int) (end, lines int) {
	q := data[i]
	multi := i+2 < len(data) && data[i+1] == q && data[i+2] == q
	j := i + 1
	if multi {
		j = i + 3
	}
	for ; j < len(data); j++ {
		switch c := data[j]; {
		case c == '\\' && q == '"':
			if j+1 < len(data) && data[j+1] == '\n' {
				if !multi {
					return j, lines
				}
				lines++
			}
			j++
		case c == '\n':
			if !multi {
				return j - 1, lines
			}
			lines++
		case c == q:
			if !multi {
				return j, lines
			}
			if j+2 < len(data) && data[j+1] == q && data[j+2] == q {
				// Up to two more quotes belong to the content: """"" is
				// a string ending in two quotes.
				k := j + 3
				for n := 0; n < 2 && k < len(data) && data[k] == q; n++ {
					k++
				}
				return k - 1, lines
			}
		}
	}
	return len(data) - 1, lines
}
