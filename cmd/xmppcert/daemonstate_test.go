package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemonWithoutConfig runs the built binary as `xmppcert daemon` on
// a state directory holding lineages and no configuration file: it
// serves /healthz and lists every lineage on the dashboard; a lineage
// issued while it runs appears after a sweep. The global --config is
// read after the command name as before it.
func TestDaemonWithoutConfig(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	for _, args := range [][]string{{"a.example", "--component", "muc.a.example"}, {"b.example", "--anonymous"}} {
		if code, out, errs := runCLI(t, nil, append([]string{"--state-dir", state, "issue", "-q"}, args...)...); code != exitOK {
			t.Fatalf("issue %q: exit %d\n%s%s", args, code, out, errs)
		}
	}
	bin := buildXmppcert(t)
	d := startDaemonProc(t, bin, daemonOptions{listen: freeAddr(t)}, "--state-dir", state, "daemon")
	page := httpGet(t, d.url+"/lineages")
	for _, want := range []string{`data-lineage="a.example"`, "a.example (host), muc.a.example (component)", `data-lineage="b.example"`, "b.example (anonymous)", "version 1"} {
		if !strings.Contains(page, want) {
			t.Errorf("the certificates page lacks %q", want)
		}
	}
	if code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", "c.example", "-q"); code != exitOK {
		t.Fatalf("issue c.example: exit %d\n%s%s", code, out, errs)
	}
	d.sweep(t)
	if page := httpGet(t, d.url+"/lineages"); !strings.Contains(page, `data-lineage="c.example"`) {
		t.Errorf("the certificates page does not list a lineage issued while the daemon runs")
	}
	if !strings.Contains(d.logs.String(), "renew run finished") {
		d.wait(t, "the renewal run", func() bool { return strings.Contains(d.logs.String(), "renew run finished") })
	}
	d.stop(t)

	// --config before and after the command name.
	cfg := filepath.Join(dir, "xmppcert.toml")
	writeFile(t, cfg, []byte(fmt.Sprintf("state_dir = %q\n[[watch.peer]]\ndomain = \"peer.example\"\n", filepath.Join(dir, "state2"))), 0o600)
	for _, args := range [][]string{{"daemon", "--config", cfg}, {"--config", cfg, "daemon"}} {
		d := startDaemonProc(t, bin, daemonOptions{listen: freeAddr(t)}, args...)
		if _, err := os.Stat(filepath.Join(dir, "state2", "history.db")); err != nil {
			t.Errorf("%q: the configuration's state directory holds no history: %v", args, err)
		}
		d.stop(t)
	}
}
