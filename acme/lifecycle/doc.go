// Package lifecycle is the certificate lifecycle engine: one place that
// issues, renews, rolls keys over, stages certificates for POSH,
// publishes TLSA records and deploys, for the CLI's issue, renew and pin
// commands and for the daemon alike (docs/architecture.md, "The
// certificate lifecycle").
//
// An Engine works over one store of lineages (the acme.Store interface;
// acme.DiskStore, certbot's layout on disk, on one machine) with an
// injected clock and a way to open the Issuer of a request. It returns typed results and errors: facts such as which
// lineage, which version, which target failed and why. It never names a
// command-line flag or a configuration key; the fronts (cmd/xmppcert,
// watcher/daemon) phrase their own hints. What it does is also reported
// as Events, which the daemon turns into metrics and alerts.
package lifecycle
