// Package node runs commands and copies files on one host over SSH. It knows nothing of Kubernetes.
package node

import (
	"context"
	"fmt"
	"io"
	"io/fs"
)

// Result is what a remote command printed and how it exited.
type Result struct {
	Stdout   string
	Stderr   string
	ExitCode int
}

// ExitError is returned by Run when the remote command exits non-zero.
type ExitError struct {
	Host     string
	Cmd      string // redacted
	ExitCode int
	Stderr   string // last lines, redacted
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s: command %q exited %d: %s", e.Host, e.Cmd, e.ExitCode, e.Stderr)
}

// Runner is the only way phases touch a host. Implementations must be safe for use by one goroutine at a
// time per Runner; different Runners run in parallel. Every command runs as root (through sudo -n for a
// non-root login), under /bin/sh -c.
type Runner interface {
	// Name is the node name used in messages; Address its SSH address.
	Name() string
	Address() string
	// Run runs cmd and returns its output. A non-zero exit gives *ExitError together with the Result.
	Run(ctx context.Context, cmd string) (Result, error)
	// RunInput is Run with stdin.
	RunInput(ctx context.Context, cmd string, stdin io.Reader) (Result, error)
	// WriteFile atomically writes data to path (temp file + rename), creating parent directories, as root.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error
	// ReadFile reads a file as root. A missing file gives an error matching fs.ErrNotExist.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// Upload copies the local file to path (compressed on the wire), atomically, as root.
	Upload(ctx context.Context, localPath, path string, mode fs.FileMode) error
	// Close ends the session.
	Close() error
}
