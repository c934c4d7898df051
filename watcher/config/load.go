package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// MaxFileSize is the largest configuration file Load reads: room for a
// provider's tens of thousands of [[watch.peer]] entries (about 100
// bytes each), while a file that is not a configuration is refused
// before the TOML library holds it.
const MaxFileSize = 8 << 20

// Load reads and checks the configuration file at path. On any problem
// it returns an ErrorList and no Config: a reload either takes the whole
// new configuration or none of it.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ErrorList{{File: path, Msg: fmt.Sprintf("cannot read the configuration: %v; give the path of a readable TOML file (see contrib/xmppcert.toml)", pathErr(err))}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, ErrorList{{File: path, Msg: fmt.Sprintf("cannot read the configuration: %v", pathErr(err))}}
	}
	if len(data) > MaxFileSize {
		return nil, ErrorList{{File: path, Msg: fmt.Sprintf("larger than %d MiB: is this the configuration file?", MaxFileSize>>20)}}
	}
	return Parse(path, data)
}

// Parse checks a configuration held in memory; name is its file name,
// used in errors and as the base of relative paths. Secret, token and
// other files it names are read from disk.
func Parse(name string, data []byte) (*Config, error) {
	p := &parser{file: name}
	raw, ok := p.decode(data)
	if !ok {
		return nil, p.result()
	}
	cfg := p.validate(raw)
	if len(p.errs) > 0 {
		return nil, p.result()
	}
	cfg.Warnings = p.warns
	return cfg, nil
}

// Defaults is the configuration of a daemon started without a file:
// every setting at its default and stateDir as the state directory. It
// has no host and no peer; the daemon takes its hosts from the lineages
// in the state directory (HostFromRequest).
func Defaults(stateDir string) *Config {
	p := &parser{file: "", allowEmpty: true}
	raw, _ := p.decode(nil)
	cfg := p.validate(raw)
	cfg.StateDir = stateDir
	return cfg
}

// parser collects the problems of one file.
type parser struct {
	// allowEmpty accepts a configuration with no host and no peer
	// (Defaults).
	allowEmpty bool
	file       string
	ix         *keyIndex
	errs       ErrorList
	warns      ErrorList
}

// result sorts the problems by position and caps them.
func (p *parser) result() error {
	sort.SliceStable(p.errs, func(i, j int) bool {
		a, b := p.errs[i], p.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	if len(p.errs) > MaxErrors {
		p.errs = append(p.errs[:MaxErrors], &Error{File: p.file, Msg: "more problems follow; fix these first"})
	}
	return p.errs
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// errAt records a problem at the key with the indexed path (see
// position.go); the message names the key without indices.
func (p *parser) errAt(path, format string, args ...any) {
	p.errs = append(p.errs, p.at(path, format, args...))
}

// warnAt records a warning (Config.Warnings) as errAt records a problem.
func (p *parser) warnAt(path, format string, args ...any) {
	p.warns = append(p.warns, p.at(path, format, args...))
}

func (p *parser) at(path, format string, args ...any) *Error {
	e := &Error{File: p.file, Key: indexRE.ReplaceAllString(path, ""), Msg: fmt.Sprintf(format, args...)}
	if p.ix != nil {
		if at, ok := p.ix.lookup(path); ok {
			e.Line, e.Col = at.Line, at.Col
		}
	}
	return e
}

// lineOf is the line of path, or 0.
func (p *parser) lineOf(path string) int {
	if at, ok := p.ix.lookup(path); ok {
		return at.Line
	}
	return 0
}

// arrays of tables, decoded element by element so that errors know the
// element; each maps to its element's raw type.
var arraysOfTables = map[string]reflect.Type{
	"host":          reflect.TypeFor[rawHost](),
	"watch.peer":    reflect.TypeFor[rawPeer](),
	"alert.webhook": reflect.TypeFor[rawWebhook](),
	"alert.exec":    reflect.TypeFor[rawExec](),
	"alert.xmpp":    reflect.TypeFor[rawXMPP](),
}

// decoded is the file after decoding: the top level and each element of
// each array of tables.
type decoded struct {
	top      rawFile
	hosts    []rawHost
	peers    []rawPeer
	vantages []rawVantage
	webhooks []rawWebhook
	execs    []rawExec
	xmpps    []rawXMPP
}

// decode parses the TOML, decodes it into the raw types and refuses
// unknown keys. It reports whether all went well.
func (p *parser) decode(data []byte) (*decoded, bool) {
	// Bounded first: the library's memory grows with the square of what
	// the pre-scan caps.
	if e := prescan(data); e != nil {
		e.File = p.file
		p.errs = append(p.errs, e)
		return nil, false
	}
	// Syntax next: into a map, only syntax errors can happen, and the
	// library's position of them is exact.
	var syntax map[string]any
	if _, err := toml.Decode(string(data), &syntax); err != nil {
		e := &Error{File: p.file, Msg: "TOML syntax: " + oneLine(err.Error()) + "; see https://toml.io"}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			e.Line, e.Col = pe.Position.Line, pe.Position.Col
			e.Msg = "TOML syntax: " + oneLine(pe.Message) + "; see https://toml.io"
		}
		p.errs = append(p.errs, e)
		return nil, false
	}
	p.ix = positions(string(data))
	var d decoded
	md, err := toml.Decode(string(data), &d.top)
	if err != nil {
		p.decodeError(err, "", 0)
		return nil, false
	}
	each := func(key string, prims []toml.Primitive, out any) {
		v := reflect.ValueOf(out).Elem()
		v.Set(reflect.MakeSlice(v.Type(), len(prims), len(prims)))
		for i, prim := range prims {
			if err := md.PrimitiveDecode(prim, v.Index(i).Addr().Interface()); err != nil {
				p.decodeError(err, key, i)
			}
		}
	}
	each("host", d.top.Host, &d.hosts)
	each("watch.peer", d.top.Watch.Peer, &d.peers)
	each("watch.vantage", d.top.Watch.Vantage, &d.vantages)
	each("alert.webhook", d.top.Alert.Webhook, &d.webhooks)
	each("alert.exec", d.top.Alert.Exec, &d.execs)
	each("alert.xmpp", d.top.Alert.XMPP, &d.xmpps)
	if len(p.errs) > 0 {
		// Keys after a decoding error were never decoded: only now
		// would Undecoded be right about them.
		return nil, false
	}
	p.unknownKeys(md)
	return &d, len(p.errs) == 0
}

// indexed turns a key from the library (no indices) into an indexed path
// within element i of the array of tables named array.
func (p *parser) indexed(key, array string, i int) string {
	if array != "" && (key == array || strings.HasPrefix(key, array+".")) {
		return array + "[" + strconv.Itoa(i) + "]" + key[len(array):]
	}
	if paths := p.ix.plain[key]; len(paths) > 0 {
		return paths[0]
	}
	return key
}

var (
	// badTypeRE reads the library's type errors, which are plain
	// fmt errors: `toml: line 3 (last key "a.b"): MESSAGE`.
	badTypeRE   = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)
	mismatchRE  = regexp.MustCompile(`incompatible types: TOML value has type (\S+); destination has type (\S+)`)
	notTableRE  = regexp.MustCompile(`expected table but found (\S+)`)
	tomlTypeFor = map[string]string{
		"int64": "an integer", "float64": "a float", "string": "a string", "bool": "a boolean",
		"[]any": "an array", "[]interface {}": "an array", "[]map[string]any": "an array of tables",
		"[]map[string]interface {}": "an array of tables", "map[string]any": "a table",
		"map[string]interface {}": "a table", "time.Time": "a date-time",
		"integer": "an integer", "float": "a number", "boolean": "a boolean (true or false)",
		"slice": "an array", "map": "a table",
	}
)

func typeWord(t string) string {
	if w, ok := tomlTypeFor[t]; ok {
		return w
	}
	if strings.HasPrefix(t, "toml.Local") || strings.HasPrefix(t, "time.") {
		return "a date-time"
	}
	return t
}

// decodeError turns an error of the library's decoding (of element i of
// array, when array is set) into an Error at the key it concerns.
func (p *parser) decodeError(err error, array string, i int) {
	var key, msg string
	var pe toml.ParseError
	if errors.As(err, &pe) {
		key, msg = pe.LastKey, pe.Message
	} else if m := badTypeRE.FindStringSubmatch(err.Error()); m != nil {
		if k, uerr := strconv.Unquote(`"` + m[1] + `"`); uerr == nil {
			key = k
		} else {
			key = m[1]
		}
		msg = m[2]
	} else {
		p.errs = append(p.errs, &Error{File: p.file, Msg: oneLine(err.Error())})
		return
	}
	if m := mismatchRE.FindStringSubmatch(msg); m != nil {
		_, isArray := arraysOfTables[key]
		switch {
		case isArray && m[2] == "slice":
			msg = fmt.Sprintf("must be an array of tables: write [[%s]] (double brackets) before each entry", key)
		default:
			msg = fmt.Sprintf("must be %s, not %s", typeWord(m[2]), typeWord(m[1]))
		}
	} else if m := notTableRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("must be a table ([%s]), not %s", key, typeWord(m[1]))
	}
	p.errAt(p.indexed(key, array, i), "%s", oneLine(msg))
}

// unknownKeys refuses keys that no setting has: those MetaData.Undecoded
// reports (only the outermost of an unknown table), and keys that the
// library matched to a setting only by ignoring case.
func (p *parser) unknownKeys(md toml.MetaData) {
	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	reported := map[string]bool{}
	report := func(k toml.Key, format string, args ...any) {
		if reported[k.String()] {
			return
		}
		reported[k.String()] = true
		paths := p.ix.plain[k.String()]
		if len(paths) == 0 {
			paths = []string{k.String()}
		}
		for _, path := range paths {
			p.errAt(path, format, args...)
		}
	}
	for _, k := range md.Keys() {
		parent, last := k[:len(k)-1], k[len(k)-1]
		if undecoded[parent.String()] {
			continue // inside an unknown table, which is reported
		}
		known, isTable := schema[parent.String()]
		if undecoded[k.String()] {
			report(k, "%s", unknownKeyMsg(parent, last, known))
			continue
		}
		if !isTable {
			continue // inside a value the schema does not describe key by key
		}
		if !contains(known, last) {
			for _, want := range known {
				if strings.EqualFold(want, last) {
					report(k, "unknown key %q: keys are case-sensitive, write %q", last, want)
				}
			}
		}
	}
}

func unknownKeyMsg(parent toml.Key, last string, known []string) string {
	where := "at the top level"
	if len(parent) > 0 {
		where = "in [" + parent.String() + "]"
	}
	if s := suggest(last, known); s != "" {
		return fmt.Sprintf("unknown key %q %s: did you mean %q?", last, where, s)
	}
	// A key of another table: often a top-level key written after the
	// first header, which TOML puts into that table.
	var elsewhere []string
	for table, keys := range schema {
		if table != parent.String() && contains(keys, last) {
			elsewhere = append(elsewhere, table)
		}
	}
	sort.Strings(elsewhere)
	switch {
	case len(elsewhere) == 0:
	case elsewhere[0] == "":
		return fmt.Sprintf("unknown key %q %s; it belongs at the top level, before the first [table] or [[array]] header", last, where)
	default:
		return fmt.Sprintf("unknown key %q %s; it belongs in [%s]", last, where, strings.Join(elsewhere, "] or ["))
	}
	return fmt.Sprintf("unknown key %q %s; the keys there are %s", last, where, strings.Join(known, ", "))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the known key closest to k, when it is close enough
// to be a typo of it.
func suggest(k string, known []string) string {
	lk := strings.ReplaceAll(strings.ToLower(k), "-", "_")
	best, bestD := "", len(lk)+100
	for _, w := range known {
		if d := editDistance(lk, w); d < bestD {
			best, bestD = w, d
		}
	}
	if bestD <= 2 && bestD*3 <= len(best)+1 {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// schema maps each table (a dotted key without indices; "" for the top
// level) to the keys it may hold, from the toml tags of the raw types.
var schema = func() map[string][]string {
	out := map[string][]string{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		var keys []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			keys = append(keys, name)
			full := name
			if prefix != "" {
				full = prefix + "." + name
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if et, ok := arraysOfTables[full]; ok {
				walk(full, et)
			} else if ft.Kind() == reflect.Struct && !isLeaf(ft) {
				walk(full, ft)
			}
		}
		sort.Strings(keys)
		out[prefix] = keys
	}
	walk("", reflect.TypeFor[rawFile]())
	return out
}()

// isLeaf reports whether t decodes one value itself.
func isLeaf(t reflect.Type) bool {
	_, ok := reflect.New(t).Interface().(toml.Unmarshaler)
	return ok
}

// oneLine keeps the first line of a message.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// pathErr drops the operation and path of an *os.PathError: messages
// name the file themselves.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// duration is a duration written as a string: Go's syntax ("90s",
// "1h30m") plus whole or fractional days ("7d", "1.5d"), or "never"
// where a setting allows it.
type duration struct {
	d     time.Duration
	never bool
}

// UnmarshalTOML implements toml.Unmarshaler.
func (d *duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		if _, isInt := v.(int64); isInt {
			return fmt.Errorf("%v has no unit: write a duration as a string, such as \"90s\", \"15m\", \"1h\" or \"7d\"", v)
		}
		return fmt.Errorf("must be a duration string such as \"1h\", not %s", typeWord(fmt.Sprintf("%T", v)))
	}
	if s == "never" {
		d.never = true
		return nil
	}
	dd, err := parseDuration(s)
	if err != nil {
		return err
	}
	d.d = dd
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(t, "d"); ok && n != "" {
		if f, err := strconv.ParseFloat(n, 64); err == nil && f < 1e5 && f > -1e5 {
			return time.Duration(f * float64(24*time.Hour)), nil
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write it like \"90s\", \"15m\", \"1h\" or \"7d\"", clip(s))
	}
	return d, nil
}

// jitter is a fraction of the interval (a number) or a duration (a string).
type jitter struct {
	fraction float64
	d        time.Duration
	isDur    bool
}

// UnmarshalTOML implements toml.Unmarshaler.
func (j *jitter) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case float64:
		j.fraction = x
	case int64:
		j.fraction = float64(x)
	case string:
		d, err := parseDuration(x)
		if err != nil {
			return err
		}
		j.d, j.isDur = d, true
	default:
		return fmt.Errorf("must be a fraction of the interval such as 0.1, or a duration such as \"5m\"")
	}
	return nil
}

// clip shortens what the user wrote for a message.
func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// ClusterSettings are [cluster]'s settings given some other way than a
// file (the commands' flags); those left empty take their defaults.
type ClusterSettings struct {
	Endpoints                          []string
	TLSCertFile, TLSKeyFile, TLSCAFile string
	NodeID                             string
	LeaseTTL                           time.Duration
	KeyFile                            string
	Prefix                             string
}

// clusterSettingOf names the ClusterSettings field of a [cluster] key.
var clusterSettingOf = map[string]string{
	"cluster.etcd_endpoints": "Endpoints",
	"cluster.tls_cert_file":  "TLSCertFile",
	"cluster.tls_key_file":   "TLSKeyFile",
	"cluster.tls_ca_file":    "TLSCAFile",
	"cluster.node_id":        "NodeID",
	"cluster.lease_ttl":      "LeaseTTL",
	"cluster.key_file":       "KeyFile",
	"cluster.prefix":         "Prefix",
}

// ClusterFrom checks s as [cluster] is checked and returns the Cluster.
// Its error is an ErrorList whose entries' Key is the name of the
// ClusterSettings field at fault (such as "KeyFile"), for the caller to
// name its own way. Relative paths are taken from the working directory.
func ClusterFrom(s ClusterSettings) (*Cluster, error) {
	var errs ErrorList
	if len(s.Endpoints) == 0 {
		errs = append(errs, &Error{Key: "Endpoints", Msg: "no etcd client URL; give https://HOST:PORT"})
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		errs = append(errs, &Error{Key: "TLSKeyFile", Msg: "the client certificate and its key go together; give both or neither"})
	}
	if s.KeyFile == "" {
		errs = append(errs, &Error{Key: "KeyFile", Msg: "private keys are sealed in etcd with a key every node shares; create one with `openssl rand -hex 32 > FILE` (mode 0600) and copy it to each node"})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	r := &rawCluster{Endpoints: s.Endpoints, TLSCertFile: s.TLSCertFile, TLSKeyFile: s.TLSKeyFile, TLSCAFile: s.TLSCAFile, KeyFile: s.KeyFile}
	if s.NodeID != "" {
		r.NodeID = &s.NodeID
	}
	if s.LeaseTTL != 0 {
		r.LeaseTTL = &duration{d: s.LeaseTTL}
	}
	if s.Prefix != "" {
		r.Prefix = &s.Prefix
	}
	p := &parser{}
	c := p.cluster(r)
	if len(p.errs) > 0 {
		for _, e := range p.errs {
			e.File, e.Key = "", clusterSettingOf[e.Key]
		}
		return nil, p.errs
	}
	return c, nil
}
