package tlsscan

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// parseCases are server answers to a ClientHello and what readServerHello
// makes of them; they also seed FuzzReadServerHello.
var parseCases = []struct {
	name  string
	in    []byte
	hello *serverHello
	err   string // substring of the error; "EOF" for a clean close
}{{
	name:  "TLS 1.2 ServerHello followed by more handshake data",
	in:    record(recordHandshake, versionTLS12, append(serverHelloMsg(versionTLS12, 0xC02F, 0, 0, false), 11, 0, 0x10, 0), 0),
	hello: &serverHello{version: versionTLS12, suite: 0xC02F},
}, {
	name:  "ServerHello in 1-byte records",
	in:    record(recordHandshake, versionTLS12, serverHelloMsg(versionTLS10, 0x002F, 0, 0, false), 1),
	hello: &serverHello{version: versionTLS10, suite: 0x002F},
}, {
	name:  "SSLv3 ServerHello without extensions",
	in:    record(recordHandshake, versionSSL3, serverHelloMsg(versionSSL3, 0x0005, 0, 0, false), 0),
	hello: &serverHello{version: versionSSL3, suite: 0x0005},
}, {
	name:  "TLS 1.3 ServerHello",
	in:    record(recordHandshake, versionTLS12, serverHelloMsg(versionTLS12, 0x1301, versionTLS13, groupX25519, false), 0),
	hello: &serverHello{version: versionTLS13, suite: 0x1301, group: groupX25519},
}, {
	name:  "HelloRetryRequest",
	in:    record(recordHandshake, versionTLS12, serverHelloMsg(versionTLS12, 0x1302, versionTLS13, 23, true), 0),
	hello: &serverHello{version: versionTLS13, suite: 0x1302, group: 23, retry: true},
}, {
	name: "warning alert, HelloRequest, then ServerHello",
	in: slices.Concat(alertRecord(1, 112), record(recordHandshake, versionTLS12,
		append([]byte{typeHelloRequest, 0, 0, 0}, serverHelloMsg(versionTLS12, 0x009C, 0, 0, false)...), 0)),
	hello: &serverHello{version: versionTLS12, suite: 0x009C},
}, {
	name: "fatal protocol_version alert",
	in:   alertRecord(2, 70),
	err:  "protocol_version alert",
}, {
	name: "close_notify warning",
	in:   alertRecord(1, 0),
	err:  "close_notify alert",
}, {
	name: "unknown alert",
	in:   alertRecord(2, 255),
	err:  "unknown (255) alert",
}, {
	name: "too many warnings",
	in:   slices.Concat(alertRecord(1, 112), alertRecord(1, 112), alertRecord(1, 112), alertRecord(1, 112), alertRecord(1, 112)),
	err:  "unrecognized_name alert",
}, {
	name: "alert in the middle of a ServerHello",
	in:   slices.Concat(record(recordHandshake, versionTLS12, serverHelloMsg(versionTLS12, 0xC02F, 0, 0, false)[:10], 0), alertRecord(2, 40)),
	err:  "handshake_failure alert",
}, {
	name: "closed at once",
	in:   nil,
	err:  "EOF",
}, {
	name: "closed in a record header",
	in:   []byte{22, 3, 3},
	err:  "connection closed in the middle of a record",
}, {
	name: "closed in a ServerHello",
	in:   record(recordHandshake, versionTLS12, serverHelloMsg(versionTLS12, 0xC02F, 0, 0, false), 0)[:30],
	err:  "connection closed in the middle of a record",
}, {
	name: "HTTP",
	in:   []byte("HTTP/1.1 400 Bad Request\r\n\r\n"),
	err:  "not a TLS record",
}, {
	name: "XMPP stream error",
	in:   []byte("<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"),
	err:  "not a TLS record",
}, {
	name: "record longer than TLS allows",
	in:   []byte{22, 3, 3, 0xff, 0xff, 2, 0, 0, 70},
	err:  "exceeds the TLS maximum",
}, {
	name: "ServerHello longer than the limit",
	in:   []byte{22, 3, 3, 0x40, 0x00, 2, 0xff, 0xff, 0xff},
	err:  "exceeds the 4096-byte limit",
}, {
	name: "Certificate instead of ServerHello",
	in:   record(recordHandshake, versionTLS12, []byte{11, 0, 0, 3, 0, 0, 0}, 0),
	err:  "handshake message type 11",
}, {
	name: "application data",
	in:   record(23, versionTLS12, []byte("hello"), 0),
	err:  "record type 23",
}, {
	name: "empty handshake record",
	in:   record(recordHandshake, versionTLS12, nil, 0),
	err:  "empty handshake record",
}, {
	name: "long alert record",
	in:   record(recordAlert, versionTLS12, []byte{2, 40, 2, 40}, 0),
	err:  "alert record of 4 bytes",
}, {
	name: "ServerHello too short",
	in:   record(recordHandshake, versionTLS12, []byte{2, 0, 0, 4, 3, 3, 0, 0}, 0),
	err:  "malformed ServerHello",
}, {
	name: "ServerHello with bad extensions",
	in: func() []byte {
		msg := append(serverHelloMsg(versionTLS12, 0xC02F, 0, 0, false), 0, 9, 0) // 9 bytes of extensions announced, 1 sent
		msg[3] += 3
		return record(recordHandshake, versionTLS12, msg, 0)
	}(),
	err: "malformed ServerHello extensions",
}, {
	name: "supported_versions selecting no TLS version",
	in:   record(recordHandshake, versionTLS12, serverHelloMsg(versionTLS12, 0x1301, 0x3030, 0, false), 0),
	err:  "ServerHello selects version 0x3030",
}, {
	name: "ServerHello with SSL 2 version",
	in:   record(recordHandshake, versionTLS12, serverHelloMsg(versionSSL2, 0x0005, 0, 0, false), 0),
	err:  "ServerHello with version 0x0002",
}}

func TestReadServerHello(t *testing.T) {
	for _, tt := range parseCases {
		t.Run(tt.name, func(t *testing.T) {
			hello, err := readServerHello(bytes.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %+v, %v; want error %q", hello, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *hello != *tt.hello {
				t.Errorf("got %+v, want %+v", *hello, *tt.hello)
			}
		})
	}
}

// TestReadServerHelloTruncatedBody checks that a ServerHello whose
// length ends inside its extensions is refused.
func TestReadServerHelloTruncatedBody(t *testing.T) {
	msg := serverHelloMsg(versionTLS12, 0xC02F, versionTLS13, groupX25519, false)
	msg[3] -= 5 // the message claims to end inside its extensions
	_, err := readServerHello(bytes.NewReader(record(recordHandshake, versionTLS12, msg, 0)))
	var pe *protocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a protocol error", err)
	}
}

// TestReadServerHelloReadsLittle checks that the parser reads no more
// than the ServerHello, however much the server sends.
func TestReadServerHelloReadsLittle(t *testing.T) {
	msg := serverHelloMsg(versionTLS12, 0xC02F, 0, 0, false)
	huge := append(msg, make([]byte, maxRecordLen-len(msg))...)
	in := record(recordHandshake, versionTLS12, huge, 0)
	r := bytes.NewReader(in)
	if _, err := readServerHello(r); err != nil {
		t.Fatal(err)
	}
	if read := len(in) - r.Len(); read != 5+len(msg) {
		t.Errorf("read %d bytes, want %d (record header and ServerHello)", read, 5+len(msg))
	}
}

func TestReadSSLv2ServerHello(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		specs int
		err   string
	}{
		{name: "SERVER-HELLO", in: sslv2ServerHello(3), specs: 3},
		{name: "SERVER-HELLO without ciphers", in: sslv2ServerHello(0), specs: 0},
		{name: "ERROR", in: []byte{0x80, 3, 0, 0, 1}, err: "SSLv2 NO-CIPHER-ERROR"},
		{name: "TLS alert", in: alertRecord(2, 70), err: "protocol_version alert"},
		{name: "TLS ServerHello", in: record(recordHandshake, versionTLS10, serverHelloMsg(versionTLS10, 0x002F, 0, 0, false), 0), err: "TLS ServerHello"},
		{name: "inconsistent lengths", in: func() []byte { b := sslv2ServerHello(2); b[8]++; return b }(), err: "inconsistent lengths"},
		{name: "closed", in: nil, err: "EOF"},
		{name: "one byte", in: []byte{0x80}, err: "connection closed after 1 byte"},
		{name: "3-byte header", in: []byte{0x00, 0x05, 0x00, 4, 0}, err: "SERVER-HELLO of 5 bytes"},
		{name: "garbage", in: []byte("HTTP/1.0 400"), err: "SSLv2 message type"},
		{name: "empty record", in: []byte{0x80, 0}, err: "empty SSLv2 record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hello, err := readSSLv2ServerHello(bytes.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %+v, %v; want error %q", hello, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if hello.version != versionSSL2 || hello.cipherSpecs != tt.specs {
				t.Errorf("got %+v, want version 2 with %d specs", *hello, tt.specs)
			}
		})
	}
}

// TestDescribe checks which failures count as the server refusing.
func TestDescribe(t *testing.T) {
	tests := []struct {
		err     error
		text    string
		refusal bool
	}{
		{&alertError{2, 70}, "protocol_version alert", true},
		{&sslv2Error{1}, "SSLv2 NO-CIPHER-ERROR", true},
		{io.EOF, "connection closed", true},
		{&dialError{io.EOF}, "connect: EOF", false},
		{&probeError{timeout: 2e9}, "no answer within 2s", false},
		{&protocolError{"not a TLS record"}, "not a TLS record", false},
	}
	for _, tt := range tests {
		text, refusal := describe(tt.err)
		if text != tt.text || refusal != tt.refusal {
			t.Errorf("describe(%v) = %q, %v; want %q, %v", tt.err, text, refusal, tt.text, tt.refusal)
		}
	}
}

// FuzzReadServerHello feeds arbitrary server answers to both parsers:
// they must never panic, never accept a ServerHello that is not TLS, and
// report every failure as an error.
func FuzzReadServerHello(f *testing.F) {
	for _, tt := range parseCases {
		f.Add(tt.in)
	}
	f.Add(sslv2ServerHello(3))
	f.Add([]byte{0x80, 3, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		hello, err := readServerHello(r)
		if (hello == nil) == (err == nil) {
			t.Fatalf("hello %v with error %v", hello, err)
		}
		if hello != nil && hello.version>>8 != 3 {
			t.Fatalf("accepted version 0x%04x", hello.version)
		}
		// At worst every handshake byte comes in its own record.
		if read := len(data) - r.Len(); read > 6*(maxServerHelloLen+4*(maxSkipped+1))+7*maxSkipped {
			t.Fatalf("read %d bytes", read)
		}
		v2, err := readSSLv2ServerHello(bytes.NewReader(data))
		if (v2 == nil) == (err == nil) {
			t.Fatalf("SSLv2 hello %v with error %v", v2, err)
		}
		if err != nil {
			describe(err)
		}
	})
}
