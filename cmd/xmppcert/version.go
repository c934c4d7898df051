package main

import (
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"github.com/xmppcert/xmppcert/internal/buildinfo"
)

// versionModules are the dependencies whose versions a bug report needs:
// the embedded CA, the ACME client, the history store, DNS, the command
// line and the crypto. Others are in `go version -m xmppcert`.
var versionModules = []string{
	"github.com/smallstep/certificates",
	"github.com/mholt/acmez/v3",
	"go.etcd.io/bbolt",
	"github.com/miekg/dns",
	"github.com/urfave/cli/v2",
	"golang.org/x/crypto",
}

func init() {
	// --version and `xmppcert version` print the same text. The flag has
	// no -v: many operators read -v as verbose, and since global flags
	// are accepted after the command name, `probe -v` would print the
	// version instead of saying that probe has no -v.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the versions of xmppcert, Go and the main modules, then exit", DisableDefaultText: true}
	cli.VersionPrinter = func(c *cli.Context) {
		if err := printVersion(c.App.Writer, buildinfo.Read(versionModules), flagAnywhere(c, "json")); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "xmppcert: %v\n", err)
		}
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the versions of xmppcert, Go and the modules that matter in a bug report",
		Description: "The xmppcert version is the module version the binary was built as: a release, a pseudo-version\n" +
			"such as v0.0.0-DATE-REVISION+dirty for a build in a checkout, or (devel) when the build recorded none.\n" +
			"The VCS revision and whether the checkout had uncommitted changes follow when the build recorded\n" +
			"them. 'xmppcert --version' prints the same.",
		Flags:        []cli.Flag{jsonFlag()},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("version takes no arguments; for JSON give --json")
			}
			return printVersion(c.App.Writer, buildinfo.Read(versionModules), flagAnywhere(c, "json"))
		},
	}
}

// printVersion writes v as text or, with asJSON, as JSON.
func printVersion(w io.Writer, v buildinfo.Info, asJSON bool) error {
	if asJSON {
		return writeJSON(w, v)
	}
	line := "xmppcert " + v.Version
	if v.Revision != "" {
		line += ", revision " + v.Revision
		if v.Modified {
			line += " (modified)"
		}
	}
	if _, err := fmt.Fprintf(w, "%s\nbuilt with %s %s/%s\n", line, v.Go, runtime.GOOS, runtime.GOARCH); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range versionModules {
		if ver, ok := v.Modules[p]; ok {
			fmt.Fprintf(tw, "  %s\t%s\n", p, ver)
		}
	}
	return tw.Flush()
}
