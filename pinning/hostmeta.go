package pinning

import (
	"crypto"
	"errors"
	"time"
)

// HostMeta is the part of a XEP-0487 host-meta.json document
// (https://DOMAIN/.well-known/host-meta.json) that xmppcert produces: the
// "xmpp" object with the public-key pins that replace POSH there. A site
// merges it into its own host-meta.json, beside its "links".
type HostMeta struct {
	XMPP HostMetaXMPP `json:"xmpp"`
}

// HostMetaXMPP is XEP-0487's "xmpp" object.
type HostMetaXMPP struct {
	// TTL is how many seconds a client may cache the document.
	TTL int64 `json:"ttl"`
	// PublicKeyPins are base64 SHA-256 digests of the SubjectPublicKeyInfo
	// of every key a server of the domain may present (current and next).
	PublicKeyPins []string `json:"public-key-pins-sha-256"`
}

// NewHostMeta lists the SPKI pins of keys (the current and next key;
// duplicates once, in order) with the given cache lifetime.
func NewHostMeta(keys []crypto.PublicKey, ttl time.Duration) (HostMeta, error) {
	if len(keys) == 0 {
		return HostMeta{}, errors.New("host-meta needs at least one key to pin")
	}
	if ttl < time.Second {
		return HostMeta{}, errors.New("host-meta ttl must be at least one second")
	}
	h := HostMeta{XMPP: HostMetaXMPP{TTL: int64(ttl / time.Second), PublicKeyPins: []string{}}}
	seen := map[string]bool{}
	for _, k := range keys {
		p, err := KeyPin(k)
		if err != nil {
			return HostMeta{}, err
		}
		if !seen[p] {
			seen[p] = true
			h.XMPP.PublicKeyPins = append(h.XMPP.PublicKeyPins, p)
		}
	}
	return h, nil
}
