package main

import (
	"bufio"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/acme"
)

// certSummary is what inspect shows of a certificate and check shows of
// each certificate in the chain.
type certSummary struct {
	Subject          string    `json:"subject"`
	Issuer           string    `json:"issuer"`
	Serial           string    `json:"serial"`
	NotBefore        time.Time `json:"not_before"`
	NotAfter         time.Time `json:"not_after"`
	Key              string    `json:"key"`
	SignatureAlg     string    `json:"signature_algorithm"`
	EKU              []string  `json:"eku"`
	IsCA             bool      `json:"ca"`
	SHA256           string    `json:"sha256"`
	SPKISHA256       string    `json:"spki_sha256"`
	SPKISHA256Base64 string    `json:"spki_sha256_base64"`
}

func summarize(c *x509.Certificate) certSummary {
	sum, spki := sha256.Sum256(c.Raw), sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return certSummary{
		Subject:          c.Subject.String(),
		Issuer:           c.Issuer.String(),
		Serial:           strings.ToUpper(c.SerialNumber.Text(16)),
		NotBefore:        c.NotBefore.UTC(),
		NotAfter:         c.NotAfter.UTC(),
		Key:              acme.KeyDescription(c.PublicKey),
		SignatureAlg:     c.SignatureAlgorithm.String(),
		EKU:              ekuNames(c),
		IsCA:             c.IsCA,
		SHA256:           hex.EncodeToString(sum[:]),
		SPKISHA256:       hex.EncodeToString(spki[:]),
		SPKISHA256Base64: base64.StdEncoding.EncodeToString(spki[:]),
	}
}

var ekuLabels = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny: "any", x509.ExtKeyUsageServerAuth: "serverAuth", x509.ExtKeyUsageClientAuth: "clientAuth",
	x509.ExtKeyUsageCodeSigning: "codeSigning", x509.ExtKeyUsageEmailProtection: "emailProtection",
	x509.ExtKeyUsageTimeStamping: "timeStamping", x509.ExtKeyUsageOCSPSigning: "OCSPSigning",
}

func ekuNames(c *x509.Certificate) []string {
	names := []string{}
	for _, u := range c.ExtKeyUsage {
		if n, ok := ekuLabels[u]; ok {
			names = append(names, n)
		} else {
			names = append(names, fmt.Sprintf("eku(%d)", u))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		names = append(names, oid.String())
	}
	return names
}

// validity says in words how a certificate's validity relates to now.
func validity(c *x509.Certificate, now time.Time) string {
	days := func(d time.Duration) int { return int(d.Hours() / 24) }
	switch {
	case now.Before(c.NotBefore):
		return fmt.Sprintf("not valid yet (starts in %d days)", days(c.NotBefore.Sub(now)))
	case now.After(c.NotAfter):
		return fmt.Sprintf("EXPIRED %d days ago", days(now.Sub(c.NotAfter)))
	}
	return fmt.Sprintf("%d days left", days(c.NotAfter.Sub(now)))
}

// writeText runs print with a buffer in front of w, then writes what it
// printed: a listing of thousands of lineages costs a few system calls
// instead of several per lineage.
func writeText(w io.Writer, print func(io.Writer)) error {
	b := bufio.NewWriterSize(w, 64<<10)
	print(b)
	return b.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
