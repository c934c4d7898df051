package tlsscan

import (
	"bytes"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
)

// Limits on what a server may send before its ServerHello is complete.
// Nothing beyond the ServerHello is read, so a server that sends a huge
// record or certificate costs at most these bytes.
const (
	// maxRecordLen is the largest record length accepted in a header:
	// 2^14 plus the 2048 bytes of expansion RFC 5246 allows.
	maxRecordLen = 1<<14 + 2048
	// maxServerHelloLen caps the ServerHello message. Real ones are under
	// 200 bytes, or about 1.2 KB with a post-quantum key share.
	maxServerHelloLen = 4096
	// maxSkipped is how many warning alerts and HelloRequests may come
	// before the ServerHello.
	maxSkipped = 4
)

// helloRetryRandom is the ServerHello.random that marks a
// HelloRetryRequest (RFC 8446 §4.1.3).
var helloRetryRandom = []byte{
	0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
}

// serverHello is what a scan needs from a ServerHello.
type serverHello struct {
	// version is the negotiated version: supported_versions when
	// present, else the legacy version field.
	version uint16
	// suite is the chosen cipher suite.
	suite uint16
	// retry is true for a HelloRetryRequest.
	retry bool
	// group is the key_share group (TLS 1.3), 0 if none.
	group uint16
}

// alertError is a TLS alert the server sent instead of a ServerHello: the
// server refused.
type alertError struct {
	level, description uint8
}

func (a *alertError) Error() string {
	return alertName(a.description) + " alert"
}

// protocolError is an answer that is neither a ServerHello nor an alert:
// garbage, a truncated message, a different protocol.
type protocolError struct {
	msg string
}

func (e *protocolError) Error() string { return e.msg }

func garbage(format string, args ...any) error {
	return &protocolError{fmt.Sprintf(format, args...)}
}

// alertNames are the alert descriptions of the IANA registry.
var alertNames = map[uint8]string{
	0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
	22: "record_overflow", 30: "decompression_failure", 40: "handshake_failure",
	41: "no_certificate", 42: "bad_certificate", 43: "unsupported_certificate",
	44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
	47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
	51: "decrypt_error", 60: "export_restriction", 70: "protocol_version",
	71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
	90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
	110: "unsupported_extension", 111: "certificate_unobtainable", 112: "unrecognized_name",
	113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
	115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol",
}

// alertName is the registry name of an alert description, or
// "unknown (123)" for one not registered.
func alertName(d uint8) string {
	if n, ok := alertNames[d]; ok {
		return n
	}
	return fmt.Sprintf("unknown (%d)", d)
}

// recordReader reads handshake bytes out of TLS records, one record
// header at a time, reading no more of a record than asked for.
type recordReader struct {
	r io.Reader
	// left is how many payload bytes of the current handshake record are
	// still unread.
	left int
	// skipped counts warning alerts passed over.
	skipped int
	// started is set once any byte arrived, to tell a server that closed
	// at once from one that closed mid-message.
	started bool
}

// readFull reads exactly len(p) bytes, turning an EOF after a partial
// answer into a protocolError.
func (rr *recordReader) readFull(p []byte) error {
	n, err := io.ReadFull(rr.r, p)
	if n > 0 {
		rr.started = true
	}
	if err == io.EOF && rr.started {
		err = io.ErrUnexpectedEOF
	}
	if err == io.ErrUnexpectedEOF {
		return garbage("connection closed in the middle of a record")
	}
	return err
}

// nextRecord reads record headers until one with handshake payload,
// returning an alert as *alertError (warnings other than close_notify
// are skipped) and anything else as a protocolError.
func (rr *recordReader) nextRecord() error {
	for {
		var h [5]byte
		if err := rr.readFull(h[:]); err != nil {
			return err
		}
		typ, n := h[0], int(h[3])<<8|int(h[4])
		if h[1] != 3 || typ < 20 || typ > 23 {
			return garbage("not a TLS record (starts % x)", h[:])
		}
		if n > maxRecordLen {
			return garbage("record of %d bytes exceeds the TLS maximum", n)
		}
		switch typ {
		case recordHandshake:
			if n == 0 {
				return garbage("empty handshake record")
			}
			rr.left = n
			return nil
		case recordAlert:
			if n != 2 {
				// A plaintext alert record holds one alert: 2 bytes.
				return garbage("alert record of %d bytes", n)
			}
			var a [2]byte
			if err := rr.readFull(a[:]); err != nil {
				return err
			}
			if a[0] == 1 && a[1] != 0 && rr.skipped < maxSkipped {
				// A warning such as unrecognized_name: the handshake goes on.
				rr.skipped++
				continue
			}
			return &alertError{level: a[0], description: a[1]}
		default:
			return garbage("record type %d before the ServerHello", typ)
		}
	}
}

// readHandshake reads n bytes of handshake payload, across records as
// needed.
func (rr *recordReader) readHandshake(p []byte) error {
	for len(p) > 0 {
		if rr.left == 0 {
			if err := rr.nextRecord(); err != nil {
				return err
			}
		}
		k := min(len(p), rr.left)
		if err := rr.readFull(p[:k]); err != nil {
			return err
		}
		rr.left -= k
		p = p[k:]
	}
	return nil
}

// readServerHello reads a server's answer to a TLS (or SSLv3)
// ClientHello up to the end of the ServerHello and parses it. A refusal
// is an *alertError, or io.EOF when the server closed before sending
// anything; an answer that makes no sense is a *protocolError; other
// errors come from reading r.
func readServerHello(r io.Reader) (*serverHello, error) {
	rr := &recordReader{r: r}
	for {
		var h [4]byte
		if err := rr.readHandshake(h[:]); err != nil {
			return nil, err
		}
		n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
		switch {
		case h[0] == typeHelloRequest && n == 0 && rr.skipped < maxSkipped:
			rr.skipped++
			continue
		case h[0] != typeServerHello:
			return nil, garbage("handshake message type %d instead of a ServerHello", h[0])
		case n > maxServerHelloLen:
			return nil, garbage("ServerHello of %d bytes exceeds the %d-byte limit", n, maxServerHelloLen)
		}
		body := make([]byte, n)
		if err := rr.readHandshake(body); err != nil {
			return nil, err
		}
		return parseServerHello(body)
	}
}

// parseServerHello parses a ServerHello message body (RFC 5246 §7.4.1.3,
// RFC 8446 §4.1.3).
func parseServerHello(body []byte) (*serverHello, error) {
	s := cryptobyte.String(body)
	var (
		hello      serverHello
		random     []byte
		sessionID  cryptobyte.String
		compressed uint8
	)
	if !s.ReadUint16(&hello.version) || !s.ReadBytes(&random, 32) ||
		!s.ReadUint8LengthPrefixed(&sessionID) || len(sessionID) > 32 ||
		!s.ReadUint16(&hello.suite) || !s.ReadUint8(&compressed) {
		return nil, garbage("malformed ServerHello")
	}
	if hello.version>>8 != 3 {
		return nil, garbage("ServerHello with version 0x%04x", hello.version)
	}
	hello.retry = bytes.Equal(random, helloRetryRandom)
	if s.Empty() {
		return &hello, nil // no extensions (SSLv3, or TLS without any)
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return nil, garbage("malformed ServerHello extensions")
	}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return nil, garbage("malformed ServerHello extensions")
		}
		switch typ {
		case extSupportedVersions:
			if !data.ReadUint16(&hello.version) || !data.Empty() {
				return nil, garbage("malformed supported_versions in ServerHello")
			}
		case extKeyShare:
			// A ServerHello has group and key; a HelloRetryRequest only the group.
			if !data.ReadUint16(&hello.group) {
				return nil, garbage("malformed key_share in ServerHello")
			}
		}
	}
	if hello.version>>8 != 3 {
		return nil, garbage("ServerHello selects version 0x%04x", hello.version)
	}
	return &hello, nil
}

// sslv2Hello is what a scan needs from an SSL 2.0 SERVER-HELLO.
type sslv2Hello struct {
	version     uint16
	cipherSpecs int
}

// sslv2Errors are the SSL 2.0 ERROR message codes.
var sslv2Errors = map[uint16]string{
	1: "NO-CIPHER-ERROR", 2: "NO-CERTIFICATE-ERROR", 4: "BAD-CERTIFICATE-ERROR",
	6: "UNSUPPORTED-CERTIFICATE-TYPE-ERROR",
}

// sslv2Error is an SSL 2.0 ERROR message: the server refused.
type sslv2Error struct{ code uint16 }

func (e *sslv2Error) Error() string {
	if n, ok := sslv2Errors[e.code]; ok {
		return "SSLv2 " + n
	}
	return fmt.Sprintf("SSLv2 error %d", e.code)
}

// readSSLv2ServerHello reads a server's answer to an SSL 2.0
// CLIENT-HELLO. Only the fixed part of the SERVER-HELLO is read, not the
// certificate that follows. A TLS alert (how TLS servers refuse) is an
// *alertError, an SSL 2.0 ERROR an *sslv2Error, a TLS ServerHello a
// protocolError that says so.
func readSSLv2ServerHello(r io.Reader) (*sslv2Hello, error) {
	var h [2]byte
	if n, err := io.ReadFull(r, h[:]); err != nil {
		if n > 0 {
			return nil, garbage("connection closed after %d byte", n)
		}
		return nil, err
	}
	if (h[0] == recordAlert || h[0] == recordHandshake) && h[1] == 3 {
		hello, err := readServerHello(io.MultiReader(bytes.NewReader(h[:]), r))
		if err != nil {
			return nil, err
		}
		return nil, garbage("server answered with a TLS ServerHello (version 0x%04x)", hello.version)
	}
	var n int
	if h[0]&0x80 != 0 {
		n = int(h[0]&0x7f)<<8 | int(h[1])
	} else {
		// 3-byte header: 14-bit length, then a padding-length byte.
		n = int(h[0]&0x3f)<<8 | int(h[1])
		var pad [1]byte
		if _, err := io.ReadFull(r, pad[:]); err != nil {
			return nil, garbage("connection closed in an SSLv2 record header")
		}
	}
	if n == 0 {
		return nil, garbage("empty SSLv2 record")
	}
	var typ [1]byte
	if _, err := io.ReadFull(r, typ[:]); err != nil {
		return nil, garbage("connection closed in an SSLv2 record")
	}
	switch typ[0] {
	case 0: // ERROR
		var code [2]byte
		if n != 3 {
			return nil, garbage("SSLv2 ERROR message of %d bytes", n)
		}
		if _, err := io.ReadFull(r, code[:]); err != nil {
			return nil, garbage("connection closed in an SSLv2 ERROR message")
		}
		return nil, &sslv2Error{code: uint16(code[0])<<8 | uint16(code[1])}
	case 4: // SERVER-HELLO
		if n < 11 {
			return nil, garbage("SSLv2 SERVER-HELLO of %d bytes", n)
		}
		var f [10]byte // session-id-hit, certificate type, version, 3 lengths
		if _, err := io.ReadFull(r, f[:]); err != nil {
			return nil, garbage("connection closed in an SSLv2 SERVER-HELLO")
		}
		version := uint16(f[2])<<8 | uint16(f[3])
		certLen := int(f[4])<<8 | int(f[5])
		specsLen := int(f[6])<<8 | int(f[7])
		connIDLen := int(f[8])<<8 | int(f[9])
		if 11+certLen+specsLen+connIDLen != n || specsLen%3 != 0 {
			return nil, garbage("SSLv2 SERVER-HELLO with inconsistent lengths")
		}
		return &sslv2Hello{version: version, cipherSpecs: specsLen / 3}, nil
	}
	return nil, garbage("SSLv2 message type %d instead of a SERVER-HELLO (starts % x)", typ[0], h[:])
}
