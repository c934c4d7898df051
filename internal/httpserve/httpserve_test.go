package httpserve

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve starts a server for h under l on loopback and returns its address.
func serve(t *testing.T, h http.Handler, l Limits) string {
	addr, _ := serveServer(t, h, l)
	return addr
}

// serveServer is serve, also returning the Server.
func serveServer(t *testing.T, h http.Handler, l Limits) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(h, l, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), srv
}

// A body past MaxBody stops the handler's read with *http.MaxBytesError:
// no handler holds more than the limit.
func TestBodyBounded(t *testing.T) {
	got := make(chan error, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if len(b) > 1024 {
			err = errors.New("read past the limit")
		}
		got <- err
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	}), Limits{MaxBody: 1024})
	resp, err := http.Post("http://"+addr+"/acme/new-account", "application/jose+json", bytes.NewReader(make([]byte, 64<<10)))
	if err == nil {
		resp.Body.Close()
	}
	var mbe *http.MaxBytesError
	if err := <-got; !errors.As(err, &mbe) {
		t.Errorf("the handler read: %v; want *http.MaxBytesError", err)
	}
}

// Connections that send nothing, or stop after a request, are closed
// after the header and idle bounds.
func TestIdleClosed(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), Limits{Header: 200 * time.Millisecond, Idle: 200 * time.Millisecond})
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	kept, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	io.WriteString(kept, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(kept), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for name, c := range map[string]net.Conn{"silent": silent, "kept alive": kept} {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		start := time.Now()
		if n, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("%s connection: %v after %d bytes, %v; want it closed by the server", name, err, n, time.Since(start))
		}
	}
}

// Idle clients, ten times MaxConns of them, do not lock a real client
// out, although the header bound is far away: the longest-waiting idle
// connection is closed to make room.
func TestConnectionCap(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		Limits{MaxConns: 3, Header: time.Hour})
	for range 30 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	client := &http.Client{Timeout: time.Minute}
	start := time.Now()
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("a real client behind 30 idle ones: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "ok") {
		t.Errorf("answer %q", b)
	}
	t.Logf("served after %v", time.Since(start))
}

// A connection in the middle of a request is never closed to make room:
// with MaxConns 2, one request in progress and one idle connection, a
// new client takes the idle one's place, and the request in progress
// completes.
func TestConnectionCapKeepsActive(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok "+r.URL.Path)
	}), Limits{MaxConns: 2, Header: time.Hour})
	slow := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: time.Minute}).Get("http://" + addr + "/slow")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "ok /slow" {
				err = errors.New("answer " + string(b))
			}
		}
		slow <- err
	}()
	<-entered
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 3 {
		resp, err := client.Get("http://" + addr + "/fast")
		if err != nil {
			t.Fatalf("a client beside a request in progress and an idle connection: %v", err)
		}
		resp.Body.Close()
	}
	close(release)
	if err := <-slow; err != nil {
		t.Errorf("the request in progress: %v", err)
	}
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the idle connection: read %v; want it closed (EOF)", err)
	}
}

// A client that arrives while every connection is busy is served as soon
// as one of them turns idle, not when it closes: with MaxConns 1 and an
// idle timeout of an hour, the kept-alive connection is closed to make
// room once its request ends.
func TestConnectionCapWaitsForIdle(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	addr, srv := serveServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}), Limits{MaxConns: 1, Header: time.Hour, Idle: time.Hour})
	// Each client its own transport: the second must not borrow the
	// first's connection once it is idle.
	kept := &http.Client{Timeout: time.Minute, Transport: &http.Transport{}}
	go func() {
		if resp, err := kept.Get("http://" + addr + "/slow"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-entered
	served := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}).Get("http://" + addr + "/fast")
		if err == nil {
			resp.Body.Close()
		}
		served <- err
	}()
	// Release the first request only once the second connection waits
	// for room.
	waitBlocked(t, srv)
	close(release)
	if err := <-served; err != nil {
		t.Errorf("a client behind a busy connection that then turned idle: %v", err)
	}
}

// Closing the server while a new connection waits for room returns: the
// wait ends with the listener (http.Server.Close waits for Serve).
func TestCloseWhileFull(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	defer close(release)
	addr, srv := serveServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}), Limits{MaxConns: 1, Header: time.Hour})
	go (&http.Client{Transport: &http.Transport{}}).Get("http://" + addr + "/busy")
	<-entered
	waiting, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	waitBlocked(t, srv)
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return while a connection waited for room")
	}
}

// waitBlocked waits until an accepted connection waits for room.
func waitBlocked(t *testing.T, srv *Server) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		srv.conns.mu.Lock()
		blocked := srv.conns.blocked
		srv.conns.mu.Unlock()
		if blocked > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection waited for room")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
