package pinning

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testpki"
)

// poshTestServer is one HTTPS server standing in for every test domain:
// it picks its certificate by SNI and its answer by Host and path.
type poshTestServer struct {
	srv     *httptest.Server
	ca      *testpki.CA
	leaf    *x509.Certificate // the certificate the XMPP server presents, pinned by the documents
	other   *x509.Certificate // a certificate no document pins
	read    atomic.Int64      // bytes the fetcher read from the server
	release chan struct{}     // closed at cleanup: handlers that stall return
}

// The names the server has a valid certificate for; wrongname.example
// gets a certificate for another name, untrusted.example one from an
// unknown CA, and nothing listens for unreachable.example.
var poshTestNames = []string{
	"valid.example", "redirect.example", "hosting.example", "chain.example",
	"httpredir.example", "insecure.example", "expired.example", "noexpires.example",
	"huge.example", "hugecl.example", "badjson.example", "baddoc.example",
	"notfound.example", "servererror.example", "slow.example", "badtarget.example",
	"expiredredirect.example", "expiredtarget.example", "missingtarget.example",
}

func newPOSHTestServer(t *testing.T) *poshTestServer {
	t.Helper()
	s := &poshTestServer{ca: testpki.NewRoot("POSH fetch test root", nil), release: make(chan struct{})}
	good, goodKey := s.ca.Leaf(func(c *x509.Certificate) { c.DNSNames = poshTestNames })
	wrong, wrongKey := s.ca.Leaf(func(c *x509.Certificate) { c.DNSNames = []string{"somewhere-else.example"} })
	stranger := testpki.NewRoot("unknown root", nil)
	untrusted, untrustedKey := stranger.Leaf(func(c *x509.Certificate) { c.DNSNames = []string{"untrusted.example"} })
	s.leaf, _ = s.ca.Leaf(func(c *x509.Certificate) { c.DNSNames = []string{"xmpp.example"} })
	s.other, _ = s.ca.Leaf(func(c *x509.Certificate) { c.DNSNames = []string{"xmpp.example"} })

	// pin is a document pinning s.leaf (sha-256 and sha-512) with the
	// given expires, which NewPOSH would refuse when <= 0.
	pin := func(exp int64) string {
		doc, err := NewPOSH([]*x509.Certificate{s.leaf}, time.Second, POSHOptions{SHA512: true})
		if err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Replace(string(js), `"expires":1`, `"expires":`+strconv.FormatInt(exp, 10), 1)
	}
	chunk := []byte(strings.Repeat(" ", 32<<10))
	docs := map[string]func(w http.ResponseWriter, r *http.Request){
		"valid.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, pin(86400))
		},
		"valid.example/.well-known/posh/xmpp-client.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, pin(600))
		},
		"redirect.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"url":"https://hosting.example/posh/redirect.example.json","expires":3600}`)
		},
		"hosting.example/posh/redirect.example.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, pin(86400))
		},
		"chain.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"url":"https://hosting.example/posh/hop.json","expires":3600}`)
		},
		"hosting.example/posh/hop.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"url":"https://hosting.example/posh/redirect.example.json","expires":3600}`)
		},
		"httpredir.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://hosting.example/posh/redirect.example.json", http.StatusMovedPermanently)
		},
		"insecure.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"url":"http://hosting.example/posh/redirect.example.json","expires":3600}`)
		},
		"expired.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, pin(0))
		},
		"noexpires.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, strings.Replace(pin(1), `,"expires":1`, "", 1))
		},
		"huge.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			// 10 MB, streamed without a Content-Length.
			fmt.Fprint(w, `{"fingerprints":[],"pad":"`)
			for range (10 << 20) / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			fmt.Fprint(w, `"}`)
		},
		"hugecl.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(10<<20))
			for range (10 << 20) / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		},
		"badjson.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"fingerprints":[{"sha-256":`)
		},
		"baddoc.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"fingerprints":[{"sha-256":"AAAA"}],"expires":60}`)
		},
		"servererror.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "oops", http.StatusInternalServerError)
		},
		// Answers only when the test ends: not when the request's
		// context ends, which a loaded machine has been seen to end
		// before the client's deadline, answering 200 with no body.
		"slow.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			<-s.release
		},
		"badtarget.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"url":"https://hosting.example/posh/bad.json","expires":3600}`)
		},
		"hosting.example/posh/bad.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"fingerprints":"nope","expires":3600}`)
		},
		"expiredredirect.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"url":"https://hosting.example/posh/redirect.example.json","expires":0}`)
		},
		"expiredtarget.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"url":"https://hosting.example/posh/expired.json","expires":3600}`)
		},
		"hosting.example/posh/expired.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, pin(-1))
		},
		"missingtarget.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"url":"https://hosting.example/posh/missing.json","expires":3600}`)
		},
		"wrongname.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, pin(60))
		},
		"untrusted.example/.well-known/posh/xmpp-server.json": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, pin(60))
		},
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if h, ok := docs[host+r.URL.Path]; ok {
			w.Header().Set("Content-Type", "application/json")
			h(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	s.srv.TLS = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		switch hello.ServerName {
		case "wrongname.example":
			return &tls.Certificate{Certificate: [][]byte{wrong.Raw}, PrivateKey: wrongKey}, nil
		case "untrusted.example":
			return &tls.Certificate{Certificate: [][]byte{untrusted.Raw}, PrivateKey: untrustedKey}, nil
		}
		return &tls.Certificate{Certificate: [][]byte{good.Raw}, PrivateKey: goodKey}, nil
	}}
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	s.srv.StartTLS()
	t.Cleanup(func() {
		close(s.release)
		s.srv.Close()
	})
	return s
}

// dial maps HOST:443 of every test name to the server and counts what
// is read; unreachable.example (and anything else) does not answer.
func (s *poshTestServer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	known := host == "wrongname.example" || host == "untrusted.example"
	for _, n := range poshTestNames {
		known = known || host == n
	}
	if !known || port != "443" {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused (test: no such host)")}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.srv.Listener.Addr().String())
	if err != nil {
		return nil, err
	}
	return &poshCountingConn{Conn: c, n: &s.read}, nil
}

type poshCountingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *poshCountingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (s *poshTestServer) fetcher() *POSHFetcher {
	return &POSHFetcher{
		RootCAs:     s.ca.Pool(),
		DialContext: s.dial,
		Timeout:     5 * time.Second,
		Now:         func() time.Time { return testpki.At },
	}
}

func TestPOSHFetch(t *testing.T) {
	s := newPOSHTestServer(t)
	tests := []struct {
		domain, service string
		code            POSHCode
		text            string // a part of the text
		match           POSHPinCode
		expires         int64
		redirect        string
	}{
		{domain: "valid.example", code: POSHValid, match: POSHPinMatch, expires: 86400},
		{domain: "valid.example", service: POSHServiceClient, code: POSHValid, match: POSHPinMatch, expires: 600},
		{domain: "redirect.example", code: POSHValidViaRedirect, match: POSHPinMatch, expires: 3600,
			redirect: "https://hosting.example/posh/redirect.example.json"},
		{domain: "chain.example", code: POSHRedirectChain, text: "one redirect", match: POSHPinUnusable,
			redirect: "https://hosting.example/posh/hop.json"},
		{domain: "httpredir.example", code: POSHHTTPRedirect, text: "301", match: POSHPinUnusable},
		{domain: "insecure.example", code: POSHInsecureRedirect, text: "not https", match: POSHPinUnusable,
			redirect: "http://hosting.example/posh/redirect.example.json"},
		{domain: "expired.example", code: POSHExpired, text: "expires 0", match: POSHPinUnusable},
		{domain: "noexpires.example", code: POSHExpired, text: "expires 0", match: POSHPinUnusable},
		{domain: "expiredredirect.example", code: POSHExpired, text: "expires 0", match: POSHPinUnusable,
			redirect: "https://hosting.example/posh/redirect.example.json"},
		{domain: "expiredtarget.example", code: POSHExpired, text: "expires -1", match: POSHPinUnusable, expires: -1,
			redirect: "https://hosting.example/posh/expired.json"},
		{domain: "huge.example", code: POSHTooLarge, text: "more than 65536 bytes", match: POSHPinUnusable},
		{domain: "hugecl.example", code: POSHTooLarge, text: "announces 10485760 bytes", match: POSHPinUnusable},
		{domain: "badjson.example", code: POSHInvalidJSON, text: "not valid JSON", match: POSHPinUnusable},
		{domain: "baddoc.example", code: POSHInvalidDocument, text: "3 bytes, want 32", match: POSHPinUnusable},
		{domain: "badtarget.example", code: POSHInvalidDocument, text: "redirect target", match: POSHPinUnusable,
			redirect: "https://hosting.example/posh/bad.json"},
		{domain: "missingtarget.example", code: POSHHTTPError, text: "404", match: POSHPinUnusable,
			redirect: "https://hosting.example/posh/missing.json"},
		{domain: "wrongname.example", code: POSHTLSError, text: "not wrongname.example", match: POSHPinUnusable},
		{domain: "untrusted.example", code: POSHTLSError, text: "unknown authority", match: POSHPinUnusable},
		{domain: "notfound.example", code: POSHNotFound, text: "does not publish POSH", match: POSHPinUnusable},
		{domain: "servererror.example", code: POSHHTTPError, text: "500", match: POSHPinUnusable},
		{domain: "unreachable.example", code: POSHUnreachable, text: "cannot reach", match: POSHPinUnusable},
		{domain: "bad/domain", code: POSHInvalidInput, text: "not a DNS name", match: POSHPinUnusable},
		{domain: "valid.example", service: "xmpp", code: POSHInvalidInput, text: "POSH service", match: POSHPinUnusable},
	}
	for _, tt := range tests {
		if tt.service == "" {
			tt.service = POSHServiceServer
		}
		t.Run(tt.domain+"/"+tt.service, func(t *testing.T) {
			r := s.fetcher().Fetch(context.Background(), tt.domain, tt.service)
			if r.Code != tt.code {
				t.Fatalf("Code = %s, want %s (text %q, err %v)", r.Code, tt.code, r.Text, r.Err)
			}
			if !strings.Contains(r.Text, tt.text) || strings.ContainsAny(r.Text, "\r\n") || r.Text == "" {
				t.Errorf("Text = %q, want one line containing %q", r.Text, tt.text)
			}
			if r.Expires != tt.expires {
				t.Errorf("Expires = %d, want %d", r.Expires, tt.expires)
			}
			if r.RedirectURL != tt.redirect {
				t.Errorf("RedirectURL = %q, want %q", r.RedirectURL, tt.redirect)
			}
			if m := r.Match(s.leaf); m.Code != tt.match || m.Text == "" {
				t.Errorf("Match(pinned certificate) = %+v, want %s", m, tt.match)
			}
			wantOther := POSHPinUnusable
			if r.Usable() {
				wantOther = POSHPinNoMatch
				if want := testpki.At.Add(time.Duration(tt.expires) * time.Second); !r.ExpiresAt().Equal(want) {
					t.Errorf("ExpiresAt = %v, want %v", r.ExpiresAt(), want)
				}
			} else if !r.ExpiresAt().IsZero() {
				t.Errorf("ExpiresAt of an unusable result = %v, want zero", r.ExpiresAt())
			}
			if m := r.Match(s.other); m.Code != wantOther {
				t.Errorf("Match(other certificate) = %+v, want %s", m, wantOther)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("result does not encode as JSON: %v", err)
			}
		})
	}
}

// TestPOSHFetchTooLargeStopsReading checks that a 10 MB document is not
// read, let alone held, beyond the limit.
func TestPOSHFetchTooLargeStopsReading(t *testing.T) {
	s := newPOSHTestServer(t)
	for _, domain := range []string{"huge.example", "hugecl.example"} {
		t.Run(domain, func(t *testing.T) {
			f := s.fetcher()
			s.read.Store(0)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			r := f.Fetch(context.Background(), domain, POSHServiceServer)
			runtime.ReadMemStats(&after)
			if r.Code != POSHTooLarge {
				t.Fatalf("Code = %s (%s), want too-large", r.Code, r.Text)
			}
			// The limit, plus what TLS records and the transport's buffers
			// hold, plus the handshake: far below 10 MB.
			t.Logf("read %d bytes, allocated %d bytes", s.read.Load(), after.TotalAlloc-before.TotalAlloc)
			if n := s.read.Load(); n > 512<<10 {
				t.Errorf("read %d bytes from a server sending 10 MB, want at most about the 64 KiB limit", n)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("allocated %d bytes fetching a 10 MB document, want it bounded by the limit", alloc)
			}
		})
	}
}

// TestPOSHFetchMaxSize checks that MaxSize lowers the limit.
func TestPOSHFetchMaxSize(t *testing.T) {
	s := newPOSHTestServer(t)
	f := s.fetcher()
	f.MaxSize = 100
	r := f.Fetch(context.Background(), "valid.example", POSHServiceServer)
	if r.Code != POSHTooLarge {
		t.Fatalf("Code = %s (%s), want too-large with a 100-byte limit", r.Code, r.Text)
	}
}

func TestPOSHFetchTimeout(t *testing.T) {
	s := newPOSHTestServer(t)
	f := s.fetcher()
	f.Timeout = 200 * time.Millisecond
	start := time.Now()
	r := f.Fetch(context.Background(), "slow.example", POSHServiceServer)
	if r.Code != POSHUnreachable || !strings.Contains(r.Text, "within 200ms") {
		t.Fatalf("Code = %s (%s), want unreachable after the timeout", r.Code, r.Text)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Fetch took %v with a 200ms timeout", d)
	}
}

func TestPOSHFetchCanceled(t *testing.T) {
	s := newPOSHTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := s.fetcher().Fetch(ctx, "valid.example", POSHServiceServer)
	if r.Code != POSHUnreachable {
		t.Fatalf("Code = %s (%s), want unreachable", r.Code, r.Text)
	}
}

// TestPOSHFetchClient checks that a caller's client is used, and that its
// own redirect policy cannot make Fetch follow an HTTP redirect.
func TestPOSHFetchClient(t *testing.T) {
	s := newPOSHTestServer(t)
	followed := false
	client := &http.Client{
		Transport: &http.Transport{
			DialContext:     s.dial,
			TLSClientConfig: &tls.Config{RootCAs: s.ca.Pool(), Time: func() time.Time { return testpki.At }},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { followed = true; return nil },
	}
	f := &POSHFetcher{Client: client}
	if r := f.Fetch(context.Background(), "valid.example", POSHServiceServer); r.Code != POSHValid {
		t.Fatalf("Code = %s (%s), want valid", r.Code, r.Text)
	}
	if r := f.Fetch(context.Background(), "httpredir.example", POSHServiceServer); r.Code != POSHHTTPRedirect || followed {
		t.Fatalf("Code = %s (%s), followed %v; want http-redirect, not followed", r.Code, r.Text, followed)
	}
	if client.CheckRedirect == nil {
		t.Fatal("Fetch changed the caller's client")
	}
}

// TestPOSHFetchRealClock checks that without Now the fetcher uses the
// real clock for certificate validity: testpki's leaves are valid only
// around testpki.At.
func TestPOSHFetchRealClock(t *testing.T) {
	s := newPOSHTestServer(t)
	f := s.fetcher()
	f.Now = nil
	r := f.Fetch(context.Background(), "valid.example", POSHServiceServer)
	now := time.Now()
	validNow := !now.Before(testpki.Epoch) && now.Before(testpki.Epoch.Add(90*24*time.Hour))
	if validNow && r.Code != POSHValid || !validNow && r.Code != POSHTLSError {
		t.Fatalf("Code = %s (%s) at %v", r.Code, r.Text, now)
	}
}
