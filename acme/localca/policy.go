package localca

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	stepacme "github.com/smallstep/certificates/acme"
	"go.step.sm/crypto/jose"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/oneline"
)

// Defaults of ServeOptions' order limits. A certificate of xmppcert's
// own holds at most acme.MaxNames names; 300 orders an hour is what a
// mass renewal of hundreds of lineages through one account needs.
const (
	DefaultMaxNamesPerOrder = acme.MaxNames
	DefaultMaxOrdersPerHour = 300
)

// maxPolicyBody bounds the new-order and new-account requests the
// policy reads before step-ca does: an order of DefaultMaxNamesPerOrder
// names of 253 bytes is about 40 KiB as a JWS.
const maxPolicyBody = 64 << 10

// quotaWindow is the period MaxOrdersPerHour counts over.
const quotaWindow = time.Hour

// orderPolicy stands before step-ca's new-order: it refuses, with the
// RFC 8555 problem, identifiers that are not in canonical form, orders of
// too many names, names outside the allowed domains, and orders beyond
// the account's hourly quota, so that step-ca never sees them.
//
// It reads the JWS payload without verifying the signature: it only ever
// refuses, and step-ca verifies everything it accepts. It parses the JWS
// with the parser step-ca uses, so that both read the same payload
// whatever the serialization (compact or JSON), whitespace or member-name
// case, and it refuses what it cannot read. The quota is counted per
// account URL (the JWS kid) and only for orders step-ca created: a kid
// forged onto a request step-ca refuses holds a slot only while the
// request is in flight.
type orderPolicy struct {
	allowed  []string
	maxNames int
	quota    *orderQuota
	next     http.Handler
}

func (p *orderPolicy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := intercept(w, r, "/new-order", p.next)
	if !ok {
		return
	}
	order, err := parseOrder(body)
	if err != nil {
		acmeProblem(w, http.StatusBadRequest, "malformed", "the new-order request is not a JWS of an order: "+oneline.Clip(err.Error(), 200))
		return
	}
	if len(order.Identifiers) > p.maxNames {
		acmeProblem(w, http.StatusTooManyRequests, "rateLimited",
			fmt.Sprintf("%d identifiers in one order; this CA takes at most %d per order", len(order.Identifiers), p.maxNames))
		return
	}
	for _, id := range order.Identifiers {
		if err := canonicalIdentifier(id); err != nil {
			typ := "rejectedIdentifier"
			if errors.Is(err, errUnsupportedIdentifier) {
				typ = "unsupportedIdentifier"
			}
			acmeProblem(w, http.StatusBadRequest, typ, err.Error())
			return
		}
		if len(p.allowed) > 0 && (id.Type != string(stepacme.DNS) || !domainAllowed(id.Value, p.allowed)) {
			acmeProblem(w, http.StatusForbidden, "rejectedIdentifier",
				fmt.Sprintf("this CA issues only for the DNS names %s and their subdomains; %s %q is not allowed", strings.Join(p.allowed, ", "), oneline.Clip(id.Type, 20), oneline.Clip(id.Value, 260)))
			return
		}
	}
	release, wait := p.quota.reserve(order.Account)
	if release == nil {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		acmeProblem(w, http.StatusTooManyRequests, "rateLimited",
			fmt.Sprintf("this account created %d orders in the last hour, the most this CA takes; retry after %s", p.quota.max, wait.Round(time.Second)))
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	p.next.ServeHTTP(rec, r)
	if rec.status != http.StatusCreated {
		release()
	}
}

// intercept hands every request but a POST to the route (a path suffix)
// to next and returns false; for the POST it reads the body, at most
// maxPolicyBody bytes, and puts it back for next to read again, or
// answers the malformed problem and returns false.
func intercept(w http.ResponseWriter, r *http.Request, route string, next http.Handler) ([]byte, bool) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, route) {
		next.ServeHTTP(w, r)
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPolicyBody+1))
	if err != nil || len(body) > maxPolicyBody {
		acmeProblem(w, http.StatusRequestEntityTooLarge, "malformed", fmt.Sprintf("the request is unreadable or larger than %d bytes", maxPolicyBody))
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, true
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// orderIdentifier is an identifier of a new-order payload.
type orderIdentifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// newOrder is what orderPolicy reads of a new-order request.
type newOrder struct {
	// Account is the account URL the JWS names (its kid), unverified.
	Account     string
	Identifiers []orderIdentifier
}

// parseOrder reads a new-order JWS as step-ca reads it:
// go.step.sm/crypto/jose.ParseJWS, then encoding/json.
func parseOrder(body []byte) (newOrder, error) {
	jws, err := jose.ParseJWS(string(body))
	if err != nil {
		return newOrder{}, err
	}
	var payload struct {
		Identifiers []orderIdentifier `json:"identifiers"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &payload); err != nil {
		return newOrder{}, err
	}
	o := newOrder{Identifiers: payload.Identifiers}
	if len(jws.Signatures) > 0 {
		o.Account = jws.Signatures[0].Protected.KeyID
	}
	return o, nil
}

// errUnsupportedIdentifier is an identifier type this CA does not issue
// for.
var errUnsupportedIdentifier = errors.New("unsupported identifier type")

// canonicalIdentifier accepts an order identifier only in the form every
// later step reads the same way: a DNS name as lower-case A-labels
// without a trailing dot (a wildcard only as a leading "*."), an IP
// address as netip prints it. Anything else (upper case, U-labels,
// fullwidth or ideographic dots that IDNA maps to dots, a trailing dot,
// an IPv6 zone or a zero-padded IPv4) could be read as one name by a
// filter and as another by the validation or the certificate.
func canonicalIdentifier(id orderIdentifier) error {
	switch id.Type {
	case string(stepacme.DNS):
		name := strings.TrimPrefix(id.Value, "*.")
		c, err := acme.CanonicalName(name)
		if err != nil {
			return fmt.Errorf("dns identifier %q is not a domain name: %s", oneline.Clip(id.Value, 260), oneline.Clip(err.Error(), 200))
		}
		if c != name {
			return fmt.Errorf("dns identifier %q is not in canonical form (lower-case A-labels, no trailing dot); send %q", oneline.Clip(id.Value, 260), strings.TrimSuffix(id.Value, name)+c)
		}
	case string(stepacme.IP):
		a, err := netip.ParseAddr(id.Value)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("ip identifier %q is not an IP address", oneline.Clip(id.Value, 60))
		}
		if a.String() != id.Value {
			return fmt.Errorf("ip identifier %q is not in canonical form (RFC 5952); send %q", oneline.Clip(id.Value, 60), a.String())
		}
	default:
		return fmt.Errorf("%w %q: this CA issues for dns and ip identifiers", errUnsupportedIdentifier, oneline.Clip(id.Type, 40))
	}
	return nil
}

// domainAllowed reports whether name (in canonical form) is one of the
// allowed domains or a subdomain of one.
func domainAllowed(name string, allowed []string) bool {
	name = strings.TrimPrefix(name, "*.")
	for _, a := range allowed {
		if name == a || strings.HasSuffix(name, "."+a) {
			return true
		}
	}
	return false
}

// orderQuota counts each account's orders over the last quotaWindow.
type orderQuota struct {
	max int
	now func() time.Time

	mu sync.Mutex
	// orders are the times of each account's orders in the window, and
	// of its orders in flight, oldest first.
	orders  map[string][]time.Time
	sweepAt int
}

func newOrderQuota(max int, now func() time.Time) *orderQuota {
	return &orderQuota{max: max, now: now, orders: map[string][]time.Time{}, sweepAt: 1024}
}

// reserve takes a slot of the account's quota and returns the function
// that gives it back (the order was not created), or nil and how long
// until the oldest order in the window leaves it.
func (q *orderQuota) reserve(account string) (release func(), wait time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	if len(q.orders) >= q.sweepAt {
		for a, ts := range q.orders {
			if q.live(a, ts, now) == 0 {
				delete(q.orders, a)
			}
		}
		q.sweepAt = 2*len(q.orders) + 1024
	}
	if n := q.live(account, q.orders[account], now); n >= q.max {
		return nil, q.orders[account][0].Add(quotaWindow).Sub(now)
	}
	q.orders[account] = append(q.orders[account], now)
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		ts := q.orders[account]
		for i := len(ts) - 1; i >= 0; i-- {
			if ts[i].Equal(now) {
				ts = append(ts[:i], ts[i+1:]...)
				break
			}
		}
		if len(ts) == 0 {
			delete(q.orders, account)
		} else {
			q.orders[account] = ts
		}
	}, 0
}

// live drops the account's orders older than the window and returns how
// many remain.
func (q *orderQuota) live(account string, ts []time.Time, now time.Time) int {
	i := 0
	for i < len(ts) && !now.Before(ts[i].Add(quotaWindow)) {
		i++
	}
	if i > 0 {
		ts = ts[i:]
		if len(ts) == 0 {
			delete(q.orders, account)
		} else {
			q.orders[account] = ts
		}
	}
	return len(ts)
}

func acmeProblem(w http.ResponseWriter, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"type":   "urn:ietf:params:acme:error:" + typ,
		"detail": detail,
		"status": status,
	})
}
