package tlsscan

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// testCert is a self-signed certificate for loopback servers.
type testCert struct {
	tls tls.Certificate
	der []byte
	key crypto.Signer
}

var (
	certOnce        sync.Once
	rsaCert, ecCert testCert
)

// certs returns an RSA and an ECDSA certificate for "xmpp.example",
// made once per test binary (RSA key generation is slow).
func certs(t testing.TB) (rsaC, ecC testCert) {
	t.Helper()
	certOnce.Do(func() {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		rsaCert = selfSigned(rk, "rsa.xmpp.example")
		ecCert = selfSigned(ek, "ec.xmpp.example")
	})
	return rsaCert, ecCert
}

func selfSigned(key crypto.Signer, cn string) testCert {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{"xmpp.example", cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	return testCert{tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der: der, key: key}
}

// writePEM writes c's certificate and key to dir/name.pem and
// dir/name.key for openssl.
func (c testCert) writePEM(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// tcpDialer dials addr: the Dialer of a direct-TLS endpoint.
func tcpDialer(addr string) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// serve accepts connections on a loopback listener and runs handle on
// each in its own goroutine until the test ends; it returns the address.
func serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("accept: %v", err)
				}
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	return ln.Addr().String()
}

// goServer is a crypto/tls server with cfg on loopback that completes
// (or fails) one handshake per connection.
func goServer(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	return serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		tls.Server(c, cfg).Handshake()
	})
}

// names are the IANA names of cs, for comparing and printing.
func names(cs []Cipher) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}

// sorted is a sorted copy of s.
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// offered is the names of the offered versions in rep.
func offered(rep Report) []string {
	var v []string
	for _, x := range rep.Versions {
		if x.Offered {
			v = append(v, x.Name)
		}
	}
	return v
}

// versionOf is rep's entry for name.
func versionOf(t testing.TB, rep Report, name string) Version {
	t.Helper()
	for _, v := range rep.Versions {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no version %s in report", name)
	return Version{}
}
