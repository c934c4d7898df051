package localca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/atomicfile"
)

// Revocation by the embedded CA: the serials it revoked are kept in
// DIR/revoked.json, and a CRL signed by the intermediate (which signs
// every leaf, so that `openssl verify -crl_check` finds it for them) is
// written to DIR/crl.der and, for tools that want PEM, DIR/crl.pem.
const (
	revokedFile = "revoked.json"
	// CRLFile and CRLPEMFile are the CRL's file names in the CA directory.
	CRLFile    = "crl.der"
	CRLPEMFile = "crl.pem"
	// CRLPath is where ca serve and the daemon serve the CRL.
	CRLPath = "/crl"
	// crlLifetime is how long a CRL is valid: NextUpdate. Every
	// revocation signs a new one; so does RefreshCRL.
	crlLifetime = 7 * 24 * time.Hour
)

// revokedList is DIR/revoked.json.
type revokedList struct {
	// Number is the last CRL number issued (RFC 5280 §5.2.3).
	Number  int64           `json:"crl_number"`
	Entries []revokedSerial `json:"revoked"`
}

type revokedSerial struct {
	Serial string    `json:"serial"` // decimal
	Reason int       `json:"reason"`
	At     time.Time `json:"at"`
}

// Revoke records that the embedded CA in dir revoked leaf (which it must
// have issued) for reason (an RFC 5280 code), and signs and writes a new
// CRL listing every serial it revoked. Revoking a serial again changes
// nothing but the CRL's dates. It needs the intermediate's key, not the
// CA's database, so it works beside a running ca serve.
func Revoke(dir string, leaf *x509.Certificate, reason int, now time.Time) error {
	inter, key, err := intermediate(dir)
	if err != nil {
		return err
	}
	if err := leaf.CheckSignatureFrom(inter); err != nil {
		return fmt.Errorf("the certificate (serial %s) was not issued by the CA in %s: %w", leaf.SerialNumber, dir, err)
	}
	list, err := readRevoked(dir)
	if err != nil {
		return err
	}
	serial := leaf.SerialNumber.String()
	if !slices.ContainsFunc(list.Entries, func(e revokedSerial) bool { return e.Serial == serial }) {
		list.Entries = append(list.Entries, revokedSerial{Serial: serial, Reason: reason, At: now.UTC()})
	}
	return writeCRL(dir, list, inter, key, now)
}

// RefreshCRL signs and writes the CRL again with new dates (before its
// NextUpdate passes), listing what is revoked; a CA that revoked nothing
// gets an empty CRL.
func RefreshCRL(dir string, now time.Time) error {
	inter, key, err := intermediate(dir)
	if err != nil {
		return err
	}
	list, err := readRevoked(dir)
	if err != nil {
		return err
	}
	return writeCRL(dir, list, inter, key, now)
}

// crlRefreshAge is how old a CRL may get before MaintainCRL signs it
// again: well inside its lifetime, so that clients never hold a stale
// one.
const crlRefreshAge = 24 * time.Hour

// MaintainCRL signs the CA's CRL again when it is more than a day old,
// and reports whether it did. A CA that never revoked anything has no
// CRL and gets none.
func MaintainCRL(dir string, now time.Time) (bool, error) {
	der, err := CRL(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	crl, err := x509.ParseRevocationList(der)
	if err == nil && now.Sub(crl.ThisUpdate) < crlRefreshAge {
		return false, nil
	}
	return true, RefreshCRL(dir, now)
}

// CRL reads the CA's current CRL (DER); it wraps fs.ErrNotExist when the
// CA has signed none.
func CRL(dir string) ([]byte, error) {
	return os.ReadFile(filepath.Join(dir, CRLFile))
}

// CRLHandler serves the CRL of the CA in dir as
// application/pkix-crl (RFC 5280 §4.2.1.13's HTTP form); 404 when there
// is none.
func CRLHandler(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		der, err := CRL(dir)
		if errors.Is(err, fs.ErrNotExist) {
			http.Error(w, "this CA has no revocation list yet", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, "the revocation list cannot be read", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(der)
	})
}

// intermediate reads the CA's intermediate certificate and key, which
// sign the leaves and so the CRL.
func intermediate(dir string) (*x509.Certificate, crypto.Signer, error) {
	inter, err := readCert(filepath.Join(dir, interCertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w", dir, ErrNotInitialized)
	}
	if err != nil {
		return nil, nil, err
	}
	key, err := acme.ReadKey(filepath.Join(dir, interKeyFile))
	if err != nil {
		return nil, nil, err
	}
	return inter, key, nil
}

func readRevoked(dir string) (revokedList, error) {
	var list revokedList
	b, err := os.ReadFile(filepath.Join(dir, revokedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return list, nil
	}
	if err != nil {
		return list, err
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return list, fmt.Errorf("%s: %w", filepath.Join(dir, revokedFile), err)
	}
	return list, nil
}

// writeCRL signs the next CRL of list and writes it with the list: the
// list first, so that a crash between them leaves a CRL that a refresh
// brings up to date, never a revocation lost.
func writeCRL(dir string, list revokedList, inter *x509.Certificate, key crypto.Signer, now time.Time) error {
	list.Number++
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(list.Number),
		ThisUpdate: now.UTC(),
		NextUpdate: now.UTC().Add(crlLifetime),
	}
	for _, e := range list.Entries {
		serial, ok := new(big.Int).SetString(e.Serial, 10)
		if !ok {
			return fmt.Errorf("%s: serial %q is not a number", filepath.Join(dir, revokedFile), e.Serial)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: serial, RevocationTime: e.At, ReasonCode: e.Reason,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, inter, key)
	if err != nil {
		return fmt.Errorf("signing the CRL: %w", err)
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, revokedFile), append(b, '\n'), 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, CRLFile), der, 0o644); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, CRLPEMFile), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}
