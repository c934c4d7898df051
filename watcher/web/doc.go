// Package web is the daemon's HTTP side (README, "The daemon"): the
// dashboard, the JSON API, Prometheus metrics, a health check and the
// POSH documents of our own hosts. It reads what the watcher recorded
// (watcher/history), judges what changed with watcher/changes, and lets an
// operator acknowledge changes. It renders everything on the server with
// html/template: no JavaScript, no CDN, one embedded stylesheet.
//
// # Routes
//
//	GET  /healthz                    "ok", or 503 and why (Options.Health) (public)
//	GET  /.well-known/posh/NAME.json POSH documents from Options.POSHRoot (public)
//	GET  /metrics                    Prometheus text (client_golang)
//	GET  /                           dashboard: a summary strip and every endpoint in a compact row (a cluster's: see "Cluster")
//	GET  /endpoint/ID                one endpoint: history, newest first, and what changed
//	GET  /lineages                   certificates: every lineage (Options.Lineages), deploys and served state
//	GET  /api/endpoints              JSON: every endpoint of this node (EndpointStatus)
//	GET  /api/endpoints/ID           JSON: one endpoint with its history (EndpointDetail)
//	POST /api/endpoints/ID/ack       acknowledge its changes up to an entry
//	POST /api/ack                    acknowledge every endpoint whose changes are all of at most a severity
//	POST /api/sweep                  probe every watched endpoint now (Options.Sweep); JSON result
//	GET  /probe?module=M&target=xmpp:DOMAIN  probe any domain now (Options.ProbeNow), blackbox exporter style
//	POST /api/v1/check/SERVICE       the same, answered {"success": ...} as observe.jabber.network does
//	GET  /static/style.css           the stylesheet
//
// ID is the endpoint's ID: the first 12 bytes of the SHA-256 of
// watcher.EndpointKey.String(), in hex (24 characters). A hash rather
// than the escaped key, because keys contain spaces, colons and
// peer-supplied names: a fixed alphabet cannot be mangled by path
// cleaning, proxies or shells. The API lists each endpoint's id and key.
//
// # Metrics
//
// Read from the store at scrape time, for each endpoint's latest
// observation, with the labels domain, service, host, port, address and
// transport (starttls or direct-tls; address and transport are needed
// because one host:port has several addresses, and each is its own
// endpoint):
//
//	probe_success                       1 when TLS was established and nothing failed
//	probe_duration_seconds              how long the latest probe took (probes since the daemon started)
//	probe_ssl_earliest_cert_expiry      earliest notAfter in the chain, Unix seconds
//	probe_tls_version_info{version}     1, with the negotiated version ("TLS 1.3")
//	probe_tls_cipher_info{cipher}       1, with the negotiated cipher suite
//	probe_ssl_last_chain_info{fingerprint_sha256} 1, with the leaf presented last
//	xmppcert_dialback_offered           1 when dialback is offered after TLS (xmpp-server only)
//	xmppcert_certificate_remaining_seconds until the leaf expires (negative when expired)
//	xmppcert_starttls_required          1 when plaintext streams are refused
//	xmppcert_forward_secret             1 when the negotiated suite is forward secret
//	xmppcert_changes_unacknowledged{severity} unacknowledged changes (info, warning, critical)
//	xmppcert_last_seen_timestamp_seconds when the endpoint was last probed
//	xmppcert_manifesto_grade_info{grade} 1, with the manifesto grade (pass, fail, unknown), when known
//
// On a cluster node (Options.Cluster) every series above has the label
// node too, the member that watches the endpoint, and the node's own
// endpoints are joined by every other live member's, asked at scrape
// time (see "Cluster"); xmppcert_cluster_member_up{node} says whether
// each member answered (this node's own is 1). Without a cluster the
// series are as above, without node.
//
// The daemon adds, per lineage of its state directory (label lineage):
// xmppcert_lineage_version, xmppcert_lineage_expiry_timestamp_seconds,
// xmppcert_lineage_next_renewal_timestamp_seconds{rule},
// xmppcert_lineage_last_renewal_success, xmppcert_lineage_deploy_ok{target},
// xmppcert_lineage_served_info{endpoint,status} and
// xmppcert_lineage_problems{severity} (watcher/daemon).
//
// The probe_ names are blackbox_exporter's and xmpp-blackbox-exporter's,
// so that their usual alerts (expiry, certificate change by fingerprint)
// work unchanged; what they lack is named xmppcert_ (README, "The
// daemon").
//
// # Security
//
//   - Without Options.Token the server answers loopback clients only
//     (127.0.0.0/8, ::1, by the connection's address; X-Forwarded-For is
//     never trusted); others get 403. It also refuses (403) a Host header
//     that is not localhost, a loopback IP or one of Options.AllowedHosts,
//     so that a web page cannot reach the dashboard through DNS
//     rebinding.
//   - With Options.Token every request needs it, from loopback too: a
//     reverse proxy on the same machine would otherwise make every
//     remote client look local. The token is accepted as
//     "Authorization: Bearer TOKEN", or as the password of HTTP Basic
//     authentication (any user name) so that a browser can log in; a
//     missing or wrong token gets 401 with a WWW-Authenticate challenge.
//     Comparison is constant-time (over SHA-256 digests, so the length
//     does not leak either). Serve the port behind TLS when it leaves the
//     machine: the token travels in every request.
//   - /healthz and /.well-known/posh/ need no token: they say "ok" and
//     publish documents that are public by design (RFC 7711).
//   - POST (acknowledge, sweep, check) additionally passes Go's
//     http.CrossOriginProtection (Sec-Fetch-Site, Origin against Host),
//     and then needs either a Bearer header (browsers do not add one on
//     their own), a JSON body (cross-origin JSON needs a CORS preflight
//     this server never grants), or, to acknowledge, the form's CSRF
//     token, an HMAC of the endpoint ID under a random per-server key.
//     A sweep or a check has no form: it needs the Bearer header or
//     Content-Type: application/json.
//   - /probe and the check API probe any domain the client names, so
//     they are bounded: at most 8 probes at once, at most 64 requests
//     waiting for one within their scrape's time (503 beyond), a burst
//     of 100 per client address and then one every 200 ms (429 with
//     Retry-After), a probe and its wait no longer than the scrape
//     grants (at most 60 s), a check body of at most 4 KiB. Nothing they find is
//     recorded or alerted.
//   - The token and the CSRF key never appear in pages, the API, metrics
//     or logs; refusals are logged with the client address, method, path
//     and reason, never with headers.
//   - Every response has Content-Security-Policy default-src 'self' (plus
//     frame-ancestors, form-action and base-uri limits),
//     X-Content-Type-Options nosniff, Referrer-Policy no-referrer and
//     X-Frame-Options DENY; dynamic responses have Cache-Control
//     no-store.
//   - Everything a peer sends (subjects, issuers, identities, failure
//     texts) is data: html/template escapes it, encoding/json escapes <,
//     > and &.
//   - POSH files are read through os.Root (no "..", no symlinks out of
//     the host's POSHRoot), only names of the form SERVICE.json, never a
//     listing.
//
// # Acknowledgements
//
// An acknowledgement names an endpoint and a history entry (Seq): every
// change up to that entry is acknowledged, later ones are not, so a
// change that arrives while the operator reads the page is not swept
// away by the button. Options.Acks keeps them: the daemon gives its
// *history.Store, which writes each acknowledgement to the history file
// ("acks" bucket, one short transaction, never moved back), so they
// survive a restart of the daemon.
// Without Options.Acks a MemoryAcks keeps them in memory, lost at exit
// (changes are then shown again, which errs on the side of showing).
//
// # What is unacknowledged
//
// Changes are computed between consecutive history entries with
// changes.Classify and the Context from Options.Context (without Now, so
// that only transitions are reported); an entry whose predecessor is
// unreachable is compared with the last reachable one before it. The
// first observation of an endpoint is not a change. Conditions (expiry
// within 30/7/1 days) come from classifying the latest entry against
// itself with Now set; they are shown, but they go away by renewing, not
// by acknowledging.
//
// # Cluster
//
// On a cluster node the dashboard and /metrics show the whole cluster
// (README, "Cluster mode"): the node asks each other live member's GET
// /api/endpoints, which answers that member's own endpoints only, at
// the URL the member advertises, with this server's own token (every
// node of a cluster has the same), all members at once, each bounded by
// Cluster.Timeout and by the client's 64 MiB. A member's answer is
// escaped (internal/safetext) and its endpoints' keys and IDs are made
// again from their fields; an endpoint that several members recorded
// (the watching moved) is shown once, as observed last. A member that
// does not answer (no URL, refused, timed out, refused the token, a bad
// or oversized answer) is named on the dashboard with the reason, and
// the rest is shown. A row links to the endpoint's page on its member:
// endpoint pages, acknowledgements and the API stay each node's own.
//
// # Probing now
//
// POST /api/sweep runs one sweep of every watched endpoint at once
// (Options.Sweep; the daemon's SweepOnce), waits for it, and answers what
// it did: {"targets", "observations", "changed", "alerts", "failed",
// "duration_ns"}. The observations are recorded and alerted exactly as a
// scheduled sweep's; the schedule is not moved. It is for an operator who
// just changed a server ("did my new certificate arrive?") and for
// scripts and tests that must not wait for watch.interval:
//
//	curl -X POST -H 'Content-Type: application/json' http://127.0.0.1:8787/api/sweep
//
// Sweeps never overlap: one requested during another waits for it, then
// runs. A failed sweep (the history could not be written) is answered
// 500 with a pointer to the daemon's log.
//
// GET /probe answers the Prometheus blackbox exporter's probe API, so
// that Prometheus' multi-target scrapes and Prosody's `prosodyctl check
// connectivity` (its connectivity_probe setting) can ask the daemon:
// modules c2s_normal_auth and s2s_normal (the XMPP blackbox exporter's
// names), xmpp-client, xmpp-server, xmpps-client and xmpps-server, the
// target as xmpp:DOMAIN. It answers probe_success (every endpoint
// reached, TLS established, the certificate valid for the domain),
// probe_duration_seconds, and the TLS and certificate series above,
// without labels, for the endpoint a peer would use.
package web
