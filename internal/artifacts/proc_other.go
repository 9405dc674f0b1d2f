//go:build !unix

package artifacts

import "os/exec"

// killGroupOnCancel keeps exec's default: cancellation kills the direct child only.
func killGroupOnCancel(*exec.Cmd) {}
