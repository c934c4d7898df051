// Package watcher will look at XMPP endpoints: SRV resolution, STARTTLS
// and direct-TLS probing, history in bbolt, change alerts, metrics and the
// dashboard (DESIGN.md, "Probing and watching"). It is empty until that
// work lands.
package watcher
