package web

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// sweeper is an Options.Sweep that counts its calls.
type sweeper struct {
	calls     atomic.Int32
	cancelled atomic.Bool // a call got a context that can be cancelled
	err       error
}

type sweepResult struct {
	Targets int `json:"targets"`
}

func (sw *sweeper) sweep(ctx context.Context) (any, error) {
	sw.calls.Add(1)
	if ctx.Done() != nil {
		sw.cancelled.Store(true)
	}
	if sw.err != nil {
		return nil, sw.err
	}
	return sweepResult{Targets: 3}, nil
}

// TestSweep: POST /api/sweep runs Options.Sweep once and answers its
// result as JSON; requests a cross-site page could make are refused
// without sweeping.
func TestSweep(t *testing.T) {
	f := newFixture(t)
	sw := &sweeper{}
	s, logs := newServer(t, f, func(o *Options) { o.Sweep = sw.sweep })
	js := map[string]string{"Content-Type": "application/json"}
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for x, y := range h {
			out[x] = y
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		method string
		hdr    map[string]string
		want   int
	}{
		{"form", "POST", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 403},
		{"text/plain", "POST", map[string]string{"Content-Type": "text/plain"}, 403},
		{"no content type", "POST", nil, 403},
		{"cross-site", "POST", with(js, "Sec-Fetch-Site", "cross-site"), 403},
		{"foreign Origin", "POST", with(js, "Origin", "https://attacker.example"), 403},
		{"remote client", "POST", with(js, "RemoteAddr", "192.0.2.1:9"), 403},
		{"rebound Host", "POST", with(js, "Host", "attacker.example"), 403},
		{"GET", "GET", nil, 405},
	} {
		if r := req(t, s, tc.method, "/api/sweep", strings.NewReader("{}"), tc.hdr); r.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, r.StatusCode, tc.want)
		}
	}
	if n := sw.calls.Load(); n != 0 {
		t.Fatalf("refused requests swept %d times", n)
	}

	r := req(t, s, "POST", "/api/sweep", nil, with(js, "Origin", "http://127.0.0.1:8080"))
	body := bodyOf(t, r)
	var res sweepResult
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &res) != nil || res.Targets != 3 {
		t.Fatalf("sweep: %d %s %q", r.StatusCode, r.Header.Get("Content-Type"), body)
	}
	if sw.calls.Load() != 1 || sw.cancelled.Load() {
		t.Errorf("%d sweeps (want 1); cancellable context: %v (want a sweep that outlives its client)", sw.calls.Load(), sw.cancelled.Load())
	}
	if !strings.Contains(logs.String(), "sweep requested") {
		t.Errorf("the requested sweep is not logged:\n%s", logs.String())
	}

	// A failed sweep says so without the error's text (paths, peers).
	sw.err = errors.New("recording 3 observations in /var/lib/secret/history.db: disk full")
	r = req(t, s, "POST", "/api/sweep", nil, js)
	if body := bodyOf(t, r); r.StatusCode != 500 || strings.Contains(body, "/var/lib") || !strings.Contains(body, "daemon's log") {
		t.Errorf("failed sweep: %d %q", r.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "disk full") {
		t.Errorf("the failure is not logged")
	}
}

// TestSweepWithToken: with a token, a Bearer client may sweep with any
// body; a browser logged in with Basic still needs JSON.
func TestSweepWithToken(t *testing.T) {
	const token = "tkn-0123456789"
	sw := &sweeper{}
	s, _ := newServer(t, newFixture(t), func(o *Options) { o.Token, o.Sweep = token, sw.sweep })
	remote := "203.0.113.5:777"
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", map[string]string{"Content-Type": "application/json"}, 401},
		{"basic form", map[string]string{"Authorization": "Basic " + basic("x", token), "Content-Type": "application/x-www-form-urlencoded"}, 403},
		{"bearer", map[string]string{"Authorization": "Bearer " + token}, 200},
		{"basic JSON", map[string]string{"Authorization": "Basic " + basic("x", token), "Content-Type": "application/json"}, 200},
	} {
		tc.hdr["RemoteAddr"] = remote
		if r := req(t, s, "POST", "/api/sweep", nil, tc.hdr); r.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, r.StatusCode, tc.want)
		}
	}
	if n := sw.calls.Load(); n != 2 {
		t.Errorf("%d sweeps, want 2", n)
	}
}

// TestNoSweep: without Options.Sweep there is no such route.
func TestNoSweep(t *testing.T) {
	s, _ := newServer(t, newFixture(t), nil)
	if r := req(t, s, "POST", "/api/sweep", nil, map[string]string{"Content-Type": "application/json"}); r.StatusCode != 404 {
		t.Errorf("POST /api/sweep without Options.Sweep: %d, want 404", r.StatusCode)
	}
}
