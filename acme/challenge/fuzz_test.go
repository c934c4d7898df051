package challenge

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzChallengeToken: a token from the CA that passes validToken names a
// file directly inside the challenge directory and a single URL path
// segment; nothing else passes.
func FuzzChallengeToken(f *testing.F) {
	for _, seed := range []string{"LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", "..", "../x", "a/b", `a\b`, "", ".", "a b", "%2e%2e"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		if !validToken(token) {
			return
		}
		dir := filepath.Join("/srv", ".well-known", "acme-challenge")
		p := filepath.Join(dir, token)
		if filepath.Dir(p) != dir || filepath.Base(p) != token {
			t.Fatalf("token %q escapes: %s", token, p)
		}
		if strings.ContainsAny(token, "/\\.%?#") {
			t.Fatalf("token %q has path syntax", token)
		}
	})
}
