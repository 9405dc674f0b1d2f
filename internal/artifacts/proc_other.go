//go:build !unix

package artifacts

import (
	"context"
	"os"
	"os/exec"
	"time"
)

// killGroupOnCancel keeps exec's default: cancellation kills the direct child only.
func killGroupOnCancel(*exec.Cmd) {}

// lockDir does not lock on systems without flock; bundles are built on Linux.
func lockDir(ctx context.Context, dir string, poll time.Duration, waiting func()) (func(), error) {
	return func() {}, os.MkdirAll(dir, 0o755)
}
