package tlsscan

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

// TestBuildClientHello parses every kind of ClientHello the scanner
// sends, as a server would, and checks what it offers.
func TestBuildClientHello(t *testing.T) {
	key := make([]byte, 32)
	all := suiteIDs(offerOrder(), nil)
	legacy := suiteIDs(offerOrder(), func(s suite) bool { return !tls12Only(s.name) })
	tests := []struct {
		name          string
		spec          helloSpec
		recordVersion uint16
		version       uint16
		extensions    bool
	}{
		{"SSLv3", helloSpec{version: versionSSL3, suites: legacy, sni: "xmpp.example"}, versionSSL3, versionSSL3, false},
		{"TLS 1.0", helloSpec{version: versionTLS10, suites: legacy, sni: "xmpp.example"}, versionTLS10, versionTLS10, true},
		{"TLS 1.1 short", helloSpec{version: versionTLS11, suites: legacy[:3], sni: "xmpp.example"}, versionTLS10, versionTLS11, true},
		{"TLS 1.2", helloSpec{version: versionTLS12, suites: all, sni: "xmpp.example."}, versionTLS10, versionTLS12, true},
		{"TLS 1.2 one suite, IP", helloSpec{version: versionTLS12, suites: all[:1], sni: "192.0.2.1"}, versionTLS10, versionTLS12, true},
		{"TLS 1.3", helloSpec{version: versionTLS13, suites: suiteIDs(tls13Suites, nil), sni: "xmpp.example", keyShare: key}, versionTLS10, versionTLS12, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := buildClientHello(tt.spec)
			if rec[0] != recordHandshake || binary.BigEndian.Uint16(rec[1:]) != tt.recordVersion ||
				int(binary.BigEndian.Uint16(rec[3:])) != len(rec)-5 {
				t.Fatalf("record header % x", rec[:5])
			}
			ch, ok := parseClientHello(rec[5:])
			if !ok {
				t.Fatal("unparseable ClientHello")
			}
			if ch.version != tt.version {
				t.Errorf("version 0x%04x, want 0x%04x", ch.version, tt.version)
			}
			if !slices.Equal(ch.suites, tt.spec.suites) {
				t.Errorf("suites differ from the spec")
			}
			if (ch.exts != nil) != tt.extensions {
				t.Fatalf("extensions %v, want present=%v", ch.extList, tt.extensions)
			}
			if !tt.extensions {
				return
			}
			if ch.length > 0xff && ch.length < 0x200 {
				t.Errorf("ClientHello of %d bytes, in the range padding avoids", ch.length)
			}
			if _, padded := ch.exts[extPadding]; tt.name == "TLS 1.0" && (!padded || ch.length != 0x200) {
				t.Errorf("TLS 1.0 hello of %d bytes not padded to 512", ch.length)
			}
			sni, hasSNI := ch.exts[extServerName]
			if want := sniName(tt.spec.sni); want == "" {
				if hasSNI {
					t.Errorf("server_name sent for %q", tt.spec.sni)
				}
			} else if !strings.HasSuffix(string(sni), "\x00"+string(rune(len(want)))+want) {
				t.Errorf("server_name % x, want %q", sni, want)
			}
			for _, e := range []uint16{extSupportedGroups, extSignatureAlgorithms, extECPointFormats} {
				if _, ok := ch.exts[e]; !ok {
					t.Errorf("extension %d missing", e)
				}
			}
			sv, hasSV := ch.exts[extSupportedVersions]
			ks, hasKS := ch.exts[extKeyShare]
			if tt.spec.version == versionTLS13 {
				if string(sv) != "\x02\x03\x04" {
					t.Errorf("supported_versions % x, want TLS 1.3 only", sv)
				}
				// client_shares length, group x25519, key length 32, key.
				if !hasKS || len(ks) != 2+2+2+32 || binary.BigEndian.Uint16(ks[2:]) != groupX25519 {
					t.Errorf("key_share % x", ks)
				}
				if len(ch.sessionID) != 32 {
					t.Errorf("session ID of %d bytes, want 32 (middlebox compatibility)", len(ch.sessionID))
				}
			} else if hasSV || hasKS {
				t.Errorf("TLS 1.3 extensions in a %s hello", tt.name)
			}
		})
	}
}

func TestSNIName(t *testing.T) {
	for in, want := range map[string]string{
		"xmpp.example": "xmpp.example", "xmpp.example.": "xmpp.example", "": "",
		"192.0.2.1": "", "2001:db8::1": "",
	} {
		if got := sniName(in); got != want {
			t.Errorf("sniName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSSLv2ClientHello checks the CLIENT-HELLO layout byte by byte.
func TestSSLv2ClientHello(t *testing.T) {
	b := buildSSLv2ClientHello()
	n := int(b[0]&0x7f)<<8 | int(b[1])
	if b[0]&0x80 == 0 || n != len(b)-2 {
		t.Fatalf("header % x for %d bytes", b[:2], len(b))
	}
	m := b[2:]
	if m[0] != 1 || binary.BigEndian.Uint16(m[1:]) != versionSSL2 ||
		int(binary.BigEndian.Uint16(m[3:])) != 3*len(sslv2CipherSpecs) ||
		binary.BigEndian.Uint16(m[5:]) != 0 || binary.BigEndian.Uint16(m[7:]) != 16 {
		t.Errorf("CLIENT-HELLO % x", m[:9])
	}
}

// TestSuiteTable checks the suite table: unique numbers, IANA-style
// names with a known key exchange, and an offer order that is a
// permutation with the strongest suites first and the weakest last.
func TestSuiteTable(t *testing.T) {
	seen := map[uint16]bool{}
	for _, s := range append(slices.Clone(tls12Suites), tls13Suites...) {
		if seen[s.id] {
			t.Errorf("0x%04x listed twice", s.id)
		}
		seen[s.id] = true
		if !strings.HasPrefix(s.name, "TLS_") {
			t.Errorf("0x%04x: name %q", s.id, s.name)
		}
		c := CipherByID(s.id)
		if isTLS13Suite(s.id) {
			if !c.ForwardSecret || c.KeyExchange != "" {
				t.Errorf("%s: %+v", s.name, c)
			}
			continue
		}
		if _, ok := kexRank[c.KeyExchange]; !ok {
			t.Errorf("%s: key exchange %q", s.name, c.KeyExchange)
		}
	}
	if len(tls12Suites) < 200 {
		t.Errorf("only %d TLS 1.2 suites", len(tls12Suites))
	}
	order := suiteIDs(offerOrder(), nil)
	if !slices.Equal(sorted2(order), suiteIDs(tls12Suites, nil)) {
		t.Error("offer order is not a permutation of the table")
	}
	if first, last := offerOrder()[0].name, offerOrder()[len(offerOrder())-1].name; first != "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" || !strings.Contains(last, "NULL") {
		t.Errorf("offer order from %s to %s", first, last)
	}
	for id, want := range map[uint16]Cipher{
		0xC02F: {ID: 0xC02F, Name: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", OpenSSLName: "ECDHE-RSA-AES128-GCM-SHA256", KeyExchange: "ECDHE", ForwardSecret: true},
		0x0035: {ID: 0x0035, Name: "TLS_RSA_WITH_AES_256_CBC_SHA", OpenSSLName: "AES256-SHA", KeyExchange: "RSA"},
		0x0014: {ID: 0x0014, Name: "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA", OpenSSLName: "EXP-EDH-RSA-DES-CBC-SHA", KeyExchange: "DHE", ForwardSecret: true},
		0xC00E: {ID: 0xC00E, Name: "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA", OpenSSLName: "ECDH-RSA-AES128-SHA", KeyExchange: "ECDH"},
		0x00A6: {ID: 0x00A6, Name: "TLS_DH_anon_WITH_AES_128_GCM_SHA256", OpenSSLName: "ADH-AES128-GCM-SHA256", KeyExchange: "DH_anon", ForwardSecret: true, Anonymous: true},
		0x1303: {ID: 0x1303, Name: "TLS_CHACHA20_POLY1305_SHA256", OpenSSLName: "TLS_CHACHA20_POLY1305_SHA256", ForwardSecret: true},
		0x0A0A: {ID: 0x0A0A, Name: "unknown 0x0A0A"},
	} {
		if got := CipherByID(id); got != want {
			t.Errorf("CipherByID(0x%04x) = %+v, want %+v", id, got, want)
		}
	}
}

func sorted2(s []uint16) []uint16 {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
