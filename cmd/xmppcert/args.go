package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// permuteArgs moves a command's flags in front of its positional
// arguments, so that `issue example.org --component conference.example.org`
// works as operators type it: urfave/cli/v2 stops reading flags at the
// first positional argument. Arguments after "--" stay positional.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	// Global flags before the command name stay where they are.
	flags := app.Flags
	cmds := app.Commands
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") && rest[0] != "--" {
		n := flagArity(flags, rest[0])
		n = min(n, len(rest)-1)
		out = append(out, rest[:1+n]...)
		rest = rest[1+n:]
	}
	// Descend through command and subcommand names. Without a known
	// command there is nothing to reorder: the app reports the mistake.
	found := false
	for len(rest) > 0 {
		cmd := findCommand(cmds, rest[0])
		if cmd == nil {
			break
		}
		found = true
		out = append(out, rest[0])
		rest = rest[1:]
		flags, cmds = cmd.Flags, cmd.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	if !found {
		return args
	}
	var positional []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			positional = append(positional, rest[i:]...)
			i = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			n := min(flagArity(flags, a), len(rest)-1-i)
			out = append(out, rest[i:i+1+n]...)
			i += n
		default:
			positional = append(positional, a)
		}
	}
	return append(out, positional...)
}

// flagArity is 1 when the flag takes a separate value argument, else 0.
func flagArity(flags []cli.Flag, arg string) int {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return 0
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				if _, isBool := f.(*cli.BoolFlag); isBool {
					return 0
				}
				return 1
			}
		}
	}
	return 0
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
