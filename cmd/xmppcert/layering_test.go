package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestOnlyFrontsNameSettings: only the command line names its flags, and
// only watcher/config the configuration's sections. Every message of the
// packages below cmd that names a flag of xmppcert ("--agree-tos"), or
// elsewhere than watcher/config a section of the file ("[http.https]"),
// is reported; the packages return facts (typed errors, remedies) that
// each front phrases (docs/architecture.md, "Packages"). A literal that
// is a flag and nothing else is an argument for another program
// (prosodyctl's --config) and passes.
func TestOnlyFrontsNameSettings(t *testing.T) {
	flags := map[string]bool{}
	var collect func([]cli.Flag, []*cli.Command)
	collect = func(fs []cli.Flag, cmds []*cli.Command) {
		for _, f := range fs {
			for _, n := range f.Names() {
				if len(n) > 1 {
					flags[n] = true
				}
			}
		}
		for _, c := range cmds {
			collect(c.Flags, c.Subcommands)
		}
	}
	app := newApp(nil, nil, nil)
	collect(app.Flags, app.Commands)
	files := 0
	mention := regexp.MustCompile(`--([a-z0-9][a-z0-9-]*)`)
	section := regexp.MustCompile(`\[\[?(host|watch|history|alert|http|cluster|ct)[].]`)
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			if rel == "cmd" || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || strings.HasPrefix(rel, "internal/test") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil || !strings.ContainsAny(s, " \t") {
				return true
			}
			for _, m := range mention.FindAllStringSubmatch(s, -1) {
				if flags[m[1]] {
					t.Errorf("%s: names the flag --%s: %q", fset.Position(lit.Pos()), m[1], s)
				}
			}
			if m := section.FindString(s); m != "" && !strings.HasPrefix(rel, "watcher/config/") {
				t.Errorf("%s: names the configuration's %s (only watcher/config names its keys): %q", fset.Position(lit.Pos()), m, s)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 || len(flags) < 50 {
		t.Fatalf("%d files read, %d flags collected from the commands", files, len(flags))
	}
}
