package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// CertmagicDir is the directory under the state directory where
// certmagic keeps the HTTPS front's account, certificates and keys (in a
// cluster, etcd keeps them: etcdstore.MagicStorage).
const CertmagicDir = "certmagic"

// httpsFront is the daemon's own HTTPS ([http.https]): certmagic obtains
// and renews certificates for its names from an ACME CA, answering
// http-01 on the plain listener and tls-alpn-01 on its own, and the same
// handler as the plain listener's is served over it. acmez stays the
// lineages' ACME client (one certificate for a host and its components,
// ARI replaces); certmagic is for this server alone.
type httpsFront struct {
	cfg    *config.HTTPS
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache
}

// newHTTPSFront prepares the front for cfg's [http.https]; nothing is
// obtained before start.
func (d *Daemon) newHTTPSFront(cfg *config.Config) (*httpsFront, error) {
	h := cfg.HTTP.HTTPS
	var roots *x509.CertPool
	if h.TrustRoot != "" {
		certs, err := certfile.Read(h.TrustRoot, nil)
		if err != nil {
			return nil, fmt.Errorf("https: %w", err)
		}
		roots = x509.NewCertPool()
		for _, c := range certs {
			roots.AddCert(c)
		}
	}
	_, httpPort, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		return nil, err
	}
	_, tlsPort, err := net.SplitHostPort(h.Listen)
	if err != nil {
		return nil, err
	}
	logger := zap.New(slogCore{d.log.With("component", "https")})
	f := &httpsFront{cfg: h}
	f.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return f.magic, nil },
		RenewCheckInterval: d.deps.HTTPSRenewCheck,
		Logger:             logger,
	})
	var storage certmagic.Storage = &certmagic.FileStorage{Path: filepath.Join(cfg.StateDir, CertmagicDir)}
	if d.deps.Engine != nil {
		if cluster, ok := d.deps.Engine.Store.(*etcdstore.Store); ok {
			// The nodes share one certificate, obtained by one order.
			storage = cluster.CertmagicStorage()
		}
	}
	f.magic = certmagic.New(f.cache, certmagic.Config{
		Storage: storage,
		OnEvent: d.certmagicEvent,
		Logger:  logger,
	})
	// The CA validates http-01 on port 80 of each name and tls-alpn-01
	// on 443: the listeners must be reachable there, directly or
	// forwarded. certmagic's own solvers find the ports taken by ours and
	// leave the answers to the handlers below.
	if h.Local {
		engine := d.deps.Engine
		if engine == nil {
			engine = lifecycle.OnDisk(cfg.StateDir)
		}
		f.magic.Issuers = []certmagic.Issuer{localIssuer{engine: engine, names: h.Names}}
		return f, nil
	}
	f.issuer = certmagic.NewACMEIssuer(f.magic, certmagic.ACMEIssuer{
		CA: h.Directory, Email: h.Email, Agreed: h.AgreeTOS, TrustedRoots: roots, Profile: h.Profile,
		DisableHTTPChallenge: !h.HTTP01, DisableTLSALPNChallenge: !h.TLSALPN01,
		AltHTTPPort: atoi(httpPort), AltTLSALPNPort: atoi(tlsPort),
		Logger: logger,
	})
	f.magic.Issuers = []certmagic.Issuer{f.issuer}
	return f, nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// plain wraps the plain listener's handler so that it answers http-01
// (an ACME CA's only: the embedded CA asks for no challenge).
func (f *httpsFront) plain(h http.Handler) http.Handler {
	if f.issuer == nil {
		return h
	}
	return f.issuer.HTTPChallengeHandler(h)
}

// localIssuer is certmagic's Issuer for ca = "local": the embedded CA
// the lifecycle engine issues from (the state directory's; a cluster
// node's is the cluster's) signs each CSR for its names, opened for the
// signature and closed after it (its database is shared with the
// lifecycle engine and `ca serve`), without an ACME order.
type localIssuer struct {
	engine *lifecycle.Engine
	names  []string // [http.https] names, the only ones it signs for
}

// Issue signs the CSR for its DNS names, each one of [http.https] names.
func (l localIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if len(csr.DNSNames) == 0 {
		return nil, errors.New("https: the CSR names no DNS name")
	}
	for _, n := range csr.DNSNames {
		if !slices.Contains(l.names, n) {
			return nil, fmt.Errorf("https: the CSR names %q, which is not one of the front's names", n)
		}
	}
	req, err := acme.NewRequest(csr.DNSNames[0], xmppaddr.RoleHost, csr.DNSNames[1:], acme.KeyECDSAP256)
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	ca, err := l.engine.OpenCA(localca.Options{})
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	defer ca.Close()
	chain, err := ca.SignCSR(ctx, req, csr)
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	var chainPEM []byte
	for _, c := range chain {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return &certmagic.IssuedCertificate{Certificate: chainPEM}, nil
}

// IssuerKey names the embedded CA in certmagic's storage.
func (l localIssuer) IssuerKey() string { return "xmppcert-local-ca" }

// listen opens the HTTPS listener's TCP socket and starts obtaining (or
// loading) the certificates in the background: certmagic's ManageAsync,
// which also renews them for as long as the cache runs. The server is
// to serve it with tlsConfig (http.Server.ServeTLS, so that HTTP/2 is
// set up and handlers see the TLS state).
func (f *httpsFront) listen(ctx context.Context) (net.Listener, error) {
	ln, err := net.Listen("tcp", f.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s for HTTPS: %w", f.cfg.Listen, err)
	}
	if err := f.magic.ManageAsync(ctx, f.cfg.Names); err != nil {
		ln.Close()
		return nil, fmt.Errorf("https: %w", err)
	}
	return ln, nil
}

// tlsConfig is the HTTPS server's: certmagic's certificates, and
// tls-alpn-01 answered beside HTTP/2 and HTTP/1.1.
func (f *httpsFront) tlsConfig() *tls.Config {
	tc := f.magic.TLSConfig()
	tc.NextProtos = append([]string{"h2", "http/1.1"}, tc.NextProtos...)
	tc.MinVersion = tls.VersionTLS12
	return tc
}

// stop ends the renewals; it is called once, when the daemon closes.
func (f *httpsFront) stop() { f.cache.Stop() }

// certmagicEvent logs what certmagic did and counts it in /metrics
// (xmppcert_https_events_total{event}); a failure is logged as an error
// with what failed.
func (d *Daemon) certmagicEvent(_ context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtaining", "cert_obtained", "cert_failed", "cached_managed_cert", "cert_ocsp_revoked":
	default:
		return nil
	}
	d.health.httpsEvents.WithLabelValues(event).Inc()
	attrs := []any{"event", event}
	for _, k := range []string{"identifier", "renewal", "issuer", "remaining", "sans"} {
		if v, ok := data[k]; ok {
			attrs = append(attrs, k, fmt.Sprint(v))
		}
	}
	if err, ok := data["error"].(error); ok {
		d.log.Error("https: certificate not obtained", append(attrs, "error", err.Error())...)
		return nil
	}
	d.log.Info("https: certificate", attrs...)
	return nil
}

// slogCore passes certmagic's zap records at warning and above to the
// daemon's slog logger: its own failures, which its events do not
// always carry.
type slogCore struct{ log *slog.Logger }

func (c slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.WarnLevel }

func (c slogCore) With(fields []zapcore.Field) zapcore.Core {
	return slogCore{c.log.With(attrs(fields)...)}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	level := slog.LevelWarn
	if e.Level >= zapcore.ErrorLevel {
		level = slog.LevelError
	}
	c.log.Log(context.Background(), level, e.Message, attrs(fields)...)
	return nil
}

func (c slogCore) Sync() error { return nil }

// attrs turns zap fields into slog key-value pairs.
func attrs(fields []zapcore.Field) []any {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, k, fmt.Sprint(v))
	}
	return out
}
