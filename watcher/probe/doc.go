// Package probe looks at a live XMPP endpoint the way a peer does and
// grades it against the 2014 manifesto on ubiquitous encryption
// (README, "Probing an endpoint"). It is the core of
// `xmppcert probe` and of the daemon's watching.
//
// For a domain and service, Probe resolves the SRV records (XEP-0368:
// _xmpp-* and _xmpps-* merged into one order, a "." target meaning not
// offered, the domain itself on 5222/5269 only when there are no SRV
// records; Options.Connect overrides all of it), then for every target
// and address: connects, opens the stream (c2s jabber:client; s2s
// jabber:server with xmlns:db, to, and Options.From), reads the
// features as a set, runs STARTTLS (dropping anything buffered after
// <proceed/>) or direct TLS with ALPN, handshakes with SNI = the domain,
// restarts the stream over TLS with a fresh parser, reads the features
// again, and attempts SASL EXTERNAL when given a client certificate.
// The TLS handshake itself verifies nothing: the chain goes to xmppaddr
// for the verdict peers would reach, and with Options.Pins to pinning
// for DANE and POSH.
//
// Each endpoint is reported (Endpoint) with what it offered and
// negotiated, the chain, the certificate verdict with its findings,
// dialback and SASL, timings per phase, and on failure a stable Code.
// The Grade says, per manifesto requirement, pass, fail or unknown with
// the evidence, and an overall verdict. With Options.Full the
// FullScanFunc seam runs a TLS scan (internal/tlsscan) per endpoint and
// a second handshake without SNI shows which certificate SNI-less peers
// get.
//
// # JSON
//
// Result marshals to the stable --json form (snake_case, lists never
// null, durations in milliseconds):
//
//	{"domain", "service", "from", "checked_at", "duration_ms", "ok", "failure", "error",
//	 "resolution": {"connect", "resolver", "srv": pinning.SRVReport|null,
//	                "targets": [{"host","port","direct_tls","source","addresses":[],"duration_ms","error"}],
//	                "duration_ms", "error"},
//	 "endpoints": [{"host","port","address","direct_tls","source","ok","completed","failure","error","phase",
//	                "stream_error": {"condition","text"}|absent,
//	                "encrypted","encryption": "starttls"|"direct-tls"|"none",
//	                "starttls": {"offered","required"},
//	                "before_tls"|"after_tls": {"header": {"namespace","dialback_ns","from","id","version","lang"},
//	                                          "features": {"names":[{"namespace","name"}],"dropped","starttls",
//	                                                       "starttls_required","sasl_mechanisms":[],"dialback","dialback_errors"}}|null,
//	                "tls": {"version","version_id","cipher","cipher_id","group","group_id","forward_secret","sni",
//	                        "alpn_offered":[],"alpn_negotiated","ocsp_stapled",
//	                        "chain":[{"subject","issuer","serial","not_before","not_after","days_left","sha256",
//	                                  "spki_sha256","key_type","key_size","signature_algorithm","eku":[],"is_ca"}]}|null,
//	                "certificate": xmppaddr.Result|null,
//	                "dialback": {"offered","before_tls","after_tls","errors","stream_namespace"}|null (c2s),
//	                "sasl_external": {"offered","attempted","result","condition","text","error"}|null,
//	                "dane": {"owner","status","applies","tlsa_validated","matched","records":[],"notes":[]}|absent,
//	                "posh": {"code","text"}|absent,
//	                "full": {"scan": tlsscan.Report|null, "sni": {"with_sni_sha256","without_sni_sha256","same",
//	                         "without_sni_certificate","without_sni_valid","error"}|null, "notes":[]}|null,
//	                "findings": [{"code","severity","text"}],
//	                "timings_ms": {"dns","connect","stream","starttls","tls","features","auth","full","total"},
//	                "grade": Grade}],
//	 "pins": pinning.ServiceReport|null,
//	 "grade": {"verdict": "pass"|"fail"|"unknown", "summary",
//	           "requirements": [{"id","manifesto","mandatory","status","evidence":[]}]},
//	 "notes": []}
//
// # Safety
//
// Servers may be hostile. Every read is bounded in size
// (xmpptls.MaxPreTLS before TLS, xmpptls.MaxPostTLS after) and in time
// (Options.Timeout per phase, Options.Deadline per probe, whatever the
// context says); XML is parsed strictly with no DTD and no entities but
// XML's five; the number of features, mechanisms, targets and addresses
// kept is capped; endpoints of a domain, and domains in ProbeAll, are
// probed with bounded concurrency.
package probe
