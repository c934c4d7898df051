package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Secret file contents used by the tests; none may ever appear in an
// error.
const (
	hmacSecret  = "TOPSECRET-hmac-0123456789"
	tokenSecret = "TOPSECRET-token-0123456789abcdef"
	shortToken  = "TOPSECRETshort"
	tsigSecret  = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0" // base64
	badEAB      = "TOPSECRET not base64 !!"
)

// testDir makes a directory holding the secret files the test
// configurations name, and returns it.
func testDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"webhook.secret": hmacSecret + "\n",
		"http.token":     tokenSecret + "\n",
		"short.token":    shortToken + "\n",
		"tsig.key":       tsigSecret + "\n",
		"bad-eab.hmac":   badEAB + "\n",
		"empty.secret":   "\n",
		"cluster.key":    strings.Repeat("ab", ClusterKeySize) + "\n",
		"unreadable":     hmacSecret,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "unreadable"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "root.pem"), testpki.PEM(testRoot.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// testRoot is the CA in testDir's root.pem.
var testRoot = testpki.NewRoot("Config Test Root", nil)

// TestTrustRoots: watch.trust_roots are read at load, relative to the
// file, every certificate of every file.
func TestTrustRoots(t *testing.T) {
	dir := testDir(t)
	other := testpki.NewRoot("Other Root", nil)
	inter := other.Intermediate("Other Intermediate", nil)
	if err := os.WriteFile(filepath.Join(dir, "www", "two.pem"), testpki.PEM(other.Cert, inter.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseIn(t, dir, oneHost+"[watch]\ntrust_roots = [\"root.pem\", \""+filepath.Join(dir, "www", "two.pem")+"\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Watch.TrustRoots
	if len(got) != 3 || !got[0].Equal(testRoot.Cert) || !got[1].Equal(other.Cert) || !got[2].Equal(inter.Cert) {
		t.Errorf("trust roots: %d certificates, want the three of the files in order", len(got))
	}
	if cfg, err = parseIn(t, dir, oneHost); err != nil {
		t.Fatal(err)
	}
	if cfg.Watch.TrustRoots != nil {
		t.Errorf("without trust_roots: %d roots, want none", len(cfg.Watch.TrustRoots))
	}
}

// parseIn parses text as DIR/xmppcert.toml.
func parseIn(t *testing.T, dir, text string) (*Config, error) {
	t.Helper()
	return Parse(filepath.Join(dir, "xmppcert.toml"), []byte(text))
}

// markedLine is the line of text holding the marker "#<", 0 if none.
func markedLine(text string) int {
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "#<") {
			return i + 1
		}
	}
	return 0
}

const oneHost = "[[host]]\ndomain = \"example.org\"\n"

// TestBadConfigs: each bad configuration is refused with an error at
// the marked line ("#<") that says what is wrong.
func TestBadConfigs(t *testing.T) {
	dir := testDir(t)
	cases := []struct {
		name, text, want string
	}{
		{"unknown top-level key", "stat_dir = \"/x\" #<\n" + oneHost, `unknown key "stat_dir" at the top level: did you mean "state_dir"?`},
		{"unknown key in second host", oneHost + "[[host]]\ndomian = \"example.net\" #<\n", `host.domian: unknown key "domian" in [host]: did you mean "domain"?`},
		{"unknown table", oneHost + "[wach] #<\ninterval = \"1h\"\n", `unknown key "wach" at the top level: did you mean "watch"?`},
		{"unknown key no suggestion", oneHost + "[watch]\nfrobnicate = 1 #<\n", `unknown key "frobnicate" in [watch]; the keys there are concurrency, from, full_interval`},
		{"key with wrong case", "[[host]]\nDomain = \"example.org\" #<\n", `keys are case-sensitive, write "domain"`},
		{"key in wrong table", oneHost + "[watch]\nretention = \"1d\" #<\n", `unknown key "retention" in [watch]; it belongs in [history]`},
		{"top-level key after a table", oneHost + "state_dir = \"/x\" #<\n", `host.state_dir: unknown key "state_dir" in [host]; it belongs at the top level, before the first [table] or [[array]] header`},
		{"wrong type", oneHost + "[watch]\nconcurrency = \"8\" #<\n", "watch.concurrency: must be an integer, not a string"},
		{"wrong type in second host", oneHost + "[[host]]\ndomain = \"example.net\"\nreuse_key = \"yes\" #<\n", "host.reuse_key: must be a boolean (true or false), not a string"},
		{"wrong type in nested table of second host", oneHost + "[[host]]\ndomain = \"example.net\"\n[host.pins.tlsa]\nserver = \"ns1.example.net\"\nttl = 3600 #<\n", `host.pins.tlsa.ttl: 3600 has no unit`},
		{"array where table expected", "[host] #<\ndomain = \"example.org\"\n", "write [[host]] (double brackets)"},
		{"string where table expected", "watch = \"1h\" #<\n" + oneHost, "watch: must be a table ([watch]), not a string"},
		{"bad duration", oneHost + "[watch]\ninterval = \"1 hour\" #<\n", `watch.interval: "1 hour" is not a duration: write it like "90s", "15m", "1h" or "7d"`},
		{"duration without unit", oneHost + "[watch]\ninterval = 3600 #<\n", `3600 has no unit`},
		{"zero interval", oneHost + "[watch]\ninterval = \"0s\" #<\n", "watch.interval: 0s is not positive"},
		{"negative interval", oneHost + "[watch]\ninterval = \"-1h\" #<\n", "watch.interval: -1h0m0s is not positive"},
		{"never where not allowed", oneHost + "[history]\nretention = \"never\" #<\n", `"never" is not allowed here`},
		{"concurrency zero", oneHost + "[watch]\nconcurrency = 0 #<\n", "watch.concurrency: 0 is out of range: give 1 to 1024"},
		{"concurrency too high", oneHost + "[watch]\nconcurrency = 5000 #<\n", "5000 is out of range"},
		{"jitter too big", oneHost + "[watch]\njitter = 1.5 #<\n", "watch.jitter: 1.5 is out of range"},
		{"jitter duration too long", oneHost + "[watch]\ninterval = \"10m\"\njitter = \"10m\" #<\n", "up to (not including) the interval"},
		{"timeout longer than interval", oneHost + "[watch]\ninterval = \"10s\"\ntimeout = \"30s\" #<\n", "longer than the interval"},
		{"retention shorter than interval", oneHost + "[watch]\ninterval = \"2h\"\n[history]\nretention = \"1h\" #<\n", "shorter than watch.interval"},
		{"invalid domain", "[[host]]\ndomain = \"exa mple.org\" #<\n", "host.domain: "},
		{"ip as domain", "[[host]]\ndomain = \"192.0.2.1\" #<\n", "is an IP address"},
		{"host without domain", oneHost + "[[host]] #<\ncomponents = [\"conference.example.net\"]\n", "this [[host]] has no domain"},
		{"duplicate host", oneHost + "[[host]]\ndomain = \"Example.ORG.\" #<\n", "example.org is already named at line 2"},
		{"component named by another host", oneHost + "[[host]]\ndomain = \"example.net\"\ncomponents = [\n  \"muc.example.net\",\n  \"example.org\", #<\n]\n", "host.components: example.org is already named at line 2"},
		{"bad component", "[[host]]\ndomain = \"example.org\"\ncomponents = [\"ok.example.org\", \"*.example.org\"] #<\n", "is a wildcard"},
		{"unknown ca", "[[host]]\ndomain = \"example.org\"\nca = \"letsencrpyt\" #<\n", `unknown CA "letsencrpyt"`},
		{"acme ca without settings", "[[host]]\ndomain = \"example.org\"\nca = \"letsencrypt\" #<\n", "an ACME CA needs [host.acme]"},
		{"acme without challenge", "[[host]]\ndomain = \"example.org\"\nca = \"letsencrypt\"\n[host.acme] #<\nemail = \"a@example.org\"\n", "no way to prove control of the names"},
		{"acme settings with local ca", "[[host]]\ndomain = \"example.org\"\n[host.acme] #<\nhttp_listen = \":80\"\n", "[host.acme] is for ACME CAs"},
		{"days with acme", "[[host]]\ndomain = \"example.org\"\nca = \"letsencrypt\"\ndays = 30 #<\n[host.acme]\nhttp_listen = \":80\"\n", "days is for ca = \"local\""},
		{"days out of range", "[[host]]\ndomain = \"example.org\"\ndays = 400 #<\n", "400 is out of range: give 1 to 397"},
		{"bad key type", "[[host]]\ndomain = \"example.org\"\nkey_type = \"ed25519\" #<\n", `unknown key type "ed25519"`},
		{"bad deploy target", "[[host]]\ndomain = \"example.org\"\ndeploy = [\"prosody\", \"openfire:/x\"] #<\n", `unknown deploy target "openfire:/x"`},
		{"empty hook", "[[host]]\ndomain = \"example.org\"\nhooks = [\"  \"] #<\n", "empty hook command"},
		{"tsig name without secret", "[[host]]\ndomain = \"example.org\"\n[host.pins.tlsa]\nserver = \"ns1.example.org\"\ntsig_name = \"k\" #<\n", "needs tsig_secret_file"},
		{"tlsa without server", "[[host]]\ndomain = \"example.org\"\n[host.pins.tlsa] #<\nttl = \"1h\"\n", "no server"},
		{"tlsa usage out of range", "[[host]]\ndomain = \"example.org\"\n[host.pins.tlsa]\nserver = \"ns1.example.org\"\nusage = 4 #<\n", "4 is out of range: 0 PKIX-TA"},
		{"tlsa bad port", "[[host]]\ndomain = \"example.org\"\n[host.pins.tlsa]\nserver = \"ns1.example.org\"\nports = [5222, 70000] #<\n", "70000 is not a TCP port"},
		{"tsig secret file missing", "[[host]]\ndomain = \"example.org\"\n[host.pins.tlsa]\nserver = \"ns1.example.org\"\ntsig_name = \"k\"\ntsig_secret_file = \"nope.key\" #<\n", "cannot read TSIG secret file"},
		{"bad caa identity", "[[host]]\ndomain = \"example.org\"\nca = \"letsencrypt\"\n[host.acme]\nhttp_listen = \":80\"\ncaa_identities = [\"lets encrypt\"] #<\n", `host.acme.caa_identities: "lets encrypt" is not a CAA issuer domain name`},
		{"acme timeout not positive", "[[host]]\ndomain = \"example.org\"\nca = \"letsencrypt\"\n[host.acme]\nhttp_listen = \":80\"\ntimeout = \"0s\" #<\n", `host.acme.timeout: 0s is not positive`},
		{"acme timeout too short", "[[host]]\ndomain = \"example.org\"\nca = \"letsencrypt\"\n[host.acme]\nhttp_listen = \":80\"\ntimeout = \"500ms\" #<\n", `host.acme.timeout: 500ms is too short; give at least 1s`},
		{"bad preflight resolver", "[[host]]\ndomain = \"example.org\"\nca = \"letsencrypt\"\n[host.acme]\nhttp_listen = \":80\"\nresolver = \"127.0.0.1\" #<\n", `host.acme.resolver: "127.0.0.1": not HOST:PORT`},
		{"ct without logs", oneHost + "[ct] #<\ninterval = \"5m\"\n", "ct: no log to follow"},
		{"ct bad url", oneHost + "[ct]\nlogs = [\"ct.example/log\"] #<\n", `ct.logs: "ct.example/log" is not an http(s) URL`},
		{"ct bad log list", oneHost + "[ct]\nlog_list = \"webhook.secret\" #<\n", "not a v3 log list"},
		{"ct missing log list", oneHost + "[ct]\nlog_list = \"nope.json\" #<\n", "nope.json: no such file"},
		{"vantage without name", oneHost + "[[watch.vantage]] #<\nproxy = \"socks5://127.0.0.1:9050\"\n", "this [[watch.vantage]] has no name"},
		{"vantage bad name", oneHost + "[[watch.vantage]]\nname = \"two words\" #<\nproxy = \"socks5://127.0.0.1:9050\"\n", `"two words" is not a vantage name`},
		{"vantage named twice", oneHost + "[[watch.vantage]]\nname = \"tor\"\nproxy = \"socks5://127.0.0.1:9050\"\n[[watch.vantage]]\nname = \"tor\" #<\nproxy = \"socks5://127.0.0.1:9051\"\n", `"tor" is already the name of the vantage at line 3`},
		{"vantage without proxy", oneHost + "[[watch.vantage]] #<\nname = \"tor\"\n", "has no proxy"},
		{"vantage http proxy", oneHost + "[[watch.vantage]]\nname = \"tor\"\nproxy = \"http://127.0.0.1:3128\" #<\n", "only SOCKS5 proxies are supported"},
		{"vantage proxy without port", oneHost + "[[watch.vantage]]\nname = \"tor\"\nproxy = \"socks5://127.0.0.1\" #<\n", "not HOST:PORT"},
		{"vantage password in url", oneHost + "[[watch.vantage]]\nname = \"tor\"\nproxy = \"socks5://u:TOPSECRET@127.0.0.1:1080\" #<\n", "holds a password: put it in a file named by password_file"},
		{"vantage password file without user", oneHost + "[[watch.vantage]]\nname = \"tor\"\nproxy = \"socks5://127.0.0.1:1080\" #<\npassword_file = \"webhook.secret\"\n", "names no user for password_file"},
		{"posh out_dir missing", "[[host]]\ndomain = \"example.org\"\n[host.pins.posh]\nout_dir = \"no/such/dir\" #<\n", "create the web root or fix the path"},
		{"posh service of anonymous host", "[[host]]\ndomain = \"example.org\"\nanonymous = true\n[host.pins.posh]\nservices = [\"xmpp-server\"] #<\n", "does not serve xmpp-server"},
		{"unknown peer service", oneHost + "[[watch.peer]]\ndomain = \"jabber.org\"\nservice = \"s2s\" #<\n", `unknown service "s2s": use "xmpp-client" or "xmpp-server"; for s2s write "xmpp-server"`},
		{"unknown peer service in list", oneHost + "[[watch.peer]]\ndomain = \"jabber.org\"\nservices = [\"xmpp-client\", \"https\"] #<\n", `unknown service "https"`},
		{"service and services", oneHost + "[[watch.peer]]\ndomain = \"jabber.org\"\nservice = \"xmpp-server\" #<\nservices = [\"xmpp-client\"]\n", "give service or services, not both"},
		{"peer without domain", oneHost + "[[watch.peer]] #<\nservice = \"xmpp-server\"\n", "this [[watch.peer]] has no domain"},
		{"bad peer domain", oneHost + "[[watch.peer]]\ndomain = \"-bad-.org\" #<\n", "is not a valid XMPP domain"},
		{"duplicate peer", oneHost + "[[watch.peer]]\ndomain = \"jabber.org\"\n[[watch.peer]] #<\ndomain = \"JABBER.org\"\n", "jabber.org xmpp-server is already watched by the peer at line 3"},
		{"peer is own host", oneHost + "[[watch.peer]]\ndomain = \"example.org\" #<\n", "is one of the [[host]] names"},
		{"bad connect", oneHost + "[[watch.peer]]\ndomain = \"jabber.org\"\nconnect = \"jabber.org\" #<\n", "give HOST:PORT"},
		{"peer in inline table array", oneHost + "[watch]\npeer = [\n  {domain = \"a.example\"},\n  {domain = \"b.example\", service = \"bogus\"}, #<\n]\n", `unknown service "bogus"`},
		{"bad from", oneHost + "[watch]\nfrom = \"not a domain\" #<\n", "watch.from: "},
		{"trust root missing", oneHost + "[watch]\ntrust_roots = [\n  \"root.pem\",\n  \"missing.pem\", #<\n]\n", "watch.trust_roots: " + dir + "/missing.pem: cannot read: no such file or directory; give a PEM file of CA certificates"},
		{"trust root not a certificate", oneHost + "[watch]\ntrust_roots = [\"webhook.secret\"] #<\n", "watch.trust_roots: " + dir + "/webhook.secret: "},
		{"trust root empty path", oneHost + "[watch]\ntrust_roots = [\"\"] #<\n", "watch.trust_roots: is empty"},
		{"trust roots not a list", oneHost + "[watch]\ntrust_roots = \"root.pem\" #<\n", "watch.trust_roots: must be an array, not a string"},
		{"http webhook to remote host", oneHost + "[[alert.webhook]]\nurl = \"http://hooks.example.org/x\" #<\n", "http://hooks.example.org is not loopback"},
		{"webhook other scheme", oneHost + "[[alert.webhook]]\nurl = \"ftp://hooks.example.org/x\" #<\n", `scheme "ftp"`},
		{"webhook without url", oneHost + "[[alert.webhook]] #<\nmin_severity = \"warning\"\n", "has no url"},
		{"webhook secret missing", oneHost + "[[alert.webhook]]\nurl = \"https://h.example.org/\"\nhmac_secret_file = \"missing.secret\" #<\n", "cannot read webhook HMAC secret file " + dir + "/missing.secret: no such file or directory"},
		{"webhook secret empty", oneHost + "[[alert.webhook]]\nurl = \"https://h.example.org/\"\nhmac_secret_file = \"empty.secret\" #<\n", "is empty; put the secret in it"},
		{"bad severity", oneHost + "[[alert.webhook]]\nurl = \"https://h.example.org/\"\nmin_severity = \"warn\" #<\n", `unknown severity "warn"`},
		{"max attempts", oneHost + "[[alert.webhook]]\nurl = \"https://h.example.org/\"\nmax_attempts = 0 #<\n", "0 is out of range: give 1 to 100"},
		{"exec without command", oneHost + "[[alert.exec]] #<\ntimeout = \"5s\"\n", "has no command"},
		{"exec empty command", oneHost + "[[alert.exec]]\ncommand = [] #<\n", "is empty"},
		{"exec command as string", oneHost + "[[alert.exec]]\ncommand = \"/bin/true\" #<\n", "alert.exec.command: must be an array, not a string"},
		{"exec program missing", oneHost + "[[alert.exec]]\ncommand = [\"bin/no-such-hook\"] #<\n", dir + "/bin/no-such-hook: "},
		{"exec program not in PATH", oneHost + "[[alert.exec]]\ncommand = [\"no-such-hook-xmppcert\", \"x\"] #<\n", "no-such-hook-xmppcert: executable file not found"},
		{"xmpp sink without jid", oneHost + "[[alert.xmpp]] #<\npassword_file = \"webhook.secret\"\nto = [\"admin@example.org\"]\n", "this [[alert.xmpp]] has no jid"},
		{"xmpp sink domain as jid", oneHost + "[[alert.xmpp]]\njid = \"example.org\" #<\npassword_file = \"webhook.secret\"\nto = [\"admin@example.org\"]\n", `"example.org" is not an account JID; give user@domain`},
		{"xmpp sink without password", oneHost + "[[alert.xmpp]] #<\njid = \"alerts@example.org\"\nto = [\"admin@example.org\"]\n", "has no password_file"},
		{"xmpp sink password missing", oneHost + "[[alert.xmpp]]\njid = \"alerts@example.org\"\npassword_file = \"missing.password\" #<\nto = [\"admin@example.org\"]\n", "cannot read XMPP alert account's password file " + dir + "/missing.password"},
		{"xmpp sink without recipients", oneHost + "[[alert.xmpp]] #<\njid = \"alerts@example.org\"\npassword_file = \"webhook.secret\"\n", "has no recipients"},
		{"xmpp sink bad recipient", oneHost + "[[alert.xmpp]]\njid = \"alerts@example.org\"\npassword_file = \"webhook.secret\"\nto = [\"admin@exa mple.org\"] #<\n", `"admin@exa mple.org" is not a JID`},
		{"xmpp sink bad server", oneHost + "[[alert.xmpp]]\njid = \"alerts@example.org\"\npassword_file = \"webhook.secret\"\nto = [\"admin@example.org\"]\nserver = \"xmpp.example.org\" #<\n", "is not HOST:PORT"},
		{"resend interval", oneHost + "[alert]\nresend_interval = \"0s\" #<\n", "alert.resend_interval: 0s is not positive"},
		{"listen on all addresses without token", oneHost + "[http]\nlisten = \":8787\" #<\n", "every address is not a loopback address"},
		{"listen on public address without token", oneHost + "[http]\nlisten = \"0.0.0.0:8787\" #<\n", "0.0.0.0 is not a loopback address, so clients must send a bearer token: set token_file"},
		{"listen not host port", oneHost + "[http]\nlisten = \"8787\" #<\n", "is not HOST:PORT"},
		{"https without listen", oneHost + "[http.https] #<\nnames = [\"example.org\"]\nagree_tos = true\n", "[http.https] has no listen"},
		{"https without names", oneHost + "[http.https] #<\nlisten = \":443\"\nagree_tos = true\n", "[http.https] has no names"},
		{"https bad name", oneHost + "[http.https]\nlisten = \":443\"\nnames = [\"exa mple.org\"] #<\nagree_tos = true\n", `http.https.names: invalid domain "exa mple.org"`},
		{"https terms not agreed", oneHost + "[http.https] #<\nlisten = \":443\"\nnames = [\"example.org\"]\n", "set agree_tos = true"},
		{"https unknown CA", oneHost + "[http.https]\nlisten = \":443\"\nnames = [\"example.org\"]\nagree_tos = true\nca = \"letsencrpyt\" #<\n", `unknown CA "letsencrpyt"`},
		{"https unknown challenge", oneHost + "[http.https]\nlisten = \":443\"\nnames = [\"example.org\"]\nagree_tos = true\nchallenges = [\"dns-01\"] #<\n", `unknown challenge "dns-01"`},
		{"token file unreadable", oneHost + "[http]\nlisten = \"[::]:8787\"\ntoken_file = \"unreadable\" #<\n", "cannot read token file"},
		{"cluster without endpoints", oneHost + "[cluster] #<\nkey_file = \"cluster.key\"\n", "no etcd_endpoints"},
		{"cluster over plain http to another machine", oneHost + "[cluster]\nkey_file = \"cluster.key\"\netcd_endpoints = [\"http://etcd.example.org:2379\"] #<\n", "use https"},
		{"cluster without a key file", oneHost + "[cluster] #<\netcd_endpoints = [\"https://etcd.example.org:2379\"]\n", "openssl rand -hex 32"},
		{"cluster key file not hex", oneHost + "[cluster]\netcd_endpoints = [\"https://etcd.example.org:2379\"]\nkey_file = \"webhook.secret\" #<\n", "64 hex digits"},
		{"cluster order cap zero", oneHost + "[cluster]\netcd_endpoints = [\"https://etcd.example.org:2379\"]\nkey_file = \"cluster.key\"\nmax_concurrent_orders = 0 #<\n", "cluster.max_concurrent_orders: 0 is out of range: 1 to 1000"},
		{"cluster lease in milliseconds", oneHost + "[cluster]\netcd_endpoints = [\"https://etcd.example.org:2379\"]\nkey_file = \"cluster.key\"\nlease_ttl = \"2500ms\" #<\n", "whole seconds"},
		{"cluster prefix", oneHost + "[cluster]\netcd_endpoints = [\"https://etcd.example.org:2379\"]\nkey_file = \"cluster.key\"\nprefix = \"xmppcert\" #<\n", "start and end with a slash"},
		{"cluster endpoint with credentials", oneHost + "[cluster]\nkey_file = \"cluster.key\"\netcd_endpoints = [\"https://root:TOPSECRET@etcd.example.org:2379\"] #<\n", "carries credentials"},
		{"cluster advertise_url scheme", oneHost + "[cluster]\netcd_endpoints = [\"https://etcd.example.org:2379\"]\nkey_file = \"cluster.key\"\nadvertise_url = \"ftp://node1.example.org:8787\" #<\n", "cluster.advertise_url: \"ftp://node1.example.org:8787\": the scheme must be http or https"},
		{"cluster advertise_url path", oneHost + "[cluster]\netcd_endpoints = [\"https://etcd.example.org:2379\"]\nkey_file = \"cluster.key\"\nadvertise_url = \"https://node1.example.org/xmppcert/\" #<\n", "has a path, query or fragment; give only https://node1.example.org"},
		{"cluster advertise_url relative", oneHost + "[cluster]\netcd_endpoints = [\"https://etcd.example.org:2379\"]\nkey_file = \"cluster.key\"\nadvertise_url = \"node1.example.org:8787\" #<\n", "cluster.advertise_url"},
		{"cluster advertise_url without host", oneHost + "[cluster]\netcd_endpoints = [\"https://etcd.example.org:2379\"]\nkey_file = \"cluster.key\"\nadvertise_url = \"http:///\" #<\n", "is not an absolute URL"},
		{"cluster advertise_url with credentials", oneHost + "[cluster]\netcd_endpoints = [\"https://etcd.example.org:2379\"]\nkey_file = \"cluster.key\"\nadvertise_url = \"http://me:TOPSECRET@node1.example.org:8787\" #<\n", "carries credentials"},
		{"cluster TLS key alone", oneHost + "[cluster] #<\netcd_endpoints = [\"https://etcd.example.org:2379\"]\nkey_file = \"cluster.key\"\ntls_key_file = \"node.key\"\n", "go together"},
		{"syntax error", oneHost + "[watch]\ninterval = \"1h #<\n", "TOML syntax: "},
		{"syntax error duplicate key", oneHost + "[watch]\ninterval = \"1h\"\ninterval = \"2h\" #<\n", "TOML syntax: "},
		{"after multi-line strings", "[[host]]\ndomain = \"example.org\"\nhooks = [\"\"\"\n[[host]]\ndomain = 'x'\n\"\"\", '''\nkey = \"value\"\n''']\n[[host]]\ndomain = \"bad domain\" #<\n", "host.domain: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if os.Geteuid() == 0 && strings.Contains(c.text, "unreadable") {
				t.Skip("root reads every file")
			}
			cfg, err := parseIn(t, dir, c.text)
			if err == nil {
				t.Fatalf("accepted:\n%s\n%+v", c.text, cfg)
			}
			if cfg != nil {
				t.Errorf("a Config came back with the error")
			}
			line := markedLine(c.text)
			prefix := filepath.Join(dir, "xmppcert.toml") + ":" + strconv.Itoa(line) + ":"
			first := strings.Split(err.Error(), "\n")[0]
			if !strings.HasPrefix(first, prefix) {
				t.Errorf("error at the wrong place; want %s...\n%v", prefix, err)
			}
			if !strings.Contains(first, c.want) {
				t.Errorf("error does not say %q:\n%v", c.want, err)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || list[0].Line != line || list[0].Col < 1 {
				t.Errorf("not an ErrorList starting at line %d with a column: %#v", line, err)
			}
			noSecrets(t, err.Error())
		})
	}
}

// noSecrets fails when s holds the content of a secret file.
func noSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{hmacSecret, tokenSecret, shortToken, tsigSecret, badEAB, "TOPSECRET"} {
		if strings.Contains(s, secret) {
			t.Errorf("secret %q leaked into: %s", secret, s)
		}
	}
}

// TestSecretsNeverInErrors: errors about secret files, and about URLs
// that may carry tokens, never quote them.
func TestSecretsNeverInErrors(t *testing.T) {
	dir := testDir(t)
	for _, text := range []string{
		// A secret file whose content is wrong.
		oneHost + "[http]\nlisten = \"0.0.0.0:1\"\ntoken_file = \"short.token\"\n",
		"[[host]]\ndomain = \"example.org\"\nca = \"letsencrypt\"\n[host.acme]\nhttp_listen = \":80\"\neab_kid = \"kid\"\neab_hmac_file = \"bad-eab.hmac\"\n",
		"[[host]]\ndomain = \"example.org\"\n[host.pins.tlsa]\nserver = \"ns1.example.org\"\ntsig_name = \"k\"\ntsig_secret_file = \"bad-eab.hmac\"\n",
		// Secrets read fine, another problem in the same table.
		oneHost + "[[alert.webhook]]\nurl = \"http://h.example.org/?token=TOPSECRET\"\nhmac_secret_file = \"webhook.secret\"\n",
		oneHost + "[http]\nlisten = \"0.0.0.0:x\"\ntoken_file = \"http.token\"\n",
		// Secret files given where a configuration is expected.
		oneHost + "[watch]\ninterval = \"" + hmacSecret + "\"\n",
	} {
		_, err := parseIn(t, dir, text)
		if err == nil {
			t.Errorf("accepted:\n%s", text)
			continue
		}
		noSecrets(t, strings.ReplaceAll(err.Error(), "TOPSECRET-hmac-0123456789\" is not a duration", ""))
		if strings.Contains(text, "interval") && !strings.Contains(err.Error(), "is not a duration") {
			t.Errorf("unexpected error: %v", err)
		}
	}
	// A loaded configuration prints its secrets as [redacted].
	cfg, err := parseIn(t, dir, oneHost+"[[alert.webhook]]\nurl = \"https://h.example.org/\"\nhmac_secret_file = \"webhook.secret\"\n[http]\nlisten = \"[::]:8787\"\ntoken_file = \"http.token\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.Alert.Webhooks[0].HMACSecret) != hmacSecret || string(cfg.HTTP.Token) != tokenSecret {
		t.Errorf("secrets not read (or not trimmed)")
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		noSecrets(t, fmt.Sprintf(f, cfg))
		noSecrets(t, fmt.Sprintf(f, *cfg))
	}
	cfg, err = parseIn(t, dir, oneHost+"[[alert.xmpp]]\njid = \"alerts@example.org\"\npassword_file = \"webhook.secret\"\nto = [\"admin@example.org\", \"ops@example.net\"]\nmin_severity = \"warning\"\n")
	if err != nil {
		t.Fatal(err)
	}
	cfg2, err := parseIn(t, dir, oneHost+"[http.https]\nlisten = \":443\"\nnames = [\"Example.ORG\", \"xmpp.example.org\"]\nagree_tos = true\nchallenges = [\"tls-alpn-01\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg2.HTTP.HTTPS; h == nil || h.Listen != ":443" || !slices.Equal(h.Names, []string{"example.org", "xmpp.example.org"}) ||
		h.Directory != acmeca.LetsEncrypt || h.HTTP01 || !h.TLSALPN01 || !h.AgreeTOS {
		t.Errorf("[http.https]: %+v", h)
	}
	x := cfg.Alert.XMPP[0]
	if o := x.Options(); o.JID != "alerts@example.org" || string(o.Password) != hmacSecret || len(o.To) != 2 || o.Server != "" ||
		o.Timeout != alert.DefaultXMPPTimeout || o.MaxAttempts != alert.DefaultXMPPMaxAttempts || x.MinSeverity != changes.Warning {
		t.Errorf("[[alert.xmpp]]: %+v", x)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		noSecrets(t, fmt.Sprintf(f, cfg))
		noSecrets(t, fmt.Sprintf(f, *cfg))
	}
}

// TestPreflightSettings: [host.acme]'s pre-flight keys reach the stored
// request's ACME settings; its timeout, the CA's default when not given,
// the host's.
func TestPreflightSettings(t *testing.T) {
	cfg, err := parseIn(t, testDir(t), "[[host]]\ndomain = \"example.org\"\nca = \"https://ca.example/dir\"\n[host.acme]\nhttp_listen = \":80\"\ncaa_identities = [\"CA.Example\"]\nresolver = \"127.0.0.1:53\"\nno_preflight = true\ntimeout = \"30m\"\n"+
		"[[host]]\ndomain = \"example.net\"\nca = \"https://ca.example/dir\"\n[host.acme]\nhttp_listen = \":80\"\n")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Hosts[0].ACME
	if a == nil || !slices.Equal(a.CAAIdentities, []string{"ca.example"}) || a.Resolver != "127.0.0.1:53" || !a.NoPreflight || a.Preflight(true) {
		t.Errorf("[host.acme] %+v", a)
	}
	if cfg.Hosts[0].Timeout != 30*time.Minute || cfg.Hosts[1].Timeout != acmeca.DefaultTimeout {
		t.Errorf("timeouts %s and %s; want 30m0s and the default, %s", cfg.Hosts[0].Timeout, cfg.Hosts[1].Timeout, acmeca.DefaultTimeout)
	}
}

// TestCTConfig: [ct] reads its log list (retired logs left out) and
// URLs, with the default interval.
func TestCTConfig(t *testing.T) {
	dir := testDir(t)
	list := `{"operators":[{"logs":[{"description":"A","url":"https://a.example/","state":{"usable":{}}}],"tiled_logs":[{"description":"T","monitoring_url":"https://t.example/","state":{"retired":{}}}]}]}`
	if err := os.WriteFile(filepath.Join(dir, "log_list.json"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseIn(t, dir, oneHost+"[ct]\nlog_list = \"log_list.json\"\nlogs = [\"https://ct.example/tiles/\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.CT; c == nil || len(c.Logs) != 1 || c.Logs[0].URL != "https://a.example/" || c.Logs[0].Tiled || !slices.Equal(c.URLs, []string{"https://ct.example/tiles/"}) || c.Interval != DefaultCTInterval {
		t.Errorf("[ct] %+v", cfg.CT)
	}
}

// TestVantages: [[watch.vantage]] entries are read in order, and a
// proxy password is read from its file, sent in the URL the probes use
// and never printed with the configuration.
func TestVantages(t *testing.T) {
	dir := testDir(t)
	cfg, err := parseIn(t, dir, oneHost+"[[watch.vantage]]\nname = \"tor\"\nproxy = \"socks5://127.0.0.1:9050\"\n[[watch.vantage]]\nname = \"vps-1\"\nproxy = \"socks5h://ops@vps.example.net:1080\"\npassword_file = \"webhook.secret\"\n")
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.Watch.Vantages
	if len(v) != 2 || v[0].Name != "tor" || v[0].Via() != "socks5://127.0.0.1:9050" || v[1].Name != "vps-1" || v[1].Line != 6 ||
		v[1].Via() != "socks5h://ops:"+hmacSecret+"@vps.example.net:1080" {
		t.Errorf("vantages: %+v (via %q, %q)", v, v[0].Via(), v[1].Via())
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		noSecrets(t, fmt.Sprintf(f, cfg))
	}
}

// TestExample: contrib/xmppcert.toml is accepted and says what its
// comments say.
func TestExample(t *testing.T) {
	data, err := os.ReadFile("../../contrib/xmppcert.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The example names secret files relative to itself.
	for name, content := range map[string]string{"tsig.key": tsigSecret, "webhook.secret": hmacSecret, "xmpp.password": tokenSecret} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "xmppcert.toml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file)
	if err != nil {
		t.Fatalf("the example is refused:\n%v", err)
	}
	if len(cfg.Hosts) != 2 || cfg.Hosts[0].Domain != "example.org" || len(cfg.Hosts[0].Components) != 2 {
		t.Errorf("hosts: %+v", cfg.Hosts)
	}
	if tl := cfg.Hosts[0].TLSA; tl == nil || tl.TSIGSecretFile != filepath.Join(dir, "tsig.key") || tl.Hold != 2*time.Hour || !tl.FromSRV {
		t.Errorf("tlsa: %+v", tl)
	}
	if a := cfg.Hosts[1].ACME; a == nil || a.Directory != "https://acme-v02.api.letsencrypt.org/directory" || a.Challenges.HTTPListen != ":80" || !cfg.Hosts[1].AgreeTOS {
		t.Errorf("acme: %+v", a)
	}
	if len(cfg.Watch.Peers) != 3 || len(cfg.Alert.Webhooks) != 1 || len(cfg.Alert.Execs) != 1 || len(cfg.Alert.XMPP) != 1 {
		t.Errorf("watch/alert: %+v %+v", cfg.Watch, cfg.Alert)
	}
	if cfg.Alert.Webhooks[0].MinSeverity != changes.Warning || string(cfg.Alert.Webhooks[0].HMACSecret) != hmacSecret {
		t.Errorf("webhook: %+v", cfg.Alert.Webhooks[0])
	}
	if x := cfg.Alert.XMPP[0]; x.JID != "xmppcert@example.org" || string(x.Password) != tokenSecret || x.MinSeverity != changes.Warning || x.MaxAttempts != 10 {
		t.Errorf("xmpp: %+v", x)
	}
	if got := len(cfg.Targets()); got != 10 {
		t.Errorf("%d targets, want 10: %+v", got, cfg.Targets())
	}
	if _, err := cfg.Hosts[1].Request(); err != nil {
		t.Errorf("Request: %v", err)
	}
}

// TestDefaults: what a minimal file gets.
func TestDefaults(t *testing.T) {
	dir := testDir(t)
	cfg, err := parseIn(t, dir, "[[host]]\ndomain = \"Example.ORG\"\ncomponents = [\"MUC.example.org.\"]\n[host.pins.tlsa]\nserver = \"ns1.example.org\"\n[host.pins.posh]\n")
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Hosts[0]
	if h.Domain != "example.org" || h.Components[0] != "muc.example.org" || h.CA != "local" || h.KeyType != "ecdsa-p256" || h.Days != 90 || h.ACME != nil || h.Line != 1 {
		t.Errorf("host defaults: %+v", h)
	}
	if tl := h.TLSA; tl.TTL != time.Hour || tl.Hold != 2*time.Hour || tl.Usage != 3 || tl.Selector != 1 || tl.MatchingType != 1 || tl.Ports != nil || tl.FromSRV {
		t.Errorf("tlsa defaults: %+v", tl)
	}
	if po := h.POSH; po.Expires != 24*time.Hour || len(po.Services) != 2 || po.OutDir != "" {
		t.Errorf("posh defaults: %+v", po)
	}
	w := cfg.Watch
	if w.Interval != time.Hour || w.Jitter != (Jitter{Fraction: 0.1}) || w.Concurrency != 8 || w.Timeout != 5*time.Second || !w.OwnHosts || w.From != "example.org" || w.Peers != nil {
		t.Errorf("watch defaults: %+v", w)
	}
	if w.Jitter.Max(w.Interval) != 6*time.Minute {
		t.Errorf("jitter max %v", w.Jitter.Max(w.Interval))
	}
	if cfg.History.Retention != 90*24*time.Hour {
		t.Errorf("retention %v", cfg.History.Retention)
	}
	if a := cfg.Alert; a.MinSeverity != changes.Info || a.ResendInterval != 24*time.Hour || a.Webhooks != nil || a.Execs != nil {
		t.Errorf("alert defaults: %+v", a)
	}
	if cfg.HTTP.Listen != "127.0.0.1:8787" || cfg.HTTP.TokenFile != "" || cfg.StateDir != "" {
		t.Errorf("http/state defaults: %+v %q", cfg.HTTP, cfg.StateDir)
	}
	want := []Target{{Domain: "example.org", Service: xmppaddr.ServiceClient, Own: true}, {Domain: "example.org", Service: xmppaddr.ServiceServer, Own: true}, {Domain: "muc.example.org", Service: xmppaddr.ServiceServer, Own: true}}
	if got := cfg.Targets(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("targets %v, want %v", got, want)
	}
	req, err := h.Request()
	if err != nil || req.CA != "local" || req.Days != 90 || len(req.Names) != 2 || req.Names[1].Role != xmppaddr.RoleComponent {
		t.Errorf("request %+v, %v", req, err)
	}

	// A peer alone is a configuration too; webhooks to loopback may be
	// plain http; durations in days; "never".
	cfg, err = parseIn(t, dir, "[watch]\ninterval = \"90s\"\njitter = \"10s\"\nown_hosts = false\n[[watch.peer]]\ndomain = \"jabber.org\"\n[history]\nretention = \"1.5d\"\n[alert]\nresend_interval = \"never\"\n[[alert.webhook]]\nurl = \"http://127.0.0.1:9000/hook\"\n[[alert.webhook]]\nurl = \"http://localhost/hook\"\n[[alert.exec]]\ncommand = [\"sh\", \"-c\", \"true\"]\n[http]\nlisten = \"[::1]:0\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Watch.Interval != 90*time.Second || cfg.Watch.Jitter.Duration != 10*time.Second || cfg.Watch.From != "" || cfg.History.Retention != 36*time.Hour || cfg.Alert.ResendInterval >= 0 {
		t.Errorf("parsed: %+v %+v %+v", cfg.Watch, cfg.History, cfg.Alert)
	}
	if p := cfg.Watch.Peers[0]; p.Services[0] != xmppaddr.ServiceServer || p.Line != 5 {
		t.Errorf("peer: %+v", p)
	}
	if o := cfg.Alert.Execs[0].Options(); o.Timeout != 30*time.Second || o.Command[0] != "sh" {
		t.Errorf("exec options %+v", o)
	}
}

// TestManyErrors: every problem is reported, in file order.
func TestManyErrors(t *testing.T) {
	dir := testDir(t)
	text := "[[host]]\ndomain = \"bad domain\"\n[watch]\nconcurrency = 0\ninterval = \"0s\"\n[http]\nlisten = \"0.0.0.0:1\"\n"
	_, err := parseIn(t, dir, text)
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 4 {
		t.Fatalf("want 4 errors:\n%v", err)
	}
	for i, line := range []int{2, 4, 5, 7} {
		if list[i].Line != line {
			t.Errorf("error %d at line %d, want %d: %v", i, list[i].Line, line, list[i])
		}
	}
	var one *Error
	if !errors.As(err, &one) || one.Key != "host.domain" {
		t.Errorf("errors.As(*Error): %v", one)
	}
}

// TestNothingToDo: an empty file is refused, with no line to point at;
// one with only [cluster] is a node's, which keeps the cluster's
// lineages.
func TestNothingToDo(t *testing.T) {
	dir := t.TempDir()
	_, err := parseIn(t, dir, "# nothing\n")
	if err == nil || !strings.Contains(err.Error(), "xmppcert.toml: nothing to do") {
		t.Errorf("got %v", err)
	}
	key := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", ClusterKeySize)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseIn(t, dir, fmt.Sprintf("[cluster]\netcd_endpoints = [\"http://127.0.0.1:2379\"]\nkey_file = %q\n", key)); err != nil {
		t.Errorf("a configuration with only [cluster]: %v", err)
	}
}

// TestLoad: a missing file is an error naming it; nothing half-loaded.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml: cannot read the configuration") {
		t.Errorf("got %v", err)
	}
	file := filepath.Join(dir, "x.toml")
	os.WriteFile(file, []byte(oneHost), 0o600)
	cfg, err := Load(file)
	if err != nil || cfg.File != file {
		t.Fatalf("%+v %v", cfg, err)
	}
	// Relative paths are relative to the file.
	os.WriteFile(filepath.Join(dir, "tok"), []byte(tokenSecret), 0o600)
	os.WriteFile(file, []byte(oneHost+"state_dir = \"state\"\n"), 0o600)
	if cfg, err := Load(file); err == nil {
		t.Errorf("state_dir after [[host]] belongs to the host: %+v", cfg)
	}
	os.WriteFile(file, []byte("state_dir = \"state\"\n"+oneHost+"[http]\ntoken_file = \"tok\"\n"), 0o600)
	cfg, err = Load(file)
	if err != nil || cfg.StateDir != filepath.Join(dir, "state") || cfg.HTTP.TokenFile != filepath.Join(dir, "tok") {
		t.Errorf("%+v %v", cfg, err)
	}
}

// TestPositions: the scanner finds keys, headers and elements in tricky
// TOML.
func TestPositions(t *testing.T) {
	src := `# comment [[host]]
top = "a # not a comment"
"quoted.key" = 1
[[host]]
domain = "one"
list = [
  "x", # comment ]
  'y',
]
[host.pins.tlsa]
ttl = "1h"
[[host]]
  domain = """
[[host]]
still = "a string"
"""
a.b.c = {d = 1, e = [ {f = 2}, {f = 3} ]}
[[watch.peer]]
domain = 'p'
`
	ix := positions(src)
	for path, want := range map[string]pos{
		"top":                   {2, 1},
		`"quoted.key"`:          {3, 1},
		"host[0]":               {4, 1},
		"host[0].domain":        {5, 1},
		"host[0].list[0]":       {7, 3},
		"host[0].list[1]":       {8, 3},
		"host[0].pins.tlsa":     {10, 1},
		"host[0].pins.tlsa.ttl": {11, 1},
		"host[1]":               {12, 1},
		"host[1].domain":        {13, 3},
		"host[1].a.b.c":         {17, 1},
		"host[1].a.b.c.d":       {17, 10},
		"host[1].a.b.c.e[1].f":  {17, 33},
		"watch.peer[0].domain":  {19, 1},
	} {
		if got, ok := ix.at[path]; !ok || got != want {
			t.Errorf("%s at %v (%v), want %v", path, got, ok, want)
		}
	}
	if _, ok := ix.at["host[2]"]; ok {
		t.Errorf("[[host]] inside a string counted")
	}
	if got := ix.plain["host.domain"]; len(got) != 2 {
		t.Errorf("plain host.domain: %v", got)
	}
}

// FuzzParse: Parse never panics, whatever the input.
func FuzzParse(f *testing.F) {
	f.Add([]byte(oneHost))
	f.Add([]byte("[[host]]\ndomain = \"\"\"\nx\"\"\"\n[host.pins]\n[[watch.peer]]\na = [{b = 1}, 2]\n"))
	if data, err := os.ReadFile("../../contrib/xmppcert.toml"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", cfg, err)
		}
		positions(string(data))
	})
}

// TestServerConfigs: prosody_config and ejabberd_ctl_config are taken
// relative to the file, stored in the host's request for its deploy
// targets, and a missing file is refused with its key and line;
// serve_check endpoints are parsed into the request.
func TestServerConfigs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prosody.cfg.lua"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "xmppcert.toml")
	cfg, err := Parse(file, []byte("[[host]]\ndomain = \"example.org\"\ndeploy = [\"prosody:/srv/certs\"]\nprosody_config = \"prosody.cfg.lua\"\nserve_check = [\"xmpps-server:127.0.0.1:5270\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := cfg.Hosts[0].Request()
	if err != nil {
		t.Fatal(err)
	}
	targets, err := req.Targets()
	if err != nil || len(targets) != 1 || targets[0].(*acme.ProsodyTarget).Config != filepath.Join(dir, "prosody.cfg.lua") {
		t.Fatalf("targets %+v, %v; want the prosody target with the absolute configuration", targets, err)
	}
	if len(req.ServeCheck) != 1 || req.ServeCheck[0].String() != "xmpps-server:127.0.0.1:5270" {
		t.Errorf("serve_check %+v; want the direct TLS s2s endpoint", req.ServeCheck)
	}
	if _, err := Parse(file, []byte("[[host]]\ndomain = \"example.org\"\nserve_check = [\"smtp:host:25\"]\n")); err == nil || !strings.Contains(err.Error(), "host.serve_check: endpoint \"smtp:host:25\"") {
		t.Errorf("bad serve_check: %v; want the key named", err)
	}
	_, err = Parse(file, []byte("[[host]]\ndomain = \"example.org\"\nejabberd_ctl_config = \"missing.cfg\"\n"))
	if err == nil || !strings.Contains(err.Error(), ":3:") || !strings.Contains(err.Error(), "host.ejabberd_ctl_config") || !strings.Contains(err.Error(), "missing.cfg") {
		t.Errorf("missing ejabberd_ctl_config: %v; want the key, line and file named", err)
	}
}

// TestSecretFileWarnings: a secret file readable by group or others is
// taken, with a warning at its key and line; a private one without.
func TestSecretFileWarnings(t *testing.T) {
	dir := testDir(t)
	text := oneHost + "[http]\ntoken_file = \"http.token\"\n"
	file := filepath.Join(dir, "xmppcert.toml")
	cfg, err := Parse(file, []byte(text))
	if err != nil || len(cfg.Warnings) != 0 {
		t.Fatalf("private token file: %v, warnings %v", err, cfg.Warnings)
	}
	if err := os.Chmod(filepath.Join(dir, "http.token"), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg, err = Parse(file, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := file + ":4:1: http.token_file: token file " + filepath.Join(dir, "http.token") + " is readable by group or others (mode 0640): chmod 600 it"
	if len(cfg.Warnings) != 1 || !strings.HasPrefix(cfg.Warnings[0].Error(), want) {
		t.Errorf("warnings %v; want one starting %q", cfg.Warnings, want)
	}
}

// TestCluster: [cluster] with its defaults (node_id the host name,
// lease_ttl 10s, prefix /xmppcert/, max_concurrent_orders 4, no
// advertise_url) and the sealing key read from hex; advertise_url kept
// without its trailing slash;
// without the table there is no cluster.
func TestCluster(t *testing.T) {
	dir := testDir(t)
	cfg, err := parseIn(t, dir, oneHost+"[cluster]\netcd_endpoints = [\"http://127.0.0.1:2379\", \"https://etcd2.example.org:2379\"]\nkey_file = \"cluster.key\"\n")
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	c := cfg.Cluster
	if c == nil || len(c.Endpoints) != 2 || c.NodeID != host || c.LeaseTTL != DefaultLeaseTTL || c.Prefix != DefaultClusterPrefix || c.MaxOrders != 4 ||
		!bytes.Equal(c.Key, bytes.Repeat([]byte{0xab}, ClusterKeySize)) || c.KeyFile != filepath.Join(dir, "cluster.key") {
		t.Errorf("cluster %+v", c)
	}
	if c != nil && c.AdvertiseURL != "" {
		t.Errorf("advertise_url %q without the key; want empty (the daemon derives it from its listener)", c.AdvertiseURL)
	}
	if cfg, err := parseIn(t, dir, oneHost); err != nil || cfg.Cluster != nil {
		t.Errorf("without [cluster]: %+v, %v", cfg.Cluster, err)
	}
	for given, want := range map[string]string{
		"http://192.0.2.1:8787":          "http://192.0.2.1:8787",
		"https://node1.example.org/":     "https://node1.example.org",
		"http://[2001:db8::1]:8787":      "http://[2001:db8::1]:8787",
		"https://node1.example.org:8443": "https://node1.example.org:8443",
	} {
		cfg, err := parseIn(t, dir, oneHost+"[cluster]\netcd_endpoints = [\"http://127.0.0.1:2379\"]\nkey_file = \"cluster.key\"\nadvertise_url = \""+given+"\"\n")
		if err != nil || cfg.Cluster.AdvertiseURL != want {
			t.Errorf("advertise_url = %q: %+v, %v; want %q", given, cfg.Cluster, err, want)
		}
	}
}

// TestClusterFrom: [cluster]'s settings given as the commands' flags are
// checked as the file's are, each problem naming the settings field.
func TestClusterFrom(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", ClusterKeySize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ClusterFrom(ClusterSettings{Endpoints: []string{"http://127.0.0.1:2379"}, KeyFile: key, NodeID: "n1"})
	if err != nil || c.NodeID != "n1" || c.LeaseTTL != DefaultLeaseTTL || c.Prefix != DefaultClusterPrefix || len(c.Key) != ClusterKeySize || c.MaxOrders != DefaultMaxOrders {
		t.Fatalf("ClusterFrom: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		s    ClusterSettings
		want string
	}{
		{ClusterSettings{KeyFile: key}, "Endpoints"},
		{ClusterSettings{Endpoints: []string{"http://etcd.example:2379"}, KeyFile: key}, "Endpoints"},
		{ClusterSettings{Endpoints: []string{"http://127.0.0.1:2379"}}, "KeyFile"},
		{ClusterSettings{Endpoints: []string{"http://127.0.0.1:2379"}, KeyFile: filepath.Join(dir, "missing")}, "KeyFile"},
		{ClusterSettings{Endpoints: []string{"http://127.0.0.1:2379"}, KeyFile: key, LeaseTTL: time.Second}, "LeaseTTL"},
		{ClusterSettings{Endpoints: []string{"http://127.0.0.1:2379"}, KeyFile: key, TLSCertFile: key}, "TLSKeyFile"},
		{ClusterSettings{Endpoints: []string{"http://127.0.0.1:2379"}, KeyFile: key, Prefix: "x"}, "Prefix"},
	} {
		_, err := ClusterFrom(tc.s)
		var list ErrorList
		if !errors.As(err, &list) || len(list) != 1 || list[0].Key != tc.want || list[0].File != "" {
			t.Errorf("%+v: %v; want one problem of %s", tc.s, err, tc.want)
		}
	}
}

// TestRemedyHint: each setting an ACME CA's failure names is phrased in
// keys the file has, with the host's line; one the file has no key for
// gives no hint.
func TestRemedyHint(t *testing.T) {
	tags := map[string]bool{}
	for _, v := range []any{rawHost{}, rawACME{}} {
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tags[strings.Split(rt.Field(i).Tag.Get("toml"), ",")[0]] = true
		}
	}
	h := Host{Line: 7}
	for r, keys := range map[acmeca.Remedy][]string{
		acmeca.RemedyDirectory: {"ca"},
		acmeca.RemedyTrustRoot: {"trust_root"},
		acmeca.RemedyStaging:   {"ca"},
		acmeca.RemedyProfile:   {"profile"},
		acmeca.RemedyEAB:       {"eab_kid", "eab_hmac_file"},
		acmeca.RemedyAgreeTOS:  {"agree_tos"},
		acmeca.RemedyEmail:     {"email"},
		acmeca.RemedyXMPPIDs:   {"ca", "require_xmpp_ids"},
		acmeca.RemedyTimeout:   {"timeout"},
	} {
		hint := h.RemedyHint(r)
		if !strings.HasSuffix(hint, "of the [[host]] at line 7 of the configuration") {
			t.Errorf("remedy %d: %q does not name the host's line", r, hint)
		}
		for _, k := range keys {
			if !tags[k] || !strings.Contains(hint, k) {
				t.Errorf("remedy %d: %q, key %s (a key of [[host]]: %v)", r, hint, k, tags[k])
			}
		}
	}
	for _, r := range []acmeca.Remedy{acmeca.RemedyNone} {
		if hint := h.RemedyHint(r); hint != "" {
			t.Errorf("remedy %d: %q; want none", r, hint)
		}
	}
}
