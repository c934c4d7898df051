package ct

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/xmppcert/xmppcert/internal/testpki"
)

// leafKey is the key of our test certificates (a certificate and its
// precertificate certify the same one), otherKey someone else's.
var (
	leafKey, _  = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
)

// leafFor makes a certificate of key for names from ca; with sct it
// carries an SCT list extension, with poison it is a precertificate.
func leafFor(ca *testpki.CA, key *ecdsa.PrivateKey, sct, poison bool, serial int64, names ...string) *x509.Certificate {
	tmpl := testpki.LeafTemplate()
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.Subject = pkix.Name{CommonName: names[0]}
	var sans [][]byte
	for _, n := range names {
		sans = append(sans, testpki.DNS(n))
	}
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, testpki.SAN(false, sans...))
	if sct {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidSCTList, Value: []byte{4, 2, 0, 0}})
	}
	if poison {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidPoison, Critical: true, Value: asn1.NullBytes})
	}
	return ca.Sign(tmpl, key.Public())
}

// timestamped encodes a TimestampedEntry of c: a certificate, or (pre)
// the precertificate entry of a precertificate c, its poison removed as
// a log does.
func timestamped(b *cryptobyte.Builder, c *x509.Certificate, pre bool) {
	b.AddUint64(1700000000000)
	if !pre {
		b.AddUint16(x509Entry)
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Raw) })
	} else {
		b.AddUint16(precertEntry)
		b.AddBytes(make([]byte, 32))
		tbs, err := normalizeTBS(c.RawTBSCertificate)
		if err != nil {
			panic(err)
		}
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(tbs) })
	}
	b.AddUint16LengthPrefixed(func(*cryptobyte.Builder) {})
}

// tile encodes a data tile of entries.
func tile(entries []*x509.Certificate, pre []bool) []byte {
	var b cryptobyte.Builder
	for i, c := range entries {
		timestamped(&b, c, pre[i])
		if pre[i] {
			b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Raw) })
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 32)) })
	}
	return b.BytesOrPanic()
}

// fakeLog is a static-ct-api log (checkpoint and data tiles) and an
// RFC 6962 one (get-sth, get-entries) over the same entries.
type fakeLog struct {
	mu      sync.Mutex
	certs   []*x509.Certificate
	pre     []bool
	garbage bool // serve garbage instead of tiles and entries
	srv     *httptest.Server
}

func startFakeLog(t *testing.T) *fakeLog {
	f := &fakeLog{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLog) add(c *x509.Certificate, pre bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.certs, f.pre = append(f.certs, c), append(f.pre, pre)
}

func (f *fakeLog) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	size := len(f.certs)
	switch p := r.URL.Path; {
	case p == "/checkpoint":
		fmt.Fprintf(w, "fake.example/log\n%d\n%s\n\n— fake.example/log AAAA\n", size, base64.StdEncoding.EncodeToString(make([]byte, 32)))
	case p == "/ct/v1/get-sth":
		fmt.Fprintf(w, `{"tree_size": %d}`, size)
	case f.garbage:
		w.Write([]byte("\x00\x01garbage"))
	case strings.HasPrefix(p, "/tile/data/"):
		var n, width int
		if _, err := fmt.Sscanf(strings.TrimPrefix(p, "/tile/data/"), "%03d.p/%d", &n, &width); err != nil {
			width = TileWidth
		}
		lo, hi := n*TileWidth, min(n*TileWidth+width, size)
		if hi-lo != width {
			http.NotFound(w, r)
			return
		}
		w.Write(tile(f.certs[lo:hi], f.pre[lo:hi]))
	case p == "/ct/v1/get-entries":
		var start, end int
		fmt.Sscan(r.URL.Query().Get("start"), &start)
		fmt.Sscan(r.URL.Query().Get("end"), &end)
		var resp struct {
			Entries []map[string][]byte `json:"entries"`
		}
		for i := start; i <= end && i < size; i++ {
			var b cryptobyte.Builder
			b.AddUint8(0)
			b.AddUint8(0)
			timestamped(&b, f.certs[i], f.pre[i])
			resp.Entries = append(resp.Entries, map[string][]byte{"leaf_input": b.BytesOrPanic()})
		}
		json.NewEncoder(w).Encode(resp)
	default:
		http.NotFound(w, r)
	}
}

// TestFollow: a round meets each log at its end, the next finds what
// was added since: our certificate and its precertificate matched by
// TBS hash (the SCT list and the poison aside), a certificate from
// another CA covering our component by a wildcard unexpected, a
// certificate for another domain ignored; static-ct-api tiles (full and
// partial) and RFC 6962 get-entries read the same. A log serving
// garbage fails alone.
func TestFollow(t *testing.T) {
	ours, other := testpki.NewRoot("Our CA", nil), testpki.NewRoot("Interceptor CA", nil)
	issued := leafFor(ours, leafKey, true, false, 7, "example.org", "muc.example.org")
	pre := leafFor(ours, leafKey, false, true, 7, "example.org", "muc.example.org")
	if a, _ := TBSHash(issued.Raw); a != mustTBSHash(t, pre) {
		t.Fatal("a certificate and its precertificate hash differently")
	}
	m, err := NewMatcher(map[string]string{"example.org": "example.org", "muc.example.org": "example.org"},
		[]Issued{{Lineage: "example.org", Cert: issued}}, map[[32]byte]string{sha256.Sum256(issued.RawSubjectPublicKeyInfo): "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	static, rfc6962, broken := startFakeLog(t), startFakeLog(t), startFakeLog(t)
	filler := leafFor(other, otherKey, false, false, 1, "unrelated.example.net")
	for _, l := range []*fakeLog{static, rfc6962, broken} {
		for range 300 {
			l.add(filler, false)
		}
	}
	broken.garbage = true
	pos := &MemPositions{}
	f := &Follower{Logs: []Log{{Name: "static", URL: static.srv.URL, Tiled: true}, {Name: "rfc6962", URL: rfc6962.srv.URL}, {Name: "broken", URL: broken.srv.URL, Tiled: true}}, Positions: pos}
	var got []string
	found := func(l Log, mt Match) {
		got = append(got, fmt.Sprintf("%s %d %s ours=%q issuer=%v key=%q pre=%v", l.Name, mt.Entry.Index, strings.Join(mt.Names, ","), mt.Ours, mt.KnownIssuer, mt.KnownKey, mt.Entry.Precert))
	}
	for _, r := range f.Round(context.Background(), m, found) {
		if !r.Started || r.From != 300 || r.Err != nil {
			t.Errorf("first round of %s: %+v; want started at 300", r.Log.Name, r)
		}
	}
	wild := leafFor(other, otherKey, false, false, 9, "*.example.org")
	for _, l := range []*fakeLog{static, rfc6962, broken} {
		l.add(issued, false)
		l.add(pre, true)
		l.add(wild, false)
		for range 250 {
			l.add(filler, false)
		}
	}
	rounds := f.Round(context.Background(), m, found)
	want := []string{
		"%s 300 example.org,muc.example.org ours=\"example.org\" issuer=true key=\"example.org\" pre=false",
		"%s 301 example.org,muc.example.org ours=\"example.org\" issuer=true key=\"example.org\" pre=true",
		"%s 302 *.example.org ours=\"\" issuer=false key=\"\" pre=false",
	}
	for _, name := range []string{"static", "rfc6962"} {
		for _, w := range want {
			if !slices.Contains(got, fmt.Sprintf(w, name)) {
				t.Errorf("%s: missing %q in %q", name, fmt.Sprintf(w, name), got)
			}
		}
	}
	if len(got) != 6 {
		t.Errorf("%d matches; want 6: %q", len(got), got)
	}
	for _, r := range rounds {
		switch r.Log.Name {
		case "broken":
			if r.Err == nil || !errors.Is(r.Err, ErrMalformed) || r.To != 300 {
				t.Errorf("garbage log: %+v; want a malformed-data error at 300", r)
			}
		default:
			if r.Err != nil || r.From != 300 || r.To != 553 {
				t.Errorf("%s: %+v; want 300 to 553", r.Log.Name, r)
			}
		}
	}
	if d := (Match{Entry: Entry{Index: 302, Cert: wild}, Names: []string{"*.example.org"}}).Describe("static"); !strings.Contains(d, "CT log static entry 302: a certificate for *.example.org that xmppcert did not issue: issuer CN=Interceptor CA,O=xmppcert tests (an issuer that never issued for us), serial 09, not before ") || !strings.HasSuffix(d, "for a key that is none of ours") {
		t.Errorf("Describe: %s", d)
	}
}

func mustTBSHash(t *testing.T, pre *x509.Certificate) [32]byte {
	t.Helper()
	h, err := tbsHash(pre.RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestBounds: a tile with the wrong number of entries, an answer past
// MaxResponse and a giant entry are errors, not panics or unbounded
// reads.
func TestBounds(t *testing.T) {
	ca := testpki.NewRoot("CA", nil)
	c := leafFor(ca, leafKey, false, false, 1, "example.org")
	two := tile([]*x509.Certificate{c, c}, []bool{false, false})
	if _, err := ParseTile(two, 0, 3); err == nil || !strings.Contains(err.Error(), "holds 2 entries, not 3") {
		t.Errorf("short tile: %v", err)
	}
	if _, err := ParseTile(two, 0, 1); err == nil || !strings.Contains(err.Error(), "more than 1 entries") {
		t.Errorf("long tile: %v", err)
	}
	var b cryptobyte.Builder
	b.AddUint64(0)
	b.AddUint16(x509Entry)
	b.AddUint24(1 << 23) // claims 8 MiB, holds 3 bytes
	b.AddBytes([]byte{1, 2, 3})
	if _, err := ParseTile(b.BytesOrPanic(), 0, 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated giant entry: %v", err)
	}
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" {
			fmt.Fprintf(w, "o\n%d\nAAAA\n\n", TileWidth)
			return
		}
		chunk := make([]byte, 1<<20)
		for range MaxResponse>>20 + 2 {
			w.Write(chunk)
		}
	}))
	defer big.Close()
	c2 := &Client{Log: Log{URL: big.URL, Tiled: true}}
	if _, err := c2.Entries(context.Background(), 0, TileWidth, TileWidth); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a tile past MaxResponse: %v", err)
	}
}

// TestDescribeBounded: an alert's text about a hostile certificate is
// one bounded line.
func TestDescribeBounded(t *testing.T) {
	ca := testpki.NewRoot(strings.Repeat("\x1b[31mX", 5000), nil)
	c := leafFor(ca, otherKey, false, false, 1, "example.org")
	d := Match{Entry: Entry{Cert: c}, Names: []string{"example.org"}}.Describe("log")
	if len(d) > 1200 || strings.ContainsAny(d, "\x1b\n") {
		t.Errorf("%d bytes: %q", len(d), d)
	}
}

func TestTilePath(t *testing.T) {
	for n, want := range map[uint64]string{0: "000", 7: "007", 999: "999", 1000: "x001/000", 1234067: "x001/x234/067"} {
		if got := tilePath(n); got != want {
			t.Errorf("tilePath(%d) = %s; want %s", n, got, want)
		}
	}
}

// TestParseLogList reads the v3 format's RFC 6962 and tiled logs and
// leaves retired ones out.
func TestParseLogList(t *testing.T) {
	logs, err := ParseLogList([]byte(`{"version":"3","operators":[{"name":"Op","logs":[
		{"description":"Argon","url":"https://ct.example/argon/","state":{"usable":{}}},
		{"description":"Old","url":"https://ct.example/old/","state":{"retired":{"timestamp":"2020-01-01T00:00:00Z"}}}],
		"tiled_logs":[{"description":"Tiles","submission_url":"https://t.example/","monitoring_url":"https://t.example/mon/","state":{"usable":{}}}]}]}`))
	if err != nil || len(logs) != 2 || logs[0] != (Log{Name: "Argon", URL: "https://ct.example/argon/"}) || logs[1] != (Log{Name: "Tiles", URL: "https://t.example/mon/", Tiled: true}) {
		t.Errorf("%+v, %v", logs, err)
	}
	for _, bad := range []string{`[]`, `{"operators":[]}`, `{"operators":[{"logs":[{"url":"ftp://x"}]}]}`} {
		if _, err := ParseLogList([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func FuzzParseTile(f *testing.F) {
	ca := testpki.NewRoot("CA", nil)
	c := leafFor(ca, leafKey, true, false, 1, "example.org")
	p := leafFor(ca, leafKey, false, true, 1, "example.org")
	f.Add(tile([]*x509.Certificate{c, p}, []bool{false, true}), 2)
	f.Fuzz(func(t *testing.T, data []byte, want int) {
		if want < 0 || want > TileWidth {
			return
		}
		entries, err := ParseTile(data, 0, want)
		if err == nil && len(entries) != want {
			t.Errorf("%d entries; want %d", len(entries), want)
		}
	})
}

func FuzzParseGetEntries(f *testing.F) {
	f.Add([]byte(`{"entries":[{"leaf_input":"AAA="}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if entries, err := ParseGetEntries(data, 5, 3); err == nil && (len(entries) == 0 || len(entries) > 3 || entries[0].Index != 5) {
			t.Errorf("%d entries from 5", len(entries))
		}
	})
}

func FuzzParseLogList(f *testing.F) {
	f.Add([]byte(`{"operators":[{"logs":[{"url":"https://x/"}],"tiled_logs":[{"monitoring_url":"https://y/"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		logs, err := ParseLogList(data)
		if err == nil && len(logs) == 0 {
			t.Error("no logs and no error")
		}
	})
}

// BenchmarkFollow reads a static-ct-api log of full tiles of real
// certificates, none of ours, from its start through the follower and
// the matcher (XMPPCERT_CT_TILES tiles, default 20): entries per second,
// and the peak of the heap's live objects during the rounds, are what
// bench/ct.sh compares across log sizes (README, "Performance"). A
// round holds one tile at a time, so the peak does not grow with the
// log.
func BenchmarkFollow(b *testing.B) {
	tiles := 20
	if s := os.Getenv("XMPPCERT_CT_TILES"); s != "" {
		var err error
		if tiles, err = strconv.Atoi(s); err != nil || tiles < 1 {
			b.Fatalf("XMPPCERT_CT_TILES=%q", s)
		}
	}
	ours, other := testpki.NewRoot("Our CA", nil), testpki.NewRoot("Other CA", nil)
	issued := leafFor(ours, leafKey, true, false, 7, "example.org")
	m, err := NewMatcher(map[string]string{"example.org": "example.org"}, []Issued{{Lineage: "example.org", Cert: issued}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	// One tile of distinct certificates, encoded once, served at every
	// tile index, as a log's storage would serve its own.
	var certs []*x509.Certificate
	for i := range TileWidth {
		certs = append(certs, leafFor(other, otherKey, false, false, int64(i+1), fmt.Sprintf("host%d.example.net", i), "www.example.net"))
	}
	data := tile(certs, make([]bool, TileWidth))
	n := uint64(tiles * TileWidth)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" {
			fmt.Fprintf(w, "bench.example/log\n%d\nAAAA\n\n", n)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pos := &MemPositions{}
		pos.Set(srv.URL, 0)
		f := &Follower{Logs: []Log{{Name: "bench", URL: srv.URL, Tiled: true}}, Positions: pos}
		r := f.Round(context.Background(), m, func(Log, Match) { b.Error("matched") })
		if r[0].Err != nil || r[0].To != n {
			b.Fatalf("%+v", r[0])
		}
	}
	b.StopTimer()
	close(stop)
	<-sampled
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-live-MiB")
}
