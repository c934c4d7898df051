package tlsscan

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// opensslServer runs `openssl s_server` on a loopback port with the RSA
// and ECDSA test certificates and extra arguments, and returns its
// address. The system openssl.cnf is replaced by an empty one, so that
// Debian's MinProtocol/CipherString defaults do not apply and only the
// arguments decide. The server is killed when the test ends.
func opensslServer(t testing.TB, args ...string) string {
	t.Helper()
	bin := testtool.Require(t, "openssl", "openssl")
	dir := t.TempDir()
	rsaC, ecC := certs(t)
	rc, rk := rsaC.writePEM(t, dir, "rsa")
	ec, ek := ecC.writePEM(t, dir, "ec")
	conf := filepath.Join(dir, "openssl.cnf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"s_server", "-accept", "127.0.0.1:0", "-www",
		"-cert", rc, "-key", rk, "-dcert", ec, "-dkey", ek}, args...)
	cmd := exec.Command(bin, argv...)
	cmd.Env = append(os.Environ(), "OPENSSL_CONF="+conf)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ACCEPT "); ok {
				addr <- a
				break
			}
		}
		close(addr)
		for sc.Scan() { // drain, so that the server never blocks on stdout
		}
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("openssl %s: no ACCEPT line; stderr: %s", strings.Join(argv, " "), stderr.String())
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatalf("openssl %s did not start; stderr: %s", strings.Join(argv, " "), stderr.String())
	}
	return ""
}

// opensslCiphers is `openssl ciphers -V -s` for a protocol flag and cipher
// string: the IANA names of the suites the server will accept for that
// version with an RSA and an ECDSA certificate, in its order. PSK, SRP and
// DSS suites (no such credential) are left out.
func opensslCiphers(t *testing.T, protoFlag, cipherString string) []string {
	t.Helper()
	bin := testtool.Require(t, "openssl", "openssl")
	conf := filepath.Join(t.TempDir(), "openssl.cnf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "ciphers", "-V", "-stdname", "-s", protoFlag, cipherString)
	cmd.Env = append(os.Environ(), "OPENSSL_CONF="+conf)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl ciphers: %v", err)
	}
	// 0xC0,0x2C - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 - ECDHE-ECDSA-AES256-GCM-SHA384 TLSv1.2 Kx=ECDH Au=ECDSA ...
	line := regexp.MustCompile(`0x([0-9A-F]{2}),0x([0-9A-F]{2}) - (\S+) .* Kx=(\S+)\s+Au=(\S+)`)
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if strings.Contains(m[4], "PSK") || strings.Contains(m[4], "SRP") || m[5] == "DSS" {
			continue
		}
		id, _ := strconv.ParseUint(m[1]+m[2], 16, 16)
		if isTLS13Suite(uint16(id)) {
			continue
		}
		names = append(names, m[3])
	}
	return names
}

// TestScanOpenSSL checks Scan against `openssl s_server` (OpenSSL 3),
// which speaks TLS 1.0 and 1.1 and suites Go does not have: the versions
// found must be the ones enabled, the TLS 1.2 suites exactly those
// `openssl ciphers -s` lists for the cipher string, in the server's order
// with -serverpref and in the scanner's without.
func TestScanOpenSSL(t *testing.T) {
	const everything = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"
	tests := []struct {
		name       string
		args       []string
		versions   []string
		cipherStr  string   // TLS 1.2 cipher string, for opensslCiphers
		tls13      []string // TLS 1.3 suites, in server order
		serverPref bool
		nonFS      bool
		details    map[string]string
	}{{
		name:      "everything, client order",
		args:      []string{"-cipher", everything, "-ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256"},
		versions:  []string{"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"},
		cipherStr: everything,
		tls13:     []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"},
		nonFS:     true,
		// Debian builds OpenSSL without SSLv3 and SSLv2: it answers an
		// SSLv3 hello with a handshake_failure alert.
		details: map[string]string{"SSLv2": "protocol_version alert", "SSLv3": "handshake_failure alert"},
	}, {
		name:       "everything, server order",
		args:       []string{"-serverpref", "-cipher", everything, "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"},
		versions:   []string{"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"},
		cipherStr:  everything,
		tls13:      []string{"TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384"},
		serverPref: true,
		nonFS:      true,
	}, {
		name:       "TLS 1.2 only, short list, server order",
		args:       []string{"-tls1_2", "-serverpref", "-cipher", "ECDHE-RSA-AES256-SHA:AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256:CAMELLIA256-SHA:@SECLEVEL=0"},
		versions:   []string{"TLSv1.2"},
		cipherStr:  "ECDHE-RSA-AES256-SHA:AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256:CAMELLIA256-SHA:@SECLEVEL=0",
		serverPref: true,
		nonFS:      true,
		details:    map[string]string{"TLSv1.1": "protocol_version alert", "TLSv1.3": "protocol_version alert"},
	}, {
		name:      "forward secret suites only",
		args:      []string{"-no_tls1_3", "-cipher", "ECDHE:DHE:!aNULL:!eNULL:@SECLEVEL=0"},
		versions:  []string{"TLSv1.0", "TLSv1.1", "TLSv1.2"},
		cipherStr: "ECDHE:DHE:!aNULL:!eNULL:@SECLEVEL=0",
		details:   map[string]string{"TLSv1.3": "protocol_version alert"},
	}, {
		name:      "TLS 1.0 only",
		args:      []string{"-tls1", "-cipher", "AES128-SHA:DES-CBC3-SHA:@SECLEVEL=0"},
		versions:  []string{"TLSv1.0"},
		nonFS:     true,
		cipherStr: "",
		details:   map[string]string{"TLSv1.1": "server chose TLSv1.0", "TLSv1.2": "server chose TLSv1.0"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := opensslServer(t, tt.args...)
			start := time.Now()
			rep := Scan(context.Background(), tcpDialer(addr), Options{SNI: "xmpp.example"})
			elapsed := time.Since(start)
			if len(rep.Errors) > 0 {
				t.Errorf("errors: %q", rep.Errors)
			}
			if got := offered(rep); !slices.Equal(got, tt.versions) {
				t.Errorf("versions offered = %v, want %v", got, tt.versions)
			}
			for v, want := range tt.details {
				if got := versionOf(t, rep, v).Detail; got != want {
					t.Errorf("%s detail = %q, want %q", v, got, want)
				}
			}
			var want []string
			if tt.cipherStr != "" {
				want = opensslCiphers(t, "-tls1_2", tt.cipherStr)
			}
			got := names(rep.TLS12Ciphers)
			if !slices.Equal(sorted(got), sorted(want)) {
				t.Errorf("TLS 1.2 suites: scan found %d, openssl ciphers lists %d\nonly found: %v\nonly listed: %v",
					len(got), len(want), minus(got, want), minus(want, got))
			}
			if tt.serverPref && !slices.Equal(got, want) {
				t.Errorf("TLS 1.2 suites in order\n%v\nwant the server's\n%v", got, want)
			}
			if !tt.serverPref && len(got) > 1 {
				if rep.ServerPreference == nil || *rep.ServerPreference {
					t.Errorf("server preference = %s, want false", fmtBool(rep.ServerPreference))
				}
				if wantOrder := inOrder(suiteIDs(offerOrder(), nil), cipherIDs(rep.TLS12Ciphers)); !slices.Equal(got, wantOrder) {
					t.Errorf("TLS 1.2 suites in order %v, want the scanner's %v", got, wantOrder)
				}
			}
			if tt.serverPref && (rep.ServerPreference == nil || !*rep.ServerPreference) {
				t.Errorf("server preference = %s, want true", fmtBool(rep.ServerPreference))
			}
			if got13 := names(rep.TLS13Ciphers); (tt.serverPref && !slices.Equal(got13, tt.tls13)) ||
				!slices.Equal(sorted(got13), sorted(tt.tls13)) {
				t.Errorf("TLS 1.3 suites = %v, want %v", got13, tt.tls13)
			}
			if len(tt.tls13) > 1 {
				if p := rep.TLS13ServerPreference; p == nil || *p != tt.serverPref {
					t.Errorf("TLS 1.3 server preference = %s, want %v", fmtBool(p), tt.serverPref)
				}
			}
			if rep.NonForwardSecret != tt.nonFS {
				t.Errorf("non-forward-secret = %v, want %v", rep.NonForwardSecret, tt.nonFS)
			}
			for _, v := range []string{"SSLv2", "SSLv3"} {
				if versionOf(t, rep, v).Offered {
					t.Errorf("%s offered by a Debian OpenSSL 3", v)
				}
			}
			t.Logf("%d TLS 1.2 suites, %d connections, %v", len(got), rep.Connections, elapsed)
			for _, v := range rep.Versions {
				t.Logf("%s offered=%v %s", v.Name, v.Offered, v.Detail)
			}
		})
	}
}

func cipherIDs(cs []Cipher) []uint16 {
	var ids []uint16
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

// minus is the elements of a not in b.
func minus(a, b []string) []string {
	var d []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			d = append(d, x)
		}
	}
	return d
}
