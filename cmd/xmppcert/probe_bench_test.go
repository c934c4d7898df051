package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/testxmpp"
)

// BenchmarkProbeProsody times whole processes against one loopback
// Prosody c2s STARTTLS endpoint, interleaved run by run so that machine
// noise hits each alike: `xmppcert probe` (STARTTLS, chain, identity)
// beside `openssl s_client -starttls xmpp` (one handshake), and
// `xmppcert probe --full` beside testssl.sh -p -E -P (versions, suites
// per protocol, server order: what --full reports). It prints the
// medians and ratios and fails when the plain probe's median is 50 ms or
// more or --full's 2 s or more. bench/probe.sh runs it; XMPPCERT_BENCH_RUNS
// sets the runs (testssl.sh runs once per three).
func BenchmarkProbeProsody(b *testing.B) {
	runs := 11
	if n, err := strconv.Atoi(os.Getenv("XMPPCERT_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	openssl := testtool.Require(b, "openssl", "openssl")
	testssl := testtool.Require(b, "testssl", "testssl.sh")
	dir := b.TempDir()
	bin := buildXmppcert(b)
	state := filepath.Join(dir, "state")
	for _, args := range [][]string{{"issue", "example.org", "-q"}} {
		if out, err := exec.Command(bin, append([]string{"--state-dir", state}, args...)...).CombinedOutput(); err != nil {
			b.Fatalf("xmppcert %q: %v\n%s", args, err, out)
		}
	}
	root, _ := caRootFile(b, bin, state, dir)
	p := testxmpp.StartProsody(b, testxmpp.ProsodyOptions{VirtualHosts: []testxmpp.VirtualHost{{Domain: "example.org", C2SRequireEncryption: true,
		CertFile: filepath.Join(state, "live", "example.org", "fullchain.pem"), KeyFile: filepath.Join(state, "live", "example.org", "privkey.pem")}}})

	commands := []struct {
		name  string
		every int // run once per this many runs
		cmd   func() *exec.Cmd
	}{
		{"xmppcert probe", 1, func() *exec.Cmd {
			return exec.Command(bin, "probe", "example.org", "--connect", p.C2SAddr, "--roots", root, "--json")
		}},
		{"openssl s_client -starttls xmpp", 1, func() *exec.Cmd {
			c := exec.Command(openssl, "s_client", "-starttls", "xmpp", "-xmpphost", "example.org", "-connect", p.C2SAddr, "-CAfile", root, "-verify_return_error")
			c.Stdin = nil // immediate EOF: handshake, then close
			return c
		}},
		{"xmppcert probe --full", 1, func() *exec.Cmd {
			return exec.Command(bin, "probe", "example.org", "--connect", p.C2SAddr, "--roots", root, "--full", "--json")
		}},
		{"testssl.sh -p -E -P", 3, func() *exec.Cmd {
			return exec.Command(testssl, "--quiet", "--warnings", "off", "--color", "0", "-p", "-E", "-P",
				"--starttls", "xmpp", "--xmpphost", "example.org", p.C2SAddr)
		}},
	}
	times := make([][]time.Duration, len(commands))
	for r := 0; r < runs; r++ {
		for i, c := range commands {
			if r%c.every != 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			cmd := c.cmd()
			cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			elapsed := time.Since(start)
			cancel()
			if err != nil {
				b.Fatalf("%s: %v\n%s", c.name, err, out)
			}
			times[i] = append(times[i], elapsed)
		}
	}
	med := make([]time.Duration, len(commands))
	for i, c := range commands {
		slices.Sort(times[i])
		med[i] = times[i][len(times[i])/2]
		fmt.Printf("  %-32s median %9.1f ms  (min %.1f, max %.1f, %d runs)\n", c.name, ms(med[i]), ms(times[i][0]), ms(times[i][len(times[i])-1]), len(times[i]))
	}
	// xmppcert probe and openssl s_client ran back to back in every run:
	// the median of those pairs' ratios is what load shifts least.
	var pairs []float64
	for r := range times[0] {
		pairs = append(pairs, float64(times[0][r])/float64(times[1][r]))
	}
	slices.Sort(pairs)
	ratio := pairs[len(pairs)/2]
	fmt.Printf("  xmppcert probe / openssl s_client:      %.2fx (median of %d pairs)\n", ratio, len(pairs))
	fmt.Printf("  testssl.sh / xmppcert probe --full:     %.1fx\n", float64(med[3])/float64(med[2]))
	b.ReportMetric(ms(med[0]), "probe-ms")
	b.ReportMetric(ms(med[2]), "full-ms")
	b.ReportMetric(ratio, "probe/openssl")
	if ratio > maxProbeRatio || med[2] >= 2*time.Second {
		b.Fatalf("targets: a plain probe within %.0fx openssl s_client side by side (%.2fx: %.1f ms against %.1f ms), --full under 2 s (median %.1f ms); %s",
			maxProbeRatio, ratio, ms(med[0]), ms(med[1]), ms(med[2]), testtool.LoadAverage())
	}
	fmt.Printf("  targets: plain probe within %.0fx openssl s_client, --full under 2 s: met\n", maxProbeRatio)
}

// maxProbeRatio is the gate on a plain probe beside openssl s_client:
// an idle run measured 2.71x (bench/probe.sh 7, README), and the probe
// is a Go process with its start-up where openssl is a small C one, so
// this catches a regression without failing on a loaded machine.
const maxProbeRatio = 4.0

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
