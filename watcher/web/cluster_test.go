package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClientTooLarge: an answer longer than the client reads, announced
// or not, fails with ErrTooLarge rather than as a truncated document.
func TestClientTooLarge(t *testing.T) {
	chunk := strings.Repeat("a", 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/announced" {
			w.Header().Set("Content-Length", "999999999999")
		}
		io.WriteString(w, `{"endpoints":[], "x": "`)
		for range maxAnswer>>20 + 1 {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	for _, path := range []string{"/announced", "/streamed"} {
		// Unbounded in time: the bound under test is the size's.
		c := &Client{BaseURL: srv.URL}
		var out map[string]any
		if err := c.do(context.Background(), http.MethodGet, path, nil, &out, false); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v; want ErrTooLarge", path, err)
		}
	}
}
