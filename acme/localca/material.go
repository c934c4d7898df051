package localca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/atomicfile"
)

// MaterialFiles are the files of a CA's material, which a cluster's
// nodes share so that every node's embedded CA is the same CA: the root
// and intermediate certificates and their keys (the root's only when it
// was kept online). The database (ca.db) is not among them: it stays
// with each node (README, "Cluster mode").
var MaterialFiles = []string{rootCertFile, rootKeyFile, interCertFile, interKeyFile}

// ErrOtherCA says that a directory holds another CA than the material
// given for it.
var ErrOtherCA = errors.New("the directory holds another CA")

// Material reads the CA material of dir, by file name (MaterialFiles;
// root.key absent when the root's key is offline). A dir without a CA
// gives an error that wraps ErrNotInitialized.
func Material(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, name := range MaterialFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, os.ErrNotExist) && name == rootKeyFile:
			continue
		case errors.Is(err, os.ErrNotExist) && name == rootCertFile:
			return nil, fmt.Errorf("%s: %w", dir, ErrNotInitialized)
		case err != nil:
			return nil, err
		}
		out[name] = b
	}
	return out, nil
}

// CheckMaterial makes sure that files are one CA: a root certificate, an
// intermediate it signed, the intermediate's key, and the root's key if
// there is one; and nothing else.
func CheckMaterial(files map[string][]byte) error {
	for name := range files {
		if name != rootCertFile && name != rootKeyFile && name != interCertFile && name != interKeyFile {
			return fmt.Errorf("CA material: unknown file %q", name)
		}
	}
	root, err := parseCertPEM(files[rootCertFile])
	if err != nil {
		return fmt.Errorf("CA material: %s: %w", rootCertFile, err)
	}
	inter, err := parseCertPEM(files[interCertFile])
	if err != nil {
		return fmt.Errorf("CA material: %s: %w", interCertFile, err)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("CA material: the intermediate is not signed by the root: %w", err)
	}
	for name, cert := range map[string]*x509.Certificate{interKeyFile: inter, rootKeyFile: root} {
		b, ok := files[name]
		if !ok && name == rootKeyFile {
			continue
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != "PRIVATE KEY" {
			return fmt.Errorf("CA material: %s is not a PEM private key", name)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return fmt.Errorf("CA material: %s: %w", name, err)
		}
		key, ok := k.(crypto.Signer)
		if !ok || !acme.SamePublicKey(cert, key) {
			return fmt.Errorf("CA material: %s is not the key of its certificate", name)
		}
	}
	return nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// InstallMaterial makes dir hold the CA of files (checked with
// CheckMaterial): it is created as Init creates a CA (the keys 0600)
// when dir holds none. A dir that holds the same CA is left as it is; one
// that holds another gives an error that wraps ErrOtherCA.
func InstallMaterial(dir string, files map[string][]byte) error {
	if err := CheckMaterial(files); err != nil {
		return err
	}
	if have, err := os.ReadFile(filepath.Join(dir, rootCertFile)); err == nil {
		if bytes.Equal(have, files[rootCertFile]) {
			return nil
		}
		return fmt.Errorf("%s: %w", dir, ErrOtherCA)
	}
	err := createDir(dir, func(tmp string) error {
		for name, b := range files {
			perm := os.FileMode(0o644)
			if name == rootKeyFile || name == interKeyFile {
				perm = 0o600
			}
			if err := atomicfile.WriteFile(filepath.Join(tmp, name), b, perm); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrExists) {
		return InstallMaterial(dir, files) // another process installed one first: the same?
	}
	return err
}
