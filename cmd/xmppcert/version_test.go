package main

import (
	"encoding/json"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/buildinfo"
)

// TestVersion runs `version` and `--version` in-process: the same text
// naming xmppcert and the Go version, and JSON with the Go version and
// the modules the test binary links, exit 0 and nothing on stderr.
func TestVersion(t *testing.T) {
	code, text, errs := runCLI(t, nil, "version")
	if code != exitOK || errs != "" {
		t.Fatalf("version: exit %d, stderr %q", code, errs)
	}
	first, _, _ := strings.Cut(text, "\n")
	if !strings.HasPrefix(first, "xmppcert ") || len(first) == len("xmppcert ") {
		t.Errorf("first line %q does not name xmppcert and a version", first)
	}
	if !strings.Contains(text, runtime.Version()) {
		t.Errorf("output lacks the Go version %s:\n%s", runtime.Version(), text)
	}
	// This package imports urfave/cli/v2, so every build links it.
	if !strings.Contains(text, "github.com/urfave/cli/v2") {
		t.Errorf("output lacks the urfave/cli/v2 version:\n%s", text)
	}
	for _, args := range [][]string{{"--version"}, {"--version", "inspect"}, {"inspect", "--version"}} {
		code, out, errs := runCLI(t, nil, args...)
		if code != exitOK || errs != "" || out != text {
			t.Errorf("%q: exit %d, stderr %q, stdout\n%s\nwant exit 0 and the text of 'version':\n%s", args, code, errs, out, text)
		}
	}

	for _, args := range [][]string{{"version", "--json"}, {"--json", "version"}, {"--version", "--json"}, {"--json", "--version"}} {
		code, out, errs := runCLI(t, nil, args...)
		if code != exitOK || errs != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
			continue
		}
		var v struct {
			Version  *string           `json:"version"`
			Go       string            `json:"go"`
			Revision *string           `json:"revision"`
			Modified *bool             `json:"modified"`
			Modules  map[string]string `json:"modules"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("%q: not JSON: %v\n%s", args, err, out)
			continue
		}
		if v.Version == nil || *v.Version == "" || v.Revision == nil || v.Modified == nil {
			t.Errorf("%q: version, revision or modified missing:\n%s", args, out)
		}
		if v.Go != runtime.Version() {
			t.Errorf("%q: go %q, want %q", args, v.Go, runtime.Version())
		}
		if ver := v.Modules["github.com/urfave/cli/v2"]; !strings.HasPrefix(ver, "v2.") {
			t.Errorf("%q: modules[github.com/urfave/cli/v2] = %q, want v2.*", args, ver)
		}
		for path := range v.Modules {
			if !slices.Contains(versionModules, path) {
				t.Errorf("%q: module %s is not one of versionModules", args, path)
			}
		}
	}

	if code, out, errs := runCLI(t, nil, "version", "extra"); code != exitUsage || out != "" || strings.Count(errs, "\n") != 1 {
		t.Errorf("version extra: exit %d, stdout %q, stderr %q; want exit 2 and one line", code, out, errs)
	}
}

// TestVersionFrom feeds buildinfo.From the build information of a release
// build, of a modified checkout with a replaced module, and none at all.
func TestVersionFrom(t *testing.T) {
	deps := []*debug.Module{
		{Path: "github.com/mholt/acmez/v3", Version: "v3.1.7"},
		{Path: "github.com/miekg/dns", Version: "v1.1.73", Replace: &debug.Module{Path: "../dns"}},
		{Path: "golang.org/x/crypto", Version: "v0.59.0", Replace: &debug.Module{Path: "golang.org/x/crypto", Version: "v0.60.0"}},
		{Path: "golang.org/x/net", Version: "v0.62.0"},
	}
	for _, c := range []struct {
		name  string
		bi    *debug.BuildInfo
		first string
		json  string
	}{
		{"release", &debug.BuildInfo{Main: debug.Module{Path: "github.com/xmppcert/xmppcert", Version: "v1.2.3"}, Deps: deps[:1]},
			"xmppcert v1.2.3",
			`{"version":"v1.2.3","go":"GO","revision":"","modified":false,"modules":{"github.com/mholt/acmez/v3":"v3.1.7"}}`},
		{"checkout", &debug.BuildInfo{Main: debug.Module{Path: "github.com/xmppcert/xmppcert", Version: "(devel)"}, Deps: deps,
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}},
			"xmppcert (devel), revision 0123abcd (modified)",
			`{"version":"(devel)","go":"GO","revision":"0123abcd","modified":true,"modules":{"github.com/mholt/acmez/v3":"v3.1.7",` +
				`"github.com/miekg/dns":"v1.1.73 => ../dns","golang.org/x/crypto":"v0.59.0 => golang.org/x/crypto v0.60.0"}}`},
		{"none", nil, "xmppcert (devel)",
			`{"version":"(devel)","go":"GO","revision":"","modified":false,"modules":{}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := buildinfo.From(c.bi, versionModules)
			var text, js strings.Builder
			if err := printVersion(&text, v, false); err != nil {
				t.Fatal(err)
			}
			if first, _, _ := strings.Cut(text.String(), "\n"); first != c.first {
				t.Errorf("first line %q, want %q", first, c.first)
			}
			if err := printVersion(&js, v, true); err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal([]byte(js.String()), &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(strings.Replace(c.json, "GO", runtime.Version(), 1)), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("JSON\n got %v\nwant %v", got, want)
			}
		})
	}
}
