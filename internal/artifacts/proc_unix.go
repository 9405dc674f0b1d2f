//go:build unix

package artifacts

import (
	"os/exec"
	"syscall"
)

// killGroupOnCancel runs the command in its own process group and makes context cancellation stop the whole group
// (go build's compiler and linker children included), not only the direct child.
func killGroupOnCancel(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error {
		if c.Process == nil {
			return nil
		}
		return syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	}
}
