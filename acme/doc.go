// Package acme will get certificates: the Issuer interface, the embedded
// private CA built on smallstep/certificates, public ACME CAs through
// certmagic/acmez, renewal policy, lineages on disk, deploy targets and
// hooks (DESIGN.md, "Issuance"). It is empty until that work lands.
package acme
