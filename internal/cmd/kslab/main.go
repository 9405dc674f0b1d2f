// Command kslab manages kubesmith's local test substrates. `kslab hosts ...` runs container hosts:
// privileged Docker containers with systemd and sshd under a dockerd of their own, which the provider treats
// as physical hosts (see package containerhosts). Other substrates (libvirt) get subcommands of their own.
//
// Progress goes to stderr; results (JSON) to stdout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: kslab <substrate> <command> [flags]

substrates:
  hosts    container hosts (privileged systemd+sshd containers under the lab's own dockerd)
  vm       the libvirt lab (network, pool, Debian 12 guest image, self-check)

Run "kslab hosts help" or "kslab vm help" for the commands.
`

// exitCodeError ends kslab with a given exit code after printing its message (if any).
type exitCodeError struct {
	code int
	msg  string
}

func (e *exitCodeError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	code := 1
	var ec *exitCodeError
	if errors.As(err, &ec) {
		code = ec.code
	}
	if err.Error() != "" {
		fmt.Fprintln(os.Stderr, "kslab:", err)
	}
	os.Exit(code)
}

// run dispatches on the substrate.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, usage) // best effort: the usage error is returned anyway
		return &exitCodeError{code: 2, msg: "no substrate given"}
	}
	switch args[0] {
	case "hosts":
		return hostsCmd(ctx, args[1:], stdout, stderr)
	case "vm":
		return vmCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		if _, err := fmt.Fprint(stdout, usage); err != nil {
			return fmt.Errorf("write usage: %w", err)
		}
		return nil
	default:
		_, _ = fmt.Fprint(stderr, usage) // best effort: the usage error is returned anyway
		return &exitCodeError{code: 2, msg: fmt.Sprintf("unknown substrate %q", args[0])}
	}
}
