// Package watcher looks at XMPP endpoints: SRV resolution, STARTTLS
// and direct-TLS probing, history in bbolt, change alerts, metrics and the
// dashboard (DESIGN.md, "Probing and watching").
//
// Its first part is watcher/probe, which probes one domain's endpoints
// as a peer does and grades them against the manifesto; the daemon loop,
// history and alerts will build on it.
package watcher
