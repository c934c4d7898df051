package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultExecTimeout bounds a hook run when ExecOptions.Timeout is 0.
const DefaultExecTimeout = 30 * time.Second

// EnvPrefix starts the names of the variables an exec hook gets.
const EnvPrefix = "XMPPCERT_ALERT_"

// ExecOptions configure an exec hook.
type ExecOptions struct {
	// Command is the program and its arguments; no shell is involved
	// (use []string{"/bin/sh", "-c", "..."} for one).
	Command []string
	// Dir is the working directory; empty means the daemon's.
	Dir string
	// Timeout bounds each run (DefaultExecTimeout). On timeout the whole
	// process group is killed (SIGKILL on Unix), so children the hook
	// started die with it.
	Timeout time.Duration
	// Queue bounds the sink's queue. Hooks run one at a time and are not
	// retried: a hook that fails is logged with its exit status and the
	// end of its output.
	Queue QueueOptions
	// Logger gets failures and hook output; nil means slog.Default().
	Logger *slog.Logger
}

// Exec runs a command for each alert, with the event in environment
// variables (EnvPrefix + KIND, SEVERITY, TEXT, OLD, NEW, KEY, ID, AT,
// ENDPOINT, DOMAIN, SERVICE, HOST, PORT, ADDRESS, DIRECT_TLS, RESENT,
// SCHEMA) and as Event JSON on stdin. The daemon's own environment is
// passed on, without any XMPPCERT_ALERT_ variables it had. Deliver is
// synchronous; use NewExecSink for the queued Sink.
type Exec struct {
	o   ExecOptions
	log *slog.Logger
}

// NewExec checks the options and returns the hook.
func NewExec(o ExecOptions) (*Exec, error) {
	if len(o.Command) == 0 || o.Command[0] == "" {
		return nil, errors.New("alert exec hook: no command configured")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultExecTimeout
	}
	l := o.Logger
	if l == nil {
		l = slog.Default()
	}
	return &Exec{o: o, log: l}, nil
}

// NewExecSink returns an exec hook behind its own Queue.
func NewExecSink(o ExecOptions) (*Queue, error) {
	e, err := NewExec(o)
	if err != nil {
		return nil, err
	}
	return NewQueue(e.Name(), e.Deliver, o.Queue, o.Logger), nil
}

// Name is "exec PROGRAM" (the arguments are left out: they may hold
// tokens).
func (e *Exec) Name() string { return "exec " + e.o.Command[0] }

// Env returns the XMPPCERT_ALERT_* variables for an alert, as KEY=VALUE.
// Values are the Event's fields; NUL bytes, which no environment can
// hold, are removed.
func Env(a Alert) []string {
	ev := a.Event()
	kv := [][2]string{
		{"SCHEMA", ev.Schema}, {"ID", ev.ID}, {"AT", ev.At.Format(time.RFC3339Nano)},
		{"KIND", string(ev.Kind)}, {"SEVERITY", string(ev.Severity)}, {"TEXT", ev.Text},
		{"OLD", ev.Old}, {"NEW", ev.New}, {"KEY", ev.Key}, {"RESENT", strconv.FormatBool(ev.Resent)},
		{"ENDPOINT", ev.EndpointKey}, {"DOMAIN", ev.Endpoint.Domain}, {"SERVICE", string(ev.Endpoint.Service)},
		{"HOST", ev.Endpoint.Host}, {"PORT", strconv.Itoa(int(ev.Endpoint.Port))}, {"ADDRESS", ev.Endpoint.Address},
		{"DIRECT_TLS", strconv.FormatBool(ev.Endpoint.DirectTLS)},
	}
	out := make([]string, 0, len(kv))
	for _, p := range kv {
		out = append(out, EnvPrefix+p[0]+"="+strings.ReplaceAll(p[1], "\x00", ""))
	}
	return out
}

// Deliver runs the hook once for the alert and waits for it, at most
// Timeout (or until ctx is done), killing its process group then.
func (e *Exec) Deliver(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a.Event())
	if err != nil {
		return fmt.Errorf("%s: encoding the alert: %v", e.Name(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.o.Command[0], e.o.Command[1:]...)
	cmd.Dir = e.o.Dir
	cmd.Stdin = bytes.NewReader(body)
	out := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = out, out
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, Env(a)...)
	killGroup(cmd)
	// Grandchildren that keep stdout open must not hold Wait forever.
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return fmt.Errorf("%s: timed out after %v, process group killed; output: %q", e.Name(), e.o.Timeout, out.String())
	case ctx.Err() != nil:
		return fmt.Errorf("%s: cancelled (%v), process group killed", e.Name(), ctx.Err())
	case err != nil:
		return fmt.Errorf("%s: %v; output: %q", e.Name(), err, out.String())
	}
	if s := out.String(); s != "" {
		e.log.Debug("alert hook output", "sink", e.Name(), "kind", string(a.Change.Kind), "output", s)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
