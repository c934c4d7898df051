package changes

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/watcher"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	certA  = "aaaa000000000000000000000000000000000000000000000000000000000001"
	certB  = "bbbb000000000000000000000000000000000000000000000000000000000002"
	keyA   = "ca11000000000000000000000000000000000000000000000000000000000001"
	keyB   = "ca22000000000000000000000000000000000000000000000000000000000002"
	interA = "1111000000000000000000000000000000000000000000000000000000000001"
	interB = "2222000000000000000000000000000000000000000000000000000000000002"
)

// base is a healthy s2s endpoint whose certificate expires in 60 days.
func base() watcher.Observation {
	return watcher.Observation{
		Endpoint:  watcher.EndpointKey{Domain: "example.org", Service: "xmpp-server", Host: "xmpp.example.org", Port: 5269, Address: "192.0.2.1:5269"},
		At:        now,
		Reachable: true,
		Chain: []watcher.CertSummary{
			{SHA256: certA, SPKISHA256: keyA, Subject: "CN=example.org", Issuer: "CN=R10,O=Let's Encrypt", NotAfter: now.Add(60 * 24 * time.Hour)},
			{SHA256: interA, SPKISHA256: "i1", Subject: "CN=R10,O=Let's Encrypt", Issuer: "CN=ISRG Root X1"},
		},
		Valid:            true,
		Matched:          []string{"DNS-ID example.org", "SRV-ID _xmpp-server.example.org"},
		TLSVersion:       "TLS 1.3",
		Cipher:           "TLS_AES_128_GCM_SHA256",
		Group:            "X25519",
		ForwardSecret:    true,
		StartTLSRequired: true,
		Dialback:         true,
		SASL:             []string{"EXTERNAL"},
		External:         "success",
	}
}

func with(f func(*watcher.Observation)) watcher.Observation {
	o := base()
	o.Chain = slices.Clone(o.Chain)
	o.Matched = slices.Clone(o.Matched)
	f(&o)
	return o
}

func newLeaf(sha, spki, issuer string) func(*watcher.Observation) {
	return func(o *watcher.Observation) {
		o.Chain[0].SHA256, o.Chain[0].SPKISHA256 = sha, spki
		if issuer != "" {
			o.Chain[0].Issuer = issuer
		}
	}
}

type want struct {
	kind Kind
	sev  Severity
}

func TestClassify(t *testing.T) {
	down := func(o *watcher.Observation) {
		*o = watcher.Observation{Endpoint: o.Endpoint, At: o.At, Failure: "connect-refused"}
	}
	p := func(o watcher.Observation) *watcher.Observation { return &o }
	tests := []struct {
		name string
		prev *watcher.Observation
		cur  watcher.Observation
		ctx  Context
		want []want
	}{
		{"first seen", nil, base(), Context{}, []want{{FirstSeen, Info}}},
		{"first seen unreachable", nil, with(down), Context{}, []want{{FirstSeen, Info}}},
		{"equal, no expiry", p(base()), base(), Context{Now: now}, nil},
		{"renewal same key", p(base()), with(newLeaf(certB, keyA, "")), Context{}, []want{{RenewalSameKey, Info}}},
		{"renewal pre-announced next key", p(base()), with(newLeaf(certB, keyB, "")),
			Context{CurrentSPKI: []string{keyA}, NextSPKI: []string{strings.ToUpper(keyB)}}, []want{{RenewalNextKey, Info}}},
		{"own renewal, key not announced", p(base()), with(newLeaf(certB, keyB, "")),
			Context{IssuedCerts: []string{certB}}, []want{{RenewalOwnKey, Info}}},
		{"unexpected key change", p(base()), with(newLeaf(certB, keyB, "")), Context{}, []want{{KeyChanged, Warning}}},
		{"unexpected key change, old key ours (pinned)", p(base()), with(newLeaf(certB, keyB, "")),
			Context{CurrentSPKI: []string{keyA}}, []want{{KeyChanged, Critical}}},
		{"unexpected key change, old key pinned for a peer", p(base()), with(newLeaf(certB, keyB, "")),
			Context{PinnedSPKI: []string{keyA}}, []want{{KeyChanged, Critical}}},
		{"new key from a new CA gives both", p(base()), with(newLeaf(certB, keyB, "CN=Other CA")), Context{},
			[]want{{KeyChanged, Warning}, {IssuerChanged, Warning}}},
		{"next key from a new CA", p(base()), with(newLeaf(certB, keyB, "CN=Other CA")), Context{NextSPKI: []string{keyB}},
			[]want{{RenewalNextKey, Info}, {IssuerChanged, Warning}}},
		{"own cert from our new CA", p(base()), with(newLeaf(certB, keyA, "CN=xmppcert local CA")), Context{IssuedCerts: []string{certB}},
			[]want{{RenewalSameKey, Info}, {IssuerChanged, Info}}},
		{"same leaf, new intermediate", p(base()), with(func(o *watcher.Observation) { o.Chain[1].SHA256 = interB }), Context{},
			[]want{{ChainChanged, Info}}},
		{"identity dropped and added", p(base()), with(func(o *watcher.Observation) {
			o.Matched = []string{"DNS-ID example.org", "XmppAddr example.org"}
		}), Context{}, []want{{IdentityDropped, Warning}, {IdentityAdded, Info}}},
		{"certificate no longer valid", p(base()), with(func(o *watcher.Observation) { o.Valid, o.Matched = false, nil }), Context{},
			[]want{{IdentityDropped, Warning}, {IdentityDropped, Warning}, {IdentityInvalid, Critical}}},
		{"certificate valid again", p(with(func(o *watcher.Observation) { o.Valid = false })), base(), Context{},
			[]want{{IdentityValid, Info}}},
		{"TLS version downgrade", p(base()), with(func(o *watcher.Observation) {
			o.TLSVersion, o.Cipher = "TLS 1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
		}), Context{}, []want{{TLSVersionDowngrade, Warning}}},
		{"TLS version upgrade is quiet", p(with(func(o *watcher.Observation) { o.TLSVersion = "TLS 1.2" })), base(), Context{}, nil},
		{"forward secrecy lost, weaker cipher", p(base()), with(func(o *watcher.Observation) {
			o.TLSVersion, o.Cipher, o.Group, o.ForwardSecret = "TLS 1.2", "TLS_RSA_WITH_AES_128_CBC_SHA", "", false
		}), Context{}, []want{{TLSVersionDowngrade, Warning}, {ForwardSecrecyLost, Warning}, {CipherWeaker, Warning}}},
		{"cipher weaker only", p(with(func(o *watcher.Observation) {
			o.TLSVersion, o.Cipher = "TLS 1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
		})), with(func(o *watcher.Observation) {
			o.TLSVersion, o.Cipher = "TLS 1.2", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"
		}), Context{}, []want{{CipherWeaker, Warning}}},
		{"starttls no longer required", p(base()), with(func(o *watcher.Observation) { o.StartTLSRequired = false }), Context{},
			[]want{{StartTLSNotRequired, Warning}}},
		{"dialback lost", p(base()), with(func(o *watcher.Observation) { o.Dialback = false }), Context{}, []want{{DialbackLost, Warning}}},
		{"external lost", p(base()), with(func(o *watcher.Observation) { o.External = "failure" }), Context{}, []want{{ExternalLost, Warning}}},
		{"external never worked is quiet", p(with(func(o *watcher.Observation) { o.External = "failure" })),
			with(func(o *watcher.Observation) { o.External = "not-offered" }), Context{}, nil},
		{"unreachable", p(base()), with(down), Context{Now: now}, []want{{Unreachable, Warning}}},
		{"still unreachable", p(with(down)), with(down), Context{Now: now}, nil},
		{"recovered", p(with(down)), base(), Context{}, []want{{Recovered, Info}}},
		{"recovered with a new key, compared across the outage", p(with(down)), with(newLeaf(certB, keyB, "")),
			Context{LastReachable: p(base())}, []want{{Recovered, Info}, {KeyChanged, Warning}}},
		{"expiry 30d", p(base()), with(func(o *watcher.Observation) { o.Chain[0].NotAfter = now.Add(29 * 24 * time.Hour) }),
			Context{Now: now}, []want{{Expiry30d, Warning}}},
		{"expiry 7d", p(base()), with(func(o *watcher.Observation) { o.Chain[0].NotAfter = now.Add(7 * 24 * time.Hour) }),
			Context{Now: now}, []want{{Expiry7d, Warning}}},
		{"expiry 1d", p(base()), with(func(o *watcher.Observation) { o.Chain[0].NotAfter = now.Add(3 * time.Hour) }),
			Context{Now: now}, []want{{Expiry1d, Critical}}},
		{"expired", p(base()), with(func(o *watcher.Observation) { o.Chain[0].NotAfter = now.Add(-time.Second) }),
			Context{Now: now}, []want{{Expired, Critical}}},
		{"expiry needs Now", p(base()), with(func(o *watcher.Observation) { o.Chain[0].NotAfter = now.Add(-time.Second) }),
			Context{}, nil},
		{"renewal plus expiry of the new cert", p(base()), with(func(o *watcher.Observation) {
			newLeaf(certB, keyA, "")(o)
			o.Chain[0].NotAfter = now.Add(20 * 24 * time.Hour)
		}), Context{Now: now}, []want{{RenewalSameKey, Info}, {Expiry30d, Warning}}},
		{"everything at once", p(base()), with(func(o *watcher.Observation) {
			newLeaf(certB, keyB, "CN=Evil CA")(o)
			o.Matched = o.Matched[:1]
			o.TLSVersion, o.Cipher, o.ForwardSecret = "TLS 1.0", "TLS_RSA_WITH_RC4_128_SHA", false
			o.StartTLSRequired, o.Dialback, o.External = false, false, "failure"
			o.Chain[0].NotAfter = now.Add(12 * time.Hour)
		}), Context{Now: now, CurrentSPKI: []string{keyA}}, []want{
			{KeyChanged, Critical}, {IssuerChanged, Warning}, {IdentityDropped, Warning},
			{TLSVersionDowngrade, Warning}, {ForwardSecrecyLost, Warning}, {CipherWeaker, Warning},
			{StartTLSNotRequired, Warning}, {DialbackLost, Warning}, {ExternalLost, Warning}, {Expiry1d, Critical},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.prev, tt.cur, tt.ctx)
			var g []want
			for _, c := range got {
				g = append(g, want{c.Kind, c.Severity})
				checkChange(t, tt.cur.Endpoint, c)
			}
			if !slices.Equal(g, tt.want) {
				t.Errorf("got %v\nwant %v\nchanges: %+v", g, tt.want, got)
			}
		})
	}
}

func checkChange(t *testing.T, ep watcher.EndpointKey, c Change) {
	t.Helper()
	if c.Text == "" || strings.ContainsAny(c.Text, "\n\r") {
		t.Errorf("%s: text %q is not one non-empty line", c.Kind, c.Text)
	}
	if !strings.HasPrefix(c.Key, ep.String()+"|"+string(c.Kind)+"|") {
		t.Errorf("%s: key %q does not start with endpoint and kind", c.Kind, c.Key)
	}
	if c.Severity.Rank() == 0 {
		t.Errorf("%s: severity %q", c.Kind, c.Severity)
	}
}

// TestEqualObservationsOnlyExpiry walks the expiry thresholds with an
// unchanged endpoint: only conditions come out, and each threshold
// gives a different Key so that crossing one alerts at once.
func TestEqualObservationsOnlyExpiry(t *testing.T) {
	o := base()
	notAfter := o.Chain[0].NotAfter
	seen := map[string]bool{}
	for _, c := range []struct {
		at   time.Time
		want []Kind
	}{
		{notAfter.Add(-31 * 24 * time.Hour), nil},
		{notAfter.Add(-30 * 24 * time.Hour), []Kind{Expiry30d}},
		{notAfter.Add(-8 * 24 * time.Hour), []Kind{Expiry30d}},
		{notAfter.Add(-7 * 24 * time.Hour), []Kind{Expiry7d}},
		{notAfter.Add(-25 * time.Hour), []Kind{Expiry7d}},
		{notAfter.Add(-24 * time.Hour), []Kind{Expiry1d}},
		{notAfter, []Kind{Expired}},
		{notAfter.Add(time.Hour), []Kind{Expired}},
	} {
		got := Classify(&o, o, Context{Now: c.at})
		var kinds []Kind
		for _, ch := range got {
			kinds = append(kinds, ch.Kind)
			seen[ch.Key] = true
			if ch.New != notAfter.UTC().Format(time.RFC3339) {
				t.Errorf("at %v: New = %q, want the NotAfter", c.at, ch.New)
			}
		}
		if !slices.Equal(kinds, c.want) {
			t.Errorf("at %v: got %v, want %v", c.at, kinds, c.want)
		}
		// A distinct copy that is Equal gives the same.
		cp := o
		cp.At = c.at
		if !cp.Equal(o) || len(Classify(&o, cp, Context{Now: c.at})) != len(got) {
			t.Errorf("at %v: Equal copy classified differently", c.at)
		}
	}
	if len(seen) != 4 {
		t.Errorf("distinct keys %d, want 4 (one per threshold)", len(seen))
	}
}

func TestTextNamesValues(t *testing.T) {
	prev := base()
	cur := with(newLeaf(certB, keyB, "CN=Other CA"))
	got := Classify(&prev, cur, Context{})
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	if got[0].Old != keyA || got[0].New != keyB || !strings.Contains(got[0].Text, keyA[:16]) || !strings.Contains(got[0].Text, keyB[:16]) {
		t.Errorf("key change %+v", got[0])
	}
	if got[0].Key != cur.Endpoint.String()+"|key-changed|"+keyB {
		t.Errorf("key %q", got[0].Key)
	}
	if got[1].Old != "CN=R10,O=Let's Encrypt" || got[1].New != "CN=Other CA" || !strings.Contains(got[1].Text, `"CN=Other CA"`) {
		t.Errorf("issuer change %+v", got[1])
	}
}

func TestHostileStringsStayOnOneLine(t *testing.T) {
	prev := base()
	cur := with(newLeaf(certB, keyB, "CN=evil\n[critical] fake line\r"+strings.Repeat("x", 2000)))
	for _, c := range Classify(&prev, cur, Context{}) {
		for _, s := range []string{c.Text, c.Old, c.New, c.Key} {
			if strings.ContainsAny(s, "\n\r") {
				t.Errorf("%s: %q has a line break", c.Kind, s)
			}
		}
		if len(c.Text) > 1200 {
			t.Errorf("%s: text %d bytes", c.Kind, len(c.Text))
		}
	}
}

func TestOrders(t *testing.T) {
	versions := []string{"SSLv2", "SSLv3", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"}
	for i, v := range versions {
		if VersionOrder(v) != i+1 {
			t.Errorf("VersionOrder(%q) = %d", v, VersionOrder(v))
		}
	}
	if VersionOrder("0x0305") != 0 || VersionOrder("") != 0 {
		t.Error("unknown versions must rank 0")
	}
	for name, want := range map[string]int{
		"TLS_AES_256_GCM_SHA384":                        4,
		"TLS_CHACHA20_POLY1305_SHA256":                  4,
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": 4,
		"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256":         3,
		"TLS_RSA_WITH_3DES_EDE_CBC_SHA":                 2,
		"TLS_ECDHE_RSA_WITH_RC4_128_SHA":                1,
		"TLS_RSA_WITH_NULL_SHA":                         1,
		"TLS_DH_anon_WITH_AES_128_CBC_SHA":              1,
		"TLS_RSA_WITH_DES_CBC_SHA":                      1,
		"":                                              0,
		"0x1301":                                        0,
	} {
		if got := CipherClass(name); got != want {
			t.Errorf("CipherClass(%q) = %d, want %d", name, got, want)
		}
	}
	if !(Info.Rank() < Warning.Rank() && Warning.Rank() < Critical.Rank()) || Severity("x").Rank() != 0 {
		t.Error("severity ranks out of order")
	}
}
