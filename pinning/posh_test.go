package pinning

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// poshTestCerts makes a CA and n leaves for names (all leaves carry all
// names), for the POSH tests.
func poshTestCerts(t testing.TB, n int, names ...string) (*testpki.CA, []*x509.Certificate) {
	t.Helper()
	ca := testpki.NewRoot("POSH test root", nil)
	var certs []*x509.Certificate
	for range n {
		c, _ := ca.Leaf(func(c *x509.Certificate) { c.DNSNames = names })
		certs = append(certs, c)
	}
	return ca, certs
}

func poshB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func poshSHA256(c *x509.Certificate) []byte { d := sha256.Sum256(c.Raw); return d[:] }
func poshSHA512(c *x509.Certificate) []byte { d := sha512.Sum512(c.Raw); return d[:] }

func TestNewPOSH(t *testing.T) {
	_, certs := poshTestCerts(t, 2, "example.org")
	cur, next := certs[0], certs[1]
	tests := []struct {
		name    string
		certs   []*x509.Certificate
		expires time.Duration
		opts    POSHOptions
		want    []POSHFingerprint
		wantExp int64
		wantErr string
	}{
		{name: "current", certs: []*x509.Certificate{cur}, expires: 24 * time.Hour,
			want: []POSHFingerprint{{SHA256: poshSHA256(cur)}}, wantExp: 86400},
		{name: "current and next", certs: []*x509.Certificate{cur, next}, expires: time.Hour,
			want: []POSHFingerprint{{SHA256: poshSHA256(cur)}, {SHA256: poshSHA256(next)}}, wantExp: 3600},
		{name: "duplicates once", certs: []*x509.Certificate{cur, next, cur}, expires: time.Hour,
			want: []POSHFingerprint{{SHA256: poshSHA256(cur)}, {SHA256: poshSHA256(next)}}, wantExp: 3600},
		{name: "sha-512 too", certs: []*x509.Certificate{cur}, expires: 90 * time.Second, opts: POSHOptions{SHA512: true},
			want: []POSHFingerprint{{SHA256: poshSHA256(cur), SHA512: poshSHA512(cur)}}, wantExp: 90},
		{name: "whole seconds", certs: []*x509.Certificate{cur}, expires: 1500 * time.Millisecond,
			want: []POSHFingerprint{{SHA256: poshSHA256(cur)}}, wantExp: 1},
		{name: "no certificate", expires: time.Hour, wantErr: "at least one certificate"},
		{name: "nil certificate", certs: []*x509.Certificate{cur, nil}, expires: time.Hour, wantErr: "certificate 2"},
		{name: "zero expires", certs: []*x509.Certificate{cur}, wantErr: "under one second"},
		{name: "negative expires", certs: []*x509.Certificate{cur}, expires: -time.Hour, wantErr: "under one second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := NewPOSH(tt.certs, tt.expires, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewPOSH error = %v, want one containing %q", err, tt.wantErr)
				}
				poshCheckOneLine(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(doc.Fingerprints, tt.want) || doc.Expires != tt.wantExp || doc.URL != "" {
				t.Fatalf("NewPOSH = %+v, want fingerprints %+v expires %d", doc, tt.want, tt.wantExp)
			}
			for _, c := range tt.certs {
				if !doc.ListsCertificate(c) {
					t.Errorf("document does not list a certificate it was made from")
				}
			}
			// The JSON is RFC 7711's shape and parses back to the same.
			js, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			var shape struct {
				Fingerprints []map[string]string `json:"fingerprints"`
				Expires      int64               `json:"expires"`
			}
			if err := json.Unmarshal(js, &shape); err != nil {
				t.Fatal(err)
			}
			if shape.Fingerprints[0]["sha-256"] != poshB64(poshSHA256(tt.certs[0])) || shape.Expires != tt.wantExp {
				t.Errorf("JSON %s does not carry the sha-256 and expires", js)
			}
			back, err := ParsePOSH(js)
			if err != nil || !reflect.DeepEqual(back, doc) {
				t.Errorf("ParsePOSH(%s) = %+v, %v; want %+v", js, back, err, doc)
			}
		})
	}
}

func TestNewPOSHRedirect(t *testing.T) {
	tests := []struct {
		url     string
		expires time.Duration
		wantIs  error
	}{
		{"https://hosting.example/.well-known/posh/xmpp-server.json", time.Hour, nil},
		{"https://hosting.example:8443/posh/example.org.json?x=1", time.Hour, nil},
		{"https://hosting.example/x", 0, nil}, // expires checked below
		{"http://hosting.example/x", time.Hour, ErrPOSHInsecureURL},
		{"ftp://hosting.example/x", time.Hour, ErrPOSHInsecureURL},
		{"HTTP://hosting.example/x", time.Hour, ErrPOSHInsecureURL},
		{"/.well-known/posh/xmpp-server.json", time.Hour, ErrPOSHInvalidDocument},
		{"hosting.example/x", time.Hour, ErrPOSHInvalidDocument},
		{"https:///x", time.Hour, ErrPOSHInvalidDocument},
		{"https:opaque", time.Hour, ErrPOSHInvalidDocument},
		{"https://user:pw@hosting.example/x", time.Hour, ErrPOSHInvalidDocument},
		{"https://hosting.example/%zz", time.Hour, ErrPOSHInvalidDocument},
		{"", time.Hour, ErrPOSHInvalidDocument},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			doc, err := NewPOSHRedirect(tt.url, tt.expires)
			switch {
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("NewPOSHRedirect(%q) error = %v, want %v", tt.url, err, tt.wantIs)
				}
				poshCheckOneLine(t, err)
			case tt.expires < time.Second:
				if err == nil {
					t.Fatalf("NewPOSHRedirect with expires %v: no error", tt.expires)
				}
			case err != nil:
				t.Fatal(err)
			default:
				if !doc.IsRedirect() || doc.URL != tt.url || doc.Expires != int64(tt.expires/time.Second) {
					t.Fatalf("NewPOSHRedirect = %+v", doc)
				}
				js, err := json.Marshal(doc)
				if err != nil {
					t.Fatal(err)
				}
				if back, err := ParsePOSH(js); err != nil || !reflect.DeepEqual(back, doc) {
					t.Fatalf("ParsePOSH(%s) = %+v, %v", js, back, err)
				}
			}
		})
	}
}

func TestParsePOSH(t *testing.T) {
	_, certs := poshTestCerts(t, 1, "example.org")
	s256, s512 := poshB64(poshSHA256(certs[0])), poshB64(poshSHA512(certs[0]))
	s384 := func() string { d := sha512.Sum384(certs[0].Raw); return poshB64(d[:]) }()
	big := `{"fingerprints":[{"sha-256":"` + s256 + `"}],"expires":1,"pad":"` + strings.Repeat("x", MaxPOSHSize) + `"}`
	tests := []struct {
		name   string
		in     string
		wantIs error
		want   POSHDocument
	}{
		{name: "one sha-256", in: `{"fingerprints":[{"sha-256":"` + s256 + `"}],"expires":86400}`,
			want: POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(certs[0])}}, Expires: 86400}},
		{name: "every hash", in: `{"fingerprints":[{"sha-256":"` + s256 + `","sha-384":"` + s384 + `","sha-512":"` + s512 + `"}],"expires":60}`,
			want: POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(certs[0]), SHA384: func() []byte { d := sha512.Sum384(certs[0].Raw); return d[:] }(), SHA512: poshSHA512(certs[0])}}, Expires: 60}},
		{name: "unknown hash ignored", in: `{"fingerprints":[{"sha-1":"AAAA","sha-256":"` + s256 + `"},{"md5":"x"}],"expires":60}`,
			want: POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(certs[0])}}, Expires: 60}},
		{name: "escaped key", in: `{"fingerprints":[{"sha\u002d256":"` + s256 + `"}],"expires":60}`,
			want: POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(certs[0])}}, Expires: 60}},
		{name: "unknown top-level key ignored", in: `{"fingerprints":[{"sha-256":"` + s256 + `"}],"expires":60,"comment":"hi"}`,
			want: POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(certs[0])}}, Expires: 60}},
		{name: "redirect", in: `{"url":"https://hosting.example/posh.json","expires":3600}`,
			want: POSHDocument{URL: "https://hosting.example/posh.json", Expires: 3600}},
		{name: "expires 0 parses, unusable", in: `{"url":"https://hosting.example/p","expires":0}`,
			want: POSHDocument{URL: "https://hosting.example/p"}},
		{name: "expires missing is 0", in: `{"url":"https://hosting.example/p"}`,
			want: POSHDocument{URL: "https://hosting.example/p"}},
		{name: "expires negative", in: `{"url":"https://hosting.example/p","expires":-5}`,
			want: POSHDocument{URL: "https://hosting.example/p", Expires: -5}},
		{name: "expires fraction truncated", in: `{"url":"https://hosting.example/p","expires":3600.9}`,
			want: POSHDocument{URL: "https://hosting.example/p", Expires: 3600}},
		{name: "expires exponent", in: `{"url":"https://hosting.example/p","expires":1e3}`,
			want: POSHDocument{URL: "https://hosting.example/p", Expires: 1000}},
		{name: "expires huge clamped", in: `{"url":"https://hosting.example/p","expires":1e400}`,
			want: POSHDocument{URL: "https://hosting.example/p", Expires: math.MaxInt64}},
		{name: "whitespace around", in: " \n{\"url\":\"https://h.example/p\",\"expires\":1}\n",
			want: POSHDocument{URL: "https://h.example/p", Expires: 1}},

		{name: "too large", in: big, wantIs: ErrPOSHTooLarge},
		{name: "empty", in: ``, wantIs: ErrPOSHInvalidJSON},
		{name: "truncated", in: `{"fingerprints":[{"sha-256":"` + s256 + `"}]`, wantIs: ErrPOSHInvalidJSON},
		{name: "trailing data", in: `{"url":"https://h.example/p","expires":1} {}`, wantIs: ErrPOSHInvalidJSON},
		{name: "not UTF-8", in: "{\"url\":\"https://h.example/\xff\",\"expires\":1}", wantIs: ErrPOSHInvalidJSON},
		{name: "html", in: `<html>404</html>`, wantIs: ErrPOSHInvalidJSON},
		{name: "array", in: `[]`, wantIs: ErrPOSHInvalidDocument},
		{name: "null", in: `null`, wantIs: ErrPOSHInvalidDocument},
		{name: "neither", in: `{"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "both", in: `{"fingerprints":[{"sha-256":"` + s256 + `"}],"url":"https://h.example/p","expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "both, url null", in: `{"fingerprints":[{"sha-256":"` + s256 + `"}],"url":null,"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "duplicate key", in: `{"url":"https://h.example/p","url":"https://evil.example/p","expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "duplicate hash", in: `{"fingerprints":[{"sha-256":"` + s256 + `","sha-256":"` + s256 + `"}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "empty fingerprints", in: `{"fingerprints":[],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "fingerprints null", in: `{"fingerprints":null,"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "fingerprints object", in: `{"fingerprints":{"sha-256":"` + s256 + `"},"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "fingerprint string", in: `{"fingerprints":["` + s256 + `"],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "only unknown hashes", in: `{"fingerprints":[{"sha-1":"AAAA"}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "upper-case hash name is unknown", in: `{"fingerprints":[{"SHA-256":"` + s256 + `"}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "digest not base64", in: `{"fingerprints":[{"sha-256":"not base64!"}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "digest unpadded", in: `{"fingerprints":[{"sha-256":"` + strings.TrimRight(s256, "=") + `"}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "digest url-safe base64", in: `{"fingerprints":[{"sha-256":"` + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)) + `"}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "digest with line break", in: `{"fingerprints":[{"sha-256":"` + s256[:10] + `\n` + s256[10:] + `"}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "digest hex", in: `{"fingerprints":[{"sha-256":"` + strings.Repeat("ab", 32) + `"}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "digest too short", in: `{"fingerprints":[{"sha-256":"` + poshB64(make([]byte, 31)) + `"}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "sha-512 under sha-256", in: `{"fingerprints":[{"sha-256":"` + s512 + `"}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "digest number", in: `{"fingerprints":[{"sha-256":5}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "digest null", in: `{"fingerprints":[{"sha-256":null}],"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "expires string", in: `{"url":"https://h.example/p","expires":"3600"}`, wantIs: ErrPOSHInvalidDocument},
		{name: "expires null", in: `{"url":"https://h.example/p","expires":null}`, wantIs: ErrPOSHInvalidDocument},
		{name: "expires bool", in: `{"url":"https://h.example/p","expires":true}`, wantIs: ErrPOSHInvalidDocument},
		{name: "url http", in: `{"url":"http://h.example/p","expires":1}`, wantIs: ErrPOSHInsecureURL},
		{name: "url relative", in: `{"url":"/p","expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "url no host", in: `{"url":"https:///p","expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "url number", in: `{"url":1,"expires":1}`, wantIs: ErrPOSHInvalidDocument},
		{name: "url empty", in: `{"url":"","expires":1}`, wantIs: ErrPOSHInvalidDocument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := ParsePOSH([]byte(tt.in))
			if tt.wantIs != nil {
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("ParsePOSH error = %v, want %v", err, tt.wantIs)
				}
				poshCheckOneLine(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(doc, tt.want) {
				t.Fatalf("ParsePOSH = %+v, want %+v", doc, tt.want)
			}
		})
	}
}

// poshCheckOneLine fails unless err is one line that says what to do
// (after a colon).
func poshCheckOneLine(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if !strings.Contains(msg, ": ") {
		t.Errorf("error does not say what to do: %q", msg)
	}
}

func TestPOSHDocumentValidateAndMarshal(t *testing.T) {
	good := POSHFingerprint{SHA256: make([]byte, 32)}
	tests := []struct {
		name string
		doc  POSHDocument
		ok   bool
	}{
		{"fingerprints", POSHDocument{Fingerprints: []POSHFingerprint{good}, Expires: 1}, true},
		{"redirect", POSHDocument{URL: "https://h.example/p", Expires: 1}, true},
		{"empty", POSHDocument{Expires: 1}, false},
		{"both", POSHDocument{Fingerprints: []POSHFingerprint{good}, URL: "https://h.example/p", Expires: 1}, false},
		{"empty fingerprint", POSHDocument{Fingerprints: []POSHFingerprint{{}}, Expires: 1}, false},
		{"short digest", POSHDocument{Fingerprints: []POSHFingerprint{{SHA512: make([]byte, 32)}}, Expires: 1}, false},
		{"http redirect", POSHDocument{URL: "http://h.example/p", Expires: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.doc.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tt.ok)
			}
			_, merr := json.Marshal(tt.doc)
			if (merr == nil) != tt.ok {
				t.Fatalf("Marshal error = %v, want ok %v", merr, tt.ok)
			}
		})
	}
}

func TestPOSHTTL(t *testing.T) {
	for _, tt := range []struct {
		exp  int64
		want time.Duration
	}{{-1, 0}, {0, 0}, {1, time.Second}, {86400, 24 * time.Hour}, {math.MaxInt64, time.Duration(math.MaxInt64)}} {
		d := POSHDocument{Expires: tt.exp}
		if got := d.TTL(); got != tt.want {
			t.Errorf("TTL(expires %d) = %v, want %v", tt.exp, got, tt.want)
		}
		if d.Usable() != (tt.exp > 0) {
			t.Errorf("Usable(expires %d) = %v", tt.exp, d.Usable())
		}
	}
}

func TestPOSHListsCertificate(t *testing.T) {
	_, certs := poshTestCerts(t, 2, "example.org")
	a, b := certs[0], certs[1]
	tests := []struct {
		name string
		doc  POSHDocument
		cert *x509.Certificate
		want bool
	}{
		{"sha-256 match", POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(a)}}, Expires: 1}, a, true},
		{"second entry", POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(b)}, {SHA256: poshSHA256(a)}}, Expires: 1}, a, true},
		{"other certificate", POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(b)}}, Expires: 1}, a, false},
		{"sha-512 only", POSHDocument{Fingerprints: []POSHFingerprint{{SHA512: poshSHA512(a)}}, Expires: 1}, a, true},
		{"both hashes", POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(a), SHA512: poshSHA512(a)}}, Expires: 1}, a, true},
		{"inconsistent entry", POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(a), SHA512: poshSHA512(b)}}, Expires: 1}, a, false},
		{"SPKI digest is not a certificate digest", POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: func() []byte { d := sha256.Sum256(a.RawSubjectPublicKeyInfo); return d[:] }()}}, Expires: 1}, a, false},
		{"redirect", POSHDocument{URL: "https://h.example/p", Expires: 1}, a, false},
		{"nil certificate", POSHDocument{Fingerprints: []POSHFingerprint{{SHA256: poshSHA256(a)}}, Expires: 1}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.doc.ListsCertificate(tt.cert); got != tt.want {
				t.Fatalf("ListsCertificate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPOSHPathAndURL(t *testing.T) {
	tests := []struct {
		domain, service string
		path, url       string
	}{
		{"example.org", "xmpp-client", ".well-known/posh/xmpp-client.json", "https://example.org/.well-known/posh/xmpp-client.json"},
		{"Example.ORG.", "xmpp-server", ".well-known/posh/xmpp-server.json", "https://example.org/.well-known/posh/xmpp-server.json"},
		{"xn--bcher-kva.example", "xmpp-server", ".well-known/posh/xmpp-server.json", "https://xn--bcher-kva.example/.well-known/posh/xmpp-server.json"},
		{"example.org", "xmpp", "", ""},
		{"example.org", "../xmpp-client", "", ""},
		{"example.org", "", "", ""},
		{"", "xmpp-client", ".well-known/posh/xmpp-client.json", ""},
		{"example.org/evil", "xmpp-client", ".well-known/posh/xmpp-client.json", ""},
		{"example.org:8443", "xmpp-client", ".well-known/posh/xmpp-client.json", ""},
		{"user@example.org", "xmpp-client", ".well-known/posh/xmpp-client.json", ""},
		{"a..example", "xmpp-client", ".well-known/posh/xmpp-client.json", ""},
		{"bücher.example", "xmpp-client", ".well-known/posh/xmpp-client.json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.domain+"/"+tt.service, func(t *testing.T) {
			p, err := POSHPath(tt.service)
			if p != tt.path || (err == nil) != (tt.path != "") {
				t.Errorf("POSHPath(%q) = %q, %v; want %q", tt.service, p, err, tt.path)
			}
			u, err := POSHURL(tt.domain, tt.service)
			if u != tt.url || (err == nil) != (tt.url != "") {
				t.Errorf("POSHURL(%q, %q) = %q, %v; want %q", tt.domain, tt.service, u, err, tt.url)
			}
			if err != nil {
				poshCheckOneLine(t, err)
			}
		})
	}
}

func TestWritePOSH(t *testing.T) {
	_, certs := poshTestCerts(t, 2, "example.org")
	root := t.TempDir()
	doc, err := NewPOSH(certs, 24*time.Hour, POSHOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path, err := WritePOSH(root, POSHServiceServer, doc)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, ".well-known", "posh", "xmpp-server.json"); path != want {
		t.Fatalf("WritePOSH wrote %s, want %s", path, want)
	}
	poshCheckMode(t, path, 0o644)
	poshCheckMode(t, filepath.Join(root, ".well-known"), 0o755|os.ModeDir)
	poshCheckMode(t, filepath.Join(root, ".well-known", "posh"), 0o755|os.ModeDir)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParsePOSH(data); err != nil || !reflect.DeepEqual(back, doc) {
		t.Fatalf("written document %s parses to %+v, %v", data, back, err)
	}

	// Replacing it: the new document, nothing left behind.
	redirect, err := NewPOSHRedirect("https://hosting.example/posh/example.org.json", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WritePOSH(root, POSHServiceServer, redirect); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	if back, err := ParsePOSH(data); err != nil || back.URL != redirect.URL {
		t.Fatalf("replaced document %s parses to %+v, %v", data, back, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("posh directory holds %d entries, want only xmpp-server.json", len(entries))
	}

	// Refusals write nothing.
	for _, tt := range []struct {
		name, root, service string
		doc                 POSHDocument
	}{
		{"invalid document", root, POSHServiceClient, POSHDocument{Expires: 1}},
		{"expires 0", root, POSHServiceClient, POSHDocument{URL: "https://h.example/p"}},
		{"bad service", root, "xmpp", doc},
		{"no web root", filepath.Join(root, "missing"), POSHServiceClient, doc},
		{"web root is a file", path, POSHServiceClient, doc},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := WritePOSH(tt.root, tt.service, tt.doc); err == nil {
				t.Fatal("no error")
			} else {
				poshCheckOneLine(t, err)
			}
			if _, err := os.Stat(filepath.Join(root, ".well-known", "posh", "xmpp-client.json")); err == nil {
				t.Fatal("a refused document was written")
			}
		})
	}
}

func poshCheckMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != want {
		t.Errorf("%s has mode %v, want %v", path, st.Mode(), want)
	}
}

// TestPOSHFingerprintMatchesOpenSSL checks our digest against the
// command RFC 7711 operators use: the sha-256 of the DER certificate,
// not of its public key.
func TestPOSHFingerprintMatchesOpenSSL(t *testing.T) {
	testtool.Require(t, "openssl", "openssl")
	_, certs := poshTestCerts(t, 1, "example.org")
	doc, err := NewPOSH(certs, time.Hour, POSHOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "openssl x509 -outform der | openssl dgst -sha256 -binary | base64")
	cmd.Stdin = bytes.NewReader(testpki.PEM(certs[0]))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	if got, want := poshB64(doc.Fingerprints[0].SHA256), strings.TrimSpace(string(out)); got != want {
		t.Fatalf("our sha-256 fingerprint %s, openssl's %s", got, want)
	}
}

func FuzzParsePOSH(f *testing.F) {
	d32 := poshB64(bytes.Repeat([]byte{7}, 32))
	d48 := poshB64(bytes.Repeat([]byte{8}, 48))
	d64 := poshB64(bytes.Repeat([]byte{9}, 64))
	for _, s := range []string{
		`{"fingerprints":[{"sha-256":"` + d32 + `"}],"expires":86400}`,
		`{"fingerprints":[{"sha-256":"` + d32 + `","sha-512":"` + d64 + `"},{"sha-384":"` + d48 + `"}],"expires":60}`,
		`{"fingerprints":[{"sha-1":"AAAA","sha-256":"` + d32 + `"}],"expires":1.5}`,
		`{"url":"https://hosting.example/.well-known/posh/xmpp-server.json","expires":3600}`,
		`{"url":"http://hosting.example/p","expires":3600}`,
		`{"url":"https://h.example/p","fingerprints":[],"expires":0}`,
		`{"url":"https://h.example/p","url":"https://h.example/q"}`,
		`{"fingerprints":[{"sha-256":"AAAA"}],"expires":-1}`,
		`{"fingerprints":null,"expires":1e400}`,
		`{"expires":"1"}`,
		`[]`, `null`, ``, `{`, "{\"url\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ParsePOSH(data)
		if err != nil {
			if !errors.Is(err, ErrPOSHTooLarge) && !errors.Is(err, ErrPOSHInvalidJSON) &&
				!errors.Is(err, ErrPOSHInvalidDocument) && !errors.Is(err, ErrPOSHInsecureURL) {
				t.Fatalf("error of no known kind: %v", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if len(data) > MaxPOSHSize {
			t.Fatalf("accepted %d bytes, over MaxPOSHSize", len(data))
		}
		if err := doc.Validate(); err != nil {
			t.Fatalf("ParsePOSH accepted a document Validate refuses: %v", err)
		}
		if doc.IsRedirect() == (len(doc.Fingerprints) > 0) {
			t.Fatalf("document is both or neither a redirect and fingerprints: %+v", doc)
		}
		if doc.ListsCertificate(nil) {
			t.Fatal("lists a nil certificate")
		}
		// Round trip: what we encode parses back to the same document.
		out, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("cannot encode a parsed document: %v", err)
		}
		if len(out) > MaxPOSHSize {
			return // re-encoding may lengthen numbers; nothing to compare
		}
		back, err := ParsePOSH(out)
		if err != nil {
			t.Fatalf("re-encoded document %s does not parse: %v", out, err)
		}
		if !reflect.DeepEqual(back, doc) {
			t.Fatalf("round trip changed the document: %+v, then %+v", doc, back)
		}
		// And encoding is stable.
		if out2, _ := json.Marshal(back); !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not stable: %s, then %s", out, out2)
		}
	})
}
