// Package challenge solves ACME challenges for acmez
// (github.com/mholt/acmez/v3): every type here is an acmez.Solver, and
// the dns-01 solvers are acmez.Waiters too.
//
// A public CA only signs names whose control the client proves, and an
// XMPP server is often the only thing running on its host, so each of
// the ways an operator can prove control gets a solver:
//
//   - HTTP01 answers http-01 from its own listener (--http-listen), for
//     hosts without a web server on port 80; its handler can also be
//     mounted in a daemon's own HTTP server.
//   - Webroot writes http-01 files into an existing web server's document
//     root (--webroot), for hosts where port 80 is taken.
//   - TLSALPN01 answers tls-alpn-01 (RFC 8737) from its own TLS listener
//     (--tls-alpn-listen), where the operator owns port 443.
//   - RFC2136 publishes the dns-01 TXT record by DNS dynamic update
//     (RFC 2136) signed with TSIG (RFC 8945), the standard way to let a
//     program change a zone on BIND, Knot, PowerDNS and friends; it works
//     for wildcards and for hosts no CA can reach.
//   - DNSHook hands the dns-01 record to an operator's command, for DNS
//     providers that only have an HTTP API.
//
// The dns-01 solvers wait in Wait until the record is visible on the
// zone's authoritative servers (Propagation), so the CA is not asked to
// validate before the record exists: a CA that looks too early marks
// the authorization invalid and the order has to start over.
//
// Every network or process call takes the caller's context and has its
// own timeout. CleanUp always runs to completion within its timeout even
// when the caller's context is already cancelled, so that an interrupted
// run does not leave challenge records or listeners behind.
package challenge
