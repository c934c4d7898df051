package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/watcher/changes"
)

// dashboard is GET / on h.
func dashboard(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s %v", resp.Status, err)
	}
	return string(b)
}

// TestAckSurvivesRestart: a key change shows as an unacknowledged
// warning; acknowledged through the JSON API, it is gone from the API
// and the dashboard, and stays gone after the daemon is closed and a new
// one opens the same state directory. A later change shows again.
func TestAckSurvivesRestart(t *testing.T) {
	f := newFixture(t)
	var logs testtool.LockedBuffer
	ctx := context.Background()
	d := f.newDaemon(t, &logs, true)
	sweep := func(d *Daemon) {
		t.Helper()
		if _, err := d.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sweep(d)
	f.cert.Store(leaf(f.ca))
	sweep(d)
	f.waitKind(t, changes.KeyChanged)
	const warning = "Unacknowledged change"
	eps := endpoints(t, d.Handler())
	if len(eps) != 1 || len(eps[0].Unacknowledged) == 0 || !strings.Contains(dashboard(t, d.Handler()), warning) {
		t.Fatalf("the key change is not shown unacknowledged: %+v", eps)
	}

	srv := httptest.NewServer(d.Handler())
	resp, err := http.Post(srv.URL+"/api/endpoints/"+eps[0].ID+"/ack", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var ack struct {
		Acked uint64 `json:"acked_seq"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ack)
	resp.Body.Close()
	srv.Close()
	if err != nil || resp.StatusCode != http.StatusOK || ack.Acked != 2 {
		t.Fatalf("acknowledging: %s, acked_seq %d, %v", resp.Status, ack.Acked, err)
	}
	check := func(d *Daemon, when string) {
		t.Helper()
		eps := endpoints(t, d.Handler())
		if len(eps) != 1 || len(eps[0].Unacknowledged) != 0 {
			t.Errorf("%s: the API still lists unacknowledged changes: %+v", when, eps)
		}
		if strings.Contains(dashboard(t, d.Handler()), warning) {
			t.Errorf("%s: the dashboard still warns", when)
		}
	}
	check(d, "after the acknowledgement")
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}

	d = f.newDaemon(t, &logs, true)
	defer d.Close(ctx)
	check(d, "after a restart")

	// A change after the acknowledgement is shown again.
	f.cert.Store(leaf(f.ca))
	sweep(d)
	if eps := endpoints(t, d.Handler()); len(eps) != 1 || len(eps[0].Unacknowledged) == 0 {
		t.Errorf("a change after the acknowledgement is not shown: %+v", eps)
	}
	if !strings.Contains(dashboard(t, d.Handler()), warning) {
		t.Error("the dashboard does not warn of the change after the acknowledgement")
	}
}
