package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// when a webhook secret is configured.
const SignatureHeader = "X-Xmppcert-Signature"

// Webhook defaults, used where WebhookOptions leave a zero.
const (
	DefaultWebhookTimeout     = 10 * time.Second
	DefaultWebhookMaxAttempts = 8
	DefaultWebhookMinBackoff  = time.Second
	DefaultWebhookMaxBackoff  = 2 * time.Minute
)

// Secret is key material that must never be printed: its String, Format,
// LogValue and MarshalJSON all give "[redacted]", so a Secret logged or
// printed by mistake (even inside a struct) does not leak.
type Secret []byte

// String returns "[redacted]".
func (Secret) String() string { return "[redacted]" }

// GoString returns "[redacted]", for %#v.
func (Secret) GoString() string { return "[redacted]" }

// Format prints "[redacted]" for every verb, including %x and %s.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

// LogValue keeps the secret out of slog output.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalJSON keeps the secret out of JSON dumps of configuration.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// WebhookOptions configure a webhook sink. Zero values take the defaults
// named beside each field.
type WebhookOptions struct {
	// URL receives the POSTs (http or https). Only its scheme and host
	// appear in logs and errors: paths and queries often hold tokens.
	URL string
	// Secret, when set, signs each body (SignatureHeader).
	Secret Secret
	// Client sends the requests; nil means a client with no overall
	// timeout (each attempt is bounded by Timeout). Redirects are never
	// followed, whatever the client's CheckRedirect: a redirect would
	// carry the body and its signature to another address.
	Client *http.Client
	// Timeout bounds each attempt (DefaultWebhookTimeout).
	Timeout time.Duration
	// MaxAttempts is the retry budget per alert, first attempt included
	// (DefaultWebhookMaxAttempts). Network errors, 408, 425, 429 and 5xx
	// are retried; other statuses fail at once.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the waits between attempts: the
	// wait doubles from MinBackoff up to MaxBackoff, with jitter of up to
	// half of it (DefaultWebhookMinBackoff, DefaultWebhookMaxBackoff).
	// With the defaults an alert is retried for about five minutes.
	MinBackoff, MaxBackoff time.Duration
	// Queue bounds the sink's queue.
	Queue QueueOptions
	// Logger gets delivery failures; nil means slog.Default().
	Logger *slog.Logger
}

// LogValue logs the options without secrets: the URL as scheme and host
// only (paths and queries often hold tokens), the secret as whether one
// is set.
func (o WebhookOptions) LogValue() slog.Value {
	where := "(invalid URL)"
	if u, err := url.Parse(o.URL); err == nil {
		where = u.Scheme + "://" + u.Host
	}
	return slog.GroupValue(slog.String("url", where), slog.Bool("signed", len(o.Secret) > 0),
		slog.Duration("timeout", o.Timeout), slog.Int("max_attempts", o.MaxAttempts),
		slog.Duration("min_backoff", o.MinBackoff), slog.Duration("max_backoff", o.MaxBackoff),
		slog.Int("queue_size", o.Queue.Size), slog.Bool("drop_newest", o.Queue.DropNewest))
}

// Webhook POSTs alerts as JSON Events. Deliver is synchronous; use
// NewWebhookSink for the queued Sink the Dispatcher needs.
type Webhook struct {
	url    string
	where  string
	secret Secret
	client *http.Client
	o      WebhookOptions
}

// NewWebhook checks the options and returns the webhook.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("alert webhook: the URL must be http:// or https:// with a host")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultWebhookTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultWebhookMaxAttempts
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultWebhookMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultWebhookMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	c := &http.Client{}
	if o.Client != nil {
		c = new(http.Client)
		*c = *o.Client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Webhook{url: o.URL, where: u.Scheme + "://" + u.Host, secret: o.Secret, client: c, o: o}, nil
}

// NewWebhookSink returns a webhook behind its own Queue.
func NewWebhookSink(o WebhookOptions) (*Queue, error) {
	w, err := NewWebhook(o)
	if err != nil {
		return nil, err
	}
	return NewQueue(w.Name(), w.Deliver, o.Queue, o.Logger), nil
}

// Name is "webhook SCHEME://HOST".
func (w *Webhook) Name() string { return "webhook " + w.where }

// Sign returns the SignatureHeader value for body under secret:
// "sha256=" and the lower-case hex HMAC-SHA256. Receivers compute the same
// over the raw body and compare in constant time (hmac.Equal).
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Deliver POSTs the alert, retrying with backoff until it is accepted
// (any 2xx), fails permanently, the retry budget is spent or ctx is done.
// Errors name the sink by scheme and host only.
func (w *Webhook) Deliver(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a.Event())
	if err != nil {
		return fmt.Errorf("%s: encoding the alert: %v", w.Name(), err)
	}
	return retry(ctx, w.Name(), w.o.MaxAttempts, w.o.MinBackoff, w.o.MaxBackoff, func() (bool, error) {
		return w.post(ctx, a, body)
	})
}

// post makes one attempt; retry says whether another may succeed.
func (w *Webhook) post(ctx context.Context, a Alert, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("building the request: %v", redact(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "xmppcert-alert/1")
	req.Header.Set("X-Xmppcert-Event", string(a.Change.Kind))
	req.Header.Set("X-Xmppcert-Delivery", a.ID())
	if len(w.secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(w.secret, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return true, fmt.Errorf("POST: %v", redact(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return false, nil
	case s >= 300 && s < 400:
		to := "no Location"
		if loc, err := resp.Location(); err == nil {
			to = loc.Scheme + "://" + loc.Host
		}
		return false, &RedirectError{Status: s, To: to}
	case s == http.StatusRequestTimeout, s == http.StatusTooEarly, s == http.StatusTooManyRequests, s >= 500:
		return true, errors.New("POST: status " + strconv.Itoa(s))
	default:
		return false, errors.New("POST: status " + strconv.Itoa(s) + " (not retried)")
	}
}

// RedirectError is a receiver's answer that redirects the POST elsewhere.
// It is not followed: the body and its signature would reach an address
// that was not configured. To is the Location's scheme and host only
// (its path may hold a token).
type RedirectError struct {
	// Status is the receiver's HTTP status (3xx).
	Status int
	// To is where it redirected: scheme and host, or "no Location".
	To string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("POST: status %d redirects to %s; redirects are not followed (not retried)", e.Status, e.To)
}

// redact strips the URL (which may carry a token) from a client error.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
