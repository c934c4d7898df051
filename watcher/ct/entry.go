// Package ct follows Certificate Transparency logs (README, "The daemon",
// Certificate Transparency): static-ct-api logs by their data tiles (c2sp.org
// static-ct-api, TesseraCT, Sunlight) and RFC 6962 logs by get-entries,
// from a log list in the v3 JSON format or from URLs. It parses every
// entry (certificate or precertificate), and Matcher sorts those that
// cover one of our names into the ones xmppcert issued (matched by the
// hash of the TBSCertificate without the SCT list and the poison
// extension, which a precertificate and its certificate share) and the
// rest, which are what an interception looks like in the logs.
//
// Everything a log sends is bounded: a response body (MaxResponse), a
// tile's entry count (its width), an entry's certificate (the 2^24 bytes
// its length field allows, within the response).
package ct

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Entry types of RFC 6962 §3.1.
const (
	x509Entry    = 0
	precertEntry = 1
)

// TileWidth is the number of entries in a full data tile.
const TileWidth = 256

// Entry is one log entry.
type Entry struct {
	// Index is the entry's position in the log.
	Index uint64
	// Timestamp is when the log saw the submission.
	Timestamp time.Time
	// Precert is true for a precertificate entry.
	Precert bool
	// Cert is the certificate as parsed; for a precertificate, its
	// TBSCertificate (poison removed by the log) parsed as a certificate
	// without a signature. nil when crypto/x509 cannot parse it (then
	// ParseError says why).
	Cert *x509.Certificate
	// ParseError says why Cert is nil.
	ParseError error
	// TBSHash is the SHA-256 of the TBSCertificate without the SCT list
	// and poison extensions: equal for a precertificate and its
	// certificate.
	TBSHash [32]byte
}

// Extensions a precertificate and its certificate differ by (RFC 6962
// §3.1, §3.3).
var (
	oidSCTList = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
	oidPoison  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
)

// ErrMalformed is wrapped by every parse error of log data.
var ErrMalformed = errors.New("malformed CT log data")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// readTimestampedEntry reads a TimestampedEntry (RFC 6962 §3.4) into e.
func readTimestampedEntry(s *cryptobyte.String, e *Entry) error {
	var ts uint64
	var typ uint16
	if !s.ReadUint64(&ts) || !s.ReadUint16(&typ) {
		return malformed("truncated entry header")
	}
	e.Timestamp = time.UnixMilli(int64(ts)).UTC()
	switch typ {
	case x509Entry:
		var der cryptobyte.String
		if !s.ReadUint24LengthPrefixed(&der) || len(der) == 0 {
			return malformed("truncated certificate")
		}
		e.Cert, e.ParseError = x509.ParseCertificate(der)
		tbs, err := certTBS(der)
		if err != nil {
			return err
		}
		e.TBSHash, err = tbsHash(tbs)
		if err != nil {
			return err
		}
	case precertEntry:
		var tbs cryptobyte.String
		if !s.Skip(32) || !s.ReadUint24LengthPrefixed(&tbs) || len(tbs) == 0 {
			return malformed("truncated precertificate")
		}
		e.Precert = true
		var err error
		if e.TBSHash, err = tbsHash(tbs); err != nil {
			return err
		}
		e.Cert, e.ParseError = parseTBS(tbs)
	default:
		return malformed("unknown entry type %d", typ)
	}
	var ext cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&ext) {
		return malformed("truncated extensions")
	}
	return nil
}

// ParseTile parses a static-ct-api data tile whose first entry is first
// and which must hold exactly want entries (TileWidth, or the width of
// a partial tile).
func ParseTile(data []byte, first uint64, want int) ([]Entry, error) {
	s := cryptobyte.String(data)
	out := make([]Entry, 0, want)
	for !s.Empty() {
		if len(out) == want {
			return nil, malformed("the tile holds more than %d entries", want)
		}
		e := Entry{Index: first + uint64(len(out))}
		if err := readTimestampedEntry(&s, &e); err != nil {
			return nil, fmt.Errorf("entry %d: %w", e.Index, err)
		}
		var chain cryptobyte.String
		if e.Precert {
			var pre cryptobyte.String
			if !s.ReadUint24LengthPrefixed(&pre) {
				return nil, fmt.Errorf("entry %d: %w", e.Index, malformed("truncated pre_certificate"))
			}
		}
		if !s.ReadUint16LengthPrefixed(&chain) || len(chain)%32 != 0 {
			return nil, fmt.Errorf("entry %d: %w", e.Index, malformed("bad certificate_chain"))
		}
		out = append(out, e)
	}
	if len(out) != want {
		return nil, malformed("the tile holds %d entries, not %d", len(out), want)
	}
	return out, nil
}

// ParseLeafInput parses an RFC 6962 get-entries leaf_input, a
// MerkleTreeLeaf of version 1 holding a TimestampedEntry.
func ParseLeafInput(data []byte, index uint64) (Entry, error) {
	s := cryptobyte.String(data)
	e := Entry{Index: index}
	var version, leafType uint8
	if !s.ReadUint8(&version) || !s.ReadUint8(&leafType) || version != 0 || leafType != 0 {
		return e, malformed("not a v1 timestamped_entry leaf")
	}
	if err := readTimestampedEntry(&s, &e); err != nil {
		return e, err
	}
	if !s.Empty() {
		return e, malformed("%d bytes after the leaf", len(s))
	}
	return e, nil
}

// certTBS returns the TBSCertificate of a certificate's DER.
func certTBS(der []byte) ([]byte, error) {
	s := cryptobyte.String(der)
	var cert, tbs cryptobyte.String
	if !s.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1Element(&tbs, cbasn1.SEQUENCE) {
		return nil, malformed("a certificate that is not a DER SEQUENCE")
	}
	return tbs, nil
}

// tbsHash is the SHA-256 of a TBSCertificate (DER, with its SEQUENCE
// header) without the SCT list and poison extensions.
func tbsHash(tbs []byte) ([32]byte, error) {
	n, err := normalizeTBS(tbs)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(n), nil
}

// TBSHash is the hash Matcher compares, of a certificate's DER: its
// TBSCertificate without the SCT list and poison extensions.
func TBSHash(certDER []byte) ([32]byte, error) {
	tbs, err := certTBS(certDER)
	if err != nil {
		return [32]byte{}, err
	}
	return tbsHash(tbs)
}

// normalizeTBS re-encodes a TBSCertificate without the SCT list and
// poison extensions; the other fields are copied as they are.
func normalizeTBS(tbs []byte) ([]byte, error) {
	in := cryptobyte.String(tbs)
	var body cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, malformed("a TBSCertificate that is not a DER SEQUENCE")
	}
	var b cryptobyte.Builder
	var failed error
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for !body.Empty() {
			var elem cryptobyte.String
			var tag cbasn1.Tag
			if !body.ReadAnyASN1Element(&elem, &tag) {
				failed = malformed("a TBSCertificate field that is not DER")
				return
			}
			if tag != cbasn1.Tag(3).Constructed().ContextSpecific() {
				b.AddBytes(elem)
				continue
			}
			var wrapped, exts cryptobyte.String
			if !elem.ReadASN1(&wrapped, tag) || !wrapped.ReadASN1(&exts, cbasn1.SEQUENCE) {
				failed = malformed("extensions that are not a DER SEQUENCE")
				return
			}
			b.AddASN1(tag, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for !exts.Empty() {
						var ext, inner cryptobyte.String
						var oid asn1.ObjectIdentifier
						if !exts.ReadASN1Element(&ext, cbasn1.SEQUENCE) {
							failed = malformed("an extension that is not a DER SEQUENCE")
							return
						}
						outer := ext
						if !outer.ReadASN1(&inner, cbasn1.SEQUENCE) || !inner.ReadASN1ObjectIdentifier(&oid) {
							failed = malformed("an extension without an OID")
							return
						}
						if oid.Equal(oidSCTList) || oid.Equal(oidPoison) {
							continue
						}
						b.AddBytes(ext)
					}
				})
			})
		}
	})
	if failed != nil {
		return nil, failed
	}
	return b.Bytes()
}

// parseTBS parses a precertificate's TBSCertificate with crypto/x509 by
// wrapping it in a certificate with an empty signature.
func parseTBS(tbs []byte) (*x509.Certificate, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		// The TBS's own signature algorithm, so that crypto/x509 finds
		// the outer one equal to it.
		t := cryptobyte.String(tbs)
		var body, alg cryptobyte.String
		t.ReadASN1(&body, cbasn1.SEQUENCE)
		body.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific())
		body.SkipASN1(cbasn1.INTEGER)
		body.ReadASN1Element(&alg, cbasn1.SEQUENCE)
		b.AddBytes(alg)
		b.AddASN1BitString(nil)
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
