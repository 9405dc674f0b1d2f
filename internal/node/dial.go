package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// ErrUnreachable marks a Dial error after which the host never came up (refused, timed out, unreachable):
// the engine may treat such a host as down rather than broken.
var ErrUnreachable = errors.New("host not reachable over SSH")

// ErrAuthFailed marks a Dial error where the host rejected every key offered. It is not retried.
var ErrAuthFailed = errors.New("SSH authentication failed")

// Backoff between connection attempts while a host is not up yet.
const (
	initialBackoff = 250 * time.Millisecond
	maxBackoff     = 5 * time.Second
)

// Dial connects to the host described by cfg, through cfg.Bastion if set, and returns a Runner for it (a
// StreamRunner). The host key must match the pin in cfg. While the host is not up yet Dial retries with backoff
// (see Config.RetryFor) until ctx is done; authentication failures and host key mismatches are returned at once.
func Dial(ctx context.Context, cfg Config) (Runner, error) {
	return dial(ctx, cfg)
}

func dial(ctx context.Context, cfg Config) (*sshRunner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var via *sshRunner
	if cfg.Bastion != nil {
		bcfg := *cfg.Bastion
		if bcfg.Logger == nil {
			bcfg.Logger = cfg.Logger
		}
		bcfg.Redact = append(append([]string(nil), bcfg.Redact...), cfg.Redact...)
		b, err := dial(ctx, bcfg)
		if err != nil {
			return nil, fmt.Errorf("%s: connect to bastion: %w", cfg.Name, err)
		}
		via = b
	}
	client, err := connect(ctx, cfg, via)
	if err != nil {
		if via != nil {
			_ = via.Close()
		}
		return nil, err
	}
	return newSSHRunner(cfg, client, via), nil
}

// connect opens the SSH connection, retrying while the host is not up yet.
func connect(ctx context.Context, cfg Config, via *sshRunner) (*ssh.Client, error) {
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	hostKey, err := newHostKeyCheck(cfg, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	signers, offered, closeAgent, err := loadSigners(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	defer closeAgent()
	clientCfg := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback:   hostKey.callback,
		HostKeyAlgorithms: hostKey.algorithms,
		Timeout:           cfg.ConnectTimeout,
	}
	start := time.Now()
	backoff := initialBackoff
	for attempt := 1; ; attempt++ {
		client, err := connectOnce(ctx, cfg, addr, clientCfg, via)
		if err == nil {
			cfg.Logger.Debug("ssh connected", "host", cfg.Name, "address", addr, "attempts", attempt,
				"duration", time.Since(start).Round(time.Millisecond))
			return client, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The cause is the ended context; the last attempt's error is context only, so it is not wrapped
			// (a stale HostKeyMismatchError must not turn a cancelled dial into a trust failure for callers).
			return nil, fmt.Errorf("%s: connect to %s (%d attempts, last error: %s): %w", cfg.Name, addr, attempt, err.Error(), ctxErr)
		}
		var mismatch *HostKeyMismatchError
		var unknown *HostKeyUnknownError
		switch {
		case errors.As(err, &mismatch):
			return nil, mismatch
		case errors.As(err, &unknown):
			return nil, unknown
		}
		if isAuthFailure(err) {
			return nil, fmt.Errorf("%s: %w as %q at %s (offered %s): %w", cfg.Name, ErrAuthFailed, cfg.User, addr,
				strings.Join(offered, ", "), err)
		}
		if !isNotUpYet(err) {
			return nil, fmt.Errorf("%s: connect to %s: %w", cfg.Name, addr, err)
		}
		elapsed := time.Since(start)
		if cfg.RetryFor < 0 || (cfg.RetryFor > 0 && elapsed+backoff > cfg.RetryFor) {
			return nil, fmt.Errorf("%s: %w: %s, %d attempts in %s: %w", cfg.Name, ErrUnreachable, addr, attempt,
				elapsed.Round(time.Millisecond), err)
		}
		cfg.Logger.Debug("ssh not up yet, retrying", "host", cfg.Name, "address", addr, "attempt", attempt,
			"error", newRedactor(cfg.Redact).redact(err.Error()), "backoff", backoff)
		// ±20% jitter, so that many hosts started together do not retry in lock step.
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			// As above: the cause is the ended context, the last attempt's error is context only.
			return nil, fmt.Errorf("%s: connect to %s (%d attempts, last error: %s): %w", cfg.Name, addr, attempt, err.Error(), ctx.Err())
		case <-timer.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// connectOnce makes one connection attempt bounded by cfg.ConnectTimeout.
func connectOnce(ctx context.Context, cfg Config, addr string, clientCfg *ssh.ClientConfig, via *sshRunner) (*ssh.Client, error) {
	attemptCtx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if via != nil {
		conn, err = via.client.DialContext(attemptCtx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(attemptCtx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	// The handshake itself does not take a context: closing the connection is what interrupts it.
	stop := context.AfterFunc(attemptCtx, func() { _ = conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, clientCfg)
	if !stop() {
		if c != nil {
			_ = c.Close()
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("SSH handshake did not finish within %s: %w", cfg.ConnectTimeout, os.ErrDeadlineExceeded)
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// loadSigners gathers the keys to offer: the PEM key, the key file, then the agent's keys. offered describes
// them for error messages. closeAgent must be called once the connection is established.
func loadSigners(cfg Config) (signers []ssh.Signer, offered []string, closeAgent func(), err error) {
	closeAgent = func() {}
	if len(cfg.PrivateKeyPEM) > 0 {
		s, err := parsePrivateKey(cfg.PrivateKeyPEM, "private key")
		if err != nil {
			return nil, nil, closeAgent, err
		}
		signers = append(signers, s)
		offered = append(offered, "private key "+ssh.FingerprintSHA256(s.PublicKey()))
	}
	if cfg.PrivateKeyPath != "" {
		p, err := expandHome(cfg.PrivateKeyPath)
		if err != nil {
			return nil, nil, closeAgent, err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, closeAgent, fmt.Errorf("read private key file: %w", err)
		}
		s, err := parsePrivateKey(data, "private key file "+p)
		if err != nil {
			return nil, nil, closeAgent, err
		}
		signers = append(signers, s)
		offered = append(offered, "key file "+p+" "+ssh.FingerprintSHA256(s.PublicKey()))
	}
	if cfg.UseAgent {
		conn, err := net.Dial("unix", cfg.AgentSocket)
		if err != nil {
			return nil, nil, closeAgent, fmt.Errorf("connect to ssh-agent at %s: %w", cfg.AgentSocket, err)
		}
		ag := agent.NewClient(conn)
		agentSigners, err := ag.Signers()
		if err != nil {
			_ = conn.Close()
			return nil, nil, closeAgent, fmt.Errorf("list ssh-agent keys: %w", err)
		}
		if len(agentSigners) == 0 && len(signers) == 0 {
			_ = conn.Close()
			return nil, nil, closeAgent, fmt.Errorf("the ssh-agent at %s holds no keys (ssh-add them)", cfg.AgentSocket)
		}
		signers = append(signers, agentSigners...)
		offered = append(offered, fmt.Sprintf("%d ssh-agent key(s)", len(agentSigners)))
		closeAgent = func() { _ = conn.Close() }
	}
	return signers, offered, closeAgent, nil
}

// isAuthFailure reports whether err is the server rejecting our credentials.
func isAuthFailure(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "too many authentication failures") ||
		strings.Contains(msg, "no supported methods remain")
}

// isNotUpYet reports whether err means the host (or its sshd) is not accepting connections yet, so that a
// later attempt may succeed. Host key and authentication errors never are.
func isNotUpYet(err error) bool {
	var mismatch *HostKeyMismatchError
	var unknown *HostKeyUnknownError
	if errors.As(err, &mismatch) || errors.As(err, &unknown) || isAuthFailure(err) {
		return false
	}
	var openErr *ssh.OpenChannelError
	if errors.As(err, &openErr) {
		// Through a bastion: the bastion could not connect to the host.
		return openErr.Reason == ssh.ConnectionFailed
	}
	for _, e := range []error{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ETIMEDOUT, syscall.EPIPE, io.EOF, io.ErrUnexpectedEOF,
		os.ErrDeadlineExceeded,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}
