package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/xmppcert/xmppcert/internal/secretfile"
)

// permuteArgs reorders a command line into the order urfave/cli/v2
// reads, so that operators may type flags where they think of them:
//
//   - a command's flags go in front of its positional arguments, so
//     that `issue example.org --component conference.example.org`
//     works: urfave/cli/v2 stops reading flags at the first positional
//     argument;
//   - a global flag (--state-dir, --config, --json, --quiet) given after
//     the command or subcommand name, and not defined by that command,
//     goes in front of the command name with its value, so that
//     `daemon --config FILE` means `--config FILE daemon`: urfave/cli/v2
//     reads global flags only before the command name. A command's own
//     --json or --quiet stays with the command (flagAnywhere reads both).
//
// Arguments after "--" stay positional and are never moved. The result
// is always a permutation of args.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	rest := args[1:]
	// Global flags before the command name stay where they are.
	var global []string
	for len(rest) > 0 && isFlagArg(rest[0]) {
		n := min(flagArity(app.Flags, rest[0]), len(rest)-1)
		global = append(global, rest[:1+n]...)
		rest = rest[1+n:]
	}
	// Descend through command and subcommand names. Without a known
	// command there is nothing to reorder: the app reports the mistake.
	var path []string
	var flags []cli.Flag
	cmds := app.Commands
	for len(rest) > 0 {
		cmd := findCommand(cmds, rest[0])
		if cmd == nil {
			break
		}
		path = append(path, rest[0])
		rest = rest[1:]
		flags, cmds = cmd.Flags, cmd.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	if len(path) == 0 {
		return args
	}
	var own, positional []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			positional = append(positional, rest[i:]...)
			i = len(rest)
		case isFlagArg(a):
			if lookupFlag(flags, a) == nil && lookupFlag(app.Flags, a) != nil {
				// A global value flag at the very end, without its value,
				// stays put: in front of the command it would take the
				// command name as its value.
				if n := flagArity(app.Flags, a); n <= len(rest)-1-i {
					global = append(global, rest[i:i+1+n]...)
					i += n
					continue
				}
			}
			n := min(flagArity(flags, a), len(rest)-1-i)
			own = append(own, rest[i:i+1+n]...)
			i += n
		default:
			positional = append(positional, a)
		}
	}
	out := make([]string, 0, len(args))
	out = append(out, args[0])
	out = append(out, global...)
	out = append(out, path...)
	out = append(out, own...)
	return append(out, positional...)
}

// isFlagArg reports whether a looks like a flag: a dash and more, but
// not the "--" that ends the flags.
func isFlagArg(a string) bool {
	return strings.HasPrefix(a, "-") && a != "-" && a != "--"
}

// flagArity is 1 when the flag takes a separate value argument, else 0
// (a boolean flag, a --flag=value, or a flag not in flags).
func flagArity(flags []cli.Flag, arg string) int {
	if strings.Contains(arg, "=") {
		return 0
	}
	f := lookupFlag(flags, arg)
	if f == nil {
		return 0
	}
	if _, isBool := f.(*cli.BoolFlag); isBool {
		return 0
	}
	return 1
}

// lookupFlag returns the flag of flags that arg (-name, --name or
// --name=value) names, or nil. Like Go's flag package it accepts one or
// two dashes and nothing else before the name.
func lookupFlag(flags []cli.Flag, arg string) cli.Flag {
	name, ok := strings.CutPrefix(arg, "--")
	if !ok {
		name, _ = strings.CutPrefix(arg, "-")
	}
	name, _, _ = strings.Cut(name, "=")
	if name == "" || name[0] == '-' {
		return nil
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// warnExposed warns on stderr when the secret file given with --flag is
// readable by group or others; the command goes on.
func warnExposed(c *cli.Context, flag, path string) {
	if mode, exposed := secretfile.Exposed(path); exposed {
		fmt.Fprintf(c.App.ErrWriter, "xmppcert: warning: --%s %s is readable by group or others (mode %04o): chmod 600 %s\n", flag, path, uint32(mode), path)
	}
}
