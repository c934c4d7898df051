// Package pinning will make and verify pin data: SPKI and certificate
// digests, DANE TLSA records, POSH documents, XEP-0487 pins and next-key
// rollover (DESIGN.md, "Pinning"). It is empty until that work lands.
package pinning
