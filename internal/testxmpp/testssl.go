package testxmpp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// Protocol names as testssl.sh's JSON has them (its finding ids), the
// keys of TestSSLResult.Protocols and .Ciphers.
const (
	SSLv2  = "SSLv2"
	SSLv3  = "SSLv3"
	TLS1   = "TLS1"
	TLS1_1 = "TLS1_1"
	TLS1_2 = "TLS1_2"
	TLS1_3 = "TLS1_3"
)

// TestSSLProtocols are the protocols testssl.sh checks, oldest first.
var TestSSLProtocols = []string{SSLv2, SSLv3, TLS1, TLS1_1, TLS1_2, TLS1_3}

// TestSSLOptions says what TestSSL asks testssl.sh to check. With none
// of the checks selected, testssl.sh does its default run (everything,
// vulnerabilities included: about a minute against loopback).
type TestSSLOptions struct {
	// StartTLS is --starttls: "xmpp" (c2s) or "xmpp-server" (s2s); empty
	// for direct TLS. testssl.sh 3.0 (Debian 12) has no xmpp-server:
	// TestSSL then scans through a StartTLSProxy that negotiates the s2s
	// STARTTLS (stream to XMPPHost, from "testssl.invalid") and relays the
	// TLS, so that the scan is of the same TLS all the same.
	StartTLS string
	// XMPPHost is --xmpphost, the stream's to domain; testssl.sh sends
	// the target's host (an IP address here) without it, which XMPP
	// servers refuse.
	XMPPHost string
	// SNI, when set, is the server name testssl.sh sends: it scans
	// SNI:PORT with --ip HOST. Without it, testssl.sh sends no SNI to an
	// IP address target, and a direct TLS port (which picks the
	// certificate by SNI) answers with its default.
	SNI string
	// Protocols is -p: each protocol offered or not (SSLv2 and SSLv3 by
	// testssl.sh's own sockets, as OpenSSL cannot speak them).
	Protocols bool
	// CipherPerProto is -E: the cipher suites accepted, per protocol.
	CipherPerProto bool
	// ServerPreference is -P: whether the server enforces its cipher
	// order, and that order per protocol.
	ServerPreference bool
	// ForwardSecrecy is -f: forward secret suites and curves offered.
	ForwardSecrecy bool
	// ServerDefaults is -S: certificate and server defaults.
	ServerDefaults bool
	// Fast is --fast: OpenSSL only, no sockets (faster; may miss suites
	// OpenSSL lacks).
	Fast bool
	// Args are more arguments, before the target.
	Args []string
	// Timeout bounds the run; 15 minutes when zero: a -p -E -P run
	// against loopback Prosody takes 40-70 s here, and over seven
	// minutes with two busy loops on both cores (testssl.sh forks for
	// nearly everything).
	Timeout time.Duration
}

// TestSSLResult is what testssl.sh reported, parsed from its flat JSON
// (--jsonfile).
type TestSSLResult struct {
	// Protocols maps each protocol checked (SSLv2 ... TLS1_3) to its
	// finding.
	Protocols map[string]TestSSLProtocol
	// Ciphers maps each protocol to the suites accepted with it, in
	// testssl.sh's order (by strength), from -E (cipher-<proto>_<hex>
	// findings).
	Ciphers map[string][]TestSSLCipher
	// CipherOrder says whether the server enforces its cipher order for
	// TLS 1.2 and below, CipherOrderTLS13 for TLS 1.3; nil when testssl.sh
	// did not say (no -P, or it could not tell). CipherOrderFinding is
	// testssl.sh's words (finding "cipher_order"), e.g. "server" or "NOT
	// a cipher order configured".
	CipherOrder, CipherOrderTLS13 *bool
	CipherOrderFinding            string
	// PreferredOrder maps each protocol to the server's cipher order
	// (OpenSSL names), when it enforces one (-P, cipherorder_* findings).
	PreferredOrder map[string][]string
	// ForwardSecrecy is whether forward secret suites are offered (-f,
	// finding "PFS"); nil when not checked. FSCiphers are those suites
	// (TLS 1.3 by IANA name, others by OpenSSL name, as testssl.sh
	// reports them), FSCurves the ECDHE curves offered.
	ForwardSecrecy      *bool
	ForwardSecrecyText  string
	FSCiphers, FSCurves []string
	// Findings are all findings, in testssl.sh's order.
	Findings []TestSSLFinding
	// Duration is how long testssl.sh ran; Args its arguments.
	Duration time.Duration
	Args     []string
	// Proxy is the StartTLSProxy address testssl.sh scanned for
	// StartTLS "xmpp-server" when it cannot do that itself, else empty.
	Proxy string
	// ExitCode is testssl.sh's exit status, the sum of its checks'
	// return values (below 242: TestSSL fails the test on errors).
	ExitCode int
}

// TestSSLProtocol is testssl.sh's finding on one protocol.
type TestSSLProtocol struct {
	// Offered is true when the finding starts with "offered" ("offered",
	// "offered (deprecated)", "offered with final", ...); false for "not
	// offered ..." and anything else.
	Offered bool
	// Finding is testssl.sh's words.
	Finding string
}

// TestSSLCipher is one cipher suite testssl.sh found accepted.
type TestSSLCipher struct {
	// ID is the suite's code: two bytes, or three for SSLv2. Hex is
	// testssl.sh's form of it ("xc02f").
	ID  uint32
	Hex string
	// OpenSSL and IANA are its names ("ECDHE-RSA-AES128-GCM-SHA256",
	// "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"); IANA is empty when
	// testssl.sh has none.
	OpenSSL, IANA string
	// KeyExchange ("ECDH 253", "DH 2048", "RSA"), Encryption ("AESGCM")
	// and Bits (of the symmetric key) as testssl.sh reports them.
	KeyExchange, Encryption string
	Bits                    int
}

// TestSSLFinding is one entry of testssl.sh's flat JSON: the check
// (ID, e.g. "TLS1_2", "cipher-tls1_2_xc02f", "cipher_order"), where
// (IP "127.0.0.1/127.0.0.1", Port), how testssl.sh rates it (Severity:
// "OK", "INFO", "LOW" ... "CRITICAL", "WARN", "FATAL") and what it found.
type TestSSLFinding struct {
	ID       string `json:"id"`
	IP       string `json:"ip"`
	Port     string `json:"port"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
	CVE      string `json:"cve,omitempty"`
	CWE      string `json:"cwe,omitempty"`
}

// Offered reports whether testssl.sh found the protocol offered.
func (r TestSSLResult) Offered(protocol string) bool { return r.Protocols[protocol].Offered }

// CipherIDs returns the IDs of the suites accepted with protocol, in
// testssl.sh's order.
func (r TestSSLResult) CipherIDs(protocol string) []uint32 {
	var ids []uint32
	for _, c := range r.Ciphers[protocol] {
		ids = append(ids, c.ID)
	}
	return ids
}

// TestSSL runs testssl.sh (Debian's /usr/bin/testssl) against target
// ("HOST:PORT") with --jsonfile and the checks opts selects, and
// returns its findings parsed. It always passes --quiet (no banner),
// --warnings off (never wait for input), --color 0, --nodns none (the
// target is an address), --connect-timeout 5 and --openssl-timeout 5 (a
// server that stops answering fails the check instead of hanging). It
// fails the test when testssl.sh fails or reports a fatal scan problem,
// printing its output. testssl.sh's temporary files go to a temporary
// directory of the test.
func TestSSL(t testing.TB, target string, opts TestSSLOptions) TestSSLResult {
	t.Helper()
	bin := testtool.Require(t, "testssl", "testssl.sh")
	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "testssl.json")
	args := []string{"--quiet", "--warnings", "off", "--color", "0", "--nodns", "none",
		"--connect-timeout", "5", "--openssl-timeout", "5", "--jsonfile", jsonFile}
	proxy := ""
	switch {
	case opts.StartTLS == "xmpp-server" && !testSSLHasXMPPServer(bin):
		if opts.XMPPHost == "" {
			t.Fatal("testxmpp.TestSSL: StartTLS xmpp-server needs XMPPHost")
		}
		proxy = StartTLSProxy(t, target, StreamOptions{Server: true, To: opts.XMPPHost, From: "testssl.invalid"})
		target = proxy
	case opts.StartTLS != "":
		args = append(args, "--starttls", opts.StartTLS)
	}
	if opts.XMPPHost != "" && proxy == "" {
		args = append(args, "--xmpphost", opts.XMPPHost)
	}
	if opts.SNI != "" {
		host, port, err := net.SplitHostPort(target)
		if err != nil {
			t.Fatalf("testxmpp.TestSSL: target %q: %v", target, err)
		}
		args = append(args, "--ip", host)
		target = net.JoinHostPort(opts.SNI, port)
	}
	for _, c := range []struct {
		on   bool
		flag string
	}{{opts.Protocols, "-p"}, {opts.CipherPerProto, "-E"}, {opts.ServerPreference, "-P"},
		{opts.ForwardSecrecy, "-f"}, {opts.ServerDefaults, "-S"}, {opts.Fast, "--fast"}} {
		if c.on {
			args = append(args, c.flag)
		}
	}
	args = append(args, opts.Args...)
	args = append(args, target)
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	// testssl.sh 3.0 exits with the sum of its checks' return values
	// (a check that could not run returns 1: a default run against
	// Prosody exits 7), and with 242 to 255 on errors (ERR_CMDLINE,
	// ERR_CONNECT, ...).
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && ctx.Err() == nil {
		code = exitErr.ExitCode()
	}
	if (err != nil && code == 0) || code >= 242 {
		t.Fatalf("testssl %s: %v (after %v)\n%s", strings.Join(args, " "), err, elapsed, out.String())
	}
	data, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatalf("testssl wrote no JSON: %v\n%s", err, out.String())
	}
	r, err := ParseTestSSLJSON(data)
	if err != nil {
		t.Fatalf("testssl's JSON: %v\n%s", err, out.String())
	}
	for _, f := range r.Findings {
		if f.ID == "scanProblem" || f.Severity == "FATAL" {
			t.Fatalf("testssl %s: %s %s: %s\n%s", strings.Join(args, " "), f.ID, f.Severity, f.Finding, out.String())
		}
	}
	r.Duration, r.Args, r.ExitCode, r.Proxy = elapsed, args, code, proxy
	return r
}

var (
	testSSLHelpOnce sync.Once
	testSSLHelp     string
)

// testSSLHasXMPPServer reports whether testssl.sh knows --starttls
// xmpp-server (3.2 does, 3.0 does not).
func testSSLHasXMPPServer(bin string) bool {
	testSSLHelpOnce.Do(func() {
		out, _ := exec.Command(bin, "--help").CombinedOutput()
		testSSLHelp = string(out)
	})
	return strings.Contains(testSSLHelp, "xmpp-server")
}

// ParseTestSSLJSON parses testssl.sh's flat JSON (--jsonfile; a JSON
// array of findings, which is also the "scanResult" of --jsonfile-pretty
// flattened).
func ParseTestSSLJSON(data []byte) (TestSSLResult, error) {
	r := TestSSLResult{
		Protocols:      map[string]TestSSLProtocol{},
		Ciphers:        map[string][]TestSSLCipher{},
		PreferredOrder: map[string][]string{},
	}
	if err := json.Unmarshal(data, &r.Findings); err != nil {
		return r, err
	}
	for _, f := range r.Findings {
		switch id := f.ID; {
		case isProtocol(id):
			r.Protocols[id] = TestSSLProtocol{Offered: strings.HasPrefix(f.Finding, "offered"), Finding: f.Finding}
		case strings.HasPrefix(id, "cipher-"):
			proto, c, err := parseCipherFinding(id, f.Finding)
			if err != nil {
				return r, err
			}
			r.Ciphers[proto] = append(r.Ciphers[proto], c)
		case id == "cipher_order":
			r.CipherOrderFinding = f.Finding
			r.CipherOrder, r.CipherOrderTLS13 = parseCipherOrder(f.Finding)
		case strings.HasPrefix(id, "cipherorder_"):
			// cipherorder_TLSv1_2, cipherorder_SSLv3, cipherorder_TLSv1
			r.PreferredOrder[orderProtocol(strings.TrimPrefix(id, "cipherorder_"))] = strings.Fields(f.Finding)
		case id == "PFS" || id == "FS":
			fs := strings.HasPrefix(f.Finding, "offered")
			r.ForwardSecrecy, r.ForwardSecrecyText = &fs, f.Finding
		case id == "PFS_ciphers" || id == "FS_ciphers":
			r.FSCiphers = strings.Fields(f.Finding)
		case id == "PFS_ECDHE_curves" || id == "FS_ECDHE_curves":
			r.FSCurves = strings.Fields(f.Finding)
		}
	}
	return r, nil
}

func isProtocol(id string) bool {
	for _, p := range TestSSLProtocols {
		if id == p {
			return true
		}
	}
	return false
}

// cipherProtocols maps the protocol part of a cipher finding's id
// (cipher-tls1_2_xc02f) to the protocol's name.
var cipherProtocols = map[string]string{
	"ssl2": SSLv2, "ssl3": SSLv3, "tls1": TLS1, "tls1_1": TLS1_1, "tls1_2": TLS1_2, "tls1_3": TLS1_3,
}

// parseCipherFinding parses a -E finding:
//
//	id "cipher-tls1_2_xc02f"
//	finding "TLS 1.2   xc02f   ECDHE-RSA-AES128-GCM-SHA256       ECDH 253   AESGCM      128      TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
func parseCipherFinding(id, finding string) (string, TestSSLCipher, error) {
	rest := strings.TrimPrefix(id, "cipher-")
	i := strings.LastIndex(rest, "_x")
	if i < 0 {
		return "", TestSSLCipher{}, fmt.Errorf("cipher finding id %q: no _x<hex>", id)
	}
	proto, ok := cipherProtocols[rest[:i]]
	if !ok {
		return "", TestSSLCipher{}, fmt.Errorf("cipher finding id %q: unknown protocol %q", id, rest[:i])
	}
	hex := rest[i+1:]
	f := strings.Fields(finding)
	at := -1
	for j, w := range f {
		if strings.EqualFold(w, hex) {
			at = j
			break
		}
	}
	// hex, OpenSSL name, key exchange (one or two words), encryption,
	// bits, IANA name.
	if at < 0 || len(f)-at < 6 {
		return "", TestSSLCipher{}, fmt.Errorf("cipher finding %q (%s): unexpected form", finding, id)
	}
	n, err := strconv.ParseUint(hex[1:], 16, 32)
	if err != nil {
		return "", TestSSLCipher{}, fmt.Errorf("cipher finding id %q: %v", id, err)
	}
	c := TestSSLCipher{ID: uint32(n), Hex: hex, OpenSSL: f[at+1]}
	tail := f[at+2:]
	// The IANA name is missing for a few suites; it is the only field
	// that starts with TLS_ or SSL_.
	if last := tail[len(tail)-1]; strings.HasPrefix(last, "TLS_") || strings.HasPrefix(last, "SSL_") {
		c.IANA, tail = last, tail[:len(tail)-1]
	}
	if len(tail) < 3 {
		return "", TestSSLCipher{}, fmt.Errorf("cipher finding %q (%s): unexpected form", finding, id)
	}
	c.Bits, err = strconv.Atoi(tail[len(tail)-1])
	if err != nil {
		return "", TestSSLCipher{}, fmt.Errorf("cipher finding %q (%s): bits: %v", finding, id, err)
	}
	c.Encryption = tail[len(tail)-2]
	c.KeyExchange = strings.Join(tail[:len(tail)-2], " ")
	return proto, c, nil
}

// parseCipherOrder reads testssl.sh's cipher_order finding (3.0:
// run_server_preference) into whether the server enforces an order
// below TLS 1.3 and for TLS 1.3.
func parseCipherOrder(f string) (below, tls13 *bool) {
	yes, no := true, false
	switch {
	case f == "server":
		return &yes, &yes
	case strings.HasPrefix(f, "server (TLS 1.3)"):
		return nil, &yes
	case strings.HasPrefix(f, "server -- TLS 1.3 client determined"):
		return &yes, &no
	case strings.HasPrefix(f, "server -- < TLS 1.3 client determined"):
		return &no, &yes
	case strings.HasPrefix(f, "NOT a cipher order configured"):
		return &no, &no
	case strings.HasPrefix(f, "not a cipher order for TLS 1.3 configured"):
		return nil, &no
	}
	return nil, nil
}

// orderProtocol maps the protocol of a cipherorder_ finding id
// (SSLv3, TLSv1, TLSv1_1, TLSv1_2, TLSv1_3) to the protocol's name.
func orderProtocol(p string) string {
	switch p {
	case "SSLv2", "SSLv3":
		return p
	case "TLSv1":
		return TLS1
	}
	return "TLS" + strings.TrimPrefix(p, "TLSv")
}
