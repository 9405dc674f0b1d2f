package node_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/sshtest"
)

// clientKey returns a new client key as a signer and PEM.
func clientKey(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	signer, pemBytes, err := sshtest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return signer, pemBytes
}

// startServer starts an in-process SSH server that accepts the given client keys.
func startServer(t testing.TB, cfg sshtest.Config, keys ...ssh.Signer) *sshtest.Server {
	t.Helper()
	for _, k := range keys {
		cfg.AuthorizedKeys = append(cfg.AuthorizedKeys, k.PublicKey())
	}
	srv, err := sshtest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// configFor returns a root login config for srv pinned to its host key.
func configFor(srv *sshtest.Server, keyPEM []byte) node.Config {
	return node.Config{
		Name:          "n1",
		Address:       srv.Host(),
		Port:          srv.Port(),
		HostPublicKey: srv.AuthorizedKeyLine(),
		PrivateKeyPEM: keyPEM,
		RetryFor:      -1,
	}
}

func dial(t testing.TB, cfg node.Config) node.Runner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := node.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestRunPinnedHostKey(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	cfg := configFor(srv, keyPEM)
	cfg.KeepAliveInterval = 50 * time.Millisecond // keepalives answered "false" must not hurt the connection
	r := dial(t, cfg)
	ctx := context.Background()

	time.Sleep(200 * time.Millisecond)
	res, err := r.Run(ctx, `echo "out $((1+2))"; echo err >&2`)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Stdout != "out 3\n" || res.Stderr != "err\n" || res.ExitCode != 0 {
		t.Errorf("Run result = %+v", res)
	}
	if got, want := srv.Execs()[0], `/bin/sh -c 'echo "out $((1+2))"; echo err >&2'`; got != want {
		t.Errorf("root exec line = %q, want %q", got, want)
	}

	res, err = r.Run(ctx, "echo partial; echo failing >&2; exit 3")
	var exitErr *node.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("Run of a failing command: %v, want *ExitError", err)
	}
	if exitErr.ExitCode != 3 || res.ExitCode != 3 || res.Stdout != "partial\n" || exitErr.Stderr != "failing" || exitErr.Host != "n1" {
		t.Errorf("ExitError = %+v, result = %+v", exitErr, res)
	}

	res, err = r.RunInput(ctx, "tr a-z A-Z", strings.NewReader("hello"))
	if err != nil || res.Stdout != "HELLO" {
		t.Errorf("RunInput = %+v, %v", res, err)
	}
	if r.Name() != "n1" || r.Address() != srv.Host() {
		t.Errorf("Name, Address = %q, %q", r.Name(), r.Address())
	}
}

func TestHostKeyMismatch(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	other, _ := clientKey(t)
	cfg := configFor(srv, keyPEM)
	cfg.HostPublicKey = string(ssh.MarshalAuthorizedKey(other.PublicKey()))
	cfg.RetryFor = 0 // retry "forever": a mismatch must still return at once

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := node.Dial(ctx, cfg)
	var mismatch *node.HostKeyMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("Dial = %v, want *HostKeyMismatchError", err)
	}
	t.Logf("mismatch error: %v", err)
	msg := err.Error()
	for _, want := range []string{"n1", srv.Addr(), ssh.FingerprintSHA256(srv.HostKey()), ssh.FingerprintSHA256(other.PublicKey())} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if time.Since(start) > 5*time.Second || srv.Accepted() != 1 {
		t.Errorf("mismatch was retried: %d connections in %s", srv.Accepted(), time.Since(start))
	}
}

func TestHostKeyPinSelectsAlgorithm(t *testing.T) {
	// A host with an ed25519 and an ECDSA key must present the pinned one, not its preferred one.
	signer, keyPEM := clientKey(t)
	ed, _ := clientKey(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ssh.NewSignerFromKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, sshtest.Config{HostKeys: []ssh.Signer{ed, ec}}, signer)
	cfg := configFor(srv, keyPEM)
	cfg.HostPublicKey = string(ssh.MarshalAuthorizedKey(ec.PublicKey()))
	r := dial(t, cfg)
	if _, err := r.Run(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}
}

func TestKnownHosts(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	dir := t.TempDir()
	write := func(name string, keys ...ssh.PublicKey) string {
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(srv.Addr())}, k) + "\n")
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := configFor(srv, keyPEM)
	cfg.HostPublicKey = ""

	cfg.KnownHostsPath = write("good", srv.HostKey())
	r := dial(t, cfg)
	if _, err := r.Run(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}

	other, _ := clientKey(t)
	cfg.KnownHostsPath = write("bad", other.PublicKey())
	_, err := node.Dial(context.Background(), cfg)
	var mismatch *node.HostKeyMismatchError
	if !errors.As(err, &mismatch) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(other.PublicKey())) ||
		!strings.Contains(err.Error(), ssh.FingerprintSHA256(srv.HostKey())) || !strings.Contains(err.Error(), cfg.KnownHostsPath) {
		t.Errorf("Dial with a wrong known_hosts entry = %v", err)
	}

	cfg.KnownHostsPath = write("empty")
	_, err = node.Dial(context.Background(), cfg)
	t.Logf("unknown host error: %v", err)
	var unknown *node.HostKeyUnknownError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(srv.HostKey())) {
		t.Errorf("Dial with no known_hosts entry = %v", err)
	}
}

func TestNoHostKeyIsRefused(t *testing.T) {
	_, keyPEM := clientKey(t)
	_, err := node.Dial(context.Background(), node.Config{Address: "127.0.0.1", PrivateKeyPEM: keyPEM})
	if err == nil || !strings.Contains(err.Error(), "no host key") {
		t.Errorf("Dial without a host key = %v", err)
	}
}

func TestAuthMethods(t *testing.T) {
	pemSigner, keyPEM := clientKey(t)
	fileSigner, filePEM := clientKey(t)
	agentSigner, agentPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, pemSigner, fileSigner, agentSigner)

	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyFile, filePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	agentSocket := startAgent(t, agentPEM)

	for name, mutate := range map[string]func(*node.Config){
		"pem":   func(c *node.Config) { c.PrivateKeyPEM = keyPEM },
		"file":  func(c *node.Config) { c.PrivateKeyPath = keyFile },
		"agent": func(c *node.Config) { c.UseAgent, c.AgentSocket = true, agentSocket },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := configFor(srv, nil)
			mutate(&cfg)
			r := dial(t, cfg)
			if res, err := r.Run(context.Background(), "echo ok"); err != nil || res.Stdout != "ok\n" {
				t.Errorf("Run = %+v, %v", res, err)
			}
		})
	}
}

// startAgent serves an in-process ssh-agent holding the key keyPEM on a unix socket.
func startAgent(t *testing.T, keyPEM []byte) string {
	t.Helper()
	priv, err := ssh.ParseRawPrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = agent.ServeAgent(keyring, c)
				_ = c.Close()
			}()
		}
	}()
	return sock
}

func TestAuthFailureIsNotRetried(t *testing.T) {
	allowed, _ := clientKey(t)
	_, otherPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, allowed)
	cfg := configFor(srv, otherPEM)
	cfg.RetryFor = 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := node.Dial(ctx, cfg)
	if !errors.Is(err, node.ErrAuthFailed) {
		t.Fatalf("Dial = %v, want ErrAuthFailed", err)
	}
	t.Logf("auth error: %v", err)
	if srv.Accepted() != 1 || time.Since(start) > 5*time.Second {
		t.Errorf("auth failure was retried: %d connections in %s", srv.Accepted(), time.Since(start))
	}
}

func TestRetryUntilHostIsUp(t *testing.T) {
	signer, keyPEM := clientKey(t)
	hostKey, _ := clientKey(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	_ = ln.Close() // nothing listens now: connections are refused

	cfg := node.Config{
		Name: "late", Address: "127.0.0.1", Port: addr.Port, PrivateKeyPEM: keyPEM, RetryFor: 30 * time.Second,
		HostPublicKey: string(ssh.MarshalAuthorizedKey(hostKey.PublicKey())),
	}
	type dialed struct {
		r   node.Runner
		err error
		at  time.Time
	}
	done := make(chan dialed, 1)
	go func() {
		r, err := node.Dial(context.Background(), cfg)
		done <- dialed{r, err, time.Now()}
	}()
	time.Sleep(1500 * time.Millisecond)
	started := time.Now()
	srv := startServer(t, sshtest.Config{Addr: addr.String(), HostKeys: []ssh.Signer{hostKey}}, signer)
	d := <-done
	if d.err != nil {
		t.Fatalf("Dial while the host comes up: %v", d.err)
	}
	defer func() { _ = d.r.Close() }()
	if d.at.Before(started) {
		t.Errorf("Dial returned before the server started")
	}
	if _, err := d.r.Run(context.Background(), "true"); err != nil {
		t.Error(err)
	}
	if srv.Accepted() != 1 {
		t.Errorf("server saw %d connections, want 1", srv.Accepted())
	}

	// A host that never comes up: ErrUnreachable once RetryFor is spent.
	_ = srv.Close()
	cfg.RetryFor = time.Second
	start := time.Now()
	_, err = node.Dial(context.Background(), cfg)
	t.Logf("unreachable error: %v", err)
	if !errors.Is(err, node.ErrUnreachable) || time.Since(start) > 5*time.Second {
		t.Errorf("Dial to a dead host = %v after %s, want ErrUnreachable within RetryFor", err, time.Since(start))
	}

	// ctx ends the retries too.
	cfg.RetryFor = 0
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if _, err = node.Dial(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial with an expiring ctx = %v", err)
	}
}

func TestBastion(t *testing.T) {
	signer, keyPEM := clientKey(t)
	bastion := startServer(t, sshtest.Config{}, signer)
	target := startServer(t, sshtest.Config{}, signer)
	bcfg := configFor(bastion, keyPEM)
	bcfg.Name = "bastion"
	cfg := configFor(target, keyPEM)
	cfg.Bastion = &bcfg
	r := dial(t, cfg)
	res, err := r.Run(context.Background(), "echo via")
	if err != nil || res.Stdout != "via\n" {
		t.Fatalf("Run via bastion = %+v, %v", res, err)
	}
	if len(bastion.Execs()) != 0 || len(target.Execs()) != 1 {
		t.Errorf("execs: bastion %v, target %v", bastion.Execs(), target.Execs())
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
}

// sudoShim makes a directory with a fake sudo that logs its arguments, checks -n and execs the rest.
func sudoShim(t testing.TB, script string) (pathEnv, logFile string) {
	t.Helper()
	dir := t.TempDir()
	logFile = filepath.Join(dir, "sudo.log")
	if script == "" {
		script = `printf '[%s]' "$@" >> "$SUDO_LOG"; echo >> "$SUDO_LOG"
[ "$1" = -n ] || { echo "sudo: -n missing" >&2; exit 1; }
shift
exec "$@"`
	}
	if err := os.WriteFile(filepath.Join(dir, "sudo"), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir + ":" + os.Getenv("PATH"), logFile
}

func TestSudoWrapping(t *testing.T) {
	signer, keyPEM := clientKey(t)
	pathEnv, logFile := sudoShim(t, "")
	home := t.TempDir()
	srv := startServer(t, sshtest.Config{Env: []string{pathEnv, "SUDO_LOG=" + logFile}, Dir: home}, signer)
	cfg := configFor(srv, keyPEM)
	cfg.User = "alice"
	r := dial(t, cfg)
	ctx := context.Background()

	cmd := `echo "it's $((6*7))"`
	res, err := r.Run(ctx, cmd)
	if err != nil || res.Stdout != "it's 42\n" {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if got, want := srv.Execs()[0], `sudo -n /bin/sh -c 'echo "it'\''s $((6*7))"'`; got != want {
		t.Errorf("exec line = %q, want %q", got, want)
	}
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.SplitN(string(log), "\n", 2)[0], `[-n][/bin/sh][-c][`+cmd+`]`; got != want {
		t.Errorf("sudo argv = %s, want %s", got, want)
	}

	// Files go through sudo too.
	dst := filepath.Join(t.TempDir(), "etc", "app.conf")
	if err := r.WriteFile(ctx, dst, []byte("secret: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, "secret: 1\n", 0o600)
	got, err := r.ReadFile(ctx, dst)
	if err != nil || string(got) != "secret: 1\n" {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
	if _, err := r.ReadFile(ctx, dst+".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile of a missing file = %v, want fs.ErrNotExist", err)
	}
	for _, e := range srv.Execs()[1:] {
		if !strings.HasPrefix(e, "sudo -n /bin/sh -c ") {
			t.Errorf("command not run through sudo: %q", e)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 1 {
		t.Errorf("leftovers next to %s: %v", dst, entries)
	}
}

func TestSudoRefusalIsExplained(t *testing.T) {
	signer, keyPEM := clientKey(t)
	pathEnv, _ := sudoShim(t, `echo "sudo: a password is required" >&2; exit 1`)
	srv := startServer(t, sshtest.Config{Env: []string{pathEnv}}, signer)
	cfg := configFor(srv, keyPEM)
	cfg.User = "bob"
	r := dial(t, cfg)
	_, err := r.Run(context.Background(), "true")
	var exitErr *node.ExitError
	t.Logf("sudo refusal: %v", err)
	if !errors.As(err, &exitErr) || !strings.Contains(err.Error(), "NOPASSWD") || !strings.Contains(err.Error(), `"bob"`) {
		t.Errorf("Run without passwordless sudo = %v", err)
	}
}

func checkFile(t *testing.T, p, content string, mode fs.FileMode) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != content {
		t.Errorf("%s holds %q, want %q", p, shorten(string(data)), shorten(content))
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), mode)
	}
}

func shorten(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s… (%d bytes)", s[:40], len(s))
	}
	return s
}

func TestReadWriteFileRoot(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	r := dial(t, configFor(srv, keyPEM))
	ctx := context.Background()
	dir := t.TempDir()
	dst := filepath.Join(dir, "a", "b", "file")
	if err := r.WriteFile(ctx, dst, []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile(ctx, dst, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, "two", 0o644)
	if got, err := r.ReadFile(ctx, dst); err != nil || string(got) != "two" {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
	if _, err := r.ReadFile(ctx, filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile of a missing file = %v, want fs.ErrNotExist", err)
	}
	if err := r.WriteFile(ctx, "relative/path", nil, 0o644); err == nil {
		t.Error("WriteFile accepted a relative path")
	}
	if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 1 {
		t.Errorf("leftovers next to %s: %v", dst, entries)
	}
}

func TestRedaction(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	var logs bytes.Buffer
	var logMu sync.Mutex
	cfg := configFor(srv, keyPEM)
	cfg.Redact = []string{"hunter2", "tok-123"}
	cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := dial(t, cfg)
	_, err := r.Run(context.Background(), "echo 'password hunter2 and tok-123' >&2; exit 4 # hunter2")
	var exitErr *node.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("Run = %v, want *ExitError", err)
	}
	logMu.Lock()
	logged := logs.String()
	logMu.Unlock()
	for name, s := range map[string]string{"error": err.Error(), "Cmd": exitErr.Cmd, "Stderr": exitErr.Stderr, "log": logged} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "tok-123") {
			t.Errorf("%s leaks a secret: %s", name, s)
		}
		if !strings.Contains(s, node.Redacted) {
			t.Errorf("%s shows no %s: %s", name, node.Redacted, s)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestCancelStopsRemoteCommand(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	r := dial(t, configFor(srv, keyPEM))
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Run(ctx, "sleep 37 & echo $! > "+pidFile+"; wait")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Run returned %s after the deadline", d)
	}
	t.Logf("cancel error: %v", err)
	if !strings.Contains(err.Error(), "SIGTERM") {
		t.Errorf("error does not say the command was signalled: %v", err)
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, strings.TrimSpace(string(pid)))
	// The connection is still usable.
	if _, err := r.Run(context.Background(), "true"); err != nil {
		t.Error(err)
	}
}

// waitGone waits until the process pid is gone or a zombie.
func waitGone(t *testing.T, pid string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return
		}
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("remote process %s still runs: %s", pid, stat)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
