package localca

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// TestMaterial: a CA's material installs into another directory as the
// same CA (keys 0600), again without change, and not over another CA;
// material that is not one CA is refused.
func TestMaterial(t *testing.T) {
	src := filepath.Join(t.TempDir(), "ca")
	if err := Init(src); err != nil {
		t.Fatal(err)
	}
	m, err := Material(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "ca")
	for range 2 {
		if err := InstallMaterial(dst, m); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := Material(dst); err != nil || !maps.EqualFunc(got, m, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatalf("installed material differs: %v", err)
	}
	for _, f := range []string{interKeyFile, rootKeyFile} {
		if st, err := os.Stat(filepath.Join(dst, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want 0600", f, st.Mode(), err)
		}
	}
	other := filepath.Join(t.TempDir(), "ca")
	if err := Init(other); err != nil {
		t.Fatal(err)
	}
	if err := InstallMaterial(other, m); !errors.Is(err, ErrOtherCA) {
		t.Errorf("over another CA: %v; want ErrOtherCA", err)
	}
	theirs, _ := Material(other)
	mixed := maps.Clone(m)
	mixed[interKeyFile] = theirs[interKeyFile]
	if err := CheckMaterial(mixed); err == nil {
		t.Error("an intermediate with another CA's key was accepted")
	}
	mixed = maps.Clone(m)
	mixed[rootCertFile] = theirs[rootCertFile]
	if err := CheckMaterial(mixed); err == nil {
		t.Error("an intermediate under another root was accepted")
	}
}

// FuzzCheckMaterial: whatever files the cluster's store hands over,
// checking them is an error or one CA, never a panic.
func FuzzCheckMaterial(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "ca")
	if err := Init(dir); err != nil {
		f.Fatal(err)
	}
	m, err := Material(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(m[rootCertFile], m[interCertFile], m[interKeyFile], m[rootKeyFile])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"), []byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, root, inter, interKey, rootKey []byte) {
		CheckMaterial(map[string][]byte{rootCertFile: root, interCertFile: inter, interKeyFile: interKey, rootKeyFile: rootKey})
	})
}
