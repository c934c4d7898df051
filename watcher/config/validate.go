package config

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/challenge"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/dnsupdate"
	"github.com/xmppcert/xmppcert/internal/secretfile"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/ct"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// MinTokenLength is the shortest bearer token accepted for a
// non-loopback listener.
const MinTokenLength = 16

// validate checks the decoded file and builds the Config.
func (p *parser) validate(d *decoded) *Config {
	cfg := &Config{File: p.file}
	if d.top.StateDir != nil {
		if *d.top.StateDir == "" {
			p.errAt("state_dir", "is empty; leave it out for the default, or give a directory")
		} else {
			cfg.StateDir = p.abs(*d.top.StateDir)
		}
	}
	names := map[string]string{} // canonical name -> indexed path where first named
	for i := range d.hosts {
		if h, ok := p.host(fmt.Sprintf("host[%d]", i), &d.hosts[i], names); ok {
			cfg.Hosts = append(cfg.Hosts, h)
		}
	}
	cfg.Watch = p.watch(&d.top.Watch, d.peers, cfg.Hosts)
	cfg.Watch.Vantages = p.vantages(d.vantages)
	cfg.History.Retention = p.duration("history.retention", d.top.History.Retention, DefaultRetention, time.Hour, false)
	if cfg.History.Retention > 0 && cfg.Watch.Interval > 0 && cfg.History.Retention < cfg.Watch.Interval {
		p.errAt("history.retention", "%s is shorter than watch.interval %s: history would forget what it just saw; keep at least one interval", cfg.History.Retention, cfg.Watch.Interval)
	}
	cfg.Alert = p.alert(&d.top.Alert, d.webhooks, d.execs, d.xmpps)
	cfg.HTTP = p.http(&d.top.HTTP)
	if d.top.Cluster != nil {
		cfg.Cluster = p.cluster(d.top.Cluster)
	}
	if d.top.CT != nil {
		cfg.CT = p.ct(d.top.CT)
	}
	// A cluster's node has the cluster's lineages to keep even with no
	// [[host]] of its own, and its commands (cron) need only [cluster].
	if len(d.hosts) == 0 && len(d.peers) == 0 && d.top.Cluster == nil && len(p.errs) == 0 && !p.allowEmpty {
		p.errs = append(p.errs, &Error{File: p.file, Msg: "nothing to do: add a [[host]] whose certificate xmppcert keeps, or a [[watch.peer]] to watch (see contrib/xmppcert.toml)"})
	}
	return cfg
}

// abs makes a path from the file absolute, relative to the file's
// directory.
func (p *parser) abs(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	a, err := filepath.Abs(filepath.Join(filepath.Dir(p.file), path))
	if err != nil {
		return filepath.Join(filepath.Dir(p.file), path)
	}
	return a
}

// duration checks an optional duration: def when unset, at least min,
// "never" only where allowed (returned as -1).
func (p *parser) duration(path string, d *duration, def, min time.Duration, neverOK bool) time.Duration {
	switch {
	case d == nil:
		return def
	case d.never && neverOK:
		return -1
	case d.never:
		p.errAt(path, "\"never\" is not allowed here; give a duration such as \"1h\"")
	case d.d <= 0:
		p.errAt(path, "%s is not positive; give a duration such as \"1h\"", d.d)
	case d.d < min:
		p.errAt(path, "%s is too short; give at least %s", d.d, min)
	default:
		return d.d
	}
	return 0
}

// readSecret reads a secret file named at path, relative to the
// configuration (secretfile.Read). Errors never show the content.
func (p *parser) readSecret(path, file, what string) (string, []byte, bool) {
	abs := p.abs(file)
	data, err := secretfile.Read(abs, what)
	if err != nil {
		p.errAt(path, "%v", err)
		return abs, nil, false
	}
	p.warnExposed(path, abs, what)
	return abs, data, true
}

// warnExposed warns of a secret file readable by group or others.
func (p *parser) warnExposed(path, file, what string) {
	if mode, exposed := secretfile.Exposed(file); exposed {
		p.warnAt(path, "%s %s is readable by group or others (mode %04o): chmod 600 it; only this user needs to read it", what, file, uint32(mode))
	}
}

func (p *parser) domain(path, d string) (string, bool) {
	c, err := acme.CanonicalName(d)
	if err != nil {
		p.errAt(path, "%v", err)
		return "", false
	}
	return c, true
}

func (p *parser) host(path string, r *rawHost, names map[string]string) (Host, bool) {
	h := Host{Line: p.lineOf(path), ReuseKey: r.ReuseKey, Anonymous: r.Anonymous}
	n := len(p.errs)
	claim := func(at, name string) {
		if first, dup := names[name]; dup {
			p.errAt(at, "%s is already named at line %d: each name belongs to one host (one certificate, one lineage); remove one", name, p.lineOf(first))
			return
		}
		names[name] = at
	}
	if r.Domain == nil {
		p.errAt(path, "this [[host]] has no domain; add domain = \"example.org\"")
	} else if d, ok := p.domain(path+".domain", *r.Domain); ok {
		h.Domain = d
		claim(path+".domain", d)
	}
	for i, c := range r.Components {
		at := fmt.Sprintf("%s.components[%d]", path, i)
		if d, ok := p.domain(at, c); ok {
			h.Components = append(h.Components, d)
			claim(at, d)
		}
	}
	if len(r.Components)+1 > acme.MaxNames {
		p.errAt(path+".components", "%d names in one certificate; at most %d", len(r.Components)+1, acme.MaxNames)
	}
	h.KeyType = acme.KeyECDSAP256
	if r.KeyType != nil {
		k, err := acme.ParseKeyType(*r.KeyType)
		if err != nil || *r.KeyType == "" {
			p.errAt(path+".key_type", "unknown key type %q; use ecdsa-p256, rsa2048 or rsa3072", clip(*r.KeyType))
		}
		h.KeyType = k
	}
	h.CA = DefaultCA
	if r.CA != nil {
		h.CA = *r.CA
	}
	if h.CA == "local" {
		h.Days = int(localca.DefaultLifetime / (24 * time.Hour))
		maxDays := int(localca.MaxLifetime / (24 * time.Hour))
		if r.Days != nil {
			h.Days = *r.Days
			if h.Days < 1 || h.Days > maxDays {
				p.errAt(path+".days", "%d is out of range: give 1 to %d", h.Days, maxDays)
			}
		}
		if r.ACME != nil {
			p.errAt(path+".acme", "[host.acme] is for ACME CAs, but this host's ca is local (the embedded CA signs offline, without account or challenges); remove it or set ca")
		}
	} else {
		dir, err := acmeca.ParseDirectory(h.CA)
		if err != nil {
			p.errAt(path+".ca", "%v", err)
		}
		h.CA = dir
		if r.Days != nil {
			p.errAt(path+".days", "days is for ca = \"local\"; an ACME CA sets the validity itself (choose a profile if it offers several)")
		}
		if err == nil {
			h.ACME, h.AgreeTOS, h.EABHMAC = p.acmeSettings(path, dir, r.ACME)
		}
		if r.ACME != nil {
			h.Timeout = p.duration(path+".acme.timeout", r.ACME.Timeout, acmeca.DefaultTimeout, time.Second, false)
		}
	}
	for i, spec := range r.Deploy {
		if _, err := acme.ParseTarget(spec); err != nil {
			p.errAt(fmt.Sprintf("%s.deploy[%d]", path, i), "%v", err)
		}
	}
	h.Deploy = r.Deploy
	for i, cmd := range r.Hooks {
		if strings.TrimSpace(cmd) == "" {
			p.errAt(fmt.Sprintf("%s.hooks[%d]", path, i), "empty hook command; give a shell command or remove it")
		}
	}
	h.Hooks = r.Hooks
	for _, f := range []struct {
		key, value string
		dst        *string
	}{{"prosody_config", r.ProsodyConfig, &h.ProsodyConfig}, {"ejabberd_ctl_config", r.EjabberdCtlConfig, &h.EjabberdCtlConfig}} {
		if f.value == "" {
			continue
		}
		*f.dst = p.abs(f.value)
		if _, err := os.Stat(*f.dst); err != nil {
			p.errAt(path+"."+f.key, "%v; give the server's configuration file, which its status and reload commands read", err)
		}
	}
	for i, spec := range r.ServeCheck {
		ep, err := acme.ParseServeEndpoint(spec)
		if err != nil {
			p.errAt(fmt.Sprintf("%s.serve_check[%d]", path, i), "%v", err)
			continue
		}
		h.ServeCheck = append(h.ServeCheck, ep)
	}
	if r.Pins.TLSA != nil {
		h.TLSA = p.tlsa(path+".pins.tlsa", r.Pins.TLSA)
	}
	if r.Pins.POSH != nil {
		h.POSH = p.posh(path+".pins.posh", r.Pins.POSH, h.role())
	}
	return h, len(p.errs) == n
}

func (p *parser) acmeSettings(path, dir string, r *rawACME) (*acme.ACMESettings, bool, alert.Secret) {
	at := path + ".acme"
	if r == nil {
		p.errAt(path+".ca", "an ACME CA needs [host.acme] with a way to prove control of the names: http_listen, webroot, tls_alpn_listen, dns_rfc2136 or dns_hook")
		return nil, false, nil
	}
	a := &acme.ACMESettings{Directory: dir, Email: r.Email, Profile: r.Profile, EABKeyID: r.EABKeyID, RequireXMPPIDs: r.RequireXMPPIDs}
	if err := acmeca.CheckEmail(r.Email); err != nil {
		p.errAt(at+".email", "%v", err)
	}
	var hmac alert.Secret
	switch {
	case r.EABKeyID != "" && r.EABHMACFile == "":
		p.errAt(at+".eab_kid", "eab_kid needs eab_hmac_file, the file holding the CA's HMAC key")
	case r.EABKeyID == "" && r.EABHMACFile != "":
		p.errAt(at+".eab_hmac_file", "eab_hmac_file needs eab_kid, the key ID from the CA's account page")
	case r.EABHMACFile != "":
		if file, data, ok := p.readSecret(at+".eab_hmac_file", r.EABHMACFile, "EAB HMAC key file"); ok {
			if acmeca.CheckEAB(r.EABKeyID, string(data)) != nil {
				p.errAt(at+".eab_hmac_file", "%s does not hold a base64url HMAC key (as the CA's account page shows it)", file)
			} else {
				hmac = alert.Secret(data)
			}
		}
	}
	if r.RequireXMPPIDs && acmeca.IsPublic(dir) {
		p.errAt(at+".require_xmpp_ids", "%s certifies DNS names only (no SRV-ID or XmppAddr in public certificates); use ca = \"local\" or a private ACME CA, or remove require_xmpp_ids", acmeca.DisplayName(dir))
	}
	if r.TrustRoot != "" {
		a.TrustRoot = p.abs(r.TrustRoot)
		if _, err := certfile.Read(a.TrustRoot, nil); err != nil {
			p.errAt(at+".trust_root", "%v", err)
		}
	}
	for i, id := range r.CAAIdentities {
		if v, err := pinning.ParseCAAIdentity(id); err != nil {
			p.errAt(fmt.Sprintf("%s.caa_identities[%d]", at, i), "%v", err)
		} else {
			a.CAAIdentities = append(a.CAAIdentities, v)
		}
	}
	if r.Resolver != "" {
		if err := hostPort(r.Resolver); err != nil {
			p.errAt(at+".resolver", "%q: %v (give HOST:PORT of a DNSSEC-validating resolver, e.g. 127.0.0.1:53)", clip(r.Resolver), err)
		}
		a.Resolver = r.Resolver
	}
	a.NoPreflight = r.NoPreflight
	ch := acme.ChallengeSettings{HTTPListen: r.HTTPListen, TLSALPNListen: r.TLSALPNListen, DNSHook: r.DNSHook}
	if r.HTTPListen != "" {
		if err := (&challenge.HTTP01{Addr: r.HTTPListen}).Validate(); err != nil {
			p.errAt(at+".http_listen", "%v", err)
		}
	}
	if r.Webroot != "" {
		ch.Webroot = p.abs(r.Webroot)
		if r.HTTPListen != "" {
			p.errAt(at+".webroot", "http_listen and webroot both solve http-01; choose one")
		} else if err := (&challenge.Webroot{Dir: ch.Webroot}).Validate(); err != nil {
			p.errAt(at+".webroot", "%v", err)
		}
	}
	if r.TLSALPNListen != "" {
		if err := (&challenge.TLSALPN01{Addr: r.TLSALPNListen}).Validate(); err != nil {
			p.errAt(at+".tls_alpn_listen", "%v", err)
		}
	}
	if r.DNSHook != "" && strings.TrimSpace(r.DNSHook) == "" {
		p.errAt(at+".dns_hook", "empty command; give a shell command or remove it")
	}
	if d := r.RFC2136; d != nil {
		rp := at + ".dns_rfc2136"
		s := &acme.RFC2136Settings{Server: d.Server, TSIGName: d.TSIGName, TSIGAlgorithm: d.TSIGAlgorithm}
		if d.TSIGSecretFile != "" {
			s.TSIGSecretFile = p.abs(d.TSIGSecretFile)
		}
		p.dnsUpdate(rp, d.Server, d.TSIGName, d.TSIGAlgorithm, d.TSIGSecretFile)
		if r.DNSHook != "" {
			p.errAt(rp, "dns_rfc2136 and dns_hook both solve dns-01; choose one")
		}
		ch.RFC2136 = s
	}
	if ch.Empty() {
		p.errAt(at, "no way to prove control of the names: set http_listen, webroot, tls_alpn_listen, dns_rfc2136 or dns_hook")
	}
	a.Challenges = ch
	return a, r.AgreeTOS, hmac
}

// dnsUpdate checks RFC 2136 settings at path: the server, the algorithm
// and the TSIG key, whose secret file is read and checked (not kept).
func (p *parser) dnsUpdate(path, server, keyName, alg, secretFile string) {
	if server == "" {
		p.errAt(path, "no server: give server = \"HOST[:PORT]\", the primary taking dynamic updates")
	} else if _, err := dnsupdate.HostPort(server); err != nil {
		p.errAt(path+".server", "%v", err)
	}
	if _, err := dnsupdate.TSIGAlgorithm(alg); err != nil {
		p.errAt(path+".tsig_algorithm", "%v", err)
	}
	switch {
	case keyName != "" && secretFile == "":
		p.errAt(path+".tsig_name", "tsig_name %s needs tsig_secret_file, the file holding its secret", keyName)
	case keyName == "" && secretFile != "":
		p.errAt(path+".tsig_secret_file", "tsig_secret_file needs tsig_name, the key's name on the server")
	case secretFile != "":
		c := &dnsupdate.Client{Server: server, KeyName: keyName, Algorithm: alg}
		secret, err := dnsupdate.LoadTSIGSecret(p.abs(secretFile))
		if err != nil {
			p.errAt(path+".tsig_secret_file", "%v", err)
			return
		}
		p.warnExposed(path+".tsig_secret_file", p.abs(secretFile), "TSIG secret file")
		c.Secret = secret
		if err := c.Validate(); err != nil && server != "" {
			p.errAt(path+".tsig_name", "%v", err)
		}
	}
}

func (p *parser) tlsa(path string, r *rawTLSA) *TLSA {
	t := &TLSA{Server: r.Server, TSIGName: r.TSIGName, TSIGAlgorithm: r.TSIGAlgorithm, FromSRV: r.FromSRV, Resolver: r.Resolver}
	p.dnsUpdate(path, r.Server, r.TSIGName, r.TSIGAlgorithm, r.TSIGSecretFile)
	if r.TSIGSecretFile != "" {
		t.TSIGSecretFile = p.abs(r.TSIGSecretFile)
	}
	if r.Zone != "" {
		z, err := xmppaddr.CanonicalDomain(r.Zone)
		if err != nil {
			p.errAt(path+".zone", "%v", err)
		}
		t.Zone = z
	}
	t.TTL = p.duration(path+".ttl", r.TTL, DefaultTLSATTL, time.Second, false)
	t.Hold = p.duration(path+".hold", r.Hold, 2*t.TTL, time.Second, false)
	for _, f := range []struct {
		key  string
		v    *int
		def  uint8
		max  int
		dest *uint8
		what string
	}{
		{"usage", r.Usage, 3, 3, &t.Usage, "0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE"},
		{"selector", r.Selector, 1, 1, &t.Selector, "0 full certificate, 1 SubjectPublicKeyInfo"},
		{"matching_type", r.MatchingType, 1, 2, &t.MatchingType, "0 full, 1 SHA-256, 2 SHA-512"},
	} {
		*f.dest = f.def
		if f.v != nil {
			if *f.v < 0 || *f.v > f.max {
				p.errAt(path+"."+f.key, "%d is out of range: %s", *f.v, f.what)
			} else {
				*f.dest = uint8(*f.v)
			}
		}
	}
	for i, port := range r.Ports {
		if port < 1 || port > 65535 {
			p.errAt(fmt.Sprintf("%s.ports[%d]", path, i), "%d is not a TCP port: give 1 to 65535", port)
			continue
		}
		t.Ports = append(t.Ports, uint16(port))
	}
	for i, target := range r.Targets {
		if d, ok := p.domain(fmt.Sprintf("%s.targets[%d]", path, i), target); ok {
			t.Targets = append(t.Targets, d)
		}
	}
	if r.FromSRV && (len(r.Ports) > 0 || len(r.Targets) > 0) {
		p.errAt(path+".from_srv", "from_srv takes the targets and ports from DNS; remove ports and targets")
	}
	if r.Resolver != "" {
		if err := hostPort(r.Resolver); err != nil {
			p.errAt(path+".resolver", "%q: %v (give HOST:PORT, e.g. 127.0.0.1:53)", clip(r.Resolver), err)
		}
		if !r.FromSRV {
			p.errAt(path+".resolver", "resolver is only asked with from_srv = true; remove it or set from_srv")
		}
	}
	return t
}

func (p *parser) posh(path string, r *rawPOSH, role xmppaddr.Role) *POSH {
	o := &POSH{}
	if r.OutDir != "" {
		o.OutDir = p.abs(r.OutDir)
		if fi, err := os.Stat(o.OutDir); err != nil {
			p.errAt(path+".out_dir", "%s: %v; create the web root or fix the path", o.OutDir, pathErr(err))
		} else if !fi.IsDir() {
			p.errAt(path+".out_dir", "%s is not a directory", o.OutDir)
		}
	}
	o.Expires = p.duration(path+".expires", r.Expires, DefaultPOSHExpires, time.Second, false)
	serves := role.Services()
	for i, s := range r.Services {
		at := fmt.Sprintf("%s.services[%d]", path, i)
		svc, ok := p.service(at, s)
		switch {
		case !ok:
		case !containsService(serves, svc):
			p.errAt(at, "this host does not serve %s (an anonymous host is c2s only); remove it", svc)
		case containsService(o.Services, svc):
			p.errAt(at, "%s is named twice", svc)
		default:
			o.Services = append(o.Services, svc)
		}
	}
	if len(r.Services) == 0 {
		o.Services = serves
	}
	return o
}

// service reads a watchable service name.
func (p *parser) service(path, s string) (xmppaddr.Service, bool) {
	switch xmppaddr.Service(s) {
	case xmppaddr.ServiceClient, xmppaddr.ServiceServer:
		return xmppaddr.Service(s), true
	}
	hint := ""
	switch strings.ToLower(s) {
	case "c2s", "client", "_xmpp-client":
		hint = "; for c2s write \"xmpp-client\""
	case "s2s", "server", "_xmpp-server":
		hint = "; for s2s write \"xmpp-server\""
	}
	p.errAt(path, "unknown service %q: use \"xmpp-client\" or \"xmpp-server\"%s", clip(s), hint)
	return "", false
}

func containsService(list []xmppaddr.Service, s xmppaddr.Service) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hostPort checks HOST:PORT with a host and a port from 1 to 65535.
func hostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("not HOST:PORT")
	}
	if host == "" {
		return fmt.Errorf("no host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

func (p *parser) watch(r *rawWatch, peers []rawPeer, hosts []Host) Watch {
	w := Watch{OwnHosts: true, Resolver: r.Resolver}
	w.Interval = p.duration("watch.interval", r.Interval, DefaultInterval, MinInterval, false)
	w.Jitter.Fraction = DefaultJitter
	if j := r.Jitter; j != nil {
		switch {
		case j.isDur && (j.d < 0 || (w.Interval > 0 && j.d >= w.Interval)):
			p.errAt("watch.jitter", "%s is out of range: give a duration from 0 up to (not including) the interval %s, or a fraction such as 0.1", j.d, w.Interval)
		case j.isDur:
			w.Jitter = Jitter{Duration: j.d}
		case j.fraction < 0 || j.fraction >= 1:
			p.errAt("watch.jitter", "%g is out of range: a fraction of the interval is from 0 up to (not including) 1, such as 0.1", j.fraction)
		default:
			w.Jitter = Jitter{Fraction: j.fraction}
		}
	}
	w.Concurrency = DefaultConcurrency
	if r.Concurrency != nil {
		w.Concurrency = *r.Concurrency
		if w.Concurrency < 1 || w.Concurrency > MaxConcurrency {
			p.errAt("watch.concurrency", "%d is out of range: give 1 to %d", w.Concurrency, MaxConcurrency)
		}
	}
	w.Timeout = p.duration("watch.timeout", r.Timeout, DefaultProbeTimeout, time.Millisecond, false)
	if w.Timeout > 0 && w.Interval > 0 && w.Timeout > w.Interval {
		p.errAt("watch.timeout", "%s is longer than the interval %s; a probe must end before the next is due", w.Timeout, w.Interval)
	}
	w.FullInterval = p.duration("watch.full_interval", r.FullInterval, DefaultFullInterval, MinInterval, true)
	if r.OwnHosts != nil {
		w.OwnHosts = *r.OwnHosts
	}
	if r.From != nil {
		if d, ok := p.domain("watch.from", *r.From); ok {
			w.From = d
		}
	} else if len(hosts) > 0 {
		w.From = hosts[0].Domain
	}
	if r.Resolver != "" {
		if err := hostPort(r.Resolver); err != nil {
			p.errAt("watch.resolver", "%q: %v (give HOST:PORT, e.g. 127.0.0.1:53)", clip(r.Resolver), err)
		}
	}
	for i, f := range r.TrustRoots {
		w.TrustRoots = append(w.TrustRoots, p.trustRoots(fmt.Sprintf("watch.trust_roots[%d]", i), f)...)
	}
	own := map[Target]bool{}
	if w.OwnHosts {
		for _, h := range hosts {
			for _, n := range h.names() {
				for _, svc := range n.Role.Services() {
					own[Target{Domain: n.Domain, Service: svc}] = true
				}
			}
		}
	}
	seen := map[Target]string{}
	for i := range peers {
		path := fmt.Sprintf("watch.peer[%d]", i)
		if pe, ok := p.peer(path, &peers[i], own, seen); ok {
			w.Peers = append(w.Peers, pe)
		}
	}
	return w
}

// trustRoots reads one file of watch.trust_roots: PEM (or DER)
// certificates, each of them a trust anchor.
func (p *parser) trustRoots(path, file string) []*x509.Certificate {
	if file == "" {
		p.errAt(path, "is empty; give the path of a PEM file of CA certificates")
		return nil
	}
	certs, err := certfile.Read(p.abs(file), nil)
	if err != nil {
		p.errAt(path, "%v; give a PEM file of CA certificates", err)
		return nil
	}
	return certs
}

func (p *parser) peer(path string, r *rawPeer, own map[Target]bool, seen map[Target]string) (Peer, bool) {
	n := len(p.errs)
	pe := Peer{Line: p.lineOf(path), Connect: r.Connect, DirectTLS: r.DirectTLS}
	if r.Domain == nil {
		p.errAt(path, "this [[watch.peer]] has no domain; add domain = \"example.net\"")
	} else if d, err := xmppaddr.CanonicalDomain(*r.Domain); err != nil {
		p.errAt(path+".domain", "%q is not a valid XMPP domain: %v", clip(*r.Domain), err)
	} else {
		pe.Domain = d
	}
	var names []string
	switch {
	case r.Service != nil && r.Services != nil:
		p.errAt(path+".service", "give service or services, not both")
	case r.Service != nil:
		names = []string{*r.Service}
	case r.Services != nil:
		names = r.Services
		if len(names) == 0 {
			p.errAt(path+".services", "is empty; name xmpp-client, xmpp-server or both, or leave it out for xmpp-server")
		}
	default:
		pe.Services = []xmppaddr.Service{xmppaddr.ServiceServer}
	}
	for i, s := range names {
		at := path + ".service"
		if r.Service == nil {
			at = fmt.Sprintf("%s.services[%d]", path, i)
		}
		if svc, ok := p.service(at, s); ok {
			if containsService(pe.Services, svc) {
				p.errAt(at, "%s is named twice", svc)
				continue
			}
			pe.Services = append(pe.Services, svc)
		}
	}
	if r.Connect != "" {
		if err := hostPort(r.Connect); err != nil {
			p.errAt(path+".connect", "%q: %v (give HOST:PORT, e.g. xmpp.example.net:5269)", clip(r.Connect), err)
		}
	}
	if pe.Domain != "" {
		for _, svc := range pe.Services {
			k := Target{Domain: pe.Domain, Service: svc, Connect: pe.Connect, DirectTLS: pe.DirectTLS}
			if first, dup := seen[k]; dup {
				p.errAt(path, "%s %s is already watched by the peer at line %d; remove one", pe.Domain, svc, p.lineOf(first))
			} else if own[k] {
				p.errAt(path+".domain", "%s %s is one of the [[host]] names, watched already (own_hosts); remove this peer, give it a connect address, or set own_hosts = false", pe.Domain, svc)
			}
			seen[k] = path
		}
	}
	return pe, len(p.errs) == n
}

// ct reads [ct].
func (p *parser) ct(r *rawCT) *CT {
	c := &CT{Interval: p.duration("ct.interval", r.Interval, DefaultCTInterval, MinInterval, false)}
	if r.LogList != "" {
		file := p.abs(r.LogList)
		if data, err := readBounded(file, ct.MaxLogList); err != nil {
			p.errAt("ct.log_list", "%v", err)
		} else if c.Logs, err = ct.ParseLogList(data); err != nil {
			p.errAt("ct.log_list", "%s: %v; give a log list in the v3 JSON format (Google's log_list.json)", file, err)
		}
	}
	for i, u := range r.Logs {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			p.errAt(fmt.Sprintf("ct.logs[%d]", i), "%q is not an http(s) URL; give a log's monitoring prefix (static-ct-api) or its RFC 6962 base URL", clip(u))
			continue
		}
		c.URLs = append(c.URLs, u)
	}
	if len(c.Logs)+len(c.URLs) == 0 && len(p.errs) == 0 {
		p.errAt("ct", "no log to follow: give log_list, a v3 JSON log list, or logs, their URLs")
	}
	return c
}

// readBounded reads a file of at most limit bytes.
func readBounded(file string, limit int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is longer than %d bytes", file, limit)
	}
	return data, nil
}

// vantages reads the [[watch.vantage]] entries.
func (p *parser) vantages(raw []rawVantage) []Vantage {
	var out []Vantage
	first := map[string]string{}
	for i, r := range raw {
		path := fmt.Sprintf("watch.vantage[%d]", i)
		v := Vantage{Line: p.lineOf(path)}
		switch {
		case r.Name == nil:
			p.errAt(path, "this [[watch.vantage]] has no name; add name = \"elsewhere\"")
		case !validVantageName(*r.Name):
			p.errAt(path+".name", "%q is not a vantage name: use 1 to 64 letters, digits, '.', '_' or '-'", clip(*r.Name))
		default:
			v.Name = *r.Name
			if at, dup := first[v.Name]; dup {
				p.errAt(path+".name", "%q is already the name of the vantage at line %d; give each its own", v.Name, p.lineOf(at))
			}
			first[v.Name] = path
		}
		if r.Proxy == nil {
			p.errAt(path, "this [[watch.vantage]] has no proxy; add proxy = \"socks5://HOST:PORT\"")
		} else if u, err := probe.ParseVia(*r.Proxy); err != nil {
			p.errAt(path+".proxy", "%s", clip(err.Error()))
		} else if _, pw := u.User.Password(); pw {
			p.errAt(path+".proxy", "%q holds a password: put it in a file named by password_file (mode 0600) and leave it out of the URL", u.Redacted())
		} else if r.PasswordFile != "" && u.User == nil {
			p.errAt(path+".proxy", "%q names no user for password_file: write socks5://USER@HOST:PORT", u.Redacted())
		} else {
			v.Proxy = *r.Proxy
		}
		if r.PasswordFile != "" {
			file, data, ok := p.readSecret(path+".password_file", r.PasswordFile, "SOCKS5 proxy's password file")
			v.PasswordFile = file
			if ok {
				v.Password = alert.Secret(data)
			}
		}
		out = append(out, v)
	}
	return out
}

// validVantageName: 1 to 64 ASCII letters, digits, '.', '_' or '-'.
func validVantageName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// severity reads an optional min_severity.
func (p *parser) severity(path string, s *string) changes.Severity {
	if s == nil {
		return DefaultMinSeverity
	}
	sev := changes.Severity(*s)
	if sev.Rank() == 0 {
		p.errAt(path, "unknown severity %q: use \"info\", \"warning\" or \"critical\"", clip(*s))
		return DefaultMinSeverity
	}
	return sev
}

func (p *parser) alert(r *rawAlert, hooks []rawWebhook, execs []rawExec, xmpps []rawXMPP) Alert {
	a := Alert{MinSeverity: p.severity("alert.min_severity", r.MinSeverity)}
	a.ResendInterval = p.duration("alert.resend_interval", r.ResendInterval, alert.DefaultResendInterval, time.Second, true)
	for i := range hooks {
		if w, ok := p.webhook(fmt.Sprintf("alert.webhook[%d]", i), &hooks[i]); ok {
			a.Webhooks = append(a.Webhooks, w)
		}
	}
	for i := range execs {
		if e, ok := p.exec(fmt.Sprintf("alert.exec[%d]", i), &execs[i]); ok {
			a.Execs = append(a.Execs, e)
		}
	}
	for i := range xmpps {
		if x, ok := p.xmppSink(fmt.Sprintf("alert.xmpp[%d]", i), &xmpps[i]); ok {
			a.XMPP = append(a.XMPP, x)
		}
	}
	return a
}

func (p *parser) xmppSink(path string, r *rawXMPP) (XMPP, bool) {
	n := len(p.errs)
	x := XMPP{MinSeverity: p.severity(path+".min_severity", r.MinSeverity)}
	if r.JID == nil {
		p.errAt(path, "this [[alert.xmpp]] has no jid; add jid = \"alerts@example.org\", the account the alerts are sent from")
	} else if j, err := jid.Parse(*r.JID); err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		p.errAt(path+".jid", "%q is not an account JID; give user@domain, such as \"alerts@example.org\"", clip(*r.JID))
	} else {
		x.JID = j.String()
	}
	if r.PasswordFile == "" {
		p.errAt(path, "this [[alert.xmpp]] has no password_file; add password_file = \"/etc/xmppcert/alerts.password\" (mode 0600)")
	} else {
		file, data, ok := p.readSecret(path+".password_file", r.PasswordFile, "XMPP alert account's password file")
		x.PasswordFile = file
		if ok {
			x.Password = alert.Secret(data)
		}
	}
	if len(r.To) == 0 {
		p.errAt(path, "this [[alert.xmpp]] has no recipients; add to = [\"admin@example.org\"]")
	}
	for i, to := range r.To {
		if _, err := jid.Parse(to); err != nil || to == "" {
			p.errAt(fmt.Sprintf("%s.to[%d]", path, i), "%q is not a JID; give the recipient's address, such as \"admin@example.org\"", clip(to))
			continue
		}
		x.To = append(x.To, to)
	}
	if r.Server != nil {
		host, port, err := net.SplitHostPort(*r.Server)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			p.errAt(path+".server", "%q is not HOST:PORT; give the server's client port, such as \"xmpp.example.org:5222\", or leave server out to use the domain's SRV records", clip(*r.Server))
		}
		x.Server = *r.Server
	}
	x.Timeout = p.duration(path+".timeout", r.Timeout, alert.DefaultXMPPTimeout, time.Millisecond, false)
	x.MaxAttempts = p.attempts(path+".max_attempts", r.MaxAttempts, alert.DefaultXMPPMaxAttempts)
	return x, len(p.errs) == n
}

// attempts is a sink's max_attempts, def when r is nil: 1 to 100.
func (p *parser) attempts(path string, r *int, def int) int {
	if r == nil {
		return def
	}
	if *r < 1 || *r > 100 {
		p.errAt(path, "%d is out of range: give 1 to 100", *r)
	}
	return *r
}

func (p *parser) webhook(path string, r *rawWebhook) (Webhook, bool) {
	n := len(p.errs)
	w := Webhook{MinSeverity: p.severity(path+".min_severity", r.MinSeverity)}
	if r.URL == nil {
		p.errAt(path, "this [[alert.webhook]] has no url; add url = \"https://...\"")
	} else {
		w.URL = *r.URL
		// Only scheme and host are ever shown: paths and queries of
		// webhook URLs often hold tokens.
		u, err := url.Parse(w.URL)
		switch {
		case err != nil || u.Host == "" || u.Hostname() == "":
			p.errAt(path+".url", "not a URL with a host; give the receiver's URL, such as https://hooks.example.org/xmppcert")
		case u.Scheme == "https":
		case u.Scheme == "http" && acmeca.IsLoopback(u.Hostname()):
		case u.Scheme == "http":
			p.errAt(path+".url", "http://%s is not loopback: alerts (and the signature) would cross the network in plain text; use https://", u.Host)
		default:
			p.errAt(path+".url", "scheme %q: use https:// (or http:// to a loopback receiver)", clip(u.Scheme))
		}
	}
	if r.HMACSecretFile != "" {
		file, data, ok := p.readSecret(path+".hmac_secret_file", r.HMACSecretFile, "webhook HMAC secret file")
		w.HMACSecretFile = file
		if ok {
			w.HMACSecret = alert.Secret(data)
		}
	}
	w.Timeout = p.duration(path+".timeout", r.Timeout, alert.DefaultWebhookTimeout, time.Millisecond, false)
	w.MaxAttempts = p.attempts(path+".max_attempts", r.MaxAttempts, alert.DefaultWebhookMaxAttempts)
	return w, len(p.errs) == n
}

func (p *parser) exec(path string, r *rawExec) (Exec, bool) {
	n := len(p.errs)
	e := Exec{MinSeverity: p.severity(path+".min_severity", r.MinSeverity)}
	switch {
	case r.Command == nil:
		p.errAt(path, "this [[alert.exec]] has no command; add command = [\"/path/to/program\", \"arg\"]")
	case len(r.Command) == 0 || strings.TrimSpace(r.Command[0]) == "":
		p.errAt(path+".command", "is empty; give the program and its arguments, such as [\"/usr/local/bin/page\", \"--team\", \"xmpp\"]")
	default:
		e.Command = append([]string(nil), r.Command...)
		prog := e.Command[0]
		if strings.ContainsRune(prog, '/') {
			prog = p.abs(prog)
			e.Command[0] = prog
		}
		if _, err := exec.LookPath(prog); err != nil {
			var ee *exec.Error
			if errors.As(err, &ee) {
				err = ee.Err
			}
			p.errAt(path+".command", "%s: %v; give the path of an executable program", prog, pathErr(err))
		}
	}
	e.Timeout = p.duration(path+".timeout", r.Timeout, alert.DefaultExecTimeout, time.Millisecond, false)
	return e, len(p.errs) == n
}

func (p *parser) http(r *rawHTTP) HTTP {
	h := HTTP{Listen: DefaultListen}
	if r.Listen != nil {
		h.Listen = *r.Listen
	}
	host, port, err := net.SplitHostPort(h.Listen)
	if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || (n == 0 && port != "0") {
		p.errAt("http.listen", "%q is not HOST:PORT; give an address such as 127.0.0.1:8787", clip(h.Listen))
		return h
	}
	loopback := host != "" && acmeca.IsLoopback(host)
	if r.TokenFile != "" {
		file, data, ok := p.readSecret("http.token_file", r.TokenFile, "token file")
		h.TokenFile = file
		if ok {
			if len(data) < MinTokenLength {
				p.errAt("http.token_file", "the token in %s is shorter than %d characters and could be guessed; put a long random one in it (e.g. openssl rand -hex 32)", file, MinTokenLength)
			} else {
				h.Token = alert.Secret(data)
			}
		}
	} else if !loopback {
		shown := host
		if shown == "" {
			shown = "every address"
		}
		p.errAt("http.listen", "%s is not a loopback address, so clients must send a bearer token: set token_file to a file holding one, or listen on 127.0.0.1", shown)
	}
	if r.HTTPS != nil {
		h.HTTPS = p.https(r.HTTPS)
	}
	return h
}

func (p *parser) https(r *rawHTTPS) *HTTPS {
	h := &HTTPS{Directory: acmeca.LetsEncrypt, Email: r.Email, AgreeTOS: r.AgreeTOS, Profile: r.Profile}
	if r.Listen == nil {
		p.errAt("http.https", "[http.https] has no listen; add listen = \":443\"")
	} else if _, port, err := net.SplitHostPort(*r.Listen); err != nil || port == "" {
		p.errAt("http.https.listen", "%q is not HOST:PORT; give an address such as \":443\"", clip(*r.Listen))
	} else {
		h.Listen = *r.Listen
	}
	if len(r.Names) == 0 {
		p.errAt("http.https", "[http.https] has no names; add names = [\"example.org\"], the names its certificate is for")
	}
	for i, n := range r.Names {
		if c, ok := p.domain(fmt.Sprintf("http.https.names[%d]", i), n); ok {
			h.Names = append(h.Names, c)
		}
	}
	switch {
	case r.CA != nil && *r.CA == DefaultCA:
		h.Local, h.Directory = true, ""
	case r.CA != nil:
		dir, err := acmeca.ParseDirectory(*r.CA)
		if err != nil {
			p.errAt("http.https.ca", "%v", err)
		}
		h.Directory = dir
	}
	if err := acmeca.CheckEmail(r.Email); err != nil {
		p.errAt("http.https.email", "%v", err)
	}
	if !r.AgreeTOS && !h.Local {
		p.errAt("http.https", "the CA's account needs its terms of service accepted: read them, then set agree_tos = true")
	}
	if r.TrustRoot != "" {
		h.TrustRoot = p.abs(r.TrustRoot)
		if _, err := certfile.Read(h.TrustRoot, nil); err != nil {
			p.errAt("http.https.trust_root", "%v", err)
		}
	}
	h.HTTP01, h.TLSALPN01 = len(r.Challenges) == 0, len(r.Challenges) == 0
	for i, c := range r.Challenges {
		switch c {
		case "http-01":
			h.HTTP01 = true
		case "tls-alpn-01":
			h.TLSALPN01 = true
		default:
			p.errAt(fmt.Sprintf("http.https.challenges[%d]", i), "unknown challenge %q: use \"http-01\" (answered on http.listen) or \"tls-alpn-01\" (on this listen)", clip(c))
		}
	}
	return h
}

// advertiseURL checks cluster.advertise_url and returns it without a
// trailing slash ("" when refused).
func (p *parser) advertiseURL(s string) string {
	const key = "cluster.advertise_url"
	u, err := url.Parse(s)
	switch {
	case err != nil:
		p.errAt(key, "%q is not a URL; give http://HOST:PORT, where the other nodes reach this node's dashboard", clip(s))
	case u.Scheme != "http" && u.Scheme != "https":
		p.errAt(key, "%q: the scheme must be http or https", clip(s))
	case u.User != nil:
		p.errAt(key, "the URL carries credentials; remove them (the nodes send the token of http.token_file)")
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		p.errAt(key, "%q is not an absolute URL; give %s://HOST:PORT", clip(s), u.Scheme)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		p.errAt(key, "%q has a path, query or fragment; give only %s://%s (the dashboard's API is at the root)", clip(s), u.Scheme, u.Host)
	default:
		return u.Scheme + "://" + u.Host
	}
	return ""
}

func (p *parser) cluster(r *rawCluster) *Cluster {
	c := &Cluster{Prefix: DefaultClusterPrefix}
	if len(r.Endpoints) == 0 {
		p.errAt("cluster", "[cluster] has no etcd_endpoints; add etcd_endpoints = [\"https://etcd1.example.org:2379\"]")
	}
	for i, e := range r.Endpoints {
		path := fmt.Sprintf("cluster.etcd_endpoints[%d]", i)
		u, err := url.Parse(e)
		switch {
		case err == nil && u.User != nil:
			p.errAt(path, "the URL carries credentials; remove them (the node authenticates with tls_cert_file)")
		case err != nil:
			p.errAt(path, "not a URL; give https://HOST:PORT")
		case u.Host == "" || u.Path != "" && u.Path != "/":
			p.errAt(path, "%q is not an etcd client URL; give https://HOST:PORT", clip(e))
		case u.Scheme == "http" && !acmeca.IsLoopback(u.Hostname()):
			p.errAt(path, "%q is plain http to another machine: etcd carries the lineages' sealed keys and the locks; use https", clip(e))
		case u.Scheme != "http" && u.Scheme != "https":
			p.errAt(path, "%q: the scheme must be https (or http on loopback)", clip(e))
		default:
			c.Endpoints = append(c.Endpoints, e)
		}
	}
	switch {
	case (r.TLSCertFile == "") != (r.TLSKeyFile == ""):
		p.errAt("cluster", "tls_cert_file and tls_key_file go together")
	case r.TLSCertFile != "":
		c.TLSCertFile, c.TLSKeyFile = p.abs(r.TLSCertFile), p.abs(r.TLSKeyFile)
		p.warnExposed("cluster.tls_key_file", c.TLSKeyFile, "etcd client key file")
	}
	if r.TLSCAFile != "" {
		c.TLSCAFile = p.abs(r.TLSCAFile)
		if _, err := certfile.Read(c.TLSCAFile, nil); err != nil {
			p.errAt("cluster.tls_ca_file", "%v", err)
		}
	}
	if r.NodeID != nil {
		c.NodeID = *r.NodeID
	} else if h, err := os.Hostname(); err == nil {
		c.NodeID = h
	}
	if c.NodeID == "" || len(c.NodeID) > 253 || strings.ContainsAny(c.NodeID, "/\x00") || !utf8.ValidString(c.NodeID) {
		p.errAt("cluster.node_id", "%q is not a node name; give one without a slash, such as the host name", clip(c.NodeID))
	}
	c.LeaseTTL = p.duration("cluster.lease_ttl", r.LeaseTTL, DefaultLeaseTTL, 2*time.Second, false)
	if c.LeaseTTL%time.Second != 0 {
		p.errAt("cluster.lease_ttl", "%s is not whole seconds, which is what etcd leases take", c.LeaseTTL)
	}
	if r.Prefix != nil {
		if !strings.HasPrefix(*r.Prefix, "/") || !strings.HasSuffix(*r.Prefix, "/") || len(*r.Prefix) < 2 {
			p.errAt("cluster.prefix", "%q must start and end with a slash, such as \"/xmppcert/\"", clip(*r.Prefix))
		} else {
			c.Prefix = *r.Prefix
		}
	}
	c.MaxOrders = DefaultMaxOrders
	if r.MaxOrders != nil {
		if *r.MaxOrders < 1 || *r.MaxOrders > 1000 {
			p.errAt("cluster.max_concurrent_orders", "%d is out of range: 1 to 1000", *r.MaxOrders)
		} else {
			c.MaxOrders = *r.MaxOrders
		}
	}
	if r.Advertise != nil {
		c.AdvertiseURL = p.advertiseURL(*r.Advertise)
	}
	if r.KeyFile == "" {
		p.errAt("cluster", "[cluster] has no key_file: private keys are sealed in etcd with a key every node shares; create one with `openssl rand -hex 32 > FILE` (mode 0600) and copy it to each node")
		return c
	}
	abs, data, ok := p.readSecret("cluster.key_file", r.KeyFile, "cluster key file")
	c.KeyFile = abs
	if ok {
		key, err := hex.DecodeString(string(data))
		if err != nil || len(key) != ClusterKeySize {
			p.errAt("cluster.key_file", "%s does not hold %d bytes as %d hex digits; create it with `openssl rand -hex 32`", abs, ClusterKeySize, 2*ClusterKeySize)
		} else {
			c.Key = key
		}
	}
	return c
}
