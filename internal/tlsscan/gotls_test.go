package tlsscan

import (
	"context"
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

// goPreference is crypto/tls's server preference order for TLS 1.2
// suites (cipherSuitesPreferenceOrder in crypto/tls/cipher_suites.go),
// used when the client lists AES-GCM first and the machine has AES
// hardware; goPreferenceNoAES is the order otherwise.
var (
	goPreference = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, tls.TLS_RSA_WITH_RC4_128_SHA,
	}
	goPreferenceNoAES = append([]uint16{
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}, slices.DeleteFunc(slices.Clone(goPreference), func(id uint16) bool {
		return id == tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 || id == tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
	})...)
)

// inOrder is the IANA names of the suites in set, in the order of order.
func inOrder(order []uint16, set []uint16) []string {
	var n []string
	for _, id := range order {
		if slices.Contains(set, id) {
			n = append(n, CipherByID(id).Name)
		}
	}
	return n
}

func ids(names ...uint16) []uint16 { return names }

// TestScanGoServer checks Scan against crypto/tls servers whose versions
// and suites are configured: what the scan finds must be exactly what
// the configuration (and the certificate's key type) allows, in Go's
// preference order.
func TestScanGoServer(t *testing.T) {
	rsaC, ecC := certs(t)
	ecdsaOnly := ids(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA)
	rsaSuites := ids(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA)
	tls13 := []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}

	tests := []struct {
		name     string
		cfg      *tls.Config
		versions []string
		tls12    []uint16 // accepted, any order
		tls13    []string
		nonFS    bool
		details  map[string]string // version -> Detail
		// order, if set, is the TLS 1.2 order expected instead of Go's
		// preference order over tls12.
		order []string
	}{{
		name: "TLS 1.2 only, RSA, explicit suites",
		cfg: &tls.Config{Certificates: []tls.Certificate{rsaC.tls}, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
			// The ECDSA suite cannot be used with an RSA certificate.
			CipherSuites: append(slices.Clone(rsaSuites), tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)},
		versions: []string{"TLSv1.2"},
		tls12:    rsaSuites,
		nonFS:    true,
		details: map[string]string{"SSLv2": "protocol_version alert", "SSLv3": "protocol_version alert",
			"TLSv1.0": "protocol_version alert", "TLSv1.1": "protocol_version alert", "TLSv1.3": "protocol_version alert"},
	}, {
		name:     "TLS 1.0 to 1.3, ECDSA, default suites",
		cfg:      &tls.Config{Certificates: []tls.Certificate{ecC.tls}, MinVersion: tls.VersionTLS10},
		versions: []string{"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"},
		tls12:    ecdsaOnly,
		tls13:    tls13,
	}, {
		name: "TLS 1.0 and 1.1 with a static RSA suite",
		cfg: &tls.Config{Certificates: []tls.Certificate{rsaC.tls}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11,
			CipherSuites: ids(tls.TLS_RSA_WITH_AES_256_CBC_SHA)},
		versions: []string{"TLSv1.0", "TLSv1.1"},
		// Found by the TLS 1.1 probe, not by enumeration.
		nonFS:   true,
		details: map[string]string{"TLSv1.2": "server chose TLSv1.1", "TLSv1.3": "protocol_version alert"},
	}, {
		name: "TLS 1.3 only, P-256 only: HelloRetryRequest",
		cfg: &tls.Config{Certificates: []tls.Certificate{ecC.tls}, MinVersion: tls.VersionTLS13,
			CurvePreferences: []tls.CurveID{tls.CurveP256}},
		versions: []string{"TLSv1.3"},
		tls13:    tls13,
		details:  map[string]string{"TLSv1.3": "HelloRetryRequest for secp256r1", "TLSv1.2": "protocol_version alert"},
	}, {
		name:     "RSA and ECDSA certificates",
		cfg:      &tls.Config{Certificates: []tls.Certificate{ecC.tls, rsaC.tls}, MaxVersion: tls.VersionTLS12, CipherSuites: append(slices.Clone(ecdsaOnly), rsaSuites...)},
		versions: []string{"TLSv1.2"},
		tls12:    append(slices.Clone(ecdsaOnly), rsaSuites...),
		// Go picks the certificate first (the first one the client can
		// use), then the best suite for it: all ECDSA suites come first.
		order: append(inOrder(goPreference, ecdsaOnly), inOrder(goPreference, rsaSuites)...),
		nonFS: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := goServer(t, tt.cfg)
			rep := Scan(context.Background(), tcpDialer(addr), Options{SNI: "xmpp.example"})
			if len(rep.Errors) > 0 {
				t.Errorf("errors: %q", rep.Errors)
			}
			if got := offered(rep); !slices.Equal(got, tt.versions) {
				t.Errorf("versions offered = %v, want %v", got, tt.versions)
			}
			for v, want := range tt.details {
				if got := versionOf(t, rep, v).Detail; got != want {
					t.Errorf("%s detail = %q, want %q", v, got, want)
				}
			}
			want, wantNoAES := inOrder(goPreference, tt.tls12), inOrder(goPreferenceNoAES, tt.tls12)
			if tt.order != nil {
				want, wantNoAES = tt.order, tt.order
			}
			got := names(rep.TLS12Ciphers)
			if !slices.Equal(sorted(got), sorted(want)) {
				t.Errorf("TLS 1.2 suites = %v, want %v", got, want)
			} else if !slices.Equal(got, want) && !slices.Equal(got, wantNoAES) {
				t.Errorf("TLS 1.2 suites in order %v, want Go's preference %v", got, want)
			}
			if len(tt.tls12) > 1 && (rep.ServerPreference == nil || !*rep.ServerPreference) {
				t.Errorf("server preference = %v, want true (Go orders suites itself)", fmtBool(rep.ServerPreference))
			}
			if len(tt.tls12) < 2 && rep.ServerPreference != nil {
				t.Errorf("server preference = %v with %d suites, want nil", *rep.ServerPreference, len(tt.tls12))
			}
			if got := names(rep.TLS13Ciphers); !slices.Equal(sorted(got), sorted(tt.tls13)) {
				t.Errorf("TLS 1.3 suites = %v, want %v", got, tt.tls13)
			}
			if len(tt.tls13) > 1 && (rep.TLS13ServerPreference == nil || !*rep.TLS13ServerPreference) {
				t.Errorf("TLS 1.3 server preference = %v, want true", fmtBool(rep.TLS13ServerPreference))
			}
			if rep.NonForwardSecret != tt.nonFS {
				t.Errorf("non-forward-secret = %v, want %v", rep.NonForwardSecret, tt.nonFS)
			}
			// One connection per version probe, per accepted suite plus a
			// refused one, and up to two preference probes per version.
			max := 4 + len(tt.tls12) + 1 + 2 + len(tt.tls13) + 1 + 2
			if rep.Connections > max {
				t.Errorf("%d connections, want at most %d", rep.Connections, max)
			}
			t.Logf("%d connections; TLS 1.2 suites %v", rep.Connections, got)
		})
	}
}

func fmtBool(b *bool) string {
	if b == nil {
		return "nil"
	}
	if *b {
		return "true"
	}
	return "false"
}

// TestScanCertificateSNI checks the certificate comparison: a server
// that chooses its certificate by SNI presents another one to a peer
// that sends none.
func TestScanCertificateSNI(t *testing.T) {
	rsaC, ecC := certs(t)
	addr := goServer(t, &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == "xmpp.example" {
			return &ecC.tls, nil
		}
		return &rsaC.tls, nil
	}})
	rep := Scan(context.Background(), tcpDialer(addr), Options{SNI: "xmpp.example", Certificates: true})
	if len(rep.Certificates) != 2 {
		t.Fatalf("certificates = %+v, want 2", rep.Certificates)
	}
	with, without := rep.Certificates[0], rep.Certificates[1]
	if with.SNI != "xmpp.example" || !strings.Contains(with.Subject, "ec.xmpp.example") || len(with.Chain) != 1 {
		t.Errorf("with SNI: %+v", with)
	}
	if without.SNI != "" || !strings.Contains(without.Subject, "rsa.xmpp.example") {
		t.Errorf("without SNI: %+v", without)
	}
	if rep.CertificateDependsOnSNI == nil || !*rep.CertificateDependsOnSNI {
		t.Errorf("depends on SNI = %s, want true", fmtBool(rep.CertificateDependsOnSNI))
	}

	// The same server scanned without SNI: one handshake, nothing to
	// compare.
	rep = Scan(context.Background(), tcpDialer(addr), Options{Certificates: true})
	if len(rep.Certificates) != 1 || rep.CertificateDependsOnSNI != nil {
		t.Errorf("without Options.SNI: certificates %+v, depends %s", rep.Certificates, fmtBool(rep.CertificateDependsOnSNI))
	}

	// Not asked for: no handshakes, no certificates.
	rep = Scan(context.Background(), tcpDialer(addr), Options{SNI: "xmpp.example"})
	if len(rep.Certificates) != 0 || rep.CertificateDependsOnSNI != nil {
		t.Errorf("without Options.Certificates: certificates %+v, depends %s", rep.Certificates, fmtBool(rep.CertificateDependsOnSNI))
	}
}

// tlsConfigAll is a crypto/tls server configuration with TLS 1.0-1.3 and
// Go's default suites for certificate c.
func tlsConfigAll(c testCert) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.tls}, MinVersion: tls.VersionTLS10}
}
