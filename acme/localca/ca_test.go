package localca

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// openTestCA creates and opens a CA in a temporary directory.
func openTestCA(t testing.TB, opts Options) *CA {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	ca, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	return ca
}

func TestInitLayoutAndRefusal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("CA dir mode %v, %v; want 0700", st.Mode().Perm(), err)
	}
	for _, k := range []string{rootKeyFile, interKeyFile} {
		st, err := os.Stat(filepath.Join(dir, k))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, %v; want 0600", k, st.Mode().Perm(), err)
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, rootCertFile))
	if err := Init(dir); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v; want ErrExists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, rootCertFile))
	if string(before) != string(after) {
		t.Fatal("second Init changed the root")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none"), Options{}); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Open of an empty dir: %v; want ErrNotInitialized", err)
	}
}

// TestInitOffline: the root's key goes to the named file only (0600),
// never into the CA directory; the CA opens and issues without it, and
// the key is the root certificate's. An existing file or link at the
// named path is refused and kept, and no CA is created.
func TestInitOffline(t *testing.T) {
	tmp := t.TempDir()
	dir, out := filepath.Join(tmp, "state", "ca"), filepath.Join(tmp, "offline", "root.key")
	if err := os.Mkdir(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := InitOffline(dir, out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, rootKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s in the CA directory: %v", rootKeyFile, err)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v; want mode 0600", out, st, err)
	}
	key, err := acme.ReadKey(out)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	if !ca.root.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		t.Error("the key written is not the root certificate's")
	}
	req := acme.Request{Key: acme.KeyECDSAP256, Names: []acme.Name{{Domain: "example.org", Role: xmppaddr.RoleHost}}}
	leafKey, _ := acme.KeyECDSAP256.Generate()
	if _, err := ca.Issue(context.Background(), req, leafKey); err != nil {
		t.Errorf("issuing with the root offline: %v", err)
	}

	for _, prepare := range []func(path string) error{
		func(path string) error { return os.WriteFile(path, []byte("keep"), 0o600) },
		func(path string) error { return os.Symlink(filepath.Join(tmp, "elsewhere"), path) },
	} {
		other, out := filepath.Join(tmp, "other-ca"), filepath.Join(tmp, "offline", "taken.key")
		os.Remove(out)
		if err := prepare(out); err != nil {
			t.Fatal(err)
		}
		if err := InitOffline(other, out); !errors.Is(err, os.ErrExist) {
			t.Errorf("InitOffline over an existing path: %v; want os.ErrExist", err)
		}
		if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a CA was created: %v", err)
		}
		if _, err := os.Lstat(out); err != nil {
			t.Errorf("the refused InitOffline removed what was at %s: %v", out, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(tmp, "elsewhere")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link's target was written: %v", err)
	}
}

// TestIssueRoles checks that every name gets the identities of its role
// and that the certificate passes verification for every service the
// role serves, and fails for the ones it does not.
func TestIssueRoles(t *testing.T) {
	ca := openTestCA(t, Options{})
	req := acme.Request{Key: acme.KeyECDSAP256, Names: []acme.Name{
		{Domain: "example.org", Role: xmppaddr.RoleHost},
		{Domain: "conference.example.org", Role: xmppaddr.RoleComponent},
		{Domain: "anon.example.org", Role: xmppaddr.RoleAnonymousHost},
		{Domain: "xn--bcher-kva.example", Role: xmppaddr.RoleHost},
	}}
	key, _ := acme.KeyECDSAP256.Generate()
	iss, err := ca.Issue(context.Background(), req, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf := iss.Leaf()
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("EKU %v; want serverAuth and clientAuth", leaf.ExtKeyUsage)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < DefaultLifetime-2*time.Minute || got > DefaultLifetime+2*time.Minute {
		t.Errorf("lifetime %v; want %v", got, DefaultLifetime)
	}
	var got []string
	ids := xmppaddr.Identities(leaf)
	for _, id := range ids.Identifiers {
		if id.Type != xmppaddr.TypeCN {
			got = append(got, string(id.Type)+":"+id.Value)
		}
	}
	want := []string{
		"dNSName:example.org", "SRVName:_xmpp-client.example.org", "SRVName:_xmpp-server.example.org", "XmppAddr:example.org",
		"dNSName:conference.example.org", "SRVName:_xmpp-server.conference.example.org", "XmppAddr:conference.example.org",
		"dNSName:anon.example.org", "SRVName:_xmpp-client.anon.example.org", "XmppAddr:anon.example.org",
		"dNSName:xn--bcher-kva.example", "SRVName:_xmpp-client.xn--bcher-kva.example", "SRVName:_xmpp-server.xn--bcher-kva.example", "XmppAddr:bücher.example",
	}
	if !slices.Equal(got, want) {
		t.Errorf("identities:\n got %q\nwant %q", got, want)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root())
	for _, n := range req.Names {
		for _, svc := range []xmppaddr.Service{xmppaddr.ServiceClient, xmppaddr.ServiceServer} {
			res, err := xmppaddr.Verify(iss.Chain, xmppaddr.Options{Domain: n.Domain, Service: svc, Roots: roots})
			if err != nil {
				t.Fatal(err)
			}
			serves := slices.Contains(n.Role.Services(), svc)
			srvMatched := false
			for _, m := range res.Matched {
				srvMatched = srvMatched || m.ReferenceType == xmppaddr.RefSRVID
			}
			if !res.Valid {
				t.Errorf("%s %s: not valid: %v", n.Domain, svc, res.Findings)
			}
			if srvMatched != serves {
				t.Errorf("%s %s: SRV-ID matched %v; the role serves it: %v", n.Domain, svc, srvMatched, serves)
			}
		}
	}
}

// TestInitSweepsLeftovers checks that a killed Init's temporary
// directory is removed by a later Init once it is stale, and that a
// fresh one (another Init at work) is left alone.
func TestInitSweepsLeftovers(t *testing.T) {
	parent := t.TempDir()
	stale := filepath.Join(parent, ".ca.tmp-1")
	fresh := filepath.Join(parent, ".ca.tmp-2")
	for _, d := range []string{stale, fresh} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleInit)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if err := Init(filepath.Join(parent, "ca")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale %s survived: %v", stale, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh %s was removed: %v", fresh, err)
	}
}
