package localca

import (
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// TestRevokeCRL: a revocation signs a CRL with the intermediate that
// lists the serial with its reason; revoking again keeps one entry;
// MaintainCRL signs again only a CRL more than a day old, with a higher
// number and the same entries; a certificate of another CA is refused.
func TestRevokeCRL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	ca, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	req, err := acme.NewRequest("example.org", xmppaddr.RoleHost, nil, acme.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := acme.KeyECDSAP256.Generate()
	iss, err := ca.Issue(t.Context(), req, key)
	ca.Close()
	if err != nil {
		t.Fatal(err)
	}
	leaf := iss.Chain[0]
	inter := iss.Chain[1]
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	if refreshed, err := MaintainCRL(dir, now); err != nil || refreshed {
		t.Errorf("MaintainCRL without a CRL: %v, %v; want nothing done", refreshed, err)
	}
	for range 2 {
		if err := Revoke(dir, leaf, acme.ReasonKeyCompromise, now); err != nil {
			t.Fatal(err)
		}
	}
	read := func() *x509.RevocationList {
		t.Helper()
		der, err := CRL(dir)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := crl.CheckSignatureFrom(inter); err != nil {
			t.Fatalf("the CRL is not signed by the intermediate: %v", err)
		}
		return crl
	}
	crl := read()
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 ||
		crl.RevokedCertificateEntries[0].ReasonCode != acme.ReasonKeyCompromise || crl.Number.Int64() != 2 || !crl.NextUpdate.Equal(now.Add(crlLifetime)) {
		t.Fatalf("CRL %+v; want one entry for serial %s, keyCompromise, number 2", crl, leaf.SerialNumber)
	}
	if refreshed, err := MaintainCRL(dir, now.Add(time.Hour)); err != nil || refreshed {
		t.Errorf("MaintainCRL an hour later: %v, %v; want nothing done", refreshed, err)
	}
	if refreshed, err := MaintainCRL(dir, now.Add(25*time.Hour)); err != nil || !refreshed {
		t.Errorf("MaintainCRL a day later: %v, %v; want signed again", refreshed, err)
	}
	if again := read(); again.Number.Int64() != 3 || len(again.RevokedCertificateEntries) != 1 || !again.ThisUpdate.Equal(now.Add(25*time.Hour)) {
		t.Errorf("refreshed CRL %+v; want number 3, the same entry, new dates", again)
	}

	other := filepath.Join(t.TempDir(), "other")
	if err := Init(other); err != nil {
		t.Fatal(err)
	}
	if err := Revoke(other, leaf, acme.ReasonUnspecified, now); err == nil {
		t.Errorf("another CA revoked a certificate it did not issue")
	}
}
