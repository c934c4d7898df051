package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// A lineage's desired state is its stored request (request.json). Only
// an explicit operator action changes its names, roles, CA or key and
// validity settings, and every change is reported: Merge compares what
// is asked for with what is stored and says what differs.

// NameChange is one difference between the names of two requests: a
// name added (From is empty), removed (To is empty) or given another
// role.
type NameChange struct {
	Domain string `json:"domain"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

func (c NameChange) String() string {
	switch {
	case c.From == "":
		return fmt.Sprintf("+ %s (%s)", c.Domain, c.To)
	case c.To == "":
		return fmt.Sprintf("- %s (%s)", c.Domain, c.From)
	}
	return fmt.Sprintf("%s: %s -> %s", c.Domain, c.From, c.To)
}

// SettingChange is a setting of a stored request that an issuance asks
// to change: "key type", "reuse key" or "days".
type SettingChange struct {
	Setting string `json:"setting"`
	From    string `json:"from"`
	To      string `json:"to"`
}

func (c SettingChange) String() string { return c.Setting + ": " + c.From + " -> " + c.To }

// RequestChanges is what an issuance changes in a lineage's stored
// request. The zero value means nothing changed.
type RequestChanges struct {
	// Names are the names added, removed or given another role.
	Names []NameChange `json:"names,omitempty"`
	// CAFrom and CATo are set when the CA changes.
	CAFrom string `json:"ca_from,omitempty"`
	CATo   string `json:"ca_to,omitempty"`
	// DeployAdded and DeployRemoved are deploy targets (as stored,
	// "prosody:/etc/prosody/certs"); HooksAdded and HooksRemoved hook
	// commands.
	DeployAdded   []string `json:"deploy_added,omitempty"`
	DeployRemoved []string `json:"deploy_removed,omitempty"`
	HooksAdded    []string `json:"hooks_added,omitempty"`
	HooksRemoved  []string `json:"hooks_removed,omitempty"`
	// Settings are the key and validity settings asked for that differ
	// from those stored.
	Settings []SettingChange `json:"settings,omitempty"`
}

// Identity reports whether the names, their roles or the CA change:
// what a certificate certifies, which only an explicit action replaces.
func (c RequestChanges) Identity() bool { return len(c.Names) > 0 || c.CAFrom != c.CATo }

// Empty reports whether nothing changes.
func (c RequestChanges) Empty() bool {
	return !c.Identity() && len(c.DeployAdded)+len(c.DeployRemoved)+len(c.HooksAdded)+len(c.HooksRemoved)+len(c.Settings) == 0
}

// IdentityString is the names and CA part of the changes, as one line:
// "- muc.example.org (component), + upload.example.org (component), CA
// local -> https://...".
func (c RequestChanges) IdentityString() string {
	var parts []string
	for _, n := range c.Names {
		parts = append(parts, n.String())
	}
	if c.CAFrom != c.CATo {
		parts = append(parts, "CA "+c.CAFrom+" -> "+c.CATo)
	}
	return strings.Join(parts, ", ")
}

// ReplacePolicy says which parts of a stored request an issuance may
// replace. By default names, roles and CA must stay as stored, and the
// stored deploy targets and hooks are kept, new ones added to them.
type ReplacePolicy struct {
	// ReplaceNames allows other names, roles or another CA.
	ReplaceNames bool
	// NoDeploy drops the stored deploy targets; NoHooks the stored
	// hooks. Those of the new request are kept either way.
	NoDeploy, NoHooks bool
	// Given says which of the new request's key and validity settings
	// were asked for; the others are defaults, and the stored ones stay.
	Given GivenSettings
}

// GivenSettings names the settings of a request that were asked for,
// as opposed to left at their defaults.
type GivenSettings struct {
	// Key is the key type, ReuseKey whether the key is kept at renewal,
	// Days the embedded CA's validity.
	Key, ReuseKey, Days bool
}

// NamesChangedError says that an issuance asks for other names, roles
// or another CA than the lineage's stored request, and was not allowed
// to replace them. Nothing was written.
type NamesChangedError struct {
	Lineage string
	Changes RequestChanges
}

func (e *NamesChangedError) Error() string {
	return fmt.Sprintf("lineage %s is stored with other names or CA than asked for (%s); nothing was changed", e.Lineage, e.Changes.IdentityString())
}

// ErrNothingToReplace says that replacing names was allowed but the
// names, roles and CA asked for are those stored.
var ErrNothingToReplace = errors.New("the names, roles and CA asked for are those stored; there is nothing to replace")

// Merge is the request an issuance of wanted over a lineage stored with
// stored makes, under policy p, and what it changes. A change of names,
// roles or CA without p.ReplaceNames is a *NamesChangedError, and
// p.ReplaceNames without one is ErrNothingToReplace. Deploy targets and
// hooks are the stored ones (unless dropped) followed by new ones, and
// the servers' configuration files and the endpoints to check wanted's
// or else the stored ones. The key type, key reuse and the embedded CA's
// validity are the stored ones unless p.Given says they were asked for;
// those asked for that differ are changes. Every other setting (ACME
// settings) is wanted's.
func Merge(stored, wanted acme.Request, p ReplacePolicy) (acme.Request, RequestChanges, error) {
	var ch RequestChanges
	ch.Names = nameChanges(stored.Names, wanted.Names)
	if caName(stored) != caName(wanted) {
		ch.CAFrom, ch.CATo = caName(stored), caName(wanted)
	}
	switch {
	case ch.Identity() && !p.ReplaceNames:
		return acme.Request{}, ch, &NamesChangedError{Lineage: stored.Host(), Changes: ch}
	case !ch.Identity() && p.ReplaceNames:
		return acme.Request{}, ch, ErrNothingToReplace
	}
	out := wanted
	if out.ProsodyConfig == "" && !p.NoDeploy {
		out.ProsodyConfig = stored.ProsodyConfig
	}
	if out.EjabberdCtlConfig == "" && !p.NoDeploy {
		out.EjabberdCtlConfig = stored.EjabberdCtlConfig
	}
	if len(out.ServeCheck) == 0 {
		out.ServeCheck = stored.ServeCheck
	}
	out.Deploy, ch.DeployAdded, ch.DeployRemoved = mergeList(stored.Deploy, wanted.Deploy, p.NoDeploy)
	out.Hooks, ch.HooksAdded, ch.HooksRemoved = mergeList(stored.Hooks, wanted.Hooks, p.NoHooks)
	ch.Settings = mergeSettings(stored, &out, p.Given)
	return out, ch, nil
}

// mergeSettings keeps in out the key and validity settings of stored
// that given says were not asked for, and lists those asked for that
// differ. A validity is kept only from the embedded CA to itself.
func mergeSettings(stored acme.Request, out *acme.Request, given GivenSettings) []SettingChange {
	var ch []SettingChange
	keyType := func(r acme.Request) string {
		if r.Key == "" {
			return string(acme.KeyECDSAP256)
		}
		return string(r.Key)
	}
	yesNo := map[bool]string{true: "yes", false: "no"}
	switch {
	case !given.Key:
		out.Key = stored.Key
	case keyType(stored) != keyType(*out):
		ch = append(ch, SettingChange{"key type", keyType(stored), keyType(*out)})
	}
	switch {
	case !given.ReuseKey:
		out.ReuseKey = stored.ReuseKey
	case stored.ReuseKey != out.ReuseKey:
		ch = append(ch, SettingChange{"reuse key", yesNo[stored.ReuseKey], yesNo[out.ReuseKey]})
	}
	switch {
	case !LocalCA(stored) || !LocalCA(*out):
	case !given.Days:
		out.Days = stored.Days
	case stored.Days != out.Days:
		ch = append(ch, SettingChange{"days", fmt.Sprint(stored.Days), fmt.Sprint(out.Days)})
	}
	return ch
}

// caName is the request's CA as stored: "local" for the embedded CA.
func caName(r acme.Request) string {
	if LocalCA(r) {
		return "local"
	}
	return r.CA
}

// nameChanges lists the names removed from old, those given another
// role, then those added, in the order of each request.
func nameChanges(old, new []acme.Name) []NameChange {
	role := func(names []acme.Name, d string) (xmppaddr.Role, bool) {
		for _, n := range names {
			if n.Domain == d {
				return n.Role, true
			}
		}
		return 0, false
	}
	var out []NameChange
	for _, o := range old {
		switch r, ok := role(new, o.Domain); {
		case !ok:
			out = append(out, NameChange{Domain: o.Domain, From: o.Role.String()})
		case r != o.Role:
			out = append(out, NameChange{Domain: o.Domain, From: o.Role.String(), To: r.String()})
		}
	}
	for _, n := range new {
		if _, ok := role(old, n.Domain); !ok {
			out = append(out, NameChange{Domain: n.Domain, To: n.Role.String()})
		}
	}
	return out
}

// mergeList is stored (none when drop) followed by the entries of
// wanted it lacks, with what that adds to and removes from stored.
func mergeList(stored, wanted []string, drop bool) (merged, added, removed []string) {
	if !drop {
		merged = slices.Clone(stored)
	}
	for _, w := range wanted {
		if !slices.Contains(merged, w) {
			merged = append(merged, w)
		}
	}
	for _, m := range merged {
		if !slices.Contains(stored, m) {
			added = append(added, m)
		}
	}
	for _, s := range stored {
		if !slices.Contains(merged, s) {
			removed = append(removed, s)
		}
	}
	return merged, added, removed
}
