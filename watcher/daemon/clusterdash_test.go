package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testetcd"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/web"
)

// TestClusterDashboard: three nodes on one etcd watch 20 simulated
// endpoints, sharded, each serving its API on 127.0.0.1 (node0's URL
// derived from its listener, node1's given as advertise_url; node2 has
// another token). node0's dashboard and /metrics show an endpoint only
// node1 watches, labelled node1 and linked to node1's own page, while
// node0's /api/endpoints stays its own; node2, which refuses node0's
// token, is named as not answering with the reason. With node1's HTTP
// server stopped, node0's dashboard still renders, names node1 with the
// reason and /metrics has member_up 0 for it. Members that answer a
// malformed body, an oversized one, or endpoints with control
// characters are bounded, reported and never merged (or escaped).
func TestClusterDashboard(t *testing.T) {
	e := testetcd.Start(t)
	const n = 20
	sim, _, peers := simPeers(t, n)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	const token, otherToken = "the-cluster-token-0123456789", "another-token-0123456789"
	for file, content := range map[string]string{"cluster.key": strings.Repeat("5a", 32), "token": token, "other.token": otherToken} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var nodes []clusterNode
	var servers []*http.Server
	var urls []string
	for i, tokenFile := range []string{"token", "token", "other.token"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		extra := ""
		if i == 1 {
			extra = fmt.Sprintf("advertise_url = \"http://%s/\"\n", ln.Addr())
		}
		extra += fmt.Sprintf("[http]\ntoken_file = %q\n", filepath.Join(dir, tokenFile)) + peers
		nd := startClusterNode(t, dir, []string{e.Endpoint}, keyFile, i, extra, sim.Roots())
		nd.d.advertise(ln.Addr())
		srv := &http.Server{Handler: nd.d.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		nodes, servers, urls = append(nodes, nd), append(servers, srv), append(urls, "http://"+ln.Addr().String())
	}
	ctx := context.Background()
	for i, nd := range nodes {
		if res, err := nd.d.SweepOnce(ctx); err != nil || len(res.Failed) > 0 {
			t.Fatalf("node %d: %v %v", i, err, res.Failed)
		}
	}
	// An endpoint that only node1 watches.
	own := func(i int) map[string]bool {
		keys, err := nodes[i].d.Store().Endpoints()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, k := range keys {
			out[k] = true
		}
		return out
	}
	var key, domain string
	for k := range own(1) {
		if !own(0)[k] {
			key, domain = k, strings.Fields(k)[0]
			break
		}
	}
	if key == "" {
		t.Fatalf("node1 watches nothing of its own")
	}
	a := urls[0]

	dash := get(t, a, "/", token, http.StatusOK)
	row := regexp.MustCompile(`(?s)<tr[^>]*data-id="` + web.ID(key) + `">.*?</tr>`).FindString(dash)
	if row == "" || !strings.Contains(row, domain) || !strings.Contains(row, "watched by node1") || !strings.Contains(row, `href="`+urls[1]+"/endpoint/"+web.ID(key)+`"`) {
		t.Errorf("node0's dashboard row of %s (node1's): %q; want it watched by node1, linked to node1's page", domain, row)
	}
	// node2's endpoints are missing: it refuses node0's token.
	shown := n - len(own(2))
	if c := strings.Count(dash, "watched by node"); c != shown || strings.Contains(dash, "watched by node2") {
		t.Errorf("node0's dashboard has %d rows with a node; want %d, each of node0's and node1's endpoints once", c, shown)
	}
	if !strings.Contains(dash, "Member node2 did not answer for its endpoints: the daemon answered 401 Unauthorized") {
		t.Errorf("node0's dashboard does not name node2, which refuses its token:\n%s", dash)
	}
	metrics := get(t, a, "/metrics", token, http.StatusOK)
	for _, want := range []string{
		`xmppcert_cluster_member_up{node="node0"} 1`, `xmppcert_cluster_member_up{node="node1"} 1`, `xmppcert_cluster_member_up{node="node2"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("node0's /metrics lacks %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^probe_success\{[^}]*domain="` + regexp.QuoteMeta(domain) + `"[^}]*node="node1"[^}]*\} 1$`).MatchString(metrics) {
		t.Errorf("node0's /metrics has no probe_success of %s labelled node1", domain)
	}
	if c := strings.Count(metrics, "\nprobe_success{"); c != shown {
		t.Errorf("node0's /metrics has %d probe_success series; want %d", c, shown)
	}
	// Scraped node by node: only node0's own endpoints, no member asked.
	local := get(t, a, "/metrics?scope=node", token, http.StatusOK)
	if c := strings.Count(local, "\nprobe_success{"); c != len(own(0)) || strings.Contains(local, `node="node1"`) || strings.Contains(local, "xmppcert_cluster_member_up") {
		t.Errorf("node0's /metrics?scope=node has %d probe_success series (want %d), or another member's", c, len(own(0)))
	}
	get(t, a, "/metrics?scope=everything", token, http.StatusBadRequest)
	for _, l := range regexp.MustCompile(`(?m)^probe_success\{[^}]*\}`).FindAllString(metrics, -1) {
		if !strings.Contains(l, `node="node`) {
			t.Errorf("series without a node label: %s", l)
		}
	}
	var api struct {
		Endpoints []web.EndpointStatus `json:"endpoints"`
	}
	if err := jsonGet(t, a, token, &api); err != nil {
		t.Fatal(err)
	}
	if len(api.Endpoints) != len(own(0)) || len(api.Endpoints) == n {
		t.Errorf("node0's /api/endpoints lists %d endpoints; want its own %d only", len(api.Endpoints), len(own(0)))
	}

	// Members that answer badly: never merged, named with the reason.
	c := e.Client(t)
	for name, answer := range map[string]func(w http.ResponseWriter){
		"evil-malformed": func(w http.ResponseWriter) {
			io.WriteString(w, `{"endpoints":[{"key":"x","endpoint":{"domain":"merged.invalid"}}, "\u001b[2J`+"\x1b[2J\x00")
		},
		"evil-huge": func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", fmt.Sprint(100<<20))
			io.WriteString(w, `{"endpoints":[{"endpoint":{"domain":"merged.invalid"}}`)
		},
		"evil-control": func(w http.ResponseWriter) {
			io.WriteString(w, `{"endpoints":[{"endpoint":{"domain":"esc\u001b[2J.invalid","service":"xmpp-client","host":"h","port":5222,"address":"192.0.2.1"}}]}`)
		},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		doc := fmt.Sprintf(`{"node":%q,"url":"http://%s"}`, name, ln.Addr())
		if _, err := c.Put(ctx, "/xmppcert/members/"+name, doc); err != nil {
			t.Fatal(err)
		}
	}
	servers[1].Close() // node1 stops answering
	dash = get(t, a, "/", token, http.StatusOK)
	for _, want := range []string{
		"Member node1 did not answer for its endpoints: no daemon answered at " + urls[1],
		"Member evil-malformed did not answer for its endpoints: reading the daemon&#39;s answer: ",
		"Member evil-huge did not answer for its endpoints: the daemon&#39;s answer is too large: 104857600 bytes",
	} {
		if !strings.Contains(dash, want) {
			t.Errorf("node0's dashboard does not say %q", want)
		}
	}
	if strings.Contains(dash, "merged.invalid") || strings.ContainsAny(dash, "\x1b\x00") {
		t.Errorf("node0's dashboard merged a bad answer or shows a control character")
	}
	metrics = get(t, a, "/metrics", token, http.StatusOK)
	for _, want := range []string{
		`xmppcert_cluster_member_up{node="node1"} 0`, `xmppcert_cluster_member_up{node="evil-malformed"} 0`, `xmppcert_cluster_member_up{node="evil-huge"} 0`,
		`xmppcert_cluster_member_up{node="evil-control"} 1`, `domain="esc\\x1b[2J.invalid"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("node0's /metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, "merged.invalid") || strings.ContainsAny(metrics, "\x1b\x00") {
		t.Errorf("node0's /metrics merged a bad answer or holds a control character")
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(metrics)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
	if strings.Contains(metrics, `domain="`+domain+`"`) {
		t.Errorf("node0's /metrics still has node1's %s while node1 does not answer", domain)
	}
}

// get is GET base+path with the bearer token, answered with code; it
// returns the body.
func get(t *testing.T, base, path, token string, code int) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != code {
		t.Fatalf("GET %s: %d; want %d\n%s", path, resp.StatusCode, code, b)
	}
	return string(b)
}

// jsonGet is GET /api/endpoints of the node at base, as `xmppcert
// status` asks it.
func jsonGet(t *testing.T, base, token string, out *struct {
	Endpoints []web.EndpointStatus `json:"endpoints"`
}) error {
	t.Helper()
	eps, err := (&web.Client{BaseURL: base, Token: token, Timeout: 30 * time.Second}).Endpoints(context.Background())
	out.Endpoints = eps
	return err
}

// TestAdvertiseURL: a node advertises its advertise_url, else http://
// and its listen host with the port its listener is bound to; none when
// it listens on every address.
func TestAdvertiseURL(t *testing.T) {
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41234}
	for _, c := range []struct{ listen, given, want string }{
		{"127.0.0.1:0", "", "http://127.0.0.1:41234"},
		{"127.0.0.1:8787", "", "http://127.0.0.1:41234"},
		{"[::1]:8787", "", "http://[::1]:41234"},
		{"node1.example.org:8787", "", "http://node1.example.org:41234"},
		{":8787", "", ""},
		{"0.0.0.0:8787", "", ""},
		{"[::]:8787", "", ""},
		{"[::]:8787", "https://node1.example.org:8443", "https://node1.example.org:8443"},
		{"127.0.0.1:8787", "http://192.0.2.1:8787", "http://192.0.2.1:8787"},
	} {
		cfg := &config.Config{HTTP: config.HTTP{Listen: c.listen}, Cluster: &config.Cluster{AdvertiseURL: c.given}}
		if got := advertiseURL(cfg, bound); got != c.want {
			t.Errorf("listen %s, advertise_url %q: %q; want %q", c.listen, c.given, got, c.want)
		}
	}
}
