package challenge

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/internal/oneline"
)

const (
	defaultHookTimeout = 2 * time.Minute
	hookWaitDelay      = 2 * time.Second
	hookOutputTail     = 2048
)

// DNSHook solves dns-01 through an operator's command, for DNS hosting
// that only has an HTTP API or a tool of its own. Present runs
//
//	/bin/sh -c 'COMMAND "$@"' xmppcert-dns-hook present NAME VALUE
//
// and CleanUp the same with "cleanup", so the command gets the action,
// the record name and the TXT value as its last three arguments ($1, $2
// and $3 of a script given as COMMAND). NAME is the full record name
// without the trailing dot ("_acme-challenge.example.org"), VALUE the
// TXT content without quotes. The command must add (present) or delete
// (cleanup) exactly that TXT record and exit 0; stdin is empty, and
// stderr (or stdout when stderr is empty) ends up in the error message.
// The command inherits xmppcert's environment.
//
// This differs from certbot's --manual-auth-hook/--manual-cleanup-hook
// convention, which runs two commands and passes CERTBOT_DOMAIN and
// CERTBOT_VALIDATION in the environment; a certbot hook pair is used
// with a wrapper such as
//
//	case $1 in present) h=auth.sh;; cleanup) h=cleanup.sh;; esac
//	CERTBOT_DOMAIN=${2#_acme-challenge.} CERTBOT_VALIDATION=$3 exec /path/$h
//
// Wait then polls the zone's authoritative servers (Propagation) until
// the record is visible.
type DNSHook struct {
	// Command is a shell command line (--dns-hook); the three arguments
	// are appended to it.
	Command string
	// Timeout bounds each run of the command: 2 minutes when zero. The
	// command and every process it started are killed when it passes.
	Timeout time.Duration
	// Propagation bounds Wait. Without Nameservers the zone's NS records
	// are looked up through the resolver.
	Propagation Propagation
}

// Validate checks the configuration without running anything.
func (s *DNSHook) Validate() error {
	if strings.TrimSpace(s.Command) == "" {
		return errors.New("dns-01 hook: no command given")
	}
	if err := s.Propagation.validate(); err != nil {
		return fmt.Errorf("dns-01 hook propagation check: %w", err)
	}
	return nil
}

// Present runs the command with "present".
func (s *DNSHook) Present(ctx context.Context, chal acme.Challenge) error {
	fqdn, value, err := dnsRecord(chal)
	if err != nil {
		return err
	}
	return s.run(ctx, "present", strings.TrimSuffix(fqdn, "."), value)
}

// CleanUp runs the command with "cleanup". It runs even when ctx is
// already cancelled, bounded by Timeout.
func (s *DNSHook) CleanUp(ctx context.Context, chal acme.Challenge) error {
	fqdn, value, err := dnsRecord(chal)
	if err != nil {
		return err
	}
	return s.run(context.WithoutCancel(ctx), "cleanup", strings.TrimSuffix(fqdn, "."), value)
}

// Wait polls the authoritative servers until each answers the TXT query
// with the challenge's value, or Propagation.Timeout passes.
func (s *DNSHook) Wait(ctx context.Context, chal acme.Challenge) error {
	fqdn, value, err := dnsRecord(chal)
	if err != nil {
		return err
	}
	p := s.Propagation
	discover := len(p.Nameservers) == 0 || p.Resolver != ""
	return p.wait(ctx, fqdn, value, "", nil, discover,
		"check that the DNS hook really publishes the record, or allow a longer propagation timeout")
}

func (s *DNSHook) run(ctx context.Context, action, name, value string) error {
	if strings.TrimSpace(s.Command) == "" {
		return errors.New("dns-01 hook: no command given")
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = defaultHookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s.Command+` "$@"`, "xmppcert-dns-hook", action, name, value)
	var stdout, stderr tail
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = hookWaitDelay
	killGroup(cmd)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("dns-01 hook %q %s for %s", oneline.Clip(s.Command, 60), action, name)
	out := stderr.String()
	if out == "" {
		out = stdout.String()
	}
	if out != "" {
		out = ": " + out
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: did not finish within %s and was killed%s", what, timeout, out)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w%s", what, ctx.Err(), out)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%s: failed (%v)%s", what, ee.ProcessState, out)
	}
	return fmt.Errorf("%s: %v%s", what, err, out)
}

// tail keeps the last hookOutputTail bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > hookOutputTail {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-hookOutputTail:]...)
	}
	return len(p), nil
}

// String is the output on one line: trimmed, lines joined with " | ".
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(string(t.buf), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, oneline.Clip(l, 300))
		}
	}
	return strings.Join(lines, " | ")
}
