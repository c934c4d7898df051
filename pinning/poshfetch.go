package pinning

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultPOSHTimeout is how long POSHFetcher.Fetch may take, redirect
// included, when POSHFetcher.Timeout is zero.
const DefaultPOSHTimeout = 10 * time.Second

// POSHCode classifies the outcome of fetching a POSH document. The
// values are stable: scripts, --json output, metrics and alerts use
// them.
type POSHCode string

// The outcomes of POSHFetcher.Fetch. Only POSHValid and
// POSHValidViaRedirect give fingerprints a client may use.
const (
	// POSHValid: the domain's document lists fingerprints and may be used.
	POSHValid POSHCode = "valid"
	// POSHValidViaRedirect: the domain's document redirects (POSH "url")
	// to an https document that lists fingerprints and may be used.
	POSHValidViaRedirect POSHCode = "valid-via-redirect"
	// POSHNotFound: the domain answered 404: it does not publish POSH
	// for the service.
	POSHNotFound POSHCode = "not-found"
	// POSHRedirectChain: the redirect target is itself a redirect;
	// clients follow one redirect only, so the document is refused.
	POSHRedirectChain POSHCode = "redirect-chain"
	// POSHHTTPRedirect: the web server answered with an HTTP 3xx
	// redirect, which RFC 7711 forbids; refused.
	POSHHTTPRedirect POSHCode = "http-redirect"
	// POSHInsecureRedirect: the document's "url" is not https; refused.
	POSHInsecureRedirect POSHCode = "insecure-redirect"
	// POSHExpired: the document (or the redirect to it) has expires <= 0
	// (or none): it must not be used.
	POSHExpired POSHCode = "expired"
	// POSHTooLarge: the body is longer than the size limit; reading
	// stopped at the limit.
	POSHTooLarge POSHCode = "too-large"
	// POSHInvalidJSON: the body is not UTF-8 JSON.
	POSHInvalidJSON POSHCode = "invalid-json"
	// POSHInvalidDocument: valid JSON that ParsePOSH refuses (both or
	// neither of fingerprints and url, bad digests, bad url...).
	POSHInvalidDocument POSHCode = "invalid-document"
	// POSHTLSError: the HTTPS server's certificate does not validate
	// (PKIX) for the host, or TLS failed in a way that names TLS.
	POSHTLSError POSHCode = "tls-error"
	// POSHUnreachable: no HTTP answer (DNS, connection, timeout, a body
	// cut short).
	POSHUnreachable POSHCode = "unreachable"
	// POSHHTTPError: an HTTP status other than 200, 3xx or (for the
	// domain's own document) 404.
	POSHHTTPError POSHCode = "http-error"
	// POSHInvalidInput: the domain or service given to Fetch is not
	// valid; nothing was fetched.
	POSHInvalidInput POSHCode = "invalid-input"
)

// POSHResult is what POSHFetcher.Fetch found. Code classifies it; Text
// says the same in one line for people, with what to do when something
// is wrong.
type POSHResult struct {
	// Code is the stable classification.
	Code POSHCode `json:"code"`
	// Text is Code for people: one line, with what to do if anything.
	Text string `json:"text"`
	// Domain and Service are what Fetch was asked for, as given.
	Domain  string `json:"domain"`
	Service string `json:"service"`
	// URL is the document fetched first: https://DOMAIN/.well-known/posh/SERVICE.json.
	URL string `json:"url,omitempty"`
	// RedirectURL is the POSH "url" the domain's document redirects to,
	// when it does (also for insecure-redirect and redirect-chain).
	RedirectURL string `json:"redirect_url,omitempty"`
	// RedirectExpires is the redirect document's own expires.
	RedirectExpires int64 `json:"redirect_expires,omitempty"`
	// Status is the HTTP status of the last response, 0 without one.
	Status int `json:"status,omitempty"`
	// Location is the Location header of a refused HTTP redirect.
	Location string `json:"location,omitempty"`
	// Document is the fingerprints document that was found (the
	// redirect target when there was a redirect). It is set for valid,
	// valid-via-redirect and expired.
	Document *POSHDocument `json:"document,omitempty"`
	// Expires is how many seconds a caller may cache this result: the
	// document's expires, or the smaller of the redirect's and the
	// target's. It is <= 0 unless the result is usable.
	Expires int64 `json:"expires"`
	// FetchedAt is when Fetch started, by the fetcher's clock.
	FetchedAt time.Time `json:"fetched_at"`
	// Err is the underlying error, if any, for logs and errors.Is.
	Err error `json:"-"`
}

// Usable says whether r carries fingerprints a client may use: valid or
// valid-via-redirect.
func (r POSHResult) Usable() bool {
	return (r.Code == POSHValid || r.Code == POSHValidViaRedirect) && r.Document != nil && r.Expires > 0
}

// ExpiresAt is when a cached r goes stale: FetchedAt plus Expires, or
// the zero time when r is not usable (cache nothing).
func (r POSHResult) ExpiresAt() time.Time {
	if !r.Usable() {
		return time.Time{}
	}
	return r.FetchedAt.Add(POSHDocument{Expires: r.Expires}.TTL())
}

// POSHPinCode classifies whether a POSH result pins a certificate. The
// values are stable.
type POSHPinCode string

// The outcomes of POSHResult.Match.
const (
	// POSHPinMatch: the usable document lists the certificate.
	POSHPinMatch POSHPinCode = "match"
	// POSHPinNoMatch: the usable document does not list the certificate
	// (a wrong digest, or a certificate that changed without the
	// document following).
	POSHPinNoMatch POSHPinCode = "no-match"
	// POSHPinUnusable: there is no usable document to compare with; the
	// result's own Code says why.
	POSHPinUnusable POSHPinCode = "unusable"
)

// POSHPinCheck is what POSHResult.Match found: a stable Code and a
// one-line Text for people.
type POSHPinCheck struct {
	Code POSHPinCode `json:"code"`
	Text string      `json:"text"`
}

// Match says whether r pins cert, the certificate an XMPP server of the
// domain presented: that is what makes POSH authenticate the server.
func (r POSHResult) Match(cert *x509.Certificate) POSHPinCheck {
	if !r.Usable() {
		return POSHPinCheck{POSHPinUnusable, fmt.Sprintf("no usable POSH document for %s %s (%s): nothing to compare the certificate with", r.Domain, r.Service, r.Code)}
	}
	where := r.URL
	if r.RedirectURL != "" {
		where = r.RedirectURL
	}
	if cert == nil || len(cert.Raw) == 0 {
		return POSHPinCheck{POSHPinNoMatch, "no certificate to compare with the POSH document: pass the certificate the server presented"}
	}
	sum := sha256.Sum256(cert.Raw)
	fp := base64.StdEncoding.EncodeToString(sum[:])
	if r.Document.ListsCertificate(cert) {
		return POSHPinCheck{POSHPinMatch, fmt.Sprintf("%s pins the certificate (sha-256 %s)", where, fp)}
	}
	return POSHPinCheck{POSHPinNoMatch, fmt.Sprintf("the certificate (sha-256 %s) is not among the %d fingerprints at %s: publish a POSH document listing the certificate the server presents", fp, len(r.Document.Fingerprints), where)}
}

// POSHFetcher fetches POSH documents the way RFC 7711 wants a client
// to: HTTPS only, the server's certificate PKIX-validated for the host,
// no HTTP redirects, at most one POSH redirect and only to https, every
// read bounded in size and time. The zero value is ready to use with the
// system's roots; set the fields to change that.
type POSHFetcher struct {
	// Client, if not nil, makes the requests (to use a proxy, say).
	// Fetch uses a copy whose CheckRedirect refuses HTTP redirects, and
	// bounds time through the request's context; RootCAs and
	// DialContext are then unused. If nil, Fetch builds a client from
	// RootCAs and DialContext, with TLS 1.2 at least, no proxy and no
	// connection reuse between calls. With a caller's client, bounding
	// response headers is up to its Transport (MaxResponseHeaderBytes).
	Client *http.Client
	// RootCAs are the roots the HTTPS servers' certificates must chain
	// to. nil means the system's roots.
	RootCAs *x509.CertPool
	// DialContext opens the TCP connections. nil means a net.Dialer.
	// Tests map "DOMAIN:443" to a loopback listener with it.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout bounds a whole Fetch, connection, TLS, headers, body and
	// the redirect included. Zero (or less) means DefaultPOSHTimeout,
	// 10 seconds.
	Timeout time.Duration
	// MaxSize is the most bytes of body read per document; a longer one
	// is too-large and is not read further. Zero (or less) means
	// MaxPOSHSize, 64 KiB.
	MaxSize int64
	// Now is the clock for FetchedAt and, in the client Fetch builds,
	// for certificate validity. nil means time.Now.
	Now func() time.Time
}

// Fetch gets the POSH document of domain for service (POSHServiceClient
// or POSHServiceServer), follows at most one POSH redirect, and
// classifies what it found. It never returns an error: the result's Code
// says what happened, and Err holds an underlying error.
func (f *POSHFetcher) Fetch(ctx context.Context, domain, service string) POSHResult {
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	r := POSHResult{Domain: domain, Service: service, FetchedAt: now()}
	u, err := POSHURL(domain, service)
	if err != nil {
		return r.fail(POSHInvalidInput, err.Error(), err)
	}
	r.URL = u
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultPOSHTimeout
	}
	limit := f.MaxSize
	if limit <= 0 {
		limit = MaxPOSHSize
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := f.client(timeout)
	defer client.CloseIdleConnections()

	body, ok := poshGet(ctx, client, u, limit, timeout, "", &r)
	if !ok {
		return r
	}
	doc, err := poshParse(body, limit)
	if err != nil {
		return r.parseFail(u, body, err)
	}
	if !doc.IsRedirect() {
		r.Document = &doc
		r.Expires = doc.Expires
		if !doc.Usable() {
			return r.fail(POSHExpired, fmt.Sprintf("%s has expires %d: a POSH document with expires <= 0 (or none) must not be used; publish a positive expires", u, doc.Expires), nil)
		}
		return r.ok(POSHValid, fmt.Sprintf("%s pins %d certificate(s), cache for %d s", u, len(doc.Fingerprints), doc.Expires))
	}

	// One POSH redirect, to https (ParsePOSH checked the scheme).
	r.RedirectURL, r.RedirectExpires = doc.URL, doc.Expires
	if !doc.Usable() {
		return r.fail(POSHExpired, fmt.Sprintf("%s redirects to %s with expires %d: a POSH document with expires <= 0 (or none) must not be used; publish a positive expires", u, doc.URL, doc.Expires), nil)
	}
	body, ok = poshGet(ctx, client, doc.URL, limit, timeout, u, &r)
	if !ok {
		return r
	}
	target, err := poshParse(body, limit)
	if (err == nil && target.IsRedirect()) || errors.Is(err, ErrPOSHInsecureURL) {
		next := target.URL
		if next == "" {
			next = poshLooseURL(body)
		}
		return r.fail(POSHRedirectChain, fmt.Sprintf("%s redirects to %s, which redirects again to %s: POSH allows one redirect; point %s at the final document", u, doc.URL, next, u), err)
	}
	if err != nil {
		return r.parseFail(doc.URL+" (redirect target of "+u+")", body, err)
	}
	r.Document = &target
	r.Expires = min(doc.Expires, target.Expires)
	if !target.Usable() {
		return r.fail(POSHExpired, fmt.Sprintf("%s (redirect target of %s) has expires %d: a POSH document with expires <= 0 (or none) must not be used; publish a positive expires", doc.URL, u, target.Expires), nil)
	}
	return r.ok(POSHValidViaRedirect, fmt.Sprintf("%s redirects to %s, which pins %d certificate(s), cache for %d s", u, doc.URL, len(target.Fingerprints), r.Expires))
}

// client is f.Client made safe (no HTTP redirects) or a client built
// from f's fields.
func (f *POSHFetcher) client(timeout time.Duration) *http.Client {
	if f.Client != nil {
		c := *f.Client
		c.CheckRedirect = poshNoRedirect
		return &c
	}
	dial := f.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: timeout}).DialContext
	}
	tr := &http.Transport{
		DialContext:            dial,
		TLSClientConfig:        &tls.Config{RootCAs: f.RootCAs, MinVersion: tls.VersionTLS12, Time: f.Now},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
		DisableKeepAlives:      true,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{Transport: tr, CheckRedirect: poshNoRedirect}
}

// poshNoRedirect makes http.Client return a 3xx response as it is, so
// that Fetch can refuse it by name.
func poshNoRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// poshGet fetches rawURL and returns its body, at most limit bytes, when
// the answer is 200. Otherwise it fills in r's failure and returns
// false. from is the document that redirected to rawURL, "" for the
// domain's own.
func poshGet(ctx context.Context, client *http.Client, rawURL string, limit int64, timeout time.Duration, from string, r *POSHResult) ([]byte, bool) {
	what := rawURL
	if from != "" {
		what = rawURL + " (redirect target of " + from + ")"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		r.fail(POSHInvalidDocument, fmt.Sprintf("cannot request %s: %v: fix the URL", what, err), err)
		return nil, false
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "xmppcert (POSH, RFC 7711)")
	resp, err := client.Do(req)
	if err != nil {
		code, text := poshTransportError(ctx, what, err, timeout)
		r.fail(code, text, err)
		return nil, false
	}
	defer resp.Body.Close()
	r.Status = resp.StatusCode
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		r.Location = resp.Header.Get("Location")
		r.fail(POSHHTTPRedirect, fmt.Sprintf("%s answered %s with Location %q: POSH forbids HTTP redirects; serve the document itself, or a POSH redirect {\"url\": ...}", what, resp.Status, r.Location), nil)
		return nil, false
	case resp.StatusCode == http.StatusNotFound && from == "":
		r.fail(POSHNotFound, fmt.Sprintf("%s answered 404: %s does not publish POSH for %s", what, r.Domain, r.Service), nil)
		return nil, false
	case resp.StatusCode != http.StatusOK:
		r.fail(POSHHTTPError, fmt.Sprintf("%s answered %s: serve the POSH document with status 200", what, resp.Status), nil)
		return nil, false
	}
	if resp.ContentLength > limit {
		r.fail(POSHTooLarge, fmt.Sprintf("%s announces %d bytes, over the %d-byte limit: publish only the current and next certificates' fingerprints", what, resp.ContentLength, limit), nil)
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if int64(len(body)) > limit {
		r.fail(POSHTooLarge, fmt.Sprintf("%s sent more than %d bytes: publish only the current and next certificates' fingerprints", what, limit), nil)
		return nil, false
	}
	if err != nil {
		code, text := poshTransportError(ctx, what, err, timeout)
		r.fail(code, text, err)
		return nil, false
	}
	return body, true
}

// poshTransportError classifies an error from client.Do or from reading
// a body.
func poshTransportError(ctx context.Context, what string, err error, timeout time.Duration) (POSHCode, string) {
	var (
		verify   *tls.CertificateVerificationError
		hostname x509.HostnameError
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &hostname), errors.As(err, &unknown), errors.As(err, &invalid):
		return POSHTLSError, fmt.Sprintf("HTTPS certificate for %s does not validate: %v: serve it with a certificate for the host from a CA clients trust", what, poshInner(err))
	case errors.As(err, &record), errors.As(err, &alert):
		return POSHTLSError, fmt.Sprintf("TLS with %s failed: %v: serve the document over HTTPS", what, poshInner(err))
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return POSHUnreachable, fmt.Sprintf("no answer from %s within %v: check that the web server is up and reachable", what, timeout)
	case errors.Is(err, context.Canceled):
		return POSHUnreachable, fmt.Sprintf("fetching %s was canceled", what)
	}
	return POSHUnreachable, fmt.Sprintf("cannot reach %s: %v: check DNS and that the web server listens on port 443", what, poshInner(err))
}

// poshInner drops the *url.Error wrapping ("Get \"https://...\": "),
// which would repeat the URL.
func poshInner(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// parseFail classifies a ParsePOSH error for the document at what.
func (r *POSHResult) parseFail(what string, body []byte, err error) POSHResult {
	switch {
	case errors.Is(err, ErrPOSHTooLarge):
		return r.fail(POSHTooLarge, fmt.Sprintf("%s: %v", what, err), err)
	case errors.Is(err, ErrPOSHInvalidJSON):
		return r.fail(POSHInvalidJSON, fmt.Sprintf("%s: %v", what, err), err)
	case errors.Is(err, ErrPOSHInsecureURL):
		r.RedirectURL = poshLooseURL(body)
		return r.fail(POSHInsecureRedirect, fmt.Sprintf("%s redirects to %q, which is not https: POSH redirects must use https", what, r.RedirectURL), err)
	}
	return r.fail(POSHInvalidDocument, fmt.Sprintf("%s: %v", what, err), err)
}

// poshLooseURL is the "url" of a document ParsePOSH refused, for
// reports; "" if there is none.
func poshLooseURL(body []byte) string {
	var v struct {
		URL string `json:"url"`
	}
	json.Unmarshal(body, &v)
	return v.URL
}

// fail records a failure in r and returns a copy.
func (r *POSHResult) fail(code POSHCode, text string, err error) POSHResult {
	r.Code, r.Text, r.Err = code, poshOneLine(text), err
	if code != POSHValid && code != POSHValidViaRedirect && r.Expires > 0 {
		r.Expires = 0
	}
	return *r
}

// ok records a success in r and returns a copy.
func (r *POSHResult) ok(code POSHCode, text string) POSHResult {
	r.Code, r.Text, r.Err = code, poshOneLine(text), nil
	return *r
}

// poshOneLine keeps a text on one line, whatever an error from below
// put in it.
func poshOneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
