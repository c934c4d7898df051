package ct

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/xmppcert/xmppcert/acme"
)

// LineageMatcher is the Matcher of every lineage in store: every
// version's certificate, their current and next keys, and the names of
// their stored requests, or only names when given (a one-off search for
// one domain, which need not be a lineage's).
func LineageMatcher(store acme.Store, names ...string) (*Matcher, error) {
	m, err := lineageMatcher(store)
	if err != nil || len(names) == 0 {
		return m, err
	}
	only := map[string]string{}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		only[n] = n
		if l, ok := m.names[n]; ok {
			only[n] = l
		}
	}
	m.names = only
	return m, nil
}

func lineageMatcher(store acme.Store) (*Matcher, error) {
	lineages, err := store.Names()
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	keys := map[[32]byte]string{}
	var issued []Issued
	for _, name := range lineages {
		l, err := store.Load(name)
		if err != nil {
			return nil, fmt.Errorf("lineage %s: %w", name, err)
		}
		for _, d := range l.Request.Domains() {
			byName[d] = name
		}
		for _, k := range []crypto.Signer{l.Key, l.NextKey} {
			if k == nil {
				continue
			}
			if der, err := x509.MarshalPKIXPublicKey(k.Public()); err == nil {
				keys[sha256.Sum256(der)] = name
			}
		}
		versions, err := store.Versions(name)
		if err != nil {
			return nil, fmt.Errorf("lineage %s: %w", name, err)
		}
		for _, v := range versions {
			leaf, err := store.VersionLeaf(name, v)
			if err != nil {
				return nil, fmt.Errorf("lineage %s version %d: %w", name, v, err)
			}
			issued = append(issued, Issued{Lineage: name, Cert: leaf})
		}
	}
	return NewMatcher(byName, issued, keys)
}
