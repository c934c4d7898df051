// Package localca is xmppcert's embedded private CA: a root and an
// intermediate kept in the state directory, and a smallstep/certificates
// authority that signs with the intermediate through an ACME provisioner
// whose X.509 template (Template) adds the XMPP identities no public CA
// issues: SRV-IDs and XmppAddr. Local issuance (CA.Issue) and the ACME
// server (CA.Handler) go through that one authority and template, so both
// apply the same policy.
package localca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	berrors "go.etcd.io/bbolt/errors"
	"go.step.sm/crypto/x509util"
	"golang.org/x/net/idna"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/atomicfile"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Template is the step-ca X.509 leaf template that adds SRV-IDs and
// XmppAddr for every validated DNS name. `xmppcert ca template` prints it
// for operators who run their own step-ca.
//
//go:embed xmpp.tpl
var Template string

// File names inside the CA directory.
const (
	rootCertFile  = "root.crt"
	rootKeyFile   = "root.key"
	interCertFile = "intermediate.crt"
	interKeyFile  = "intermediate.key"
	dbFile        = "ca.db"
)

// Lifetimes. Leaves default to 90 days like public ACME CAs, so that
// renewal is exercised as often as with them.
const (
	rootLifetime         = 20 * 365 * 24 * time.Hour
	intermediateLifetime = 10 * 365 * 24 * time.Hour
	// DefaultLifetime is the validity of an issued certificate.
	DefaultLifetime = 90 * 24 * time.Hour
	// MaxLifetime is the longest validity the CA issues.
	MaxLifetime = 397 * 24 * time.Hour
)

// ProvisionerName is the ACME provisioner's name, the path segment of the
// ACME directory URL: /acme/xmpp/directory.
const ProvisionerName = "xmpp"

// ErrExists is returned by Init when the directory already holds a CA.
var ErrExists = errors.New("a CA already exists")

// ErrNotInitialized is returned by Open for a directory without a CA.
var ErrNotInitialized = errors.New("no CA has been created")

// Init creates a root and an intermediate CA in dir (mode 0700, keys
// 0600). It refuses to touch a directory that already holds a CA. The
// CA appears whole or not at all: it is built in a temporary directory
// that is renamed into place.
func Init(dir string) error {
	return initCA(dir, "")
}

// InitOffline is Init, except that the root's private key is written to
// rootKeyOut (a new file, mode 0600; an existing file or link there is
// refused with an error that errors.Is os.ErrExist) instead of dir. The
// root signs the intermediate once, at creation; from then on only the
// intermediate's key is online, and whoever reads dir cannot make another
// intermediate. rootKeyOut is removed again if the CA is not created.
func InitOffline(dir, rootKeyOut string) error {
	return initCA(dir, rootKeyOut)
}

func initCA(dir, rootKeyOut string) (err error) {
	if _, err := os.Stat(filepath.Join(dir, rootCertFile)); err == nil {
		return fmt.Errorf("%s: %w", dir, ErrExists)
	}
	// The root's key, once writeCA has written it, goes again when the
	// directory is not put in place; what was at rootKeyOut before, which
	// writeCA refuses to write over, is left alone.
	wrote := false
	defer func() {
		if err != nil && wrote {
			os.Remove(rootKeyOut)
		}
	}()
	return createDir(dir, func(tmp string) error {
		if err := writeCA(tmp, time.Now(), rootKeyOut); err != nil {
			return err
		}
		wrote = rootKeyOut != ""
		return nil
	})
}

// createDir creates the CA directory dir whole or not at all: write fills
// a temporary directory beside it, which is then renamed into place. A
// CA that another process created first is ErrExists.
func createDir(dir string, write func(tmp string) error) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	sweepInit(parent, filepath.Base(dir))
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := write(tmp); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process created the CA first (rename onto a non-empty
		// directory fails), or dir is in the way.
		if _, serr := os.Stat(filepath.Join(dir, rootCertFile)); serr == nil {
			return fmt.Errorf("%s: %w", dir, ErrExists)
		}
		return err
	}
	return atomicfile.SyncDir(parent)
}

// staleInit is the age after which a temporary CA directory is taken
// for the leftover of a killed Init rather than another Init at work.
const staleInit = time.Minute

// sweepInit removes what killed Inits left in parent.
func sweepInit(parent, base string) {
	left, _ := filepath.Glob(filepath.Join(parent, "."+base+".tmp-*"))
	for _, d := range left {
		if st, err := os.Stat(d); err == nil && time.Since(st.ModTime()) > staleInit {
			os.RemoveAll(d)
		}
	}
}

// writeCA generates the root and intermediate into dir; the root's key
// goes to rootKeyOut instead when it is not empty (a new file, which
// writeCA removes again when it fails later).
func writeCA(dir string, now time.Time, rootKeyOut string) (err error) {
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	suffix := hex.EncodeToString(id)
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	root := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"xmppcert private CA"}, CommonName: "xmppcert root CA " + suffix},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(rootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	rootDER, err := signCert(root, root, rootKey.Public(), rootKey)
	if err != nil {
		return err
	}
	rootCert, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return err
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	inter := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"xmppcert private CA"}, CommonName: "xmppcert intermediate CA " + suffix},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(intermediateLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	interDER, err := signCert(inter, rootCert, interKey.Public(), rootKey)
	if err != nil {
		return err
	}
	type caFile struct {
		name string
		data []byte
		perm os.FileMode
	}
	rootKeyPEM := mustKeyPEM(rootKey)
	files := []caFile{
		{rootCertFile, pemBlock("CERTIFICATE", rootDER), 0o644},
		{interCertFile, pemBlock("CERTIFICATE", interDER), 0o644},
		{interKeyFile, mustKeyPEM(interKey), 0o600},
	}
	if rootKeyOut == "" {
		files = append(files, caFile{rootKeyFile, rootKeyPEM, 0o600})
	} else if rootKeyPEM != nil {
		if err := atomicfile.WriteNew(rootKeyOut, rootKeyPEM, 0o600); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				os.Remove(rootKeyOut)
			}
		}()
	}
	for _, f := range files {
		if f.data == nil || rootKeyPEM == nil {
			return errors.New("encoding a CA key failed")
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

func signCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func mustKeyPEM(k crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil
	}
	return pemBlock("PRIVATE KEY", der)
}

// CA is an opened embedded CA. Close it to release its database, which
// one process at a time can hold.
type CA struct {
	dir   string
	root  *x509.Certificate
	inter *x509.Certificate
	auth  *authority.Authority
	db    db.AuthDB
	prov  *provisioner.ACME
}

// Options configure the ACME provisioner of an opened CA. The zero value
// suits local issuance.
type Options struct {
	// Lifetime of issued certificates; DefaultLifetime when zero.
	Lifetime time.Duration
	// Components and Anonymous give the role of names served over ACME,
	// where an order carries only DNS names; other names are hosts.
	Components []string
	Anonymous  []string
	// RequireEAB makes new ACME accounts present External Account Binding.
	RequireEAB bool
}

// Open loads the CA in dir and starts a step-ca authority on it. It fails
// with ErrNotInitialized when there is no CA, and with a message naming
// the database when another process holds it.
func Open(dir string, opts Options) (*CA, error) {
	root, err := readCert(filepath.Join(dir, rootCertFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotInitialized)
	}
	if err != nil {
		return nil, err
	}
	inter, err := readCert(filepath.Join(dir, interCertFile))
	if err != nil {
		return nil, err
	}
	interKey, err := acme.ReadKey(filepath.Join(dir, interKeyFile))
	if err != nil {
		return nil, err
	}
	prov, err := newProvisioner(opts)
	if err != nil {
		return nil, err
	}
	dbPath := filepath.Join(dir, dbFile)
	adb, err := db.New(&db.Config{Type: "bbolt", DataSource: dbPath})
	if err != nil {
		if isTimeout(err) {
			return nil, fmt.Errorf("the CA database %s is in use by another xmppcert process (a running 'xmppcert ca serve'?); stop it or wait", dbPath)
		}
		return nil, fmt.Errorf("opening the CA database %s: %w", dbPath, err)
	}
	auth, err := authority.NewEmbedded(
		authority.WithConfig(&config.Config{
			DNSNames:        []string{"localhost"},
			AuthorityConfig: &config.AuthConfig{Provisioners: provisioner.List{prov}},
		}),
		authority.WithX509RootCerts(root),
		authority.WithX509Signer(inter, interKey),
		authority.WithDatabase(adb),
		authority.WithQuietInit(),
	)
	if err != nil {
		adb.Shutdown()
		return nil, fmt.Errorf("starting the CA in %s: %w", dir, err)
	}
	return &CA{dir: dir, root: root, inter: inter, auth: auth, db: adb, prov: prov}, nil
}

// newProvisioner builds the ACME provisioner with the XMPP template.
func newProvisioner(opts Options) (*provisioner.ACME, error) {
	life := opts.Lifetime
	if life == 0 {
		life = DefaultLifetime
	}
	if life < time.Hour || life > MaxLifetime {
		return nil, fmt.Errorf("certificate lifetime %v is out of range: from 1 hour to %d days", life, MaxLifetime/(24*time.Hour))
	}
	data, err := json.Marshal(templateData(opts.Components, opts.Anonymous, nil))
	if err != nil {
		return nil, err
	}
	return &provisioner.ACME{
		// step-ca keys External Account Binding keys by this ID.
		ID:         "acme/" + ProvisionerName,
		Type:       "ACME",
		Name:       ProvisionerName,
		RequireEAB: opts.RequireEAB,
		Challenges: []provisioner.ACMEChallenge{provisioner.HTTP_01, provisioner.TLS_ALPN_01},
		Claims: &provisioner.Claims{
			MinTLSDur:     &provisioner.Duration{Duration: time.Hour},
			MaxTLSDur:     &provisioner.Duration{Duration: MaxLifetime},
			DefaultTLSDur: &provisioner.Duration{Duration: life},
		},
		Options: &provisioner.Options{X509: &provisioner.X509Options{Template: Template, TemplateData: data}},
	}, nil
}

// templateData is the data Template reads: the names that are components
// or anonymous hosts, and the U-label JID domain of internationalised
// names. Empty lists are written out so that the template never meets a
// missing key.
func templateData(components, anonymous []string, jids map[string]any) map[string]any {
	if components == nil {
		components = []string{}
	}
	if anonymous == nil {
		anonymous = []string{}
	}
	if jids == nil {
		jids = map[string]any{}
	}
	return map[string]any{"xmppComponents": components, "xmppAnonymous": anonymous, "xmppAddrs": jids}
}

func isTimeout(err error) bool { return errors.Is(err, berrors.ErrTimeout) }

// Root is the CA's root certificate, the trust anchor peers need.
func (ca *CA) Root() *x509.Certificate { return ca.root }

// Dir is the directory the CA lives in.
func (ca *CA) Dir() string { return ca.dir }

// Name says which CA signs, for output and lineage records.
func (ca *CA) Name() string {
	return "xmppcert local CA " + ca.root.Subject.CommonName + " (" + ca.dir + ")"
}

// Close stops the authority and releases the database.
func (ca *CA) Close() error { return ca.auth.Shutdown() }

// Issue signs a certificate for req's names with the key's public half,
// through the ACME provisioner and its template as an ACME order for the
// same names would be signed. The roles in req decide the SRV-IDs.
func (ca *CA) Issue(ctx context.Context, req acme.Request, key crypto.Signer) (*acme.Issued, error) {
	if len(req.Names) == 0 {
		return nil, errors.New("no names to certify")
	}
	csr, err := selfCSR(req.Host(), key)
	if err != nil {
		return nil, err
	}
	chain, err := ca.SignCSR(ctx, req, csr)
	if err != nil {
		return nil, err
	}
	return &acme.Issued{Chain: chain, Key: key, Issuer: ca.Name()}, nil
}

// SignCSR signs a certificate for req's names (their roles decide the
// SRV-IDs, as for Issue) with the public key of csr, whose signature
// proves possession of the key; the names in the CSR are not used. It
// returns the chain, leaf first. The daemon's HTTPS front uses it as
// certmagic's issuer, which holds the key.
func (ca *CA) SignCSR(ctx context.Context, req acme.Request, csr *x509.CertificateRequest) ([]*x509.Certificate, error) {
	if len(req.Names) == 0 {
		return nil, errors.New("no names to certify")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the CSR for %s: %w", req.Host(), err)
	}
	data := x509util.NewTemplateData()
	data.SetCommonName(req.Host())
	var components, anonymous []string
	jids := map[string]any{}
	sans := make([]x509util.SubjectAlternativeName, 0, len(req.Names))
	for _, n := range req.Names {
		sans = append(sans, x509util.SubjectAlternativeName{Type: x509util.DNSType, Value: n.Domain})
		switch n.Role {
		case xmppaddr.RoleComponent:
			components = append(components, n.Domain)
		case xmppaddr.RoleAnonymousHost:
			anonymous = append(anonymous, n.Domain)
		}
		if u, err := idna.Lookup.ToUnicode(n.Domain); err == nil && u != n.Domain {
			jids[n.Domain] = u
		}
	}
	data.SetSubjectAlternativeNames(sans...)
	for k, v := range templateData(components, anonymous, jids) {
		data.Set(k, v)
	}
	ctx = provisioner.NewContextWithMethod(ctx, provisioner.SignMethod)
	signOpts, err := ca.prov.AuthorizeSign(ctx, "")
	if err != nil {
		return nil, err
	}
	// The per-request roles replace the provisioner's static template
	// data; the template itself is the same one the ACME server uses.
	tmplOpts, err := provisioner.CustomTemplateOptions(&provisioner.Options{X509: &provisioner.X509Options{Template: Template}}, data, x509util.DefaultLeafTemplate)
	if err != nil {
		return nil, err
	}
	chain, err := ca.auth.SignWithContext(ctx, csr, provisioner.SignOptions{}, append(signOpts, tmplOpts)...)
	if err != nil {
		return nil, fmt.Errorf("signing for %s: %w", req.Host(), err)
	}
	return chain, nil
}

// selfCSR makes the CSR the authority signs: it proves possession of the
// key; the names come from the request through the template.
func selfCSR(cn string, key crypto.Signer) (*x509.CertificateRequest, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificateRequest(der)
}

// RootPEM reads the root certificate of the CA in dir without starting
// the authority (and without taking its database).
func RootPEM(dir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, rootCertFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotInitialized)
	}
	return b, err
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: not a PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}
