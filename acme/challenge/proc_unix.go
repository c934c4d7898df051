//go:build unix

package challenge

import (
	"os/exec"
	"syscall"
)

// killGroup runs cmd in its own process group and makes cancelling it
// kill the whole group, so that a hook's children (curl, nsupdate) do not
// outlive its timeout.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
