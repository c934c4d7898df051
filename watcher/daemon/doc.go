// Package daemon is the long-running half of xmppcert: it wires
// the watcher packages together. On a schedule it probes every endpoint
// the configuration watches (watcher/probe), records what each showed in
// the history (watcher/history, one commit per sweep), classifies what
// changed against what the operator expects of their own lineages
// (watcher/changes with the acme lineages' current and next keys), and
// hands the changes to the alert sinks (watcher/alert). It serves the
// dashboard, JSON API, /metrics and POSH documents (watcher/web), and it
// renews lineages through a function the command line supplies
// (Deps.Renew), so that the daemon runs the same code, under the same
// per-lineage locks, as `xmppcert renew`.
//
// # State
//
// The history lives in STATE_DIR/history.db (HistoryFile), where STATE_DIR
// is the configuration's state_dir (the command line fills it from
// --state-dir when the file leaves it out). The daemon is its only writer:
// it opens it read-write in New and holds it until Run returns (or Close).
// `xmppcert status` asks the daemon's API and opens the file read-only only
// when no daemon answers (see watcher/history).
//
// # Schedule
//
// A sweep runs at start, then every watch.interval plus a random delay of
// up to the jitter. Renewal runs at start and then every RenewInterval
// (default one hour) in its own goroutine; it never overlaps itself and a
// slow renewal never delays probing. A sweep's failures (a history write
// that fails, an unreachable endpoint) are logged and never stop the loop.
// POST /api/sweep (watcher/web) runs a sweep at once, between the
// scheduled ones, without moving them; sweeps never overlap.
//
// # Reload and shutdown
//
// SIGHUP (or Reload) reads the configuration file again with config.Load.
// A configuration that is refused is logged, one record per problem with
// its file:line, and the old one stays in force. An accepted one replaces
// the targets, the schedule, the history retention, the hosts whose
// lineages give the expected keys and, when [alert] changed, the sinks
// (the old dispatcher drains in the background once the sweep in flight
// is done; the new one starts with empty de-duplication, so a condition
// that persists is sent once more). [http] and state_dir
// cannot change without a restart: a change is logged and ignored.
//
// When Run's context is cancelled (SIGTERM, SIGINT), the sweep or renewal
// in flight may go on for ShutdownGrace; then its context is cancelled too.
// Queued alerts are flushed for at most ShutdownGrace, the HTTP server is
// shut down, the history closed, and Run returns nil.
package daemon
