// Command xmppcert is certificate and trust tooling for XMPP operators:
// it issues certificates that carry every XMPP identity from an embedded
// private CA, checks certificates the way XMPP peers check them and tells
// the operator what each peer will do with them.
//
// Exit codes: 0 success, 1 the thing checked is bad or an operation
// failed, 2 usage or input error; status --check alone answers with a
// monitoring plugin's 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/xmppcert/xmppcert/internal/buildinfo"
	"github.com/xmppcert/xmppcert/internal/safetext"
	"github.com/xmppcert/xmppcert/watcher/config"
)

func main() { os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr)) }

// Exit codes, the same for every command.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// usageError is a mistake in the command line or its input: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// clock is the time every command works at: certificate validity,
// renewal windows, pin holds and POSH lifetimes. Tests move it forward to
// step over a hold instead of sleeping through it.
var clock = time.Now

// errInvalid reports that what was checked is bad (exit 1); the command
// has already said why on stdout.
var errInvalid = errors.New("not valid")

// run is main without the process: it returns the exit code, so that
// tests run the CLI in-process. SIGINT and SIGTERM cancel the command's
// context: ca serve shuts down, a running hook is killed with its
// children. Everything written to stdout and stderr goes through
// safetext: text that a certificate, a peer or a file supplied reaches
// the terminal with its control characters escaped.
func run(args []string, stdin io.Reader, rawStdout, rawStderr io.Writer) int {
	stdout, stderr := safetext.NewWriter(rawStdout), safetext.NewWriter(rawStderr)
	defer stdout.Flush()
	defer stderr.Flush()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp(stdin, stdout, stderr)
	err := app.RunContext(ctx, permuteArgs(app, args))
	var ue usageError
	var ce checkExit
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &ue) && statusCheck(args):
		// A monitoring plugin's invalid command line is UNKNOWN.
		return monitoringCheck(stdout, statusReport{}, err).(checkExit).code
	case errors.Is(err, errInvalid), errors.Is(err, errDeploy):
		return exitFailed
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "xmppcert: %s\n", clipLines(ue.msg))
		return exitUsage
	}
	// Anything else is an operation that failed (writing the output, say);
	// command-line mistakes all arrive as usageError through onUsageError.
	fmt.Fprintf(stderr, "xmppcert: %s\n", clipLines(err.Error()))
	return exitFailed
}

// statusCheck reports whether args ask for status --check, whose every
// failure is a monitoring plugin's UNKNOWN.
func statusCheck(args []string) bool {
	return slices.Contains(args, "status") && slices.ContainsFunc(args, func(a string) bool {
		return a == "--check" || a == "-check" || strings.HasPrefix(a, "--check=")
	})
}

// maxErrorLine bounds each line of an error message, in bytes: an error
// that quotes a hostile input (a file of 500 PEM blocks, a CA's problem
// document) stays a line a terminal can show.
const maxErrorLine = 2000

// clipLines cuts every line of msg to maxErrorLine bytes, saying so.
func clipLines(msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		if len(l) > maxErrorLine {
			lines[i] = l[:maxErrorLine] + fmt.Sprintf(" ... (%d more bytes cut)", len(l)-maxErrorLine)
		}
	}
	return strings.Join(lines, "\n")
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "xmppcert",
		Usage: "certificates and trust for XMPP servers: issue, renew, ca, pin, probe, inspect, check",
		Description: "xmppcert issues certificates carrying every XMPP identity (DNS-ID, SRV-IDs, XmppAddr) from its\n" +
			"embedded private CA or a public ACME CA, renews them, checks certificates the way XMPP peers do\n" +
			"(RFC 6120 §13.7 with RFC 9525) and says what Prosody, ejabberd, Openfire, Conversations and Smack\n" +
			"will do with them, publishes and verifies pin data (TLSA, POSH, SPKI) with key rollover, and probes\n" +
			"live endpoints, grading them against the 2014 XMPP manifesto.\n" +
			"Exit codes: 0 success, 1 the certificate is not valid or an operation failed, 2 usage or input error.",
		Version:        buildinfo.Read(versionModules).Version,
		Reader:         stdin,
		Writer:         stdout,
		ErrWriter:      stderr,
		Flags:          globalFlags(),
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		Commands:       []*cli.Command{issueCommand(), renewCommand(), caCommand(), pinCommand(), probeCommand(), inspectCommand(), checkCommand(), daemonCommand(), statusCommand(), ackCommand(), sweepCommand(), certificatesCommand(), deployCommand(), revokeCommand(), deleteCommand(), versionCommand(), caaCommand(), preflightCommand(), ctCommand()},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q; run 'xmppcert help' for the list", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
}

// globalFlags are the flags every command takes (README, "Commands").
// They are accepted after the command name too: permuteArgs moves them
// in front of it.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.PathFlag{Name: "state-dir", EnvVars: []string{"XMPPCERT_STATE_DIR"}, Value: defaultStateDir(),
			Usage: "where xmppcert keeps its CA, lineages and history"},
		&cli.PathFlag{Name: "config", EnvVars: []string{"XMPPCERT_CONFIG"}, Usage: "TOML configuration file"},
		jsonFlag(), quietFlag(), cli.VersionFlag,
		// A cluster given without a configuration file, as its
		// [cluster] would give it (cron on any node).
		&cli.StringSliceFlag{Name: "etcd-endpoint", Category: "cluster", Usage: "work on the cluster whose etcd answers at this client URL (repeatable); needs --cluster-key-file"},
		&cli.PathFlag{Name: "cluster-key-file", Category: "cluster", Usage: "the file holding the key that seals private keys in etcd (64 hex digits)"},
		&cli.StringFlag{Name: "node-id", Category: "cluster", DefaultText: "the host name", Usage: "this node's name in the cluster"},
		&cli.DurationFlag{Name: "lease-ttl", Category: "cluster", DefaultText: "10s", Usage: "this node's etcd lease"},
		&cli.PathFlag{Name: "etcd-cert-file", Category: "cluster", Usage: "client certificate for etcd (with --etcd-key-file)"},
		&cli.PathFlag{Name: "etcd-key-file", Category: "cluster", Usage: "client certificate's key for etcd"},
		&cli.PathFlag{Name: "etcd-ca-file", Category: "cluster", DefaultText: "the system's", Usage: "CA certificates etcd's certificate is checked against"},
		&cli.StringFlag{Name: "cluster-prefix", Category: "cluster", DefaultText: config.DefaultClusterPrefix, Usage: "the key prefix of everything xmppcert keeps in etcd"},
	}
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "machine-readable output on stdout (logs stay on stderr)"}
}

func quietFlag() cli.Flag {
	return &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no output on success; the exit code tells"}
}

// flagAnywhere reports a boolean flag given before or after the command
// name: urfave/cli lets a command's own flag shadow the global one.
func flagAnywhere(c *cli.Context, name string) bool {
	for _, x := range c.Lineage() {
		if x.Bool(name) {
			return true
		}
	}
	return false
}

// defaultStateDir is $XDG_STATE_HOME/xmppcert (or ~/.local/state/xmppcert)
// for users and /var/lib/xmppcert for root, as the README says.
func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/xmppcert"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "xmppcert")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "xmppcert")
	}
	return "xmppcert-state"
}

// onUsageError turns a flag the command line got wrong into a usage
// error that names the command as typed, subcommands with their parents
// ("xmppcert pin posh"): a subcommand's cli.Command knows only its own
// name while its flags are parsed, so the names come from the contexts.
func onUsageError(c *cli.Context, err error, _ bool) error {
	name := "xmppcert"
	var path []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" && l.Command.Name != c.App.Name {
			path = append(path, l.Command.Name)
		}
	}
	slices.Reverse(path)
	if len(path) > 0 {
		name += " " + strings.Join(slices.Compact(path), " ")
	}
	return usagef("%s: %v; see '%s --help'", name, err, name)
}
