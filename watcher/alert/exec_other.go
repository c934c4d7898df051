//go:build !unix

package alert

import "os/exec"

// killGroup: without process groups only the hook itself is killed on
// cancellation (exec.CommandContext's default).
func killGroup(cmd *exec.Cmd) {}
