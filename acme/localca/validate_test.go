package localca

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// An http-01 answer is read up to maxChallengeBody, however much the
// responder sends.
func TestValidationBodyBounded(t *testing.T) {
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("a", 64<<10))
		for i := 0; i < 200*16; i++ { // 200 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer endless.Close()
	c := newValidationClient(ServeOptions{})
	start := time.Now()
	resp, err := c.Get(endless.URL + "/.well-known/acme-challenge/token")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != maxChallengeBody {
		t.Errorf("read %d bytes (%v); want %d", n, err, maxChallengeBody)
	}
	t.Logf("200 MiB answer: %d bytes read in %v", n, time.Since(start))
}

// A redirect is followed only to http or https on port 80 or 443 of a
// public address: a responder cannot make the CA fetch from its own host
// or network, by address or by a name that resolves there.
func TestValidationRedirects(t *testing.T) {
	var inside atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { inside.Add(1) }))
	defer internal.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(internal.URL, "http://"), ":")
	for _, to := range []string{
		"http://127.0.0.2:" + port + "/secret", // another port
		"http://127.0.0.2/secret",              // loopback by address
		"http://[::1]/secret",
		"http://10.0.0.1/secret", // private
		"http://169.254.169.254/latest/meta-data/",
		"http://localhost/secret", // a name that resolves to loopback
		"ftp://example.org/secret",
	} {
		responder := httptest.NewServer(http.RedirectHandler(to, http.StatusFound))
		c := newValidationClient(ServeOptions{})
		resp, err := c.Get(responder.URL + "/.well-known/acme-challenge/token")
		responder.Close()
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, ErrRedirectRefused) {
			t.Errorf("redirect to %s: %v; want it refused", to, err)
		}
	}
	if n := inside.Load(); n != 0 {
		t.Errorf("the internal server was asked %d times", n)
	}
}
