package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/xmppsim"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// countingConn is a connection counted open until closed.
type countingConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countingConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// TestProbeAPIConcurrent: 50 scrapes of /probe at once, each for another
// domain (an XMPP simulator behind SRV records of a fake DNS server), are
// all answered with probe_success 1, while the probes' connections open
// at once stay within the API's concurrency bound and the heap grows by
// a bounded amount.
func TestProbeAPIConcurrent(t *testing.T) {
	const n = 50
	sim, err := xmppsim.New(xmppsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	_, port, _ := net.SplitHostPort(sim.Addr())
	dns := testdns.StartFake(t)
	dns.Add(t, "sim-host.example. 60 IN A 127.0.0.1")
	var domains []string
	for i := range n {
		d := sim.Domain(i + 1)
		domains = append(domains, d)
		dns.Add(t, fmt.Sprintf("_xmpp-client._tcp.%s. 60 IN SRV 0 0 %s sim-host.example.", d, port))
	}
	if err := sim.Prepare(context.Background(), domains, 0); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "xmppcert.toml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf("state_dir = %q\n[watch]\nown_hosts = false\ntimeout = \"20s\"\n[[watch.peer]]\ndomain = %q\nservice = \"xmpp-client\"\nconnect = %q\n", filepath.Join(dir, "state"), domains[0], sim.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	var open, peak atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		now := open.Add(1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		return &countingConn{Conn: c, open: &open}, nil
	}
	d, err := New(cfg, Deps{Roots: sim.Roots(), Resolver: dns.Addr, Dial: dial, Logger: slog.New(slog.DiscardHandler), NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	ts := httptest.NewServer(d.Handler())
	defer ts.Close()

	heap := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	runtime.GC()
	base := heap()
	var maxHeap atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if h := heap(); h > maxHeap.Load() {
				maxHeap.Store(h)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	begin := time.Now()
	var wg sync.WaitGroup
	for _, dom := range domains {
		wg.Go(func() {
			resp, err := http.Get(ts.URL + "/probe?module=c2s_normal_auth&target=xmpp:" + dom)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "\nprobe_success 1\n") {
				t.Errorf("/probe %s: %s\n%s", dom, resp.Status, b)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	took := time.Since(begin)
	growth := float64(maxHeap.Load()-min(base, maxHeap.Load())) / (1 << 20)
	t.Logf("%d concurrent /probe scrapes answered in %v; at most %d probe connections open at once; heap in use grew by at most %.1f MiB", n, took.Round(time.Millisecond), peak.Load(), growth)
	// Each probe of a one-endpoint domain holds one connection at a time.
	if p := peak.Load(); p > 8 {
		t.Errorf("%d probe connections open at once; the API runs at most 8 probes", p)
	}
	if growth > 32 {
		t.Errorf("the heap grew by %.1f MiB serving %d scrapes; want under 32", growth, n)
	}
}
