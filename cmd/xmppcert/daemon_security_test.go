package main

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/watcher/changes"
)

// secret is one secret of the test: the content of a secret file, or a
// credential a client presents. raw is the key it encodes (EAB, TSIG),
// nil when the value is the key itself.
type secret struct {
	name  string
	value string
	raw   []byte
}

// randomBytes returns n random bytes.
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// forms are the ways the secret could show up: as it is, and its
// bytes (and the key it encodes) in hex and every base64 flavour.
func (s secret) forms() []string {
	out := []string{s.value}
	for _, b := range [][]byte{[]byte(s.value), s.raw} {
		if b == nil {
			continue
		}
		out = append(out, hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
			base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
			base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b))
	}
	if s.raw != nil {
		out = append(out, string(s.raw))
	}
	return out
}

// leaks fails the test for every form of every secret found in data,
// saying where, without printing data.
type leaks struct {
	t       *testing.T
	secrets []secret
	checked int
}

func (l *leaks) check(where, data string) {
	l.t.Helper()
	l.checked++
	for _, s := range l.secrets {
		for i, f := range s.forms() {
			if strings.Contains(data, f) {
				l.t.Errorf("%s leaks the %s (form %d of %d)", where, s.name, i, len(s.forms()))
			}
		}
	}
}

// nonLoopbackIP is an address of this machine that is not loopback
// (IPv4 preferred), or nil.
func nonLoopbackIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Logf("interface addresses: %v", err)
		return nil
	}
	var v6 net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || !n.IP.IsGlobalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			return n.IP
		}
		if v6 == nil {
			v6 = n.IP
		}
	}
	return v6
}

// TestDaemonSecurity runs the built command as an operator does, with
// every kind of secret file in the configuration (webhook
// hmac_secret_file, http token_file, [host.acme] eab_hmac_file,
// [host.pins.tlsa] tsig_secret_file), each a distinctive random value,
// and asserts:
//
//   - no secret, in any encoding (as written, hex, base64 of it and of
//     the key it encodes), and no credential a client presented appears
//     in the stdout or stderr of the CLI (issue with EAB, pin posh, pin
//     publish with TSIG to a refusing server, status) and of the daemon
//     (JSON and text logs, reloads by SIGHUP accepted and refused with
//     malformed secret files, a webhook that always fails), in /metrics,
//     /healthz, the dashboard pages, the JSON API, the alerts sent, or
//     any file in the state directory;
//   - with token_file and --listen 0.0.0.0:PORT, a client connecting
//     through a non-loopback address of this machine is refused (401)
//     without the token or with a wrong one and served with it (Bearer
//     or Basic); loopback clients need it too; /healthz needs none;
//   - the webhook's signature is made with the configured key (the
//     secrets are really in use);
//   - an acknowledgement made through the API survives a restart of the
//     daemon;
//   - every directory the CLI and the daemon create in the state
//     directory is 0700, every file 0600 except the certificates and
//     request.json, which are public (0644), even under umask 0.
func TestDaemonSecurity(t *testing.T) {
	bin := buildXmppcert(t)
	start := time.Now()
	work := t.TempDir()
	state := filepath.Join(work, "state")

	webhookKey := "whsec-" + base64.RawURLEncoding.EncodeToString(randomBytes(t, 24))
	token := "tok-" + hex.EncodeToString(randomBytes(t, 20))
	eabKey := randomBytes(t, 32)
	eab := base64.RawURLEncoding.EncodeToString(eabKey)
	tsigKey := randomBytes(t, 32)
	tsig := base64.StdEncoding.EncodeToString(tsigKey)
	badTSIG := "tsig-bad-" + hex.EncodeToString(randomBytes(t, 16)) + "!!"
	badEAB := "eab-bad-" + hex.EncodeToString(randomBytes(t, 16)) + "!!"
	wrongToken := "wrong-" + hex.EncodeToString(randomBytes(t, 20))
	l := &leaks{t: t, secrets: []secret{
		{name: "webhook HMAC key", value: webhookKey},
		{name: "HTTP token", value: token},
		{name: "EAB HMAC key", value: eab, raw: eabKey},
		{name: "TSIG secret", value: tsig, raw: tsigKey},
		{name: "malformed TSIG file content", value: badTSIG},
		{name: "malformed EAB file content", value: badEAB},
		{name: "wrong token a client presented", value: wrongToken},
	}}
	file := func(name, content string) string {
		path := filepath.Join(work, name)
		writeFile(t, path, []byte(content), 0o600)
		return path
	}
	file("webhook.secret", webhookKey+"\n")
	file("http.token", token+"\n")
	eabFile := file("eab.hmac", eab+"\n")
	tsigFile := file("tsig.key", fmt.Sprintf("key \"xmppcert-update.\" {\n\talgorithm hmac-sha256;\n\tsecret %q;\n};\n", tsig))

	// The CLI fills the state directory: a lineage of the local CA, an
	// ACME account registered with EAB, the pin state, and error paths
	// that hold the TSIG secret.
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		cmd := umask0(bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		out := stdout.String() + stderr.String()
		if code := cmd.ProcessState.ExitCode(); code != wantCode {
			t.Fatalf("xmppcert %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantCode, out)
		}
		l.check("xmppcert "+strings.Join(args, " "), out)
		return out
	}
	cli(0, "--state-dir", state, "issue", "example.org", "--component", "conference.example.org")
	peb := startPublicPebble(t, acmecatest.PebbleOptions{EABKeys: map[string]string{"kid-1": eab}})
	cli(0, append([]string{"--state-dir", state, "issue", "acme.example"},
		peb.args("--email", "admin@example.org", "--agree-tos", "--eab-kid", "kid-1", "--eab-hmac-file", eabFile)...)...)
	poshDir := filepath.Join(work, "www")
	if err := os.Mkdir(poshDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cli(0, "--state-dir", state, "pin", "posh", "example.org", "--out-dir", poshDir)
	refusing := startRefusingDNS(t)
	if out := cli(1, "--state-dir", state, "pin", "publish", "example.org", "--dns-rfc2136-server", refusing,
		"--dns-tsig-name", "xmppcert-update.", "--dns-tsig-secret-file", tsigFile); !strings.Contains(out, "REFUSED") {
		t.Errorf("pin publish to a refusing server does not say REFUSED:\n%s", out)
	}

	// A peer whose key the test changes, and the webhook receivers.
	ca := testpki.NewRoot("Peer Root", nil)
	var cert atomic.Pointer[tls.Certificate]
	cert.Store(peerLeaf(ca))
	xmpp := xmpptlstest.Start(t, xmpptlstest.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return cert.Load(), nil
	}})
	h := newWebhookReceiver(t, []byte(webhookKey))
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "receiver broken", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	config := func(failingMin string) string {
		return fmt.Sprintf(`[[host]]
domain = "example.org"
components = ["conference.example.org"]
[host.pins.tlsa]
server = %q
tsig_name = "xmppcert-update."
tsig_secret_file = "tsig.key"

[[host]]
domain = "acme.example"
ca = %q
[host.acme]
email = "admin@example.org"
agree_tos = true
eab_kid = "kid-1"
eab_hmac_file = "eab.hmac"
trust_root = %q
http_listen = %q

[watch]
interval = "1s"
jitter = 0
timeout = "1s"
own_hosts = false
[[watch.peer]]
domain = "peer.example"
service = "xmpp-client"
connect = %q

[[alert.webhook]]
url = %q
hmac_secret_file = "webhook.secret"
max_attempts = 2
[[alert.webhook]]
url = %q
hmac_secret_file = "webhook.secret"
min_severity = %q
max_attempts = 2

[http]
listen = "127.0.0.1:8787"
token_file = "http.token"
`, refusing, peb.Directory, peb.trustRoot, peb.listen, xmpp.Addr, h.URL+"/hook", failing.URL+"/hook", failingMin)
	}
	cfgFile := file("xmppcert.toml", config("info"))

	// Off loopback without a token: refused before anything starts.
	noToken := file("notoken.toml", "[[watch.peer]]\ndomain = \"peer.example\"\n")
	if r := runBin(t, bin, "--state-dir", state, "--config", noToken, "daemon", "--listen", "0.0.0.0:"+fmt.Sprint(testtool.FreePort(t))); r.code != 2 || !strings.Contains(r.stderr, "token") {
		t.Errorf("--listen 0.0.0.0 without a token: exit %d, want 2:\n%s", r.code, r.stderr)
	}
	allAddrs := file("alladdrs.toml", "[[watch.peer]]\ndomain = \"peer.example\"\n[http]\nlisten = \"0.0.0.0:8787\"\n")
	if r := runBin(t, bin, "--state-dir", state, "--config", allAddrs, "daemon"); r.code != 2 || !strings.Contains(r.stderr, "token") {
		t.Errorf("http.listen 0.0.0.0 without a token: exit %d, want 2:\n%s", r.code, r.stderr)
	}

	bearer := "Bearer " + token
	// pages fetches everything the daemon serves at base, with auth,
	// checks each for secrets, and returns the dashboard and the
	// endpoint's API id.
	pages := func(base, auth, when string) (dashboard, id string) {
		t.Helper()
		code, body := fetch(t, "GET", base+"/api/endpoints", auth, "")
		var list struct {
			Endpoints []struct {
				ID string `json:"id"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Endpoints) != 1 {
			t.Fatalf("%s: GET /api/endpoints: %d %v\n%s", when, code, err, body)
		}
		id = list.Endpoints[0].ID
		for _, path := range []string{"/", "/endpoint/" + id, "/api/endpoints", "/api/endpoints/" + id, "/metrics", "/healthz",
			"/static/style.css", "/.well-known/posh/xmpp-client.json", "/endpoint/nosuch", "/api/endpoints/nosuch"} {
			code, body := fetch(t, "GET", base+path, auth, "")
			l.check(fmt.Sprintf("%s: GET %s (%d)", when, path, code), body)
			if path == "/" {
				dashboard = body
			}
		}
		if !strings.Contains(dashboard, "peer.example") {
			t.Errorf("%s: the dashboard does not list the endpoint", when)
		}
		return dashboard, id
	}
	const warning = "Unacknowledged change"

	// Run 1: JSON logs, on every address, with the token.
	port := testtool.FreePort(t)
	d := startDaemonProc(t, bin, daemonOptions{listen: fmt.Sprintf("0.0.0.0:%d", port), umask0: true}, "--state-dir", state, "--config", cfgFile, "daemon", "--json")
	h.waitKind(t, changes.FirstSeen, 1)
	loop := d.url

	// Who may ask: the token is needed from everywhere but /healthz.
	if ip := nonLoopbackIP(t); ip != nil {
		remote := "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(port))
		t.Logf("non-loopback client through %s", remote)
		for _, path := range []string{"/", "/api/endpoints", "/metrics"} {
			for _, auth := range []string{"", "Bearer " + wrongToken, "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+wrongToken))} {
				code, body := fetch(t, "GET", remote+path, auth, "")
				if code != http.StatusUnauthorized {
					t.Errorf("non-loopback GET %s with %q: %d, want 401", path, strings.Fields(auth + " none")[0], code)
				}
				l.check("refusal of "+path, body)
			}
			for _, auth := range []string{bearer, "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+token))} {
				if code, _ := fetch(t, "GET", remote+path, auth, ""); code != http.StatusOK {
					t.Errorf("non-loopback GET %s with the token (%s): %d, want 200", path, strings.Fields(auth)[0], code)
				}
			}
		}
		if code, _ := fetch(t, "POST", remote+"/api/endpoints/x/ack", "", `{}`); code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Errorf("non-loopback POST ack without the token: %d", code)
		}
		if code, body := fetch(t, "GET", remote+"/healthz", "", ""); code != 200 || body != "ok\n" {
			t.Errorf("non-loopback /healthz: %d %q", code, body)
		}
		pages(remote, bearer, "non-loopback")
	} else {
		t.Log("this machine has no non-loopback address: watcher/web TestToken and TestLoopbackOnlyWithoutToken cover non-loopback clients at the handler")
	}
	if code, _ := fetch(t, "GET", loop+"/api/endpoints", "", ""); code != http.StatusUnauthorized {
		t.Errorf("loopback client without the token on a server with one: %d, want 401", code)
	}

	// A key change: alerted (signed with the configured key), shown, and
	// the failing receiver's give-up logged.
	cert.Store(peerLeaf(ca))
	h.waitKind(t, changes.KeyChanged, 1)
	d.waitLog(t, regexp.MustCompile("alert not delivered"))
	dash, id := pages(loop, bearer, "run 1")
	if !strings.Contains(dash, warning) {
		t.Errorf("run 1: the dashboard does not warn of the key change")
	}
	code, body := fetch(t, "POST", loop+"/api/endpoints/"+id+"/ack", bearer, `{}`)
	l.check("POST ack", body)
	if code != 200 {
		t.Fatalf("acknowledging: %d %s", code, body)
	}
	if dash, _ := pages(loop, bearer, "run 1 after the ack"); strings.Contains(dash, warning) {
		t.Errorf("run 1: the dashboard still warns after the acknowledgement")
	}
	cli(0, "--state-dir", state, "--config", cfgFile, "status", "--json", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	cli(0, "--state-dir", state, "--config", cfgFile, "status", "--listen", fmt.Sprintf("127.0.0.1:%d", port))

	// Reloads: an accepted one that rebuilds the sinks, then one refused
	// for malformed secret files, then the good files again.
	file("xmppcert.toml", config("warning"))
	d.reload(t, "configuration reloaded", 1)
	file("tsig.key", badTSIG+"\n")
	file("eab.hmac", badEAB+"\n")
	d.reload(t, "configuration refused", 2)
	if s := d.logs.String(); !strings.Contains(s, tsigFile) || !strings.Contains(s, eabFile) {
		t.Errorf("the refusal does not name the secret files")
	}
	file("eab.hmac", eab+"\n")
	file("tsig.key", fmt.Sprintf("secret %q;\n", tsig))
	d.reload(t, "configuration reloaded", 2)
	d.stop(t)
	for _, line := range strings.Split(strings.TrimSpace(d.logs.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("--json: a log line is not JSON: %s", line)
		}
	}
	l.check("daemon --json stdout and stderr", d.logs.String())

	// Run 2: text logs, loopback. The acknowledgement survived; a new
	// change is shown and its failed delivery logged.
	d = startDaemonProc(t, bin, daemonOptions{listen: freeAddr(t), umask0: true}, "--state-dir", state, "--config", cfgFile, "daemon")
	loop = d.url
	if dash, _ := pages(loop, bearer, "run 2"); strings.Contains(dash, warning) {
		t.Errorf("run 2: the acknowledgement did not survive the restart")
	}
	cert.Store(peerLeaf(ca))
	h.waitKind(t, changes.KeyChanged, 2)
	d.waitLog(t, regexp.MustCompile("alert not delivered"))
	if dash, _ := pages(loop, bearer, "run 2 after a change"); !strings.Contains(dash, warning) {
		t.Errorf("run 2: a change after the acknowledgement is not shown")
	}
	file("xmppcert.toml", config("info"))
	d.reload(t, "configuration reloaded", 1)
	d.stop(t)
	l.check("daemon stdout and stderr", d.logs.String())

	// status without a daemon reads the history itself.
	cli(0, "--state-dir", state, "--config", cfgFile, "status", "--json", "--listen", freeAddr(t))

	// The receiver failed the test for any alert not signed with the
	// configured key.
	for i, b := range h.all() {
		l.check(fmt.Sprintf("alert %d at the webhook", i), b)
	}

	checkStateDir(t, state, l)
	t.Logf("%d outputs checked for %d secrets in %v", l.checked, len(l.secrets), time.Since(start).Round(time.Millisecond))
}

// publicStateFiles are the files of the state directory that hold
// nothing secret and are meant to be read by the XMPP server's user or
// anyone (README "State directory"): certificates and the request.
var publicStateFiles = map[string]bool{
	"cert.pem": true, "chain.pem": true, "fullchain.pem": true, "request.json": true,
	"root.crt": true, "intermediate.crt": true,
}

// checkStateDir walks the state directory: directories 0700, files
// 0600 unless public (then not writable by others), no secret in any
// file, and the files the test relies on exist.
func checkStateDir(t *testing.T, state string, l *leaks) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(state, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(state, path)
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		perm := fi.Mode().Perm()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil
		case fi.IsDir():
			if perm != 0o700 {
				t.Errorf("state directory %s: mode %04o, want 0700", rel, perm)
			}
			return nil
		case publicStateFiles[e.Name()]:
			if perm&0o022 != 0 {
				t.Errorf("state file %s: mode %04o is writable by others", rel, perm)
			}
		case perm != 0o600:
			t.Errorf("state file %s: mode %04o, want 0600", rel, perm)
		}
		seen[filepath.ToSlash(filepath.Dir(rel))+"/"+e.Name()] = true
		seen[e.Name()] = true
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		l.check("state file "+rel, string(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"history.db", "privkey.pem", "next-privkey.pem", "account.key", "account.json", "pins/example.org.json", "ca/root.key", "ca/ca.db"} {
		if !seen[want] {
			t.Errorf("the state directory lacks %s: the test did not check it", want)
		}
	}
}
