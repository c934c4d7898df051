package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// TestDesiredHostHint: the daemon's advice for a host's failed issuance
// or renewal is in the configuration's keys, at the host's line: the
// account's registration, the setting an ACME CA's failure names (the
// time allowed among them, which the host's issuances get); none for
// other failures, whose log says they are retried.
func TestDesiredHostHint(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "xmppcert.toml")
	toml := "state_dir = \"" + dir + "\"\n\n[[host]]\ndomain = \"example.org\"\nca = \"https://acme.example/directory\"\n[host.acme]\nhttp_listen = \":80\"\ntimeout = \"90s\"\n"
	if err := os.WriteFile(file, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	h, err := DesiredHost(cfg, cfg.Hosts[0])
	if err != nil {
		t.Fatal(err)
	}
	if h.Options.Timeout != 90*time.Second {
		t.Errorf("the host's issuances get %s; want its timeout, 1m30s", h.Options.Timeout)
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{&lifecycle.AccountError{Directory: "https://acme.example/directory", NeedAgreeTOS: true}, "set agree_tos = true"},
		{&acmeca.Error{Kind: acmeca.KindUntrusted}, "set trust_root in [host.acme] of the [[host]] at line 3"},
		{&acmeca.Error{Kind: acmeca.KindRateLimited}, `test with ca = "letsencrypt-staging" of the [[host]] at line 3`},
		{&acmeca.Error{Kind: acmeca.KindTimeout}, "raise timeout in [host.acme] of the [[host]] at line 3"},
		{errors.New("disk full"), ""},
	} {
		got := h.Hint(c.err)
		if c.want == "" && got != "" || c.want != "" && (!strings.Contains(got, c.want) || !strings.HasSuffix(got, "; reload with SIGHUP")) {
			t.Errorf("hint for %v: %q; want %q", c.err, got, c.want)
		}
	}
}
