package lifecycle

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func TestMerge(t *testing.T) {
	stored := acme.Request{CA: "local", Names: []acme.Name{
		{Domain: "example.org", Role: xmppaddr.RoleHost},
		{Domain: "muc.example.org", Role: xmppaddr.RoleComponent},
	}, Deploy: []string{"prosody:/etc/prosody/certs"}, Hooks: []string{"reload-it"}}
	same := stored
	same.Deploy, same.Hooks = nil, nil
	fewer := same
	fewer.Names = stored.Names[:1]
	other := same
	other.Names = []acme.Name{{Domain: "example.org", Role: xmppaddr.RoleAnonymousHost}, stored.Names[1], {Domain: "upload.example.org", Role: xmppaddr.RoleComponent}}
	public := same
	public.CA = "https://acme.example/directory"
	withTarget := same
	withTarget.Deploy = []string{"ejabberd:/etc/ejabberd/x.pem", "prosody:/etc/prosody/certs"}

	for _, tc := range []struct {
		name    string
		wanted  acme.Request
		p       ReplacePolicy
		err     error
		changes RequestChanges
		deploy  []string
		hooks   []string
	}{
		{name: "same names keep targets and hooks", wanted: same, deploy: stored.Deploy, hooks: stored.Hooks},
		{name: "new target added", wanted: withTarget, deploy: []string{"prosody:/etc/prosody/certs", "ejabberd:/etc/ejabberd/x.pem"}, hooks: stored.Hooks,
			changes: RequestChanges{DeployAdded: []string{"ejabberd:/etc/ejabberd/x.pem"}}},
		{name: "no-deploy no-hooks", wanted: same, p: ReplacePolicy{NoDeploy: true, NoHooks: true},
			changes: RequestChanges{DeployRemoved: stored.Deploy, HooksRemoved: stored.Hooks}},
		{name: "fewer names refused", wanted: fewer, err: &NamesChangedError{},
			changes: RequestChanges{Names: []NameChange{{Domain: "muc.example.org", From: "component"}}}},
		{name: "fewer names replaced", wanted: fewer, p: ReplacePolicy{ReplaceNames: true}, deploy: stored.Deploy, hooks: stored.Hooks,
			changes: RequestChanges{Names: []NameChange{{Domain: "muc.example.org", From: "component"}}}},
		{name: "role and added name", wanted: other, p: ReplacePolicy{ReplaceNames: true}, deploy: stored.Deploy, hooks: stored.Hooks,
			changes: RequestChanges{Names: []NameChange{{Domain: "example.org", From: "host", To: "anonymous"}, {Domain: "upload.example.org", To: "component"}}}},
		{name: "CA refused", wanted: public, err: &NamesChangedError{},
			changes: RequestChanges{CAFrom: "local", CATo: "https://acme.example/directory"}},
		{name: "replace without a change", wanted: same, p: ReplacePolicy{ReplaceNames: true}, err: ErrNothingToReplace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ch, err := Merge(stored, tc.wanted, tc.p)
			switch want := tc.err.(type) {
			case nil:
				if err != nil {
					t.Fatalf("Merge: %v", err)
				}
			case *NamesChangedError:
				var nc *NamesChangedError
				if !errors.As(err, &nc) || !reflect.DeepEqual(nc.Changes, tc.changes) {
					t.Fatalf("Merge: %v; want a *NamesChangedError with %+v", err, tc.changes)
				}
				return
			default:
				if !errors.Is(err, want) {
					t.Fatalf("Merge: %v; want %v", err, want)
				}
				return
			}
			if !reflect.DeepEqual(ch, tc.changes) {
				t.Errorf("changes %+v; want %+v", ch, tc.changes)
			}
			if !slices.Equal(got.Deploy, tc.deploy) || !slices.Equal(got.Hooks, tc.hooks) {
				t.Errorf("deploy %q hooks %q; want %q %q", got.Deploy, got.Hooks, tc.deploy, tc.hooks)
			}
			if !reflect.DeepEqual(got.Names, tc.wanted.Names) || got.CA != tc.wanted.CA {
				t.Errorf("names %v CA %s; want the wanted ones", got.Names, got.CA)
			}
		})
	}
}

// TestMergeSettings: the key type, key reuse and the embedded CA's
// validity stay as stored unless asked for; those asked for that differ
// are changes, and a validity is never carried to or from an ACME CA.
func TestMergeSettings(t *testing.T) {
	names := []acme.Name{{Domain: "example.org", Role: xmppaddr.RoleHost}}
	stored := acme.Request{CA: "local", Names: names, Key: acme.KeyRSA2048, ReuseKey: true, Days: 30}
	defaults := acme.Request{CA: "local", Names: names, Key: acme.KeyECDSAP256, Days: 90}
	public := acme.Request{CA: "https://acme.example/directory", Names: names, Key: acme.KeyECDSAP256, Days: 0}
	all := GivenSettings{Key: true, ReuseKey: true, Days: true}
	for _, tc := range []struct {
		name           string
		stored, wanted acme.Request
		p              ReplacePolicy
		want           acme.Request
		changes        []SettingChange
	}{
		{name: "defaults keep what is stored", stored: stored, wanted: defaults, want: stored},
		{name: "asked for, and different", stored: stored, wanted: defaults, p: ReplacePolicy{Given: all},
			want: defaults, changes: []SettingChange{{"key type", "rsa2048", "ecdsa-p256"}, {"reuse key", "yes", "no"}, {"days", "30", "90"}}},
		{name: "asked for, and the same", stored: stored, wanted: stored, p: ReplacePolicy{Given: all}, want: stored},
		{name: "a key type stored empty is ECDSA P-256", stored: acme.Request{CA: "local", Names: names, Days: 90}, wanted: defaults,
			p: ReplacePolicy{Given: all}, want: defaults},
		{name: "to an ACME CA no validity is kept", stored: stored, wanted: public, p: ReplacePolicy{ReplaceNames: true},
			want: acme.Request{CA: public.CA, Names: names, Key: acme.KeyRSA2048, ReuseKey: true}},
		{name: "from an ACME CA the default validity", stored: public, wanted: defaults, p: ReplacePolicy{ReplaceNames: true}, want: defaults},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ch, err := Merge(tc.stored, tc.wanted, tc.p)
			if err != nil {
				t.Fatalf("Merge: %v", err)
			}
			if got.Key != tc.want.Key || got.ReuseKey != tc.want.ReuseKey || got.Days != tc.want.Days {
				t.Errorf("key %q, reuse %v, days %d; want %q, %v, %d", got.Key, got.ReuseKey, got.Days, tc.want.Key, tc.want.ReuseKey, tc.want.Days)
			}
			if !reflect.DeepEqual(ch.Settings, tc.changes) {
				t.Errorf("changes %v; want %v", ch.Settings, tc.changes)
			}
			if ch.Empty() != (len(tc.changes) == 0 && !ch.Identity()) {
				t.Errorf("Empty() = %v with changes %+v", ch.Empty(), ch)
			}
		})
	}
}

// contents is everything e keeps, for "nothing changed": every file of
// its state directory, and a memStore's contents.
func contents(t *testing.T, e *Engine) map[string]string {
	t.Helper()
	out := map[string]string{}
	if m, ok := e.Store.(*memStore); ok {
		out["memStore"] = m.snapshot()
	}
	err := filepath.WalkDir(e.StateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			out[p] = "-> " + target
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestIssueKeepsDesiredState: a plain re-issue keeps the stored deploy
// targets and hooks (and runs them); fewer names without ReplaceNames is
// refused with the difference and leaves the lineage byte-identical;
// with it, the new version drops the name and says so.
func TestIssueKeepsDesiredState(t *testing.T) { eachStore(t, testIssueKeepsDesiredState) }

func testIssueKeepsDesiredState(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, _ := newEngine(t, clock, ca, newStore)
	cmd, log, _ := hook(t)
	req := request(t, "example.org", "muc.example.org")
	req.Hooks = []string{cmd}
	if _, err := e.Issue(ctx, req, IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}

	again := request(t, "example.org", "muc.example.org")
	rep, err := e.Issue(ctx, again, IssueOptions{}, ReplacePolicy{})
	if err != nil || rep.Version != 2 || !rep.Changes.Empty() {
		t.Fatalf("plain re-issue: %+v, %v; want version 2, nothing changed", rep, err)
	}
	if l, _ := e.Store.Load("example.org"); l == nil || !slices.Equal(l.Request.Hooks, []string{cmd}) {
		t.Errorf("plain re-issue stored %+v; want the hook kept", l.Request)
	}
	if want := []string{"issued example.org muc.example.org", "issued example.org muc.example.org"}; !slices.Equal(testtool.Lines(t, log), want) {
		t.Errorf("hook calls %q; want %q", testtool.Lines(t, log), want)
	}

	before := contents(t, e)
	fewer := request(t, "example.org")
	_, err = e.Issue(ctx, fewer, IssueOptions{}, ReplacePolicy{})
	var nc *NamesChangedError
	if !errors.As(err, &nc) || nc.Changes.IdentityString() != "- muc.example.org (component)" {
		t.Fatalf("fewer names: %v; want a *NamesChangedError naming muc.example.org", err)
	}
	if after := contents(t, e); !reflect.DeepEqual(before, after) {
		t.Errorf("the refused re-issue changed the store")
	}
	if n := len(ca.requests()); n != 2 {
		t.Errorf("%d issuances; the refused one reached the CA", n)
	}

	rep, err = e.Issue(ctx, fewer, IssueOptions{}, ReplacePolicy{ReplaceNames: true})
	if err != nil || rep.Version != 3 || len(rep.Names) != 1 || rep.Changes.IdentityString() != "- muc.example.org (component)" {
		t.Fatalf("with ReplaceNames: %+v, %v; want version 3 for example.org alone, the change named", rep, err)
	}
	if _, err := e.Issue(ctx, fewer, IssueOptions{}, ReplacePolicy{ReplaceNames: true}); !errors.Is(err, ErrNothingToReplace) {
		t.Errorf("ReplaceNames with nothing to replace: %v; want ErrNothingToReplace", err)
	}
}
