// Package buildinfo reads what the Go toolchain recorded about how the
// running binary was built: the version of xmppcert, the toolchain, the
// VCS revision and the versions of the modules a bug report needs.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Modules are the dependencies whose versions a bug report needs: the
// embedded CA, the ACME client, the history store, DNS, the command
// line and the crypto. Others are in `go version -m xmppcert`.
var Modules = []string{
	"github.com/smallstep/certificates",
	"github.com/mholt/acmez/v3",
	"go.etcd.io/bbolt",
	"github.com/miekg/dns",
	"github.com/urfave/cli/v2",
	"golang.org/x/crypto",
}

// Info is what the binary knows about how it was built; it is also the
// --json form of xmppcert version.
type Info struct {
	// Version is the main module's version: a release, a pseudo-version
	// for a build in a checkout, or "(devel)" when the build recorded
	// none (-buildvcs=false, go run, a test binary).
	Version string `json:"version"`
	// Go is the toolchain that built the binary (runtime.Version).
	Go string `json:"go"`
	// Revision and Modified are the VCS revision and whether the
	// checkout had uncommitted changes: empty and false when the build
	// did not record them (-buildvcs=false, a build outside a checkout).
	Revision string `json:"revision"`
	Modified bool   `json:"modified"`
	// Modules maps each module of Modules that is linked in to its
	// version ("v1.2.3 => PATH VERSION" when replaced).
	Modules map[string]string `json:"modules"`
}

// Read reads the build information the Go toolchain embeds.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return From(bi)
}

// From picks what Info reports out of bi. A binary without build
// information (bi nil), or a test binary, still gets the Go version and
// "(devel)".
func From(bi *debug.BuildInfo) Info {
	v := Info{Version: "(devel)", Go: runtime.Version(), Modules: map[string]string{}}
	if bi == nil {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	want := map[string]bool{}
	for _, p := range Modules {
		want[p] = true
	}
	for _, m := range bi.Deps {
		if !want[m.Path] {
			continue
		}
		ver := m.Version
		if r := m.Replace; r != nil {
			ver += " => " + r.Path
			if r.Version != "" {
				ver += " " + r.Version
			}
		}
		v.Modules[m.Path] = ver
	}
	return v
}
