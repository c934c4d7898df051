package challenge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// requireTool finds a program the test needs, also in the sbin
// directories that a non-root PATH lacks. Outside CI a missing tool
// skips the test, saying which Debian package provides it; in CI (CI
// set) it fails, because the test command installs it there.
func requireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode()&0o111 != 0 {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found in CI: the test command must install Debian package %s", name, debianPackage)
	}
	t.Skipf("%s not found: install Debian package %s (./test.sh does so when run as root)", name, debianPackage)
	return ""
}

// knot is a real Knot DNS server on loopback, authoritative for
// example.org (updatable with Key), locked.example (served, but no
// update ACL), restricted.example (Key may update A records only) and
// nothing else.
type knot struct {
	Addr    string // 127.0.0.1:port, UDP and TCP
	KeyName string // TSIG key allowed to update example.org
	Secret  string // its base64 secret
	Dir     string
	log     *lockedBuffer
}

const (
	testZone   = "example.org."
	lockedZone = "locked.example."
)

// startKnot starts knotd with a fresh configuration, zone files and
// databases in a temporary directory, on a free port, and stops it when
// the test ends (its log is printed when the test failed).
func startKnot(t testing.TB) *knot {
	t.Helper()
	knotd := requireTool(t, "knotd", "knot")
	// A short directory: knotd's control socket lives in the rundir and
	// Unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "knot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"run", "zones", "db"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	k := &knot{KeyName: "acme-update.", Secret: base64.StdEncoding.EncodeToString(secret), Dir: dir}
	zones := map[string]string{
		"example.org.zone": `$ORIGIN example.org.
$TTL 60
@        SOA ns1 hostmaster 1 3600 600 86400 60
@        NS  ns1
ns1      A   127.0.0.1
@        A   127.0.0.1
www      A   127.0.0.1
conference A 127.0.0.1
upload   A   127.0.0.1
`,
		"restricted.example.zone": `$ORIGIN restricted.example.
$TTL 60
@        SOA ns1 hostmaster 1 3600 600 86400 60
@        NS  ns1
ns1      A   127.0.0.1
`,
		"locked.example.zone": `$ORIGIN locked.example.
$TTL 60
@        SOA ns1 hostmaster 1 3600 600 86400 60
@        NS  ns1
ns1      A   127.0.0.1
`,
	}
	for name, content := range zones {
		if err := os.WriteFile(filepath.Join(dir, "zones", name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		k.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		conf := fmt.Sprintf(`server:
    rundir: "%[1]s/run"
    listen: 127.0.0.1@%[2]d
    background-workers: 1
    udp-workers: 2
    tcp-workers: 2
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s/db"
key:
  - id: %[3]s
    algorithm: hmac-sha256
    secret: %[4]s
acl:
  - id: acme-update
    key: %[3]s
    action: update
  - id: a-only
    key: %[3]s
    action: update
    update-type: [A]
template:
  - id: default
    storage: "%[1]s/zones"
    file: "%%s.zone"
zone:
  - domain: example.org
    acl: acme-update
  - domain: locked.example
  - domain: restricted.example
    acl: a-only
`, dir, port, k.KeyName, k.Secret)
		confPath := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		k.log = &lockedBuffer{}
		cmd := exec.Command(knotd, "-c", confPath)
		cmd.Stdout, cmd.Stderr = k.log, k.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting knotd: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		if lastErr = k.waitReady(exited); lastErr == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("knotd log:\n%s", k.log.String())
				}
			})
			return k
		}
		stop()
	}
	t.Fatalf("knotd did not start: %v\n%s", lastErr, k.log.String())
	return nil
}

// waitReady waits until knotd answers the SOA of both zones over UDP and
// TCP, or exits.
func (k *knot) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := k.ready()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("knotd exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (k *knot) ready() error {
	for _, network := range []string{"udp", "tcp"} {
		for _, zone := range []string{testZone, lockedZone, "restricted.example."} {
			m := new(dns.Msg)
			m.SetQuestion(zone, dns.TypeSOA)
			c := &dns.Client{Net: network, Timeout: time.Second}
			r, _, err := c.Exchange(m, k.Addr)
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				return fmt.Errorf("SOA %s: %s", zone, dns.RcodeToString[r.Rcode])
			}
		}
	}
	return nil
}

// TXT returns the TXT values at name, straight from knotd.
func (k *knot) TXT(t testing.TB, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	m.RecursionDesired = false
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, k.Addr)
	if err != nil {
		t.Fatalf("TXT %s: %v", name, err)
	}
	if !r.Authoritative {
		t.Fatalf("TXT %s: answer from %s is not authoritative", name, k.Addr)
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}

// Kdig returns the TXT values at name as Knot's own kdig sees them.
func (k *knot) Kdig(t testing.TB, name string) []string {
	t.Helper()
	kdig := requireTool(t, "kdig", "knot-dnsutils")
	host, port, _ := net.SplitHostPort(k.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kdig, "@"+host, "-p", port, "+short", "+norecurse", name, "TXT").CombinedOutput()
	if err != nil {
		t.Fatalf("kdig: %v\n%s", err, out)
	}
	var vals []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			v, err := strconv.Unquote(l)
			if err != nil {
				t.Fatalf("kdig printed %q", l)
			}
			vals = append(vals, v)
		}
	}
	return vals
}

// freePort returns a port that is free for both TCP and UDP on
// 127.0.0.1 at the time of the call.
func freePort() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP")
}

// lockedBuffer is a bytes.Buffer safe for a child's stdout and stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
