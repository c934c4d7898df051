// Package watcher looks at XMPP endpoints: SRV resolution, STARTTLS
// and direct-TLS probing, history in bbolt, change alerts, metrics and the
// dashboard (README, "Probing an endpoint" and "The daemon").
//
// watcher/probe probes one domain's endpoints as a peer does and grades
// them against the manifesto; Observation reduces a probe to what is
// remembered; watcher/history keeps observations in bbolt when they
// change; watcher/changes classifies what changed; watcher/alert sends
// the changes to log, webhook and exec sinks. The daemon loop, metrics
// and the dashboard will build on them.
package watcher
