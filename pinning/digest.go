package pinning

import (
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
)

// Digests are the SHA-256 and SHA-512 digests of a certificate's DER
// encoding and of its SubjectPublicKeyInfo: what POSH (certificate), TLSA
// (either) and SPKI pins such as XEP-0487's (public key) are made of.
type Digests struct {
	CertSHA256 []byte
	CertSHA512 []byte
	SPKISHA256 []byte
	SPKISHA512 []byte
}

// DigestsOf computes every digest of cert.
func DigestsOf(cert *x509.Certificate) Digests {
	c256, c512 := sha256.Sum256(cert.Raw), sha512.Sum512(cert.Raw)
	s256, s512 := sha256.Sum256(cert.RawSubjectPublicKeyInfo), sha512.Sum512(cert.RawSubjectPublicKeyInfo)
	return Digests{CertSHA256: c256[:], CertSHA512: c512[:], SPKISHA256: s256[:], SPKISHA512: s512[:]}
}

// SPKIPin is the base64 SHA-256 of cert's SubjectPublicKeyInfo, the
// "pin-sha256" of RFC 7469 and the value of XEP-0487's
// public-key-pins-sha-256. It stays the same across renewals that keep
// the key.
func SPKIPin(cert *x509.Certificate) string {
	d := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(d[:])
}

// KeyPin is SPKIPin for a public key without a certificate, such as a
// lineage's next key.
func KeyPin(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	d := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(d[:]), nil
}

// Hex is a digest as lower-case hex, the form TLSA records and most
// fingerprint displays use.
func Hex(d []byte) string { return hex.EncodeToString(d) }
