// Package certfile reads certificate chains as operators have them: PEM
// files (fullchain.pem, openssl s_client -showcerts output, a combined
// key+certificate PEM) or DER, from a file or standard input, with a size
// limit and errors that say what the input was instead.
package certfile

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/xmppcert/xmppcert/internal/smallfile"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// MaxSize is the largest input read, and the only bound on how many
// certificates it holds: a trust bundle holds hundreds (Debian's
// ca-certificates.crt: 144 in 215 KiB) and a chain built for path
// building dozens, while verification bounds its own work (crypto/x509
// caps the signature checks of one verification). Anything larger is the
// wrong file, and is refused before it is parsed.
const MaxSize = 1 << 20

// Read reads a chain from path, or from stdin when path is "-". Errors
// start with the path ("stdin" for "-"), fit on one line and never quote
// the input, which may be a private key. A certificate crypto/x509
// refuses is an *UnparseableError in the chain (errors.As), returned with
// the certificates before it.
func Read(path string, stdin io.Reader) ([]*x509.Certificate, error) {
	name := path
	var data []byte
	var err error
	if path == "-" {
		name = "stdin"
		data, err = io.ReadAll(io.LimitReader(stdin, MaxSize+1))
	} else {
		data, err = smallfile.Read(path, MaxSize)
	}
	var tooLarge *smallfile.TooLargeError
	switch {
	case errors.Is(err, syscall.EISDIR):
		return nil, fmt.Errorf("%s: is a directory, not a certificate file", name)
	case errors.As(err, &tooLarge) || err == nil && len(data) > MaxSize:
		return nil, fmt.Errorf("%s: larger than %d KiB; a certificate chain is a few KB and a trust bundle a few hundred KB, so this is neither", name, MaxSize>>10)
	case err != nil:
		return nil, fmt.Errorf("%s: cannot read: %v", name, unwrapPath(err))
	}
	certs, err := Parse(data)
	var unparseable *UnparseableError
	switch {
	case errors.As(err, &unparseable):
		return certs, fmt.Errorf("%s: %w", name, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return certs, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Parse reads every certificate in data, leaf first as given. PEM blocks
// of other types (a private key in a combined file) are skipped; input
// that holds no certificate at all is described in the error. A
// certificate crypto/x509 refuses is an *UnparseableError, returned with
// the certificates before it.
func Parse(data []byte) ([]*x509.Certificate, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty input: expected a PEM or DER certificate")
	}
	if bytes.Contains(data, []byte("-----BEGIN ")) {
		return parsePEM(data)
	}
	if data[0] == 0x30 { // an ASN.1 SEQUENCE: DER
		certs, err := x509.ParseCertificates(data)
		switch {
		case err == nil:
			return certs, nil
		case isDERPrivateKey(data):
			return nil, errors.New("this is a private key, not a certificate: pass the certificate (cert.pem or fullchain.pem)")
		}
		if ders, ok := splitCertificates(data); ok {
			return parseEach(ders)
		}
		return nil, fmt.Errorf("not a valid DER certificate (truncated or corrupt): %v", err)
	}
	return nil, errors.New("no certificate found: expected PEM (-----BEGIN CERTIFICATE-----) or DER")
}

func parsePEM(data []byte) ([]*x509.Certificate, error) {
	var ders [][]byte
	var others []string
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			others = append(others, block.Type)
			continue
		}
		ders = append(ders, block.Bytes)
	}
	if len(ders) > 0 {
		return parseEach(ders)
	}
	for _, t := range others {
		if strings.Contains(t, "PRIVATE KEY") {
			return nil, errors.New("this is a private key, not a certificate: pass the certificate (cert.pem or fullchain.pem)")
		}
	}
	if len(others) > 0 {
		return nil, fmt.Errorf("no CERTIFICATE in the PEM input, only %s", strings.Join(others, ", "))
	}
	return nil, errors.New("a PEM block is truncated or corrupt: expected -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----")
}

// UnparseableError is a certificate that crypto/x509 refuses to parse
// although it has a certificate's shape (a SEQUENCE of a to-be-signed
// SEQUENCE, an algorithm SEQUENCE and a signature BIT STRING): an
// iPAddress of odd length, a URI net/url refuses, a negative serial.
// That is a fact about the certificate (Go-based peers refuse it), not
// unreadable input. The certificates before it parsed.
type UnparseableError struct {
	// Index is the certificate's position in the input, from 0; Count
	// how many certificates the input holds.
	Index, Count int
	// DER is the certificate as given.
	DER []byte
	// Err is crypto/x509's error.
	Err error
}

func (e *UnparseableError) Error() string {
	return fmt.Sprintf("certificate %d is not a valid X.509 certificate: %v", e.Index+1, e.Err)
}

func (e *UnparseableError) Unwrap() error { return e.Err }

// parseEach parses each DER certificate; the first that crypto/x509
// refuses is an *UnparseableError when it has a certificate's shape.
func parseEach(ders [][]byte) ([]*x509.Certificate, error) {
	certs := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			if certificateShaped(der) {
				return certs, &UnparseableError{Index: i, Count: len(ders), DER: der, Err: err}
			}
			return nil, fmt.Errorf("certificate %d is not a valid X.509 certificate: %v", i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// splitCertificates splits concatenated DER SEQUENCEs; ok is false when
// data is not wholly made of them.
func splitCertificates(data []byte) (ders [][]byte, ok bool) {
	s := cryptobyte.String(data)
	for !s.Empty() {
		var der cryptobyte.String
		if !s.ReadASN1Element(&der, cbasn1.SEQUENCE) {
			return nil, false
		}
		ders = append(ders, der)
	}
	return ders, len(ders) > 0
}

// certificateShaped reports whether der is SEQUENCE { SEQUENCE,
// SEQUENCE, BIT STRING } and nothing after: the outline of RFC 5280's
// Certificate, whatever crypto/x509 thinks of its contents.
func certificateShaped(der []byte) bool {
	s := cryptobyte.String(der)
	var cert cryptobyte.String
	return s.ReadASN1(&cert, cbasn1.SEQUENCE) && s.Empty() &&
		cert.SkipASN1(cbasn1.SEQUENCE) && cert.SkipASN1(cbasn1.SEQUENCE) &&
		cert.SkipASN1(cbasn1.BIT_STRING) && cert.Empty()
}

func isDERPrivateKey(der []byte) bool {
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return true
	}
	if _, err := x509.ParseECPrivateKey(der); err == nil {
		return true
	}
	_, err := x509.ParsePKCS1PrivateKey(der)
	return err == nil
}

// ReadPool reads a PEM or DER file of trust anchors into a pool.
func ReadPool(path string, stdin io.Reader) (*x509.CertPool, error) {
	pool, _, err := ReadAnchors(path, stdin)
	return pool, err
}

// ReadAnchors reads a PEM or DER file of trust anchors into a pool, and
// returns the certificates too, for models of peers that build their own
// paths from them (xmppaddr.Options.Anchors).
func ReadAnchors(path string, stdin io.Reader) (*x509.CertPool, []*x509.Certificate, error) {
	certs, err := Read(path, stdin)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, certs, nil
}
