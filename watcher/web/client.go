package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/internal/safetext"
	"github.com/xmppcert/xmppcert/watcher/changes"
)

// DefaultClientTimeout bounds each of a Client's requests when its
// Timeout is zero.
const DefaultClientTimeout = 3 * time.Second

// maxAnswer bounds what a Client reads of an answer.
const maxAnswer = 64 << 20

// Client asks a running daemon's JSON API, as the CLI's status, ack and
// sweep commands and a cluster node's dashboard and /metrics (of each
// other member) do.
type Client struct {
	// Addr is the daemon's listen address, HOST:PORT; an unspecified
	// host (every address) is reached on loopback.
	Addr string
	// BaseURL, when set, is asked instead of Addr: http:// or
	// https://HOST:PORT, as a cluster member advertises it.
	BaseURL string
	// Token is the bearer token, when the daemon requires one.
	Token string
	// Timeout bounds each request (DefaultClientTimeout); a sweep, which
	// probes every target, is bounded by its context only.
	Timeout time.Duration
}

// ErrNoDaemon is what a Client's request fails with when nothing answers
// at its address.
var ErrNoDaemon = errors.New("no daemon answered")

// ErrTooLarge is what a Client's request fails with when the answer is
// longer than the client reads (64 MiB).
var ErrTooLarge = errors.New("the daemon's answer is too large")

// AnswerError is the daemon's refusal: its HTTP status and its message.
type AnswerError struct {
	Status int
	Msg    string
}

func (e *AnswerError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("the daemon answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("the daemon answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// URL is the base URL the client asks.
func (c *Client) URL() string {
	if c.BaseURL != "" {
		return strings.TrimSuffix(c.BaseURL, "/")
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return "http://" + c.Addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Endpoints is GET /api/endpoints.
func (c *Client) Endpoints(ctx context.Context) ([]EndpointStatus, error) {
	var body struct {
		Endpoints []EndpointStatus `json:"endpoints"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/endpoints", nil, &body, true); err != nil {
		return nil, err
	}
	if body.Endpoints == nil {
		body.Endpoints = []EndpointStatus{}
	}
	return body.Endpoints, nil
}

// Ack is POST /api/endpoints/ID/ack: it acknowledges the endpoint's
// changes up to entry seq (0: its latest) and returns the entry now
// acknowledged.
func (c *Client) Ack(ctx context.Context, id string, seq uint64) (uint64, error) {
	var body struct {
		AckedSeq uint64 `json:"acked_seq"`
	}
	err := c.do(ctx, http.MethodPost, "/api/endpoints/"+id+"/ack", map[string]uint64{"seq": seq}, &body, true)
	return body.AckedSeq, err
}

// AckAll is POST /api/ack: it acknowledges every endpoint whose
// unacknowledged changes are of at most severity sev.
func (c *Client) AckAll(ctx context.Context, sev changes.Severity) (AckAllResult, error) {
	var res AckAllResult
	err := c.do(ctx, http.MethodPost, "/api/ack", map[string]changes.Severity{"severity": sev}, &res, true)
	return res, err
}

// Sweep is POST /api/sweep: one sweep now, its result decoded into out.
func (c *Client) Sweep(ctx context.Context, out any) error {
	return c.do(ctx, http.MethodPost, "/api/sweep", struct{}{}, out, false)
}

// do makes one request with a JSON body (none when in is nil) and
// decodes the answer into out; bounded says whether Timeout applies.
func (c *Client) do(ctx context.Context, method, path string, in, out any, bounded bool) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	if bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL()+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil && !bounded:
			return ctx.Err()
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return fmt.Errorf("%w at %s within %s", ErrNoDaemon, c.URL(), timeout)
		}
		return fmt.Errorf("%w at %s", ErrNoDaemon, c.URL())
	}
	defer resp.Body.Close()
	if resp.ContentLength > maxAnswer {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, resp.ContentLength, maxAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var j struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(msg, &j) == nil && j.Error != "" {
			msg = []byte(j.Error)
		}
		return &AnswerError{Status: resp.StatusCode, Msg: safetext.Escape(strings.TrimSpace(string(msg)))}
	}
	// The whole answer is read first (the decoder would hold it all
	// too), one byte more than the bound telling a longer one from one
	// that ends there, before anything of it is decoded.
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	switch {
	case int64(len(b)) > maxAnswer:
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxAnswer)
	case err != nil && bounded && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("reading the daemon's answer: not complete within %s", timeout)
	case err != nil:
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	return nil
}
