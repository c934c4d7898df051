package daemon

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/testct"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/ct"
)

// TestCTWatch follows a real CT log (TesseraCT) beside three hostile
// ones (garbage tiles; a tile past the response bound; a tile of the
// wrong size), with the daemon's loop at a 1 s interval. Into the real log go
// our lineage's certificate, a precertificate of it (signed by the
// embedded CA's intermediate) and a certificate for our host from
// another CA: exactly one ct-unexpected alert (critical), for the
// foreign one, naming its issuer. The daemon restarted, with one more
// foreign certificate logged meanwhile: one alert, for that one (the
// position was kept), and the hostile logs are logged each round
// without holding up the real one.
func TestCTWatch(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	engine := lifecycle.OnDisk(state)
	ours := issueLocal(t, engine)
	caRoot, err := certfile.Read(filepath.Join(state, "ca", "root.crt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	interKey, err := acme.ReadKey(filepath.Join(state, "ca", "intermediate.key"))
	if err != nil {
		t.Fatal(err)
	}
	other := testpki.NewRoot("Interceptor Root", nil)
	foreign := func(serial int64) [][]byte {
		c, _ := other.Leaf(func(c *x509.Certificate) {
			c.SerialNumber = big.NewInt(serial)
			c.NotBefore, c.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
			c.Subject = pkix.Name{CommonName: domain}
			c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS(domain)))
		})
		return [][]byte{c.Raw, other.Cert.Raw}
	}
	log := testct.Start(t, caRoot[0], other.Cert)

	// The hostile logs are empty when first met, and grow after.
	var hostileSize atomic.Int64
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" {
			fmt.Fprintf(w, "garbage.example/log\n%d\nAAAA\n\n", 4*hostileSize.Load())
			return
		}
		w.Write([]byte("\x00\x00\x01garbage"))
	}))
	defer garbage.Close()
	giant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" {
			fmt.Fprintf(w, "giant.example/log\n%d\nAAAA\n\n", hostileSize.Load())
			return
		}
		chunk := make([]byte, 1<<20)
		for range ct.MaxResponse>>20 + 1 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer giant.Close()
	// short serves its full tile empty: a tile of the wrong size.
	short := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" {
			fmt.Fprintf(w, "short.example/log\n%d\nAAAA\n\n", hostileSize.Load())
		}
	}))
	defer short.Close()

	hook := startAlertHook(t)
	cfg, err := config.Parse(filepath.Join(dir, "xmppcert.toml"), []byte(fmt.Sprintf(`state_dir = %q
[[host]]
domain = %q
[watch]
own_hosts = false
[ct]
logs = [%q, %q, %q, %q]
interval = "1s"
[[alert.webhook]]
url = %q
`, state, domain, log.MonitoringURL, garbage.URL+"/", giant.URL+"/", short.URL+"/", hook.URL)))
	if err != nil {
		t.Fatal(err)
	}
	var logs testtool.LockedBuffer
	start := func() *Daemon {
		d, err := New(cfg, Deps{Engine: engine, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), NoSignals: true})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// round runs one CT round and returns the ct-unexpected alerts the
	// webhook got for it.
	round := func(d *Daemon, step string) []alert.Event {
		t.Helper()
		return hook.await(t, step, d.CTOnce(context.Background()))
	}

	// The daemon's own loop, every [ct] interval (1s): its first round
	// meets the logs, and the entries logged after it raise their alert
	// within one interval (and one round).
	d := start()
	loopCtx, stopLoop := context.WithCancel(context.Background())
	looped := make(chan struct{})
	go func() {
		defer close(looped)
		d.ctLoop(loopCtx, loopCtx)
	}()
	for {
		if _, ok, err := d.store.Position(log.MonitoringURL); err != nil || ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	hostileSize.Store(ct.TileWidth)
	log.Add(t, false, ours.Chain[0].Raw, ours.Chain[1].Raw)
	log.Add(t, true, testpki.Precertificate(ours.Chain[0], interKey), ours.Chain[1].Raw)
	log.Add(t, false, foreign(1001)...)
	logged := time.Now()
	got := hook.await(t, "three entries", 1)
	if took := time.Since(logged); took > cfg.CT.Interval+10*time.Second {
		t.Errorf("the alert came %s after the entry was logged; want within the interval %s and a round", took, cfg.CT.Interval)
	}
	stopLoop()
	<-looped
	d.Close(context.Background()) // flushes the alert queues: nothing more is on its way
	got = append(got, hook.await(t, "after the loop", 0)...)
	if len(got) != 1 || got[0].Kind != changes.CTUnexpected || got[0].Severity != changes.Critical ||
		!regexp.MustCompile(`^CT log \S+ entry 2: a certificate for example\.org that xmppcert did not issue: issuer CN=Interceptor Root,O=xmppcert tests \(an issuer that never issued for us\), serial 03e9, not before \S+, for a key that is none of ours$`).MatchString(got[0].Text) {
		t.Fatalf("alerts %+v; want one ct-unexpected for entry 2\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "CT: our own certificate logged") || strings.Count(logs.String(), "CT: our own certificate logged") != 2 {
		t.Errorf("our certificate and precertificate were not both recognised:\n%s", logs.String())
	}

	log.Add(t, false, foreign(1002)...)
	d = start()
	defer d.Close(context.Background())
	got = round(d, "after a restart")
	if len(got) != 1 || !strings.Contains(got[0].Text, "entry 3: ") || !strings.Contains(got[0].Text, "serial 03ea") {
		t.Fatalf("after a restart: alerts %+v; want one, for entry 3", got)
	}
	for _, want := range []string{
		`msg="CT: reading the log failed; retried next round" log=` + garbage.URL + `/ at=0 error=`,
		`msg="CT: reading the log failed; retried next round" log=` + giant.URL + `/ at=0 error=`,
		"the answer is longer than 33554432 bytes",
		`msg="CT: reading the log failed; retried next round" log=` + short.URL + `/ at=0 error=`,
		"the tile holds 0 entries, not 256",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}
}
