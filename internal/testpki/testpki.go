// Package testpki builds certificate chains for tests: a root, optional
// intermediates and leaves whose subjectAltName extension is written by
// hand, byte for byte, so that tests can present exactly the malformed or
// hostile identities they mean to (wrong string types, unknown otherNames,
// trailing data) that crypto/x509 would never produce.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Epoch is the NotBefore of every certificate testpki makes; leaves are
// valid for 90 days from it, CAs for ten years.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// At is a time at which every certificate testpki makes is valid.
var At = Epoch.Add(30 * 24 * time.Hour)

// Object identifiers tests need.
var (
	OIDSRVName  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
	OIDXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	OIDSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// CA is a certificate authority with its key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

var serial atomic.Int64

// nextSerial numbers certificates; scripts make fixtures in parallel.
func nextSerial() *big.Int { return big.NewInt(serial.Add(1)) }

func newKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// NewRoot makes a self-signed root CA. edit, if not nil, may change the
// template before signing (to add name constraints, say).
func NewRoot(name string, edit func(*x509.Certificate)) *CA {
	key := newKey()
	tmpl := caTemplate(name)
	if edit != nil {
		edit(tmpl)
	}
	return &CA{Cert: sign(tmpl, tmpl, key.Public(), key), Key: key}
}

// Intermediate makes a CA certificate signed by ca.
func (ca *CA) Intermediate(name string, edit func(*x509.Certificate)) *CA {
	key := newKey()
	tmpl := caTemplate(name)
	if edit != nil {
		edit(tmpl)
	}
	return &CA{Cert: sign(tmpl, ca.Cert, key.Public(), ca.Key), Key: key}
}

func caTemplate(name string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"xmppcert tests"}},
		NotBefore:             Epoch,
		NotAfter:              Epoch.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// LeafTemplate is the template Leaf starts from: serverAuth and
// clientAuth, digitalSignature, 90 days from Epoch, no subject.
func LeafTemplate() *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: nextSerial(),
		NotBefore:    Epoch,
		NotAfter:     Epoch.Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}

// Leaf signs an end-entity certificate with ca. edit changes LeafTemplate
// before signing; add SAN extensions to ExtraExtensions.
func (ca *CA) Leaf(edit func(*x509.Certificate)) (*x509.Certificate, crypto.Signer) {
	key := newKey()
	tmpl := LeafTemplate()
	if edit != nil {
		edit(tmpl)
	}
	return sign(tmpl, ca.Cert, key.Public(), ca.Key), key
}

// Sign signs tmpl for the public key pub with ca: a certificate of a
// key the test chose (two certificates of one key, say).
func (ca *CA) Sign(tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	return sign(tmpl, ca.Cert, pub, ca.Key)
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return c
}

// CrossSign certifies ca's key and subject a second time, signed by
// issuer: the same CA reachable by another path. edit changes the
// template before signing.
func CrossSign(issuer, ca *CA, edit func(*x509.Certificate)) *x509.Certificate {
	tmpl := caTemplate(ca.Cert.Subject.CommonName)
	tmpl.Subject = ca.Cert.Subject
	if edit != nil {
		edit(tmpl)
	}
	return sign(tmpl, issuer.Cert, ca.Key.Public(), issuer.Key)
}

// Pool returns a pool holding the CA's certificate, for use as roots.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// PEM encodes certificates as concatenated PEM blocks.
func PEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// SAN builds a subjectAltName extension from GeneralName encodings made
// by DNS, IP, URI, OtherName or Raw.
func SAN(critical bool, names ...[]byte) pkix.Extension {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, n := range names {
			b.AddBytes(n)
		}
	})
	return pkix.Extension{Id: OIDSAN, Critical: critical, Value: b.BytesOrPanic()}
}

// DNS encodes a dNSName.
func DNS(name string) []byte { return implicit(2, []byte(name)) }

// IP encodes an iPAddress from its raw bytes.
func IP(addr []byte) []byte { return implicit(7, addr) }

// URI encodes a uniformResourceIdentifier.
func URI(uri string) []byte { return implicit(6, []byte(uri)) }

// SRV encodes an SRVName as RFC 4985 wants it: an IA5String.
func SRV(value string) []byte { return OtherName(OIDSRVName, cbasn1.IA5String, value) }

// Xmpp encodes an XmppAddr as RFC 6120 wants it: a UTF8String.
func Xmpp(jid string) []byte { return OtherName(OIDXmppAddr, cbasn1.UTF8String, jid) }

// OtherName encodes an otherName whose value has the given string tag.
func OtherName(oid asn1.ObjectIdentifier, tag cbasn1.Tag, value string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(value)) })
		})
	})
	return b.BytesOrPanic()
}

func implicit(tag uint8, v []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(v) })
	return b.BytesOrPanic()
}

// Precertificate returns the RFC 6962 precertificate (DER) of leaf: its
// TBSCertificate with the critical poison extension added at the end,
// signed by issuerKey, the key of leaf's issuer (ECDSA with SHA-256, as
// the embedded CA's intermediate signs). A CT log strips the poison
// again, leaving exactly leaf's TBSCertificate.
func Precertificate(leaf *x509.Certificate, issuerKey crypto.Signer) []byte {
	in := cryptobyte.String(leaf.RawTBSCertificate)
	var body cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) {
		panic("TBSCertificate is not a SEQUENCE")
	}
	poison, err := asn1.Marshal(pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}, Critical: true, Value: asn1.NullBytes})
	if err != nil {
		panic(err)
	}
	var tb cryptobyte.Builder
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for !body.Empty() {
			var elem cryptobyte.String
			var tag cbasn1.Tag
			body.ReadAnyASN1Element(&elem, &tag)
			if tag != cbasn1.Tag(3).Constructed().ContextSpecific() {
				b.AddBytes(elem)
				continue
			}
			var wrapped, exts cryptobyte.String
			elem.ReadASN1(&wrapped, tag)
			wrapped.ReadASN1(&exts, cbasn1.SEQUENCE)
			b.AddASN1(tag, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(exts)
					b.AddBytes(poison)
				})
			})
		}
	})
	tbs := tb.BytesOrPanic()
	digest := sha256.Sum256(tbs)
	sig, err := issuerKey.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		panic(err)
	}
	ecdsaSHA256, _ := asn1.Marshal(pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}})
	var cb cryptobyte.Builder
	cb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(ecdsaSHA256)
		b.AddASN1BitString(sig)
	})
	return cb.BytesOrPanic()
}
