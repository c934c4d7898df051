package xmppsim

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// Process is a simulator running in its own process (command
// simprocess), for tests and benchmarks that measure a daemon apart from
// the simulator's work. It ends with the test.
type Process struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	// Addr is the simulator's listener.
	Addr string
	// Roots holds its CA, which CAPEM has as PEM.
	Roots *x509.CertPool
	CAPEM []byte
}

// StartProcess builds (once per test process) and starts command
// simprocess, offering dialback when dialback is set, and reads its
// address and CA.
func StartProcess(t testing.TB, dialback bool) *Process {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := testtool.BuildProgram(t, filepath.Join(filepath.Dir(file), "simprocess"), "xmppsim-process")
	cmd := exec.Command(bin)
	if dialback {
		cmd.Args = append(cmd.Args, "-dialback")
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{cmd: cmd, in: in, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		p.in.Close()
		p.cmd.Wait()
	})
	var caPEM strings.Builder
	for p.out.Scan() {
		line := p.out.Text()
		if addr, ok := strings.CutPrefix(line, "sim "); ok {
			p.Addr = addr
			continue
		}
		if p.Addr == "" {
			t.Fatalf("simulator: %s", line)
		}
		caPEM.WriteString(line + "\n")
		if line == "-----END CERTIFICATE-----" {
			break
		}
	}
	p.CAPEM = []byte(caPEM.String())
	p.Roots = x509.NewCertPool()
	if !p.Roots.AppendCertsFromPEM(p.CAPEM) {
		t.Fatalf("simulator: no CA certificate in %q", caPEM.String())
	}
	return p
}

// Pid is the simulator process's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Do sends one command (see command simprocess) and returns the lines
// printed before its "ok".
func (p *Process) Do(t testing.TB, command string) []string {
	t.Helper()
	if _, err := fmt.Fprintln(p.in, command); err != nil {
		t.Fatalf("simulator %s: %v", command, err)
	}
	var lines []string
	for p.out.Scan() {
		line := p.out.Text()
		switch {
		case line == "ok":
			return lines
		case strings.HasPrefix(line, "error: "):
			t.Fatalf("simulator %s: %s", command, line)
		}
		lines = append(lines, line)
	}
	t.Fatalf("simulator %s: no answer (%v)", command, p.out.Err())
	return nil
}
