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
// sweep commands do.
type Client struct {
	// Addr is the daemon's listen address, HOST:PORT; an unspecified
	// host (every address) is reached on loopback.
	Addr string
	// Token is the bearer token, when the daemon requires one.
	Token string
	// Timeout bounds each request (DefaultClientTimeout); a sweep, which
	// probes every target, is bounded by its context only.
	Timeout time.Duration
}

// ErrNoDaemon is what a Client's request fails with when nothing answers
// at its address.
var ErrNoDaemon = errors.New("no daemon answered")

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
	if bounded {
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = DefaultClientTimeout
		}
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
		if ctx.Err() != nil && !bounded {
			return ctx.Err()
		}
		return fmt.Errorf("%w at %s", ErrNoDaemon, c.URL())
	}
	defer resp.Body.Close()
	r := io.LimitReader(resp.Body, maxAnswer)
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(r, 4096))
		var j struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(msg, &j) == nil && j.Error != "" {
			msg = []byte(j.Error)
		}
		return &AnswerError{Status: resp.StatusCode, Msg: safetext.Escape(strings.TrimSpace(string(msg)))}
	}
	if err := json.NewDecoder(r).Decode(out); err != nil {
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	return nil
}
