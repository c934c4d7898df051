// Package pinning makes, publishes and verifies pin data (README, "Pin
// data and key rollover"): SHA-256/SHA-512 digests of certificates and SPKIs, DANE
// TLSA records (RFC 6698/7671/7673) at _PORT._tcp.TARGET, POSH documents
// and redirects (RFC 7711) with a fetcher that classifies what a domain
// serves, XEP-0487 host-meta pins, TLSA publishing by RFC 2136 dynamic
// update that never leaves the deployed key without a record, and
// Verifier, which compares what DNS (through a validating resolver) and
// HTTPS publish with what a domain's XMPP servers present. CAA records
// (RFC 8659) bound to an ACME account and validation methods (RFC 8657)
// are made, published by RFC 2136 (CAAPublisher) and judged the way a CA
// does, DNSSEC included (CAAChecker).
//
// Which key a renewal uses, and when it may move to the next one, is
// acme's business (acme/pins.go); this package only computes and checks.
package pinning
