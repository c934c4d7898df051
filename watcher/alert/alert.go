// Package alert delivers classified changes (watcher/changes) to people
// and programs: a log sink (log/slog), a webhook (JSON POST, optional
// HMAC-SHA256 signature, retries with capped exponential backoff), an
// exec hook (the event in XMPPCERT_ALERT_* variables and as JSON on
// stdin) and an XMPP account that sends each alert as a chat message
// (mellium.im/xmpp).
//
// A Dispatcher fans alerts out to sinks and de-duplicates them. Sinks that
// do I/O sit behind a Queue: a bounded queue with one goroutine, so that a
// failing or slow receiver never blocks the prober that dispatches.
//
// # De-duplication
//
// Every Change has a Key (endpoint, kind, condition). The Dispatcher sends
// a Key once and then suppresses it until ResendInterval has passed since
// it was last sent; if it is still reported then, it is sent again with
// Resent set. A Key is forgotten (so that its next occurrence is sent at
// once) when
//
//   - the caller calls Resolve(key), or
//   - Report is called for the key's endpoint without that key: the
//     daemon calls Report with each probe's classification, so a condition
//     clears as soon as Classify stops reporting it, or
//   - it has not been reported for a whole ResendInterval (with a
//     negative ResendInterval, which never re-sends, only the first two).
//
// Transitions (a key change, an endpoint going down) are reported by one
// classification only, so they are sent once each time they happen.
// Conditions (expiry thresholds) are reported by every classification
// while they hold, so they are re-sent every ResendInterval.
//
// # Webhook schema
//
// The webhook body is the JSON of Event, schema "xmppcert.alert.v1":
//
//	{
//	  "schema": "xmppcert.alert.v1",
//	  "id": "5f0c…",                  // 32 hex digits, same on every retry
//	  "at": "2026-03-01T12:00:00Z",   // when the observation was made (RFC 3339)
//	  "endpoint": {"domain": "example.org", "service": "xmpp-server",
//	               "host": "xmpp.example.org", "port": 5269,
//	               "address": "192.0.2.1:5269", "direct_tls": false},
//	  "endpoint_key": "example.org xmpp-server xmpp.example.org:5269 192.0.2.1:5269 starttls",
//	  "kind": "key-changed",          // changes.Kind codes
//	  "severity": "warning",          // info | warning | critical
//	  "text": "unexpected key change: …",
//	  "old": "…", "new": "…",         // always present, may be ""
//	  "key": "…",                     // the de-duplication key
//	  "resent": false                 // true when re-sending a persisting condition
//	}
//
// Fields are only ever added, never renamed or removed; receivers should
// ignore fields they do not know. With a secret configured the request
// carries X-Xmppcert-Signature: sha256=HEX, the lower-case hex
// HMAC-SHA256 of the exact body bytes under the secret. X-Xmppcert-Event
// carries the kind and X-Xmppcert-Delivery the id.
package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
)

// Schema names the version of the Event JSON.
const Schema = "xmppcert.alert.v1"

// Alert is one change of one endpoint, at the time it was observed.
type Alert struct {
	// Endpoint is where the change was seen.
	Endpoint watcher.EndpointKey
	// Change is what changed, with its severity and de-duplication key.
	Change changes.Change
	// At is when the observation was made.
	At time.Time
	// Resent is set by the Dispatcher when this re-sends a condition
	// that was sent before and still holds.
	Resent bool
}

// ID identifies one alert for receivers: a digest of the Key and the
// observation time, so retries of one alert carry the same ID and the
// receiver can drop duplicates.
func (a Alert) ID() string {
	h := sha256.Sum256([]byte(a.Change.Key + "\x00" + strconv.FormatInt(a.At.UnixNano(), 10) + "\x00" + strconv.FormatBool(a.Resent)))
	return hex.EncodeToString(h[:16])
}

// Event is the stable, documented JSON form of an alert (see the package
// documentation): the webhook body and the exec hook's stdin.
type Event struct {
	// Schema is always Schema ("xmppcert.alert.v1").
	Schema string `json:"schema"`
	// ID is Alert.ID: the same on every retry of one delivery.
	ID string `json:"id"`
	// At is when the observation was made, UTC.
	At time.Time `json:"at"`
	// Endpoint is the endpoint's parts; EndpointKey its String form.
	Endpoint    watcher.EndpointKey `json:"endpoint"`
	EndpointKey string              `json:"endpoint_key"`
	// Kind, Severity, Text, Old, New and Key are the Change's.
	Kind     changes.Kind     `json:"kind"`
	Severity changes.Severity `json:"severity"`
	Text     string           `json:"text"`
	Old      string           `json:"old"`
	New      string           `json:"new"`
	Key      string           `json:"key"`
	// Resent is true when a persisting condition is sent again.
	Resent bool `json:"resent"`
}

// Event returns the alert in its JSON form.
func (a Alert) Event() Event {
	return Event{
		Schema: Schema, ID: a.ID(), At: a.At.UTC(), Endpoint: a.Endpoint, EndpointKey: a.Endpoint.String(),
		Kind: a.Change.Kind, Severity: a.Change.Severity, Text: a.Change.Text, Old: a.Change.Old, New: a.Change.New,
		Key: a.Change.Key, Resent: a.Resent,
	}
}

// Sink receives alerts from a Dispatcher.
type Sink interface {
	// Name identifies the sink in logs and errors ("log", "webhook
	// https://host", "exec /path"). It never contains secrets.
	Name() string
	// Send hands one alert over. It must return promptly whatever the
	// receiver does: sinks that do I/O queue (see Queue).
	Send(a Alert)
	// Close stops the sink, delivering what is queued until ctx is done.
	Close(ctx context.Context) error
}

// MinSeverity wraps a sink so that it only gets alerts of at least the
// given severity, e.g. a pager hook for critical alerts only.
func MinSeverity(s Sink, min changes.Severity) Sink {
	return minSeverity{Sink: s, min: min.Rank()}
}

type minSeverity struct {
	Sink
	min int
}

func (m minSeverity) Send(a Alert) {
	if a.Change.Severity.Rank() >= m.min {
		m.Sink.Send(a)
	}
}
