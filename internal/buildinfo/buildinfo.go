// Package buildinfo reads what the Go toolchain recorded about how the
// running binary was built: the version of xmppcert, the toolchain, the
// VCS revision and the versions of the modules its caller asks for.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

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
	// Modules maps each module asked for that is linked in to its
	// version ("v1.2.3 => PATH VERSION" when replaced).
	Modules map[string]string `json:"modules"`
}

// Read reads the build information the Go toolchain embeds, with the
// versions of modules.
func Read(modules []string) Info {
	bi, _ := debug.ReadBuildInfo()
	return From(bi, modules)
}

// From picks what Info reports out of bi, with the versions of modules.
// A binary without build information (bi nil), or a test binary, still
// gets the Go version and "(devel)".
func From(bi *debug.BuildInfo, modules []string) Info {
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
	for _, p := range modules {
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
