package config

import "github.com/BurntSushi/toml"

// The raw types are the file as written: pointers where "not set" must
// be told from a zero, duration and jitter where the library's own
// time.Duration decoding would take a bare number as nanoseconds, and
// toml.Primitive for arrays of tables, which are decoded element by
// element (see decode). Their toml tags are the file's keys and the
// schema unknown keys are checked against.

type rawFile struct {
	StateDir *string          `toml:"state_dir"`
	Host     []toml.Primitive `toml:"host"`
	Watch    rawWatch         `toml:"watch"`
	History  rawHistory       `toml:"history"`
	Alert    rawAlert         `toml:"alert"`
	HTTP     rawHTTP          `toml:"http"`
	Cluster  *rawCluster      `toml:"cluster"`
	CT       *rawCT           `toml:"ct"`
}

type rawCT struct {
	LogList  string    `toml:"log_list"`
	Logs     []string  `toml:"logs"`
	Interval *duration `toml:"interval"`
}

type rawCluster struct {
	Endpoints   []string  `toml:"etcd_endpoints"`
	TLSCertFile string    `toml:"tls_cert_file"`
	TLSKeyFile  string    `toml:"tls_key_file"`
	TLSCAFile   string    `toml:"tls_ca_file"`
	NodeID      *string   `toml:"node_id"`
	LeaseTTL    *duration `toml:"lease_ttl"`
	KeyFile     string    `toml:"key_file"`
	Prefix      *string   `toml:"prefix"`
	MaxOrders   *int      `toml:"max_concurrent_orders"`
	Advertise   *string   `toml:"advertise_url"`
}

type rawHost struct {
	Domain     *string  `toml:"domain"`
	Components []string `toml:"components"`
	Anonymous  bool     `toml:"anonymous"`
	CA         *string  `toml:"ca"`
	KeyType    *string  `toml:"key_type"`
	ReuseKey   bool     `toml:"reuse_key"`
	Days       *int     `toml:"days"`
	Deploy     []string `toml:"deploy"`
	Hooks      []string `toml:"hooks"`
	// ProsodyConfig and EjabberdCtlConfig are the servers' own
	// configuration files for the deploy targets' status and reload.
	ProsodyConfig     string `toml:"prosody_config"`
	EjabberdCtlConfig string `toml:"ejabberd_ctl_config"`
	// ServeCheck are the endpoints asked after every deploy what they
	// present ([KIND:]HOST:PORT).
	ServeCheck []string `toml:"serve_check"`
	ACME       *rawACME `toml:"acme"`
	Pins       rawPins  `toml:"pins"`
}

type rawACME struct {
	Email          string      `toml:"email"`
	AgreeTOS       bool        `toml:"agree_tos"`
	EABKeyID       string      `toml:"eab_kid"`
	EABHMACFile    string      `toml:"eab_hmac_file"`
	Profile        string      `toml:"profile"`
	TrustRoot      string      `toml:"trust_root"`
	RequireXMPPIDs bool        `toml:"require_xmpp_ids"`
	HTTPListen     string      `toml:"http_listen"`
	Webroot        string      `toml:"webroot"`
	TLSALPNListen  string      `toml:"tls_alpn_listen"`
	DNSHook        string      `toml:"dns_hook"`
	RFC2136        *rawRFC2136 `toml:"dns_rfc2136"`
	CAAIdentities  []string    `toml:"caa_identities"`
	Resolver       string      `toml:"resolver"`
	NoPreflight    bool        `toml:"no_preflight"`
	Timeout        *duration   `toml:"timeout"`
}

type rawRFC2136 struct {
	Server         string `toml:"server"`
	TSIGName       string `toml:"tsig_name"`
	TSIGAlgorithm  string `toml:"tsig_algorithm"`
	TSIGSecretFile string `toml:"tsig_secret_file"`
}

type rawPins struct {
	TLSA *rawTLSA `toml:"tlsa"`
	POSH *rawPOSH `toml:"posh"`
}

type rawTLSA struct {
	Server         string    `toml:"server"`
	Zone           string    `toml:"zone"`
	TSIGName       string    `toml:"tsig_name"`
	TSIGAlgorithm  string    `toml:"tsig_algorithm"`
	TSIGSecretFile string    `toml:"tsig_secret_file"`
	TTL            *duration `toml:"ttl"`
	Hold           *duration `toml:"hold"`
	Usage          *int      `toml:"usage"`
	Selector       *int      `toml:"selector"`
	MatchingType   *int      `toml:"matching_type"`
	Ports          []int     `toml:"ports"`
	Targets        []string  `toml:"targets"`
	FromSRV        bool      `toml:"from_srv"`
	Resolver       string    `toml:"resolver"`
}

type rawPOSH struct {
	OutDir   string    `toml:"out_dir"`
	Expires  *duration `toml:"expires"`
	Services []string  `toml:"services"`
}

type rawWatch struct {
	Interval     *duration        `toml:"interval"`
	Jitter       *jitter          `toml:"jitter"`
	Concurrency  *int             `toml:"concurrency"`
	Timeout      *duration        `toml:"timeout"`
	FullInterval *duration        `toml:"full_interval"`
	OwnHosts     *bool            `toml:"own_hosts"`
	From         *string          `toml:"from"`
	Resolver     string           `toml:"resolver"`
	TrustRoots   []string         `toml:"trust_roots"`
	Peer         []toml.Primitive `toml:"peer"`
	Vantage      []toml.Primitive `toml:"vantage"`
}

type rawVantage struct {
	Name         *string `toml:"name"`
	Proxy        *string `toml:"proxy"`
	PasswordFile string  `toml:"password_file"`
}

type rawPeer struct {
	Domain    *string  `toml:"domain"`
	Service   *string  `toml:"service"`
	Services  []string `toml:"services"`
	Connect   string   `toml:"connect"`
	DirectTLS bool     `toml:"direct_tls"`
}

type rawHistory struct {
	Retention *duration `toml:"retention"`
}

type rawAlert struct {
	MinSeverity    *string          `toml:"min_severity"`
	ResendInterval *duration        `toml:"resend_interval"`
	Webhook        []toml.Primitive `toml:"webhook"`
	Exec           []toml.Primitive `toml:"exec"`
	XMPP           []toml.Primitive `toml:"xmpp"`
}

type rawWebhook struct {
	URL            *string   `toml:"url"`
	HMACSecretFile string    `toml:"hmac_secret_file"`
	MinSeverity    *string   `toml:"min_severity"`
	Timeout        *duration `toml:"timeout"`
	MaxAttempts    *int      `toml:"max_attempts"`
}

type rawXMPP struct {
	JID          *string   `toml:"jid"`
	PasswordFile string    `toml:"password_file"`
	To           []string  `toml:"to"`
	Server       *string   `toml:"server"`
	MinSeverity  *string   `toml:"min_severity"`
	Timeout      *duration `toml:"timeout"`
	MaxAttempts  *int      `toml:"max_attempts"`
}

type rawExec struct {
	Command     []string  `toml:"command"`
	Timeout     *duration `toml:"timeout"`
	MinSeverity *string   `toml:"min_severity"`
}

type rawHTTP struct {
	Listen    *string   `toml:"listen"`
	TokenFile string    `toml:"token_file"`
	HTTPS     *rawHTTPS `toml:"https"`
}

type rawHTTPS struct {
	Listen     *string  `toml:"listen"`
	Names      []string `toml:"names"`
	CA         *string  `toml:"ca"`
	Email      string   `toml:"email"`
	AgreeTOS   bool     `toml:"agree_tos"`
	TrustRoot  string   `toml:"trust_root"`
	Challenges []string `toml:"challenges"`
	Profile    string   `toml:"profile"`
}
