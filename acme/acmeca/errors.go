package acmeca

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	acmeproto "github.com/mholt/acmez/v3/acme"
)

// Kind says what went wrong with an ACME CA, and so what to do.
type Kind int

// Kinds of failure.
const (
	// KindOther is a failure none of the others describes.
	KindOther Kind = iota
	// KindUnreachable: no HTTP answer from the CA (DNS, refused, reset,
	// TLS handshake). Retried.
	KindUnreachable
	// KindUntrusted: the CA's HTTPS certificate does not verify.
	KindUntrusted
	// KindServer: the CA answered with 5xx errors. Retried.
	KindServer
	// KindBadNonce: the CA rejected every anti-replay nonce.
	KindBadNonce
	// KindRateLimited: the CA said to come back later (rateLimited, or a
	// Retry-After on an error). Never retried past what it allows.
	KindRateLimited
	// KindAccount: the CA refused the account (unknown, needs External
	// Account Binding, terms to agree to, bad contact).
	KindAccount
	// KindChallenge: the CA could not validate a name, or validation did
	// not finish in time.
	KindChallenge
	// KindRejected: the CA refused the order (a name it does not issue
	// for, CAA, an unknown profile, a CSR it does not like).
	KindRejected
	// KindTimeout: the whole operation ran out of time.
	KindTimeout
	// KindIdentities: the certificate lacks identities the request
	// requires (SRV-IDs and XmppAddr with RequireXMPPIDs).
	KindIdentities
	// KindConfig: the configuration does not allow going on (no account
	// and no agreement to the terms, no challenge solver).
	KindConfig
	// KindPreflight: the pre-flight refused the order before it was
	// sent (CAA, DNSSEC, an address, the dns-01 key): the CA would have.
	KindPreflight
	// KindAlreadyReplaced: the CA refused a renewal's order because the
	// certificate it replaces was replaced already (alreadyReplaced):
	// another node, or another client of the account, renewed it.
	KindAlreadyReplaced
)

// Error is a failed operation with an ACME CA. Its message names the CA
// and the operation, says what happened and what to do, on one line.
type Error struct {
	// CA names the CA and its directory URL.
	CA string
	// Op is what was being done ("ordering a certificate for example.org").
	Op string
	// Kind classifies the failure.
	Kind Kind
	// Attempts is how many times the operation was tried.
	Attempts int
	// RetryAt is when the CA said to try again (Retry-After); zero when
	// it did not.
	RetryAt time.Time
	// Err is the underlying error.
	Err error
	// advice is what to do, set by the Issuer for kinds whose advice
	// depends on its configuration.
	advice string
	// remedy is the setting the advice changes, set with advice; the
	// Kind's own when RemedyNone.
	remedy Remedy
	// issuing is true for a failed issuance, which writes nothing.
	issuing bool
}

// Error is the one-line message: CA, operation, what happened, the CA's
// detail, when to retry, and what to do.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.CA, e.Op)
	if w := e.what(); w != "" {
		b.WriteString(": " + w)
	}
	if d := detail(e.Err); d != "" {
		b.WriteString(": " + d)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
	}
	if !e.RetryAt.IsZero() {
		wait := time.Until(e.RetryAt).Round(time.Second)
		if wait < 0 {
			wait = 0
		}
		fmt.Fprintf(&b, "; the CA asks not to retry before %s (in %s)", e.RetryAt.UTC().Format("2006-01-02 15:04:05 MST"), wait)
	}
	if e.issuing {
		b.WriteString("; nothing was written")
	}
	if a := e.adviceText(); a != "" {
		b.WriteString("; " + a)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Remedy names the setting an operator changes to get past a failure.
// The message says what to do in general words; the front that took the
// setting (the command line) names it in its own terms.
type Remedy int

// Remedies.
const (
	// RemedyNone: no setting; the message says what to do.
	RemedyNone Remedy = iota
	// RemedyDirectory: the CA's directory URL (and the way to it).
	RemedyDirectory
	// RemedyTrustRoot: the private CA's root, to trust.
	RemedyTrustRoot
	// RemedyStaging: the CA's staging directory, for tests.
	RemedyStaging
	// RemedyTimeout: how long an issuance may take.
	RemedyTimeout
	// RemedyProfile: the certificate profile ordered.
	RemedyProfile
	// RemedyEAB: an External Account Binding key ID and HMAC key.
	RemedyEAB
	// RemedyAgreeTOS: the agreement to the CA's terms of service.
	RemedyAgreeTOS
	// RemedyEmail: the account's contact address.
	RemedyEmail
	// RemedyXMPPIDs: the requirement of SRV-IDs and XmppAddr, which
	// only a private CA meets.
	RemedyXMPPIDs
)

// Remedy is the setting that the failure's advice changes.
func (e *Error) Remedy() Remedy {
	if e.advice != "" {
		return e.remedy
	}
	switch e.Kind {
	case KindUnreachable:
		return RemedyDirectory
	case KindUntrusted:
		return RemedyTrustRoot
	case KindRateLimited:
		return RemedyStaging
	case KindTimeout:
		return RemedyTimeout
	case KindRejected:
		return RemedyProfile
	}
	return RemedyNone
}

// RetryAfter is when the CA said to try again, zero when it did not
// (the method acme.RetryAfter looks for).
func (e *Error) RetryAfter() time.Time { return e.RetryAt }

// AlreadyReplaced reports a renewal the CA refused as replaced already
// (the method acme.AlreadyReplaced looks for).
func (e *Error) AlreadyReplaced() bool { return e.Kind == KindAlreadyReplaced }

// Temporary reports a failure that may go away if tried again shortly:
// the CA unreachable or answering with server errors (the method
// acme.Transient looks for).
func (e *Error) Temporary() bool { return e.Kind == KindUnreachable || e.Kind == KindServer }

func (e *Error) what() string {
	switch e.Kind {
	case KindUnreachable:
		return "cannot reach the CA"
	case KindUntrusted:
		return "the CA's HTTPS certificate is not trusted"
	case KindServer:
		return "the CA answered with server errors"
	case KindBadNonce:
		return "the CA rejected every anti-replay nonce (badNonce)"
	case KindRateLimited:
		return "the CA is rate-limiting this client"
	case KindAccount:
		return "the CA refused the account"
	case KindChallenge:
		return "the CA could not validate control of the names"
	case KindRejected:
		return "the CA refused the order"
	case KindTimeout:
		return "gave up: out of time"
	case KindIdentities:
		return "the certificate lacks the SRV-IDs and XmppAddr the request requires"
	case KindConfig:
		return ""
	case KindPreflight:
		return "not sent, the CA would refuse it"
	case KindAlreadyReplaced:
		return "the CA says the certificate was replaced already"
	}
	return "failed"
}

func (e *Error) adviceText() string {
	if e.advice != "" {
		return e.advice
	}
	switch e.Kind {
	case KindUnreachable:
		return "check the CA's directory URL, DNS and outbound HTTPS (firewall, proxy), then run again"
	case KindUntrusted:
		return "for a private CA (xmppcert ca serve, step-ca, pebble) trust its root"
	case KindServer:
		return "the CA is down or overloaded: run again later (renew from cron retries by itself) and see the CA's status page"
	case KindBadNonce:
		return "something between here and the CA (a proxy, a load balancer) may be mixing up its servers: run again later, and report it to the CA if it persists"
	case KindRateLimited:
		if e.RetryAt.IsZero() {
			return "wait before running again (Let's Encrypt's limits: https://letsencrypt.org/docs/rate-limits/); test against the CA's staging directory"
		}
		return "run again after that time; test against the CA's staging directory"
	case KindTimeout:
		return "run again; if the CA is slow, allow more time"
	case KindRejected:
		return "check the names (public DNS names the CA may issue for, CAA records) and the certificate profile"
	case KindPreflight:
		return "fix what the pre-flight names, then run again"
	case KindAlreadyReplaced:
		return "another node or client of this account renewed it: read the lineage again"
	}
	return "run again; if it persists, report the message above"
}

// detail is the useful part of an error from acmez: the problem
// document's type and detail when there is one, on one line.
func detail(err error) string {
	if err == nil {
		return ""
	}
	var p acmeproto.Problem
	if errors.As(err, &p) {
		s := strings.TrimPrefix(p.Type, acmeproto.ProblemTypeNamespace)
		if p.Detail != "" {
			s += " (" + p.Detail + ")"
		}
		for _, sp := range p.Subproblems {
			s += fmt.Sprintf("; %s %s: %s", sp.Identifier.Value, strings.TrimPrefix(sp.Type, acmeproto.ProblemTypeNamespace), sp.Detail)
		}
		if p.Status != 0 {
			s = fmt.Sprintf("HTTP %d %s", p.Status, s)
		}
		return oneLine(s)
	}
	return oneLine(err.Error())
}

// oneLine folds whitespace runs so that a message stays one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// classify says what kind of failure err is and whether trying again
// within the same run may help.
func classify(err error, rec *recorder) (Kind, bool) {
	var p acmeproto.Problem
	isProblem := errors.As(err, &p)
	retryAt, status := rec.last()
	switch {
	case errors.Is(err, context.Canceled):
		return KindOther, false
	case isProblem && p.Type == acmeproto.ProblemTypeRateLimited, status == http.StatusTooManyRequests:
		return KindRateLimited, false
	case !retryAt.IsZero():
		// A Retry-After on another error (503 during maintenance, say):
		// the caller decides whether it is near enough to wait for.
		return KindServer, true
	case isProblem && p.Type == acmeproto.ProblemTypeBadNonce:
		// acmez already retried ten times with fresh nonces.
		return KindBadNonce, false
	case isTLSTrust(err):
		return KindUntrusted, false
	case isProblem && (p.Type == acmeproto.ProblemTypeAccountDoesNotExist || p.Type == acmeproto.ProblemTypeExternalAccountRequired ||
		p.Type == acmeproto.ProblemTypeInvalidContact || p.Type == acmeproto.ProblemTypeUnsupportedContact ||
		p.Type == acmeproto.ProblemTypeUserActionRequired || p.Type == acmeproto.ProblemTypeBadPublicKey):
		return KindAccount, false
	case isChallenge(err):
		return KindChallenge, false
	case isProblem && (p.Status >= 500 || p.Type == acmeproto.ProblemTypeServerInternal):
		return KindServer, true
	case isProblem:
		return KindRejected, false
	case status >= 500:
		return KindServer, true
	case isNetwork(err):
		return KindUnreachable, true
	}
	return KindOther, false
}

// isChallenge reports an error from validating authorizations: acmez
// attaches the authorization to the problem, or says it took too long.
func isChallenge(err error) bool {
	var p acmeproto.Problem
	if errors.As(err, &p) {
		if _, ok := p.Resource.(acmeproto.Authorization); ok {
			return true
		}
	}
	s := err.Error()
	return strings.Contains(s, "solving challenge") || strings.Contains(s, "authorization took too long") ||
		strings.Contains(s, "no solvers available")
}

func isTLSTrust(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var cv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &cv)
}

func isNetwork(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	var rh tls.RecordHeaderError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &rh) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "performing request")
}

// recorder is the HTTP transport of one operation: it remembers the
// Retry-After of the CA's last error answer and the last status, which
// acmez does not pass on with its errors.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	// retryAt is when the last error answer with Retry-After allows a
	// retry; status is the last answer's status.
	retryAt time.Time
	status  int
	// replacedAt is the URL (new-order) that answered alreadyReplaced:
	// acmez would order again there without "replaces", which in a
	// cluster is the second order the answer says not to make, so the
	// recorder refuses to send it (errAlreadyReplaced).
	replacedAt string
}

// errAlreadyReplaced is the recorder's refusal to send the new order
// that would follow an alreadyReplaced answer.
var errAlreadyReplaced = errors.New("the CA answered alreadyReplaced; no second order is sent")

// maxProblem bounds the part of an error answer read for its type.
const maxProblem = 64 << 10

// RoundTrip sends the request and notes what the answer says about
// retrying and about an alreadyReplaced refusal.
func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	blocked := req.Method == http.MethodPost && r.replacedAt != "" && req.URL.String() == r.replacedAt
	r.mu.Unlock()
	if blocked {
		return nil, errAlreadyReplaced
	}
	resp, err := r.base.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.status = 0
		return resp, err
	}
	r.status = resp.StatusCode
	if resp.StatusCode >= 400 {
		r.retryAt = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	if resp.StatusCode == http.StatusConflict && req.Method == http.MethodPost {
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxProblem))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var p struct {
			Type string `json:"type"`
		}
		if rerr == nil && json.Unmarshal(body, &p) == nil && p.Type == acmeproto.ProblemTypeAlreadyReplaced {
			r.replacedAt = req.URL.String()
		}
	}
	return resp, err
}

// replaced reports whether the CA answered alreadyReplaced.
func (r *recorder) replaced() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replacedAt != ""
}

func (r *recorder) last() (time.Time, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retryAt, r.status
}

// reset forgets what earlier attempts saw.
func (r *recorder) reset() {
	r.mu.Lock()
	r.retryAt, r.status, r.replacedAt = time.Time{}, 0, ""
	r.mu.Unlock()
}

// maxRetryAfter bounds a believable Retry-After: a year.
const maxRetryAfter = 366 * 24 * time.Hour

// parseRetryAfter reads a Retry-After value: seconds or an HTTP date
// (RFC 9110 §10.2.3). Zero when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return time.Time{}
		}
		if d := time.Duration(n) * time.Second; n < int64(maxRetryAfter/time.Second) {
			return now.Add(d)
		}
		return now.Add(maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		if t.Before(now) {
			return now
		}
		if t.After(now.Add(maxRetryAfter)) {
			return now.Add(maxRetryAfter)
		}
		return t
	}
	return time.Time{}
}
