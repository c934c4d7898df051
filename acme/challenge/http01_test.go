package challenge

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

func httpChallenge(name string) acme.Challenge {
	tok := randToken()
	return acme.Challenge{
		Type:             acme.ChallengeTypeHTTP01,
		Identifier:       acme.Identifier{Type: "dns", Value: name},
		Token:            tok,
		KeyAuthorization: tok + "." + randToken(),
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := testdns.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

var noKeepAlive = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true},
	Timeout:   5 * time.Second,
}

// get fetches url and returns the status, Content-Type and body; status
// 0 means the connection failed.
func get(t *testing.T, method, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// The standalone listener serves exactly the presented tokens, from the
// first Present to the last CleanUp, and can start again.
func TestHTTP01Standalone(t *testing.T) {
	addr := freeAddr(t)
	s := &HTTP01{Addr: addr}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	if code, _, _ := get(t, "GET", base+"/"); code != 0 {
		t.Fatalf("something listens on %s before Present", addr)
	}
	for round := 0; round < 2; round++ {
		a, b := httpChallenge("example.org"), httpChallenge("conference.example.org")
		for _, c := range []acme.Challenge{a, b} {
			if err := s.Present(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []acme.Challenge{a, b} {
			code, ctype, body := get(t, "GET", base+c.HTTP01ResourcePath())
			if code != 200 || body != c.KeyAuthorization || ctype != "text/plain" {
				t.Fatalf("GET %s = %d %q %q; want 200 text/plain %q", c.HTTP01ResourcePath(), code, ctype, body, c.KeyAuthorization)
			}
		}
		if code, _, body := get(t, "HEAD", base+a.HTTP01ResourcePath()); code != 200 || body != "" {
			t.Errorf("HEAD = %d %q", code, body)
		}
		for _, bad := range []struct{ method, path string }{
			{"GET", "/"},
			{"GET", "/.well-known/acme-challenge/"},
			{"GET", "/.well-known/acme-challenge/" + randToken()},
			{"GET", a.HTTP01ResourcePath() + "x"},
			{"GET", a.HTTP01ResourcePath() + "/"},
			{"GET", strings.ToLower(a.HTTP01ResourcePath())},
			{"GET", "/.well-known/acme-challenge/../acme-challenge/" + a.Token + "/x"},
			{"POST", a.HTTP01ResourcePath()},
		} {
			if code, _, body := get(t, bad.method, base+bad.path); code != 404 || strings.Contains(body, a.KeyAuthorization) {
				t.Errorf("%s %s = %d %q, want 404", bad.method, bad.path, code, body)
			}
		}
		if err := s.CleanUp(t.Context(), a); err != nil {
			t.Fatal(err)
		}
		if code, _, _ := get(t, "GET", base+a.HTTP01ResourcePath()); code != 404 {
			t.Errorf("cleaned-up token: %d, want 404", code)
		}
		if code, _, body := get(t, "GET", base+b.HTTP01ResourcePath()); code != 200 || body != b.KeyAuthorization {
			t.Errorf("remaining token: %d %q", code, body)
		}
		if err := s.CleanUp(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		if code, _, _ := get(t, "GET", base+b.HTTP01ResourcePath()); code != 0 {
			t.Fatalf("listener still up after the last CleanUp (round %d)", round)
		}
	}
	// CleanUp of something never presented is harmless.
	if err := s.CleanUp(t.Context(), httpChallenge("x.example")); err != nil {
		t.Fatal(err)
	}
}

// A taken port gives the advice to use a webroot; a bad token from the
// CA is refused before anything listens.
func TestHTTP01Errors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &HTTP01{Addr: ln.Addr().String()}
	testtool.OneLineError(t, s.Present(t.Context(), httpChallenge("example.org")), "address in use", "is a web server on "+ln.Addr().String()+"?", "into its document root instead (webroot)")

	s = &HTTP01{Addr: freeAddr(t)}
	c := httpChallenge("example.org")
	c.Token = "../../etc/passwd"
	testtool.OneLineError(t, s.Present(t.Context(), c), "invalid token")

	for _, addr := range []string{"80", "127.0.0.1", "host:port", ":99999"} {
		s := &HTTP01{Addr: addr}
		testtool.OneLineError(t, s.Validate(), "listen address")
		testtool.OneLineError(t, s.Present(t.Context(), httpChallenge("example.org")), "listen address")
	}
}

// With Addr empty, HTTP01 is a handler for a daemon's own server.
func TestHTTP01Handler(t *testing.T) {
	s := &HTTP01{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c := httpChallenge("example.org")
	if code, _, _ := get(t, "GET", srv.URL+c.HTTP01ResourcePath()); code != 404 {
		t.Fatalf("before Present: %d", code)
	}
	if err := s.Present(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if code, _, body := get(t, "GET", srv.URL+c.HTTP01ResourcePath()); code != 200 || body != c.KeyAuthorization {
		t.Fatalf("GET = %d %q", code, body)
	}
	if err := s.CleanUp(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, "GET", srv.URL+c.HTTP01ResourcePath()); code != 404 {
		t.Fatalf("after CleanUp: %d", code)
	}
}

// Orders solved concurrently (certmagic does so for split certificates)
// share the listener: each token is served while its own challenge is
// presented, whatever the others do.
func TestHTTP01Concurrent(t *testing.T) {
	addr := freeAddr(t)
	s := &HTTP01{Addr: addr}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				c := httpChallenge(fmt.Sprintf("n%d.example.org", i))
				if err := s.Present(t.Context(), c); err != nil {
					errs <- err
					return
				}
				resp, err := noKeepAlive.Get("http://" + addr + c.HTTP01ResourcePath())
				if err != nil {
					errs <- err
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if string(b) != c.KeyAuthorization {
						errs <- fmt.Errorf("%s: got %q", c.Identifier.Value, b)
					}
				}
				if err := s.CleanUp(t.Context(), c); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
