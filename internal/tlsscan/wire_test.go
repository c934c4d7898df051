package tlsscan

import (
	"io"
	"net"

	"golang.org/x/crypto/cryptobyte"
)

// Test-side codecs: what a server would parse and send.

// clientHello is a parsed ClientHello as a test server sees it.
type clientHello struct {
	recordVersion uint16
	version       uint16
	sessionID     []byte
	suites        []uint16
	// exts is nil when the hello has no extensions block at all.
	exts    map[uint16][]byte
	extList []uint16
	length  int // handshake message length, header included
}

// readClientHello reads one ClientHello record from c (in one record, as
// the scanner sends it).
func readClientHello(c net.Conn) (*clientHello, bool) {
	var h [5]byte
	if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != recordHandshake {
		return nil, false
	}
	rec := make([]byte, int(h[3])<<8|int(h[4]))
	if _, err := io.ReadFull(c, rec); err != nil {
		return nil, false
	}
	ch, ok := parseClientHello(rec)
	if ok {
		ch.recordVersion = uint16(h[1])<<8 | uint16(h[2])
	}
	return ch, ok
}

// parseClientHello parses a handshake record payload holding a
// ClientHello.
func parseClientHello(rec []byte) (*clientHello, bool) {
	s := cryptobyte.String(rec)
	var (
		typ             uint8
		body            cryptobyte.String
		ch              clientHello
		random          []byte
		sid, cs, comprs cryptobyte.String
	)
	if !s.ReadUint8(&typ) || typ != typeClientHello || !s.ReadUint24LengthPrefixed(&body) || !s.Empty() {
		return nil, false
	}
	ch.length = len(rec)
	if !body.ReadUint16(&ch.version) || !body.ReadBytes(&random, 32) || !body.ReadUint8LengthPrefixed(&sid) ||
		!body.ReadUint16LengthPrefixed(&cs) || !body.ReadUint8LengthPrefixed(&comprs) {
		return nil, false
	}
	ch.sessionID = sid
	for !cs.Empty() {
		var id uint16
		if !cs.ReadUint16(&id) {
			return nil, false
		}
		ch.suites = append(ch.suites, id)
	}
	if body.Empty() {
		return &ch, true
	}
	var exts cryptobyte.String
	if !body.ReadUint16LengthPrefixed(&exts) || !body.Empty() {
		return nil, false
	}
	ch.exts = map[uint16][]byte{}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return nil, false
		}
		ch.exts[typ] = data
		ch.extList = append(ch.extList, typ)
	}
	return &ch, true
}

// serverHelloMsg is a ServerHello handshake message (header included).
// A non-zero supportedVersion and group add those extensions; retry makes
// it a HelloRetryRequest.
func serverHelloMsg(legacy, suite, supportedVersion, group uint16, retry bool) []byte {
	var b cryptobyte.Builder
	b.AddUint8(typeServerHello)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(legacy)
		if retry {
			b.AddBytes(helloRetryRandom)
		} else {
			b.AddBytes(make([]byte, 32))
		}
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {})
		b.AddUint16(suite)
		b.AddUint8(0)
		if supportedVersion == 0 && group == 0 {
			return
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			if supportedVersion != 0 {
				b.AddUint16(extSupportedVersions)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint16(supportedVersion) })
			}
			if group != 0 {
				b.AddUint16(extKeyShare)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16(group)
					if !retry {
						b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 32)) })
					}
				})
			}
		})
	})
	return b.BytesOrPanic()
}

// record wraps payload in TLS records of at most split bytes each (0:
// one record).
func record(typ uint8, version uint16, payload []byte, split int) []byte {
	if split <= 0 {
		split = len(payload)
	}
	var out []byte
	for len(payload) > 0 || out == nil {
		n := min(split, len(payload))
		out = append(out, typ, byte(version>>8), byte(version), byte(n>>8), byte(n))
		out = append(out, payload[:n]...)
		payload = payload[n:]
		if n == 0 {
			break
		}
	}
	return out
}

// alertRecord is a TLS alert record.
func alertRecord(level, desc uint8) []byte {
	return record(recordAlert, versionTLS12, []byte{level, desc}, 0)
}

// sslv2ServerHello is an SSL 2.0 SERVER-HELLO with a fake certificate
// and n cipher specs.
func sslv2ServerHello(n int) []byte {
	cert := make([]byte, 300)
	var m cryptobyte.Builder
	m.AddUint8(4)
	m.AddUint8(0)
	m.AddUint8(1) // X.509
	m.AddUint16(versionSSL2)
	m.AddUint16(uint16(len(cert)))
	m.AddUint16(uint16(3 * n))
	m.AddUint16(16)
	m.AddBytes(cert)
	for i := range n {
		m.AddBytes(sslv2CipherSpecs[i][:])
	}
	m.AddBytes(make([]byte, 16))
	msg := m.BytesOrPanic()
	return append([]byte{0x80 | byte(len(msg)>>8), byte(len(msg))}, msg...)
}
