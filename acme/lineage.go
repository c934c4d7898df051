package acme

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/xmppcert/xmppcert/internal/atomicfile"
	"github.com/xmppcert/xmppcert/internal/certfile"
)

// DiskStore is the Store of one machine: lineages in a state directory, in
// certbot's layout:
//
//	live/NAME -> ../archive/NAME/000003   the current version (a symlink)
//	archive/NAME/000003/cert.pem          leaf
//	archive/NAME/000003/chain.pem         intermediates
//	archive/NAME/000003/fullchain.pem     leaf and intermediates
//	archive/NAME/000003/privkey.pem       key, 0600
//	archive/NAME/000003/next-privkey.pem  the next key, pre-generated for pins, 0600
//	archive/NAME/000003/request.json      what was asked for, for renewal
//	locks/NAME.lock                       held while NAME is being issued
//	pins/NAME.json                        which keys' pins are published (pins.go)
//	renew/NAME.json                       a renewal not yet deployed, a CA's Retry-After
//	renew/NAME.ari.json                   the CA's last renewal window (renew.go)
//	deploy/NAME.json                      what each deploy target holds (deployrecord.go)
//
// live/NAME/fullchain.pem and live/NAME/privkey.pem are the paths certbot
// users know. A version is written completely in a temporary directory
// and renamed into place, then live/NAME is switched to it with one
// rename: at every moment the live certificate and key belong together.
type DiskStore struct {
	// Dir is the state directory.
	Dir string
}

// Lineage files, as certbot names them.
const (
	CertFile      = "cert.pem"
	ChainFile     = "chain.pem"
	FullchainFile = "fullchain.pem"
	KeyFile       = "privkey.pem"
	NextKeyFile   = "next-privkey.pem"
	RequestFile   = "request.json"
)

// Lineage is one version of a lineage, as a Store returns it.
type Lineage struct {
	// Name is the host, the lineage's name.
	Name string
	// Path is the lineage's directory on this machine in certbot's
	// layout (DiskStore's live/NAME, or a staged version's directory),
	// which deploy hooks are given as certbot's RENEWED_LINEAGE; empty
	// from a store that keeps no files here.
	Path    string
	Version int
	Request Request
	// Chain is the leaf first, then the intermediates.
	Chain []*x509.Certificate
	Key   crypto.Signer
	// NextKey is the key the lineage will switch to at a renewal, made
	// ahead so that its pins can be published first (pins.go). It is nil
	// for a version written before next keys existed.
	NextKey crypto.Signer
}

// File returns the path of one of the lineage's files under live/NAME.
func (l *Lineage) File(name string) string { return filepath.Join(l.Path, name) }

// TLSCertificate is the version's chain and key as crypto/tls presents
// them (as a TLS client certificate for SASL EXTERNAL, say); nil when
// the version has no chain or no key.
func (l *Lineage) TLSCertificate() *tls.Certificate {
	if len(l.Chain) == 0 || l.Key == nil {
		return nil
	}
	c := &tls.Certificate{PrivateKey: l.Key, Leaf: l.Chain[0]}
	for _, x := range l.Chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// ErrNoLineage is returned by Load for a name that has no lineage.
var ErrNoLineage = errors.New("no such lineage")

// LockedError says that another process is issuing for the lineage.
type LockedError struct {
	Name string
	PID  int // 0 when unknown
	// Node is the cluster node holding the lock (a cluster store's);
	// empty on one machine or when unknown.
	Node string
}

func (e *LockedError) Error() string {
	who := "another xmppcert process"
	switch {
	case e.Node != "":
		who = "cluster node " + strconv.Quote(e.Node)
	case e.PID > 0:
		who += fmt.Sprintf(" (pid %d)", e.PID)
	}
	return fmt.Sprintf("lineage %s is being issued by %s; nothing was done here, run again once it finishes", e.Name, who)
}

// Lock takes the lineage's lock, held across processes until unlock is
// called or the process dies (flock(2): a killed process leaves no stale
// lock). It does not wait: a held lock returns *LockedError.
func (s DiskStore) Lock(name string) (unlock func(), err error) {
	dir := filepath.Join(s.Dir, "locks")
	if err := atomicfile.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Never through a symbolic link: truncating the lock would truncate
	// whatever file it points to.
	path := filepath.Join(dir, name+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("lock file %s is a symbolic link, which is not followed", path)
	}
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := os.ReadFile(f.Name())
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return nil, &LockedError{Name: name, PID: pid}
		}
		return nil, err
	}
	// The pid is informational, for the other process's message.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// Names lists the lineages, sorted.
func (s DiskStore) Names() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "live"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Load reads the current version of a lineage. It resolves live/NAME
// once and reads every file from that version, so that a version made
// current meanwhile cannot mix into what it returns, and it checks that
// the key belongs to the certificate.
func (s DiskStore) Load(name string) (*Lineage, error) {
	version, n, req, err := s.resolve(name)
	if err != nil {
		return nil, err
	}
	return loadVersion(name, filepath.Join(s.Dir, "live", name), version, n, req)
}

// LoadVersion reads version n of a lineage from its archive: a staged
// version, not yet current. Its Path is the version's directory.
func (s DiskStore) LoadVersion(name string, n int) (*Lineage, error) {
	dir := s.versionDir(name, n)
	var req Request
	if err := readJSON(filepath.Join(dir, RequestFile), &req); err != nil {
		return nil, err
	}
	if len(req.Names) == 0 {
		return nil, fmt.Errorf("%s: version %d of lineage %s is missing or names no domain", dir, n, name)
	}
	return loadVersion(name, dir, dir, n, req)
}

func (s DiskStore) versionDir(name string, n int) string {
	return filepath.Join(s.Dir, "archive", name, versionName(n))
}

// versionName names version n's directory in its lineage's archive.
func versionName(n int) string { return fmt.Sprintf("%06d", n) }

// Layout tells safedir.Check what DiskStore numbers: the n
// subdirectories of a lineage's archive/NAME are its versions 1 to n
// (Write numbers them in turn and removes none but the one it fails to
// make current), so that the check of a large state directory lstats
// them instead of reading every archive/NAME. Other directories, or a
// lineage whose directories are otherwise, are read.
func Layout(rel string, n int) []string {
	parent, name, ok := strings.Cut(rel, "/")
	if !ok || parent != "archive" || name == "" || strings.Contains(name, "/") {
		return nil
	}
	names := make([]string, n)
	for i := range names {
		names[i] = versionName(i + 1)
	}
	return names
}

// loadVersion reads the certificate and keys of the version in dir.
func loadVersion(name, path, dir string, n int, req Request) (*Lineage, error) {
	l := &Lineage{Name: name, Path: path, Version: n, Request: req}
	var err error
	if l.Chain, err = certfile.Read(filepath.Join(dir, FullchainFile), nil); err != nil {
		return nil, err
	}
	if l.Key, err = ReadKey(filepath.Join(dir, KeyFile)); err != nil {
		return nil, err
	}
	if !SamePublicKey(l.Chain[0], l.Key) {
		return nil, fmt.Errorf("%s: the key does not belong to the certificate in %s", filepath.Join(dir, KeyFile), FullchainFile)
	}
	if l.NextKey, err = ReadKey(filepath.Join(dir, NextKeyFile)); errors.Is(err, fs.ErrNotExist) {
		l.NextKey, err = nil, nil
	}
	return l, err
}

// Versions lists the version numbers in a lineage's archive, ascending.
func (s DiskStore) Versions(name string) ([]int, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "archive", name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if v, err := strconv.Atoi(e.Name()); err == nil && v > 0 {
			out = append(out, v)
		}
	}
	sort.Ints(out)
	return out, nil
}

// VersionLeaf reads the leaf certificate of version n of a lineage, and
// nothing else of it.
func (s DiskStore) VersionLeaf(name string, n int) (*x509.Certificate, error) {
	certs, err := certfile.Read(filepath.Join(s.versionDir(name, n), CertFile), nil)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// Promote makes version n of a lineage, written staged, the current one.
// The caller holds the lineage's lock.
func (s DiskStore) Promote(name string, n int) (*Lineage, error) {
	l, err := s.LoadVersion(name, n)
	if err != nil {
		return nil, err
	}
	link := filepath.Join(s.Dir, "live", name)
	if err := atomicfile.Symlink(filepath.Join("..", "archive", name, versionName(n)), link); err != nil {
		return nil, fmt.Errorf("making version %d of %s current: %w", n, name, err)
	}
	l.Path = link
	return l, nil
}

// resolve follows live/NAME once and reads the request of the version it
// points at: the version's directory, its number and its request. Load
// and Current read every other file from that directory, so that a
// version made current meanwhile cannot mix into what they return.
func (s DiskStore) resolve(name string) (dir string, version int, req Request, err error) {
	live := filepath.Join(s.Dir, "live", name)
	target, err := os.Readlink(live)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, req, fmt.Errorf("%s: %w", name, ErrNoLineage)
	}
	if err != nil {
		return "", 0, req, err
	}
	dir = target
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(live), target)
	}
	version, _ = strconv.Atoi(filepath.Base(target))
	b, err := readStored(filepath.Join(dir, RequestFile))
	if err != nil {
		return "", 0, req, err
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return "", 0, req, fmt.Errorf("%s: %w", filepath.Join(dir, RequestFile), err)
	}
	if len(req.Names) == 0 {
		return "", 0, req, fmt.Errorf("%s names no domain", filepath.Join(dir, RequestFile))
	}
	return dir, version, req, nil
}

// Write stores a new version of the lineage and makes it current, or
// with req.Stage leaves it beside the current one (Promote). It
// returns a nil Lineage with an error when the previous version (if any)
// is still current and nothing of the new one is left on disk, and the
// new Lineage with an error in the one case where the switch happened
// but could not be made durable. The caller holds the lineage's lock.
func (s DiskStore) Write(req Request, iss *Issued, next crypto.Signer) (*Lineage, error) {
	name := req.Host()
	arch := filepath.Join(s.Dir, "archive", name)
	liveDir := filepath.Join(s.Dir, "live")
	link := filepath.Join(liveDir, name)
	for _, d := range []string{arch, liveDir} {
		if err := atomicfile.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	version, err := sweep(arch)
	if err != nil {
		return nil, err
	}
	version++
	files, err := encodeLineage(req, iss, next)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(arch, ".tmp-")
	if err != nil {
		return nil, err
	}
	if err := writeAllSynced(tmp, files); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	vname := versionName(version)
	vdir := filepath.Join(arch, vname)
	if err := os.Rename(tmp, vdir); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := atomicfile.SyncDir(arch); err != nil {
		os.RemoveAll(vdir)
		return nil, err
	}
	l := &Lineage{Name: name, Path: link, Version: version, Request: req, Chain: iss.Chain, Key: iss.Key, NextKey: next}
	if req.Stage {
		l.Path = vdir
		return l, nil
	}
	target := filepath.Join("..", "archive", name, vname)
	if err := atomicfile.Symlink(target, link); err != nil {
		if cur, _ := os.Readlink(link); cur == target {
			return l, fmt.Errorf("version %d is current, but making the switch durable failed: %w", version, err)
		}
		// The new version never went live: leave the archive as it was.
		os.RemoveAll(vdir)
		return nil, err
	}
	return l, nil
}

// sweep removes the temporary versions an interrupted write left in a
// lineage's archive and returns the highest version there. (A temporary
// link it left next to live/NAME is replaced by the next switch.)
func sweep(arch string) (int, error) {
	ents, err := os.ReadDir(arch)
	if err != nil {
		return 0, err
	}
	max := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			// Best effort: a leftover that resists does not stop renewal,
			// and new temporaries get fresh names.
			os.RemoveAll(filepath.Join(arch, e.Name()))
			continue
		}
		if v, err := strconv.Atoi(e.Name()); err == nil && v > max {
			max = v
		}
	}
	return max, nil
}

type lineageFile struct {
	name string
	data []byte
	perm os.FileMode
}

func encodeLineage(req Request, iss *Issued, next crypto.Signer) ([]lineageFile, error) {
	keyPEM, err := encodeKey(iss.Key)
	if err != nil {
		return nil, err
	}
	nextPEM, err := encodeKey(next)
	if err != nil {
		return nil, err
	}
	reqJSON, err := storedJSON(req)
	if err != nil {
		return nil, err
	}
	var chain bytes.Buffer
	for _, c := range iss.Chain[1:] {
		pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.Chain[0].Raw})
	return []lineageFile{
		{CertFile, cert, 0o644},
		{ChainFile, chain.Bytes(), 0o644},
		{FullchainFile, append(append([]byte{}, cert...), chain.Bytes()...), 0o644},
		{KeyFile, keyPEM, 0o600},
		{NextKeyFile, nextPEM, 0o600},
		{RequestFile, reqJSON, 0o644},
	}, nil
}

// encodeKey is a key in the PEM PKCS#8 form ReadKey reads.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeAllSynced writes the files of a version into the new directory
// dir and makes them and their directory entries durable with one
// syncfs(2) instead of an fsync per file and one for the directory: each
// fsync is a journal commit, and on a disk where a commit costs half a
// millisecond the single flush made an issuance 1.3 to 2.3 times as fast
// (BenchmarkIssue, side by side, on the development machine). The files are created exclusively with
// their final modes, so a key is never readable by others.
func writeAllSynced(dir string, files []lineageFile) error {
	for _, f := range files {
		if err := writeNew(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("flushing %s to disk: %w", dir, err)
	}
	return nil
}

// storedJSON is the form of the JSON files xmppcert keeps: indented, one
// trailing newline, and "<>&" as they are (hook commands stay readable).
func storedJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeNew creates a file that must not exist yet and writes data to it.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadKey reads a PEM PKCS#8 private key, the form lineages store.
func ReadKey(path string) (crypto.Signer, error) {
	b, err := readStored(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported key type", path)
	}
	return s, nil
}
