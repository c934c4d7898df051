package ct

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
)

// Bounds of what a log may send.
const (
	// MaxResponse bounds one response body: a full data tile of 256
	// entries with large certificates is a few MiB.
	MaxResponse = 32 << 20
	// MaxCheckpoint bounds a checkpoint or STH.
	MaxCheckpoint = 64 << 10
	// DefaultTimeout bounds each request when Log.Timeout is zero.
	DefaultTimeout = 30 * time.Second
	// maxGetEntries is the most entries asked of an RFC 6962 log at once
	// (logs answer fewer when they cap it).
	maxGetEntries = 256
)

// Log is one CT log to follow.
type Log struct {
	// Name is how alerts and logs name it (its description, else URL).
	Name string `json:"name"`
	// URL is the static-ct-api monitoring prefix (Tiled) or the RFC 6962
	// base URL (the part before /ct/v1/).
	URL string `json:"url"`
	// Tiled is true for a static-ct-api log.
	Tiled bool `json:"tiled"`
}

// Client reads a log's size and entries over HTTP.
type Client struct {
	// Log is the log read.
	Log Log
	// HTTP is the client requests go through; nil means one with
	// Timeout.
	HTTP *http.Client
	// Timeout bounds each request; DefaultTimeout when zero.
	Timeout time.Duration
}

// FetchError is a request to a log that failed or was answered with
// something other than what was asked.
type FetchError struct {
	// URL is what was asked for; Err why it failed.
	URL string
	Err error
}

func (e *FetchError) Error() string { return e.URL + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *FetchError) Unwrap() error { return e.Err }

func (c *Client) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	t := c.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	return &http.Client{Timeout: t}
}

// get fetches u, at most limit bytes; a 404 is reported as notFound.
func (c *Client) get(ctx context.Context, u string, limit int64) (body []byte, notFound bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, &FetchError{u, err}
	}
	req.Header.Set("User-Agent", "xmppcert")
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, false, &FetchError{u, err}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, true, &FetchError{u, errors.New("404 Not Found")}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, &FetchError{u, fmt.Errorf("HTTP %d", resp.StatusCode)}
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, false, &FetchError{u, err}
	}
	if int64(len(body)) > limit {
		return nil, false, &FetchError{u, fmt.Errorf("the answer is longer than %d bytes", limit)}
	}
	return body, false, nil
}

func (c *Client) url(path string) string {
	return strings.TrimSuffix(c.Log.URL, "/") + "/" + path
}

// Size returns the number of entries the log holds now: its checkpoint's
// size (static-ct-api) or its STH's tree_size (RFC 6962). Signatures are
// not verified: a log that lies about its size hides entries, which no
// reader can tell from here.
func (c *Client) Size(ctx context.Context) (uint64, error) {
	if c.Log.Tiled {
		body, _, err := c.get(ctx, c.url("checkpoint"), MaxCheckpoint)
		if err != nil {
			return 0, err
		}
		var cp log.Checkpoint
		if _, err := cp.Unmarshal(body); err != nil {
			return 0, &FetchError{c.url("checkpoint"), fmt.Errorf("%w: %v", ErrMalformed, err)}
		}
		return cp.Size, nil
	}
	body, _, err := c.get(ctx, c.url("ct/v1/get-sth"), MaxCheckpoint)
	if err != nil {
		return 0, err
	}
	var sth struct {
		TreeSize *uint64 `json:"tree_size"`
	}
	if err := json.Unmarshal(body, &sth); err != nil || sth.TreeSize == nil {
		return 0, &FetchError{c.url("ct/v1/get-sth"), fmt.Errorf("%w: not an STH", ErrMalformed)}
	}
	return *sth.TreeSize, nil
}

// Entries returns entries of the log from start on, before end (and
// before size, the log's size): at least one when start < end, at most
// one tile's or one get-entries answer's worth.
func (c *Client) Entries(ctx context.Context, start, end, size uint64) ([]Entry, error) {
	if start >= end || start >= size {
		return nil, nil
	}
	end = min(end, size)
	if c.Log.Tiled {
		return c.tileEntries(ctx, start, end, size)
	}
	return c.getEntries(ctx, start, end)
}

// tileEntries reads the data tile holding start: the full tile, or the
// partial one at the log's end.
func (c *Client) tileEntries(ctx context.Context, start, end, size uint64) ([]Entry, error) {
	n := start / TileWidth
	width := uint64(TileWidth)
	path := "tile/data/" + tilePath(n)
	if rest := size - n*TileWidth; rest < TileWidth {
		width = rest
		path += ".p/" + strconv.FormatUint(width, 10)
	}
	body, notFound, err := c.get(ctx, c.url(path), MaxResponse)
	if notFound && width == TileWidth {
		// A log may not have written the full tile yet.
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	all, err := ParseTile(body, n*TileWidth, int(width))
	if err != nil {
		return nil, &FetchError{c.url(path), err}
	}
	lo, hi := start-n*TileWidth, min(end-n*TileWidth, width)
	return all[lo:hi], nil
}

// tilePath encodes a tile index as the tlog-tiles paths do: groups of
// three digits, all but the last prefixed with x (1234067 ->
// x001/x234/067).
func tilePath(n uint64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

// getEntries asks an RFC 6962 log for [start, end).
func (c *Client) getEntries(ctx context.Context, start, end uint64) ([]Entry, error) {
	last := min(end-1, start+maxGetEntries-1)
	u := c.url("ct/v1/get-entries") + "?" + url.Values{"start": {strconv.FormatUint(start, 10)}, "end": {strconv.FormatUint(last, 10)}}.Encode()
	body, _, err := c.get(ctx, u, MaxResponse)
	if err != nil {
		return nil, err
	}
	entries, err := ParseGetEntries(body, start, last-start+1)
	if err != nil {
		return nil, &FetchError{u, err}
	}
	return entries, nil
}

// ParseGetEntries parses an RFC 6962 get-entries answer for entries
// from start on; it must hold at least one and at most max.
func ParseGetEntries(body []byte, start, max uint64) ([]Entry, error) {
	var resp struct {
		Entries []struct {
			LeafInput []byte `json:"leaf_input"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, malformed("not a get-entries answer: %v", err)
	}
	if len(resp.Entries) == 0 || uint64(len(resp.Entries)) > max {
		return nil, malformed("%d entries where 1 to %d were asked for", len(resp.Entries), max)
	}
	out := make([]Entry, 0, len(resp.Entries))
	for i, le := range resp.Entries {
		e, err := ParseLeafInput(le.LeafInput, start+uint64(i))
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", start+uint64(i), err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Detect finds whether rawURL is a static-ct-api monitoring prefix (it
// serves a checkpoint) or an RFC 6962 log (it serves get-sth).
func Detect(ctx context.Context, rawURL string, httpClient *http.Client) (Log, error) {
	l := Log{Name: rawURL, URL: rawURL, Tiled: true}
	c := &Client{Log: l, HTTP: httpClient}
	if _, err := c.Size(ctx); err == nil {
		return l, nil
	}
	c.Log.Tiled = false
	if _, err := c.Size(ctx); err != nil {
		return l, fmt.Errorf("%s serves neither a static-ct-api checkpoint nor an RFC 6962 get-sth: %w", rawURL, err)
	}
	return c.Log, nil
}
