package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Grace periods when a command's context ends: SIGTERM, then SIGKILL, then the session is closed.
const (
	termGrace = 2 * time.Second
	killGrace = time.Second
)

// sshRunner is the Runner returned by Dial. It is safe for concurrent use: each command gets its own session.
type sshRunner struct {
	cfg    Config
	red    redactor
	log    *slog.Logger
	client *ssh.Client
	via    *sshRunner // bastion, closed with us

	mu      sync.Mutex
	sftp    *sftp.Client // opened on first use, dropped when broken or interrupted
	userTmp string       // private upload directory of a non-root user, created on first use

	closeOnce sync.Once
	done      chan struct{}
}

var _ StreamRunner = (*sshRunner)(nil)

func newSSHRunner(cfg Config, client *ssh.Client, via *sshRunner) *sshRunner {
	r := &sshRunner{
		cfg:    cfg,
		red:    newRedactor(cfg.Redact),
		log:    cfg.Logger.With("host", cfg.Name),
		client: client,
		via:    via,
		done:   make(chan struct{}),
	}
	if cfg.KeepAliveInterval > 0 {
		go r.keepAlive(cfg.KeepAliveInterval)
	}
	return r
}

// Name implements Runner.
func (r *sshRunner) Name() string { return r.cfg.Name }

// Address implements Runner.
func (r *sshRunner) Address() string { return r.cfg.Address }

// Run implements Runner.
func (r *sshRunner) Run(ctx context.Context, cmd string) (Result, error) {
	return r.RunInput(ctx, cmd, nil)
}

// RunInput implements Runner.
func (r *sshRunner) RunInput(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	// Locked buffers: after a cancelled command the session's copiers may still be finishing.
	var stdout, stderr lockedBuffer
	err := r.RunStream(ctx, cmd, stdin, &stdout, &stderr)
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *ExitError
	if errors.As(err, &exitErr) {
		res.ExitCode = exitErr.ExitCode
	}
	return res, err
}

// RunStream implements StreamRunner. When ctx ends first, the remote command gets SIGTERM, then SIGKILL, and the
// session is closed; the error then wraps ctx.Err().
func (r *sshRunner) RunStream(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	err := r.exec(ctx, cmd, stdin, stdout, stderr)
	var exitErr *ExitError
	if err == nil || errors.As(err, &exitErr) {
		return err // an ExitError names the host and the command itself
	}
	return r.cmdErr(cmd, err)
}

// runScript runs one of this package's own scripts: a failure names the step's exit code and stderr, not the
// script, and the caller adds what the step was for.
func (r *sshRunner) runScript(ctx context.Context, script string, stdin io.Reader, stdout io.Writer) error {
	err := r.exec(ctx, script, stdin, stdout, nil)
	var exitErr *ExitError
	if errors.As(err, &exitErr) {
		return &scriptError{err: err, exit: exitErr, hint: r.sudoHint(exitErr.Stderr)}
	}
	return err
}

// scriptError is the failure of an internal script; errors.As still finds the *ExitError.
type scriptError struct {
	err  error
	exit *ExitError
	hint string
}

func (e *scriptError) Error() string {
	msg := fmt.Sprintf("remote command exited %d", e.exit.ExitCode)
	if e.exit.Stderr != "" {
		msg += ": " + e.exit.Stderr
	}
	return msg + e.hint
}

func (e *scriptError) Unwrap() error { return e.err }

// exec runs cmd as root. Errors other than *ExitError name neither host nor command.
func (r *sshRunner) exec(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	sess, err := r.client.NewSession()
	if err != nil {
		return fmt.Errorf("open SSH session: %w", err)
	}
	defer func() { _ = sess.Close() }()
	tail := &tailBuffer{max: 16 << 10}
	sess.Stdin = stdin
	sess.Stdout = stdout
	if sess.Stdout == nil {
		sess.Stdout = io.Discard
	}
	sess.Stderr = tail
	if stderr != nil {
		sess.Stderr = io.MultiWriter(stderr, tail)
	}
	if err := sess.Start(asRoot(r.cfg.User, cmd)); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		how := r.stop(sess, done)
		r.log.Debug("ssh command cancelled", "cmd", r.red.cmdForMessage(cmd), "stopped", how,
			"duration", time.Since(start).Round(time.Millisecond))
		return fmt.Errorf("cancelled (remote command %s): %w", how, ctx.Err())
	}
	var sshExit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case waitErr == nil:
		r.log.Debug("ssh command", "cmd", r.red.cmdForMessage(cmd), "exit", 0, "duration", time.Since(start).Round(time.Millisecond))
		return nil
	case errors.As(waitErr, &sshExit):
		exitErr := &ExitError{
			Host: r.cfg.Name, Cmd: r.red.cmdForMessage(cmd), ExitCode: sshExit.ExitStatus(),
			Stderr: r.red.stderrTail(tail.String()),
		}
		if sig := sshExit.Signal(); sig != "" {
			exitErr.Stderr = strings.TrimSpace(exitErr.Stderr + "\n(killed by signal " + sig + ")")
		}
		r.log.Debug("ssh command", "cmd", exitErr.Cmd, "exit", exitErr.ExitCode, "duration", time.Since(start).Round(time.Millisecond))
		if hint := r.sudoHint(exitErr.Stderr); hint != "" {
			return fmt.Errorf("%w%s", exitErr, hint)
		}
		return exitErr
	case errors.As(waitErr, &missing):
		return errors.New("the connection ended before the command reported its exit status")
	default:
		return waitErr
	}
}

// sudoHint explains a refusal by sudo, or returns "".
func (r *sshRunner) sudoHint(stderr string) string {
	if r.cfg.User == "root" || !isSudoRefusal(stderr) {
		return ""
	}
	return fmt.Sprintf(" (user %q needs passwordless sudo, e.g. \"%s ALL=(ALL) NOPASSWD: ALL\" in /etc/sudoers.d/)",
		r.cfg.User, r.cfg.User)
}

// stop ends a running command after its context ended, and says how.
func (r *sshRunner) stop(sess *ssh.Session, done <-chan error) string {
	for _, step := range []struct {
		sig   ssh.Signal
		grace time.Duration
	}{{ssh.SIGTERM, termGrace}, {ssh.SIGKILL, killGrace}} {
		if err := sess.Signal(step.sig); err != nil {
			break
		}
		timer := time.NewTimer(step.grace)
		select {
		case <-done: //nolint:errcheck // the command was cancelled: its exit status after the signal is moot
			timer.Stop()
			return "stopped by SIG" + string(step.sig)
		case <-timer.C:
		}
	}
	_ = sess.Close()
	timer := time.NewTimer(killGrace)
	defer timer.Stop()
	select {
	case <-done: //nolint:errcheck // as above: only whether it ended matters
	case <-timer.C:
	}
	return "not confirmed stopped, session closed"
}

func isSudoRefusal(stderr string) bool {
	return strings.Contains(stderr, "sudo: a password is required") || strings.Contains(stderr, "sudo: a terminal is required") ||
		strings.Contains(stderr, "is not in the sudoers file") || strings.Contains(stderr, "sudo: command not found") ||
		strings.Contains(stderr, "sudo: not found")
}

// cmdErr wraps err with the host and the redacted command.
func (r *sshRunner) cmdErr(cmd string, err error) error {
	return fmt.Errorf("%s: run %q: %w", r.cfg.Name, r.red.cmdForMessage(cmd), err)
}

// keepAlive probes the connection every interval and closes it when a probe goes unanswered for three
// intervals, so that sessions on a dead host fail instead of hanging.
func (r *sshRunner) keepAlive(interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-ticker.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := r.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		timer := time.NewTimer(3 * interval)
		select {
		case <-r.done:
			timer.Stop()
			return
		case err := <-reply:
			timer.Stop()
			if err == nil {
				continue
			}
			r.log.Debug("ssh keepalive failed, closing connection", "error", err)
		case <-timer.C:
			r.log.Debug("ssh keepalive unanswered, closing connection", "timeout", 3*interval)
		}
		_ = r.client.Close()
		return
	}
}

// Close implements Runner. It closes the SFTP client, the connection and the bastion connection.
func (r *sshRunner) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.done)
		r.mu.Lock()
		if r.sftp != nil {
			_ = r.sftp.Close()
			r.sftp = nil
		}
		r.mu.Unlock()
		if cerr := r.client.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("%s: close SSH connection: %w", r.cfg.Name, cerr)
		}
		if r.via != nil {
			err = errors.Join(err, r.via.Close())
		}
	})
	return err
}

// lockedBuffer is a bytes.Buffer safe for concurrent Write and String.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tailBuffer keeps roughly the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > t.max {
		return string(t.buf[len(t.buf)-t.max:])
	}
	return string(t.buf)
}
