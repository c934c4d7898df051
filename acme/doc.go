// Package acme gets certificates for XMPP hosts and keeps them in a Store.
//
// An Issuer signs a Request: a host, its components and their roles
// (xmppaddr.Role), and the key options. The embedded private CA
// (package acme/localca) is one Issuer; public ACME CAs are another.
// Obtain runs one issuance end to end under a per-lineage lock: key
// (new or reused), signature, and the lineage written atomically in
// certbot's layout (DiskStore, the Store of one machine). Deploy targets (Prosody, ejabberd, a hook
// command) then install the result. Decide says when a lineage is due for
// renewal: the CA's renewal window (ARI) when it offers one, else when a
// third of the lifetime is left (docs/architecture.md, "The data path of a
// certificate").
package acme
