package pinning

// POSH (RFC 7711, "PKIX over Secure HTTP") lets a domain that cannot hold
// a certificate for itself (a hosted domain) delegate to the certificate
// its XMPP server presents: https://DOMAIN/.well-known/posh/SERVICE.json
// lists the digests of the certificates the server may present, or names
// one other https URL (a POSH redirect) that does. This file makes,
// parses and writes those documents; poshfetch.go fetches and classifies
// them.

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xmppcert/xmppcert/internal/atomicfile"
)

// MaxPOSHSize is the largest POSH document, in bytes, that ParsePOSH
// accepts and POSHFetcher reads by default. A document pinning a current
// and a next certificate is a few hundred bytes; the limit keeps a
// hostile or misconfigured web server from making us buffer more.
const MaxPOSHSize = 64 << 10

// The two POSH services XMPP defines (RFC 7711 section 3, RFC 7712): the
// document for clients connecting to the domain and the one for servers
// connecting to it (server-to-server).
const (
	POSHServiceClient = "xmpp-client"
	POSHServiceServer = "xmpp-server"
)

// The hash names ("Hash Function Textual Names" registry) a POSH
// fingerprint may carry that xmppcert understands. Other names (md5,
// sha-1, anything new) are ignored when parsing: a document must carry
// at least one of these to be usable.
const (
	POSHHashSHA256 = "sha-256"
	POSHHashSHA384 = "sha-384"
	POSHHashSHA512 = "sha-512"
)

// Errors ParsePOSH wraps, so that callers (POSHFetcher among them) can
// tell the kinds of failure apart with errors.Is. The messages of the
// wrapping errors say what is wrong and what to do.
var (
	// ErrPOSHTooLarge: the document is longer than the size limit.
	ErrPOSHTooLarge = errors.New("POSH document too large")
	// ErrPOSHInvalidJSON: the document is not UTF-8 JSON.
	ErrPOSHInvalidJSON = errors.New("POSH document is not valid JSON")
	// ErrPOSHInvalidDocument: valid JSON, but not a POSH document.
	ErrPOSHInvalidDocument = errors.New("invalid POSH document")
	// ErrPOSHInsecureURL: a POSH redirect whose url is not https.
	ErrPOSHInsecureURL = errors.New("POSH redirect is not https")
)

// POSHFingerprint is one entry of a POSH document's "fingerprints": the
// digests of one certificate's DER encoding (the whole certificate, not
// its public key), under each hash the publisher chose. At least one is
// set in a valid document.
type POSHFingerprint struct {
	SHA256 []byte // "sha-256", 32 bytes
	SHA384 []byte // "sha-384", 48 bytes
	SHA512 []byte // "sha-512", 64 bytes
}

// POSHDocument is a POSH document (RFC 7711 section 3): either a list of
// certificate fingerprints or a redirect to one other https URL, never
// both. Its JSON form (MarshalJSON) is what the web server serves.
type POSHDocument struct {
	// Fingerprints pins the certificates the XMPP service may present;
	// empty in a redirect.
	Fingerprints []POSHFingerprint
	// URL is the https URL of the document to use instead; empty unless
	// the document is a redirect. A client follows one redirect at most.
	URL string
	// Expires is how many seconds a client may cache the document. A
	// value <= 0 (or a missing "expires") means the document must not
	// be used at all.
	Expires int64
}

// POSHOptions change what NewPOSH puts in a document.
type POSHOptions struct {
	// SHA512 adds a "sha-512" digest beside the "sha-256" one that every
	// fingerprint carries, for clients that prefer it. Off by default:
	// it doubles the document for no gain in practice.
	SHA512 bool
}

// NewPOSH makes a fingerprints document that pins every certificate in
// certs, typically the current one and the next one (made ahead of a
// renewal) so that clients that cached the document keep accepting the
// server across the switch. Duplicates are listed once, in order.
// expires is the cache lifetime, rounded down to whole seconds; it must
// be at least one second, since a document with expires <= 0 is unusable.
func NewPOSH(certs []*x509.Certificate, expires time.Duration, opts POSHOptions) (POSHDocument, error) {
	if len(certs) == 0 {
		return POSHDocument{}, errors.New("a POSH document needs at least one certificate: pass the current certificate (and the next one, if made)")
	}
	if expires < time.Second {
		return POSHDocument{}, fmt.Errorf("POSH expires %v is under one second: clients refuse a document with expires <= 0; give a lifetime such as 24h", expires)
	}
	doc := POSHDocument{Expires: int64(expires / time.Second)}
	seen := map[[sha256.Size]byte]bool{}
	for i, c := range certs {
		if c == nil || len(c.Raw) == 0 {
			return POSHDocument{}, fmt.Errorf("certificate %d for the POSH document is empty: pass parsed certificates", i+1)
		}
		d := sha256.Sum256(c.Raw)
		if seen[d] {
			continue
		}
		seen[d] = true
		fp := POSHFingerprint{SHA256: d[:]}
		if opts.SHA512 {
			d512 := sha512.Sum512(c.Raw)
			fp.SHA512 = d512[:]
		}
		doc.Fingerprints = append(doc.Fingerprints, fp)
	}
	return doc, nil
}

// NewPOSHRedirect makes a redirect document: clients fetch rawURL
// instead, typically a hosting provider's own document, so that the
// hosted domain need not change its document at every renewal. rawURL
// must be an absolute https URL with a host and no user information.
// expires must be at least one second.
func NewPOSHRedirect(rawURL string, expires time.Duration) (POSHDocument, error) {
	if err := poshCheckURL(rawURL); err != nil {
		return POSHDocument{}, err
	}
	if expires < time.Second {
		return POSHDocument{}, fmt.Errorf("POSH expires %v is under one second: clients refuse a document with expires <= 0; give a lifetime such as 24h", expires)
	}
	return POSHDocument{URL: rawURL, Expires: int64(expires / time.Second)}, nil
}

// poshCheckURL says what is wrong with a POSH redirect URL. A scheme
// other than https wraps ErrPOSHInsecureURL, anything else
// ErrPOSHInvalidDocument.
func poshCheckURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: url %q does not parse: give an absolute https URL", ErrPOSHInvalidDocument, rawURL)
	}
	if !u.IsAbs() {
		return fmt.Errorf("%w: url %q is not absolute: give an absolute https URL such as https://host.example/.well-known/posh/xmpp-server.json", ErrPOSHInvalidDocument, rawURL)
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: url %q has scheme %q: POSH redirects must use https", ErrPOSHInsecureURL, rawURL, u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return fmt.Errorf("%w: url %q has no host: give an absolute https URL with a host name", ErrPOSHInvalidDocument, rawURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: url %q carries user information: remove the user name and password from it", ErrPOSHInvalidDocument, rawURL)
	}
	return nil
}

// IsRedirect says whether d is a redirect (it has a URL) rather than a
// fingerprints document.
func (d POSHDocument) IsRedirect() bool { return d.URL != "" }

// Usable says whether a client may use d at all: RFC 7711 says a document
// with expires <= 0 must not be.
func (d POSHDocument) Usable() bool { return d.Expires > 0 }

// TTL is Expires as a duration, for caches: zero when the document is
// unusable, saturating instead of overflowing for huge values.
func (d POSHDocument) TTL() time.Duration {
	if d.Expires <= 0 {
		return 0
	}
	if d.Expires > int64(math.MaxInt64/time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d.Expires) * time.Second
}

// Validate says what makes d unfit to publish or to use as parsed:
// fingerprints and url both or neither, a fingerprint without a digest, a
// digest of the wrong length, a redirect that is not an absolute https
// URL. It does not look at Expires (see Usable).
func (d POSHDocument) Validate() error {
	switch {
	case d.URL != "" && len(d.Fingerprints) > 0:
		return fmt.Errorf("%w: it has both fingerprints and url: publish either the fingerprints or a redirect", ErrPOSHInvalidDocument)
	case d.URL == "" && len(d.Fingerprints) == 0:
		return fmt.Errorf("%w: it has neither fingerprints nor url: list the certificates' fingerprints or redirect with url", ErrPOSHInvalidDocument)
	case d.URL != "":
		return poshCheckURL(d.URL)
	}
	for i, fp := range d.Fingerprints {
		n := 0
		for _, h := range poshHashes {
			v := h.get(&fp)
			if v == nil {
				continue
			}
			n++
			if len(v) != h.size {
				return fmt.Errorf("%w: fingerprint %d has a %s digest of %d bytes, want %d: publish the %s of the DER certificate", ErrPOSHInvalidDocument, i+1, h.name, len(v), h.size, h.name)
			}
		}
		if n == 0 {
			return fmt.Errorf("%w: fingerprint %d has no digest: give it a sha-256 of the DER certificate", ErrPOSHInvalidDocument, i+1)
		}
	}
	return nil
}

// poshHash describes one hash xmppcert understands in a fingerprint.
type poshHash struct {
	name string
	size int
	sum  func([]byte) []byte
	get  func(*POSHFingerprint) []byte
	set  func(*POSHFingerprint, []byte)
}

// poshHashes is in the order MarshalJSON writes them.
var poshHashes = []poshHash{
	{POSHHashSHA256, sha256.Size,
		func(b []byte) []byte { d := sha256.Sum256(b); return d[:] },
		func(f *POSHFingerprint) []byte { return f.SHA256 },
		func(f *POSHFingerprint, v []byte) { f.SHA256 = v }},
	{POSHHashSHA384, sha512.Size384,
		func(b []byte) []byte { d := sha512.Sum384(b); return d[:] },
		func(f *POSHFingerprint) []byte { return f.SHA384 },
		func(f *POSHFingerprint, v []byte) { f.SHA384 = v }},
	{POSHHashSHA512, sha512.Size,
		func(b []byte) []byte { d := sha512.Sum512(b); return d[:] },
		func(f *POSHFingerprint) []byte { return f.SHA512 },
		func(f *POSHFingerprint, v []byte) { f.SHA512 = v }},
}

// poshWireFingerprint and poshWireDocument are the JSON shape, in the
// order RFC 7711's examples use.
type poshWireFingerprint struct {
	SHA256 string `json:"sha-256,omitempty"`
	SHA384 string `json:"sha-384,omitempty"`
	SHA512 string `json:"sha-512,omitempty"`
}

type poshWireDocument struct {
	Fingerprints []poshWireFingerprint `json:"fingerprints,omitempty"`
	URL          string                `json:"url,omitempty"`
	Expires      int64                 `json:"expires"`
}

// MarshalJSON encodes d as RFC 7711 wants it, digests in standard padded
// base64. It refuses a document that Validate refuses, so that nothing
// unusable gets published.
func (d POSHDocument) MarshalJSON() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	w := poshWireDocument{URL: d.URL, Expires: d.Expires}
	enc := func(b []byte) string {
		if b == nil {
			return ""
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	for _, fp := range d.Fingerprints {
		w.Fingerprints = append(w.Fingerprints, poshWireFingerprint{SHA256: enc(fp.SHA256), SHA384: enc(fp.SHA384), SHA512: enc(fp.SHA512)})
	}
	return json.Marshal(w)
}

// ListsCertificate says whether d pins cert: whether one of its
// fingerprints carries digests of cert's DER encoding, every digest of
// that fingerprint matching (a fingerprint whose sha-256 matches but
// whose sha-512 does not pins nothing: it is inconsistent). A redirect
// lists no certificate; fetch its target.
func (d POSHDocument) ListsCertificate(cert *x509.Certificate) bool {
	if cert == nil || len(cert.Raw) == 0 {
		return false
	}
	sums := map[string][]byte{}
	for _, fp := range d.Fingerprints {
		n, ok := 0, true
		for _, h := range poshHashes {
			v := h.get(&fp)
			if v == nil {
				continue
			}
			n++
			s, done := sums[h.name]
			if !done {
				s = h.sum(cert.Raw)
				sums[h.name] = s
			}
			if !bytes.Equal(v, s) {
				ok = false
				break
			}
		}
		if ok && n > 0 {
			return true
		}
	}
	return false
}

// ParsePOSH parses a POSH document strictly, so that what a client
// accepts is what the publisher meant: at most MaxPOSHSize bytes of UTF-8
// JSON holding one object; exactly one of "fingerprints" (a non-empty
// array of objects mapping hash names to standard base64 digests of the
// right length) and "url" (an absolute https URL); no key twice in an
// object; "expires" a number, truncated to whole seconds (0 when
// missing, which makes the document unusable). Hash names other than
// sha-256, sha-384 and sha-512 are ignored, but a document with no
// fingerprint in one of those is refused. Other top-level keys are
// ignored. Errors wrap ErrPOSHTooLarge, ErrPOSHInvalidJSON,
// ErrPOSHInvalidDocument or ErrPOSHInsecureURL. ParsePOSH does not
// refuse an expired document (check Usable): fetchers report it apart.
func ParsePOSH(data []byte) (POSHDocument, error) {
	return poshParse(data, MaxPOSHSize)
}

func poshParse(data []byte, limit int64) (POSHDocument, error) {
	if int64(len(data)) > limit {
		return POSHDocument{}, fmt.Errorf("%w: %d bytes, over the %d-byte limit: publish only the current and next certificates' fingerprints", ErrPOSHTooLarge, len(data), limit)
	}
	if !utf8.Valid(data) {
		return POSHDocument{}, fmt.Errorf("%w: it is not UTF-8: serve the document as UTF-8 JSON", ErrPOSHInvalidJSON)
	}
	if !json.Valid(data) {
		var syntax any
		err := json.Unmarshal(data, &syntax)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return POSHDocument{}, fmt.Errorf("%w: at byte %d: %v: serve a JSON object as RFC 7711 section 3 shows", ErrPOSHInvalidJSON, se.Offset, se)
		}
		return POSHDocument{}, fmt.Errorf("%w: %v: serve a JSON object as RFC 7711 section 3 shows", ErrPOSHInvalidJSON, err)
	}
	top, err := poshObject(data, "the document")
	if err != nil {
		return POSHDocument{}, err
	}
	var doc POSHDocument
	if raw, ok := top["expires"]; ok {
		if doc.Expires, err = poshExpires(raw); err != nil {
			return POSHDocument{}, err
		}
	}
	rawFP, hasFP := top["fingerprints"]
	rawURL, hasURL := top["url"]
	switch {
	case hasFP && hasURL:
		return POSHDocument{}, fmt.Errorf("%w: it has both fingerprints and url: publish either the fingerprints or a redirect", ErrPOSHInvalidDocument)
	case !hasFP && !hasURL:
		return POSHDocument{}, fmt.Errorf("%w: it has neither fingerprints nor url: list the certificates' fingerprints or redirect with url", ErrPOSHInvalidDocument)
	case hasURL:
		var s string
		if bytes.Equal(bytes.TrimSpace(rawURL), []byte("null")) || json.Unmarshal(rawURL, &s) != nil {
			return POSHDocument{}, fmt.Errorf("%w: url is not a string: give the redirect as \"url\": \"https://...\"", ErrPOSHInvalidDocument)
		}
		if err := poshCheckURL(s); err != nil {
			return POSHDocument{}, err
		}
		doc.URL = s
		return doc, nil
	}
	var entries []json.RawMessage
	if bytes.Equal(bytes.TrimSpace(rawFP), []byte("null")) || json.Unmarshal(rawFP, &entries) != nil {
		return POSHDocument{}, fmt.Errorf("%w: fingerprints is not an array: give it as [{\"sha-256\": \"BASE64\"}]", ErrPOSHInvalidDocument)
	}
	for i, e := range entries {
		obj, err := poshObject(e, fmt.Sprintf("fingerprint %d", i+1))
		if err != nil {
			return POSHDocument{}, err
		}
		var fp POSHFingerprint
		n := 0
		for _, h := range poshHashes {
			raw, ok := obj[h.name]
			if !ok {
				continue
			}
			var s string
			if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || json.Unmarshal(raw, &s) != nil {
				return POSHDocument{}, fmt.Errorf("%w: fingerprint %d: %s is not a string: give the base64 of the digest", ErrPOSHInvalidDocument, i+1, h.name)
			}
			v, err := base64.StdEncoding.Strict().DecodeString(s)
			if err == nil && strings.ContainsAny(s, "\r\n") {
				err = errors.New("line breaks in the digest")
			}
			if err != nil {
				return POSHDocument{}, fmt.Errorf("%w: fingerprint %d: %s is not standard base64 (%v): encode the digest with padded base64 (RFC 4648 section 4)", ErrPOSHInvalidDocument, i+1, h.name, err)
			}
			if len(v) != h.size {
				return POSHDocument{}, fmt.Errorf("%w: fingerprint %d has a %s digest of %d bytes, want %d: publish the %s of the DER certificate", ErrPOSHInvalidDocument, i+1, h.name, len(v), h.size, h.name)
			}
			h.set(&fp, v)
			n++
		}
		if n > 0 {
			doc.Fingerprints = append(doc.Fingerprints, fp)
		}
	}
	if len(doc.Fingerprints) == 0 {
		return POSHDocument{}, fmt.Errorf("%w: no fingerprint has a sha-256, sha-384 or sha-512 digest: list every certificate with its sha-256", ErrPOSHInvalidDocument)
	}
	return doc, nil
}

// poshObject decodes one JSON object into its members, refusing
// anything else and keys given twice (which JSON parsers resolve
// differently, so that two clients could read two different documents).
// data is known to be valid JSON.
func poshObject(data []byte, what string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: %s is not a JSON object: see RFC 7711 section 3 for the shape", ErrPOSHInvalidDocument, what)
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrPOSHInvalidJSON, what, err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrPOSHInvalidJSON, what, err)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%w: %s has the key %q twice: give every key once", ErrPOSHInvalidDocument, what, key)
		}
		out[key] = v
	}
	return out, nil
}

// poshExpires reads "expires": a JSON number, truncated toward zero to
// whole seconds and clamped to the int64 range.
func poshExpires(raw json.RawMessage) (int64, error) {
	var n json.Number
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '-' && (t[0] < '0' || t[0] > '9') || json.Unmarshal(t, &n) != nil {
		return 0, fmt.Errorf("%w: expires is not a number: give the cache lifetime in seconds, as in \"expires\": 86400", ErrPOSHInvalidDocument)
	}
	if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return v, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%w: expires %s is not a number: give the cache lifetime in seconds", ErrPOSHInvalidDocument, n)
	}
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64, nil
	case f <= math.MinInt64:
		return math.MinInt64, nil
	}
	return int64(f), nil
}

// POSHPath is where a service's POSH document lives relative to the web
// root: ".well-known/posh/SERVICE.json", with forward slashes (use
// filepath.FromSlash for a file name). service must be POSHServiceClient
// or POSHServiceServer.
func POSHPath(service string) (string, error) {
	if service != POSHServiceClient && service != POSHServiceServer {
		return "", fmt.Errorf("POSH service %q is not %q or %q: name the XMPP service the document is for", service, POSHServiceClient, POSHServiceServer)
	}
	return ".well-known/posh/" + service + ".json", nil
}

// POSHURL is the https URL a client fetches for domain and service.
// domain is an XMPP domain as a DNS name (an IDN in its xn-- form); a
// trailing dot is dropped and letters are lowered.
func POSHURL(domain, service string) (string, error) {
	p, err := POSHPath(service)
	if err != nil {
		return "", err
	}
	d, err := poshDomain(domain)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "https", Host: d, Path: "/" + p}).String(), nil
}

// poshDomain checks that domain is a DNS name and returns it in lower
// case without a trailing dot.
func poshDomain(domain string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	bad := func() (string, error) {
		return "", fmt.Errorf("domain %q is not a DNS name: pass the XMPP domain, like example.org (an IDN as its xn-- form)", domain)
	}
	if d == "" || len(d) > 253 {
		return bad()
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return bad()
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return bad()
			}
		}
	}
	return d, nil
}

// WritePOSH writes doc as webroot/.well-known/posh/SERVICE.json, the
// file a web server serving webroot for the domain publishes, and
// returns its path. The write is atomic (a reader sees the old document
// or the new one, never half of one): new directories are made 0755 and
// the file 0644, so that the web server can read them. webroot must
// exist; an invalid document (see Validate) or one with expires <= 0 is
// refused, since clients would refuse it.
func WritePOSH(webroot, service string, doc POSHDocument) (string, error) {
	rel, err := POSHPath(service)
	if err != nil {
		return "", err
	}
	if !doc.Usable() {
		return "", fmt.Errorf("POSH document has expires %d: clients refuse expires <= 0; give a positive lifetime", doc.Expires)
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	data = append(data, '\n')
	st, err := os.Stat(webroot)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("web root %s does not exist: pass the directory the web server serves for the domain", webroot)
	case err != nil:
		return "", fmt.Errorf("web root %s: %v", webroot, err)
	case !st.IsDir():
		return "", fmt.Errorf("web root %s is not a directory: pass the directory the web server serves for the domain", webroot)
	}
	wk := filepath.Join(webroot, ".well-known")
	for _, dir := range []string{wk, filepath.Join(wk, "posh")} {
		if err := poshMkdir(dir); err != nil {
			return "", err
		}
	}
	path := filepath.Join(webroot, filepath.FromSlash(rel))
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("writing POSH document %s: %v: check the web root's permissions", path, err)
	}
	return path, nil
}

// poshMkdir makes dir with mode 0755 (whatever the umask) if it does not
// exist, durably; an existing directory keeps its mode.
func poshMkdir(dir string) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory: remove it or move it away so that the POSH document can be written", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("making %s: %v", dir, err)
	}
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("making %s: %v: check the web root's permissions", dir, err)
	}
	if err := atomicfile.ChmodDir(dir, 0o755, -1); err != nil {
		return fmt.Errorf("making %s: %v", dir, err)
	}
	return nil
}
