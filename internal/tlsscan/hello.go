package tlsscan

import (
	"crypto/rand"
	"net"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// Protocol version numbers as they appear on the wire.
const (
	versionSSL2  = 0x0002
	versionSSL3  = 0x0300
	versionTLS10 = 0x0301
	versionTLS11 = 0x0302
	versionTLS12 = 0x0303
	versionTLS13 = 0x0304
)

// TLS record content types and handshake message types (RFC 8446 §5.1,
// §4).
const (
	recordAlert     = 21
	recordHandshake = 22

	typeHelloRequest = 0
	typeClientHello  = 1
	typeServerHello  = 2
)

// Extension numbers (IANA "TLS ExtensionType Values").
const (
	extServerName          = 0
	extSupportedGroups     = 10
	extECPointFormats      = 11
	extSignatureAlgorithms = 13
	extPadding             = 21
	extExtendedMasterSec   = 23
	extSupportedVersions   = 43
	extPSKModes            = 45
	extKeyShare            = 51
	extRenegotiationInfo   = 0xff01
)

// groupX25519 is the named group of the key share every TLS 1.3 probe
// carries.
const groupX25519 = 29

// legacyGroups are the named groups offered below TLS 1.3: every elliptic
// curve of RFC 4492/7027/8422 (1-30), x25519 and the NIST curves first. No
// FFDHE groups: RFC 7919 forbids a server to pick a DHE suite when the
// client lists FFDHE groups it does not share, which would hide DHE suites
// configured with custom parameters.
var legacyGroups = []uint16{29, 23, 24, 25, 30, 26, 27, 28, 22, 21, 20, 19, 18, 17, 16, 15,
	14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}

// tls13Groups are the named groups offered in TLS 1.3 probes, FFDHE
// included (a server that wants one answers with a HelloRetryRequest,
// which still shows TLS 1.3 is offered).
var tls13Groups = []uint16{29, 23, 24, 25, 30, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104}

// signatureSchemes are the signature algorithms offered: every scheme of
// RFC 8446 and the TLS 1.2 hash/signature pairs down to MD5 and DSA, so
// that no certificate type keeps a suite from being chosen.
var signatureSchemes = []uint16{
	0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080a, 0x080b,
	0x0401, 0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0402, 0x0502, 0x0602,
	0x0203, 0x0201, 0x0202, 0x0101,
}

// helloSpec says what one ClientHello offers.
type helloSpec struct {
	// version is the ClientHello's (legacy_)version; versionTLS13 means
	// legacy_version TLS 1.2 plus supported_versions and key_share.
	version uint16
	// suites are the cipher suites, in order.
	suites []uint16
	// sni is the server_name to send, if any.
	sni string
	// keyShare is the X25519 public key for TLS 1.3.
	keyShare []byte
}

// sniName is the host name to put in server_name: IP addresses and empty
// names are never sent (RFC 6066 §3), a trailing dot is dropped.
func sniName(s string) string {
	s = strings.TrimSuffix(s, ".")
	if s == "" || net.ParseIP(s) != nil {
		return ""
	}
	return s
}

// buildClientHello is the ClientHello record for spec: record version TLS
// 1.0 (SSL 3.0 for an SSLv3 hello), as real clients send it. SSLv3 hellos
// carry no extensions; others are padded (RFC 7685) out of the 256-511
// byte range that some middleboxes choke on.
func buildClientHello(spec helloSpec) []byte {
	legacy := spec.version
	if legacy == versionTLS13 {
		legacy = versionTLS12
	}
	random := make([]byte, 32)
	rand.Read(random)
	var sessionID []byte
	if spec.version == versionTLS13 {
		// A session ID makes middleboxes see a resumption (RFC 8446 §D.4).
		sessionID = make([]byte, 32)
		rand.Read(sessionID)
	}

	body := func(padding int) []byte {
		var b cryptobyte.Builder
		b.AddUint16(legacy)
		b.AddBytes(random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sessionID) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range spec.suites {
				b.AddUint16(s)
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) }) // null compression
		if spec.version != versionSSL3 {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				addExtensions(b, spec)
				if padding >= 0 {
					b.AddUint16(extPadding)
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, padding)) })
				}
			})
		}
		return b.BytesOrPanic()
	}
	msg := body(-1)
	if n := 4 + len(msg); spec.version != versionSSL3 && n > 0xff && n < 0x200 {
		msg = body(max(0x200-n-4, 1))
	}

	var b cryptobyte.Builder
	b.AddUint8(recordHandshake)
	if spec.version == versionSSL3 {
		b.AddUint16(versionSSL3)
	} else {
		b.AddUint16(versionTLS10)
	}
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(typeClientHello)
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(msg) })
	})
	return b.BytesOrPanic()
}

// addExtensions adds the extensions of a TLS ClientHello for spec.
func addExtensions(b *cryptobyte.Builder, spec helloSpec) {
	addExt := func(typ uint16, f cryptobyte.BuilderContinuation) {
		b.AddUint16(typ)
		b.AddUint16LengthPrefixed(f)
	}
	if name := sniName(spec.sni); name != "" {
		addExt(extServerName, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint8(0) // host_name
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
			})
		})
	}
	groups := legacyGroups
	if spec.version == versionTLS13 {
		groups = tls13Groups
	}
	addExt(extSupportedGroups, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, g := range groups {
				b.AddUint16(g)
			}
		})
	})
	addExt(extECPointFormats, func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte{0, 1, 2}) })
	})
	addExt(extSignatureAlgorithms, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range signatureSchemes {
				b.AddUint16(s)
			}
		})
	})
	if spec.version == versionTLS13 {
		addExt(extSupportedVersions, func(b *cryptobyte.Builder) {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint16(versionTLS13) })
		})
		addExt(extPSKModes, func(b *cryptobyte.Builder) {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(1) }) // psk_dhe_ke
		})
		addExt(extKeyShare, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint16(groupX25519)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(spec.keyShare) })
			})
		})
		return
	}
	addExt(extExtendedMasterSec, func(b *cryptobyte.Builder) {})
	addExt(extRenegotiationInfo, func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {})
	})
}

// sslv2CipherSpecs are the seven SSL 2.0 cipher kinds of the SSL 2.0
// draft plus the SHA-1 variants OpenSSL knew, 3 bytes each.
var sslv2CipherSpecs = [][3]byte{
	{0x01, 0x00, 0x80}, // SSL_CK_RC4_128_WITH_MD5
	{0x02, 0x00, 0x80}, // SSL_CK_RC4_128_EXPORT40_WITH_MD5
	{0x03, 0x00, 0x80}, // SSL_CK_RC2_128_CBC_WITH_MD5
	{0x04, 0x00, 0x80}, // SSL_CK_RC2_128_CBC_EXPORT40_WITH_MD5
	{0x05, 0x00, 0x80}, // SSL_CK_IDEA_128_CBC_WITH_MD5
	{0x06, 0x00, 0x40}, // SSL_CK_DES_64_CBC_WITH_MD5
	{0x06, 0x01, 0x40}, // SSL_CK_DES_64_CBC_WITH_SHA
	{0x07, 0x00, 0xc0}, // SSL_CK_DES_192_EDE3_CBC_WITH_MD5
	{0x07, 0x01, 0xc0}, // SSL_CK_DES_192_EDE3_CBC_WITH_SHA
	{0x08, 0x00, 0x80}, // SSL_CK_RC4_64_WITH_MD5
}

// buildSSLv2ClientHello is an SSL 2.0 CLIENT-HELLO: a 2-byte record header
// with the high bit set, MSG-CLIENT-HELLO (1), version 0x0002, the cipher
// specs, no session ID and a 16-byte challenge.
func buildSSLv2ClientHello() []byte {
	challenge := make([]byte, 16)
	rand.Read(challenge)
	var m cryptobyte.Builder
	m.AddUint8(1)
	m.AddUint16(versionSSL2)
	m.AddUint16(uint16(3 * len(sslv2CipherSpecs)))
	m.AddUint16(0)
	m.AddUint16(uint16(len(challenge)))
	for _, c := range sslv2CipherSpecs {
		m.AddBytes(c[:])
	}
	m.AddBytes(challenge)
	msg := m.BytesOrPanic()
	return append([]byte{0x80 | byte(len(msg)>>8), byte(len(msg))}, msg...)
}
