package node

import (
	"context"
	"io"
)

// StreamRunner is a Runner that can also stream a command's output while it runs. The SSH runner from Dial and
// the nodetest fake implement it; WithHostLock needs it.
type StreamRunner interface {
	Runner
	// RunStream runs cmd as root with stdin (nil for none), copying its output to stdout and stderr (either may
	// be nil) as it arrives. It returns when the command has exited. A non-zero exit gives *ExitError, whose
	// Stderr holds the last lines of stderr.
	RunStream(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
}
