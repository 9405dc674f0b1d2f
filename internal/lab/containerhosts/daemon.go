package containerhosts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemonPath is the PATH of the lab's containerd and dockerd (iptables, runc and the shims are found there).
const daemonPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// dockerdArgs is the command line of the lab's dockerd: its own socket, data root, exec root, pidfile and
// config file, the lab's containerd, no default bridge, no masquerading, no ip_forward change. iptables
// stays on: it installs the --internal isolation rules and the bridge's FORWARD accept. capfix, when not
// empty, is registered as the default runtime.
func dockerdArgs(p paths, capfix string) []string {
	args := []string{
		"-H", "unix://" + p.dockerSock,
		"--data-root", p.dataRoot,
		"--exec-root", p.execRoot,
		"--pidfile", p.dockerPid,
		"--config-file", p.daemonJSON,
		"--containerd", p.containerdSock,
		"--bridge=none", "--ip-masq=false", "--ip-forward=false", "--iptables=true",
	}
	if capfix != "" {
		args = append(args, "--add-runtime", "capfix="+capfix, "--default-runtime", "capfix")
	}
	return args
}

// daemonJSON is the lab dockerd's config file. dockerd 20.10 would otherwise create its identity key at
// /etc/docker/key.json.
func daemonJSON(p paths) []byte {
	return []byte(fmt.Sprintf("{\n  \"deprecated-key-path\": %q\n}\n", filepath.Join(p.state, "docker-key.json")))
}

// containerdConfig is the config of the lab's own containerd. dockerd 20.10 would otherwise use a system
// containerd found at /run/containerd/containerd.sock (the user's Docker's), so the lab always runs its own:
// root under the state dir, state and sockets under the run dir, no CRI plugin, and the "opt" plugin kept
// out of /opt/containerd.
func containerdConfig(p paths) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, p.containerdRoot, p.containerdState, p.containerdSock, p.containerdSock+".ttrpc", filepath.Join(p.containerdRoot, "opt"))
}

// StartDaemon starts the lab's containerd and dockerd (each in its own session, logging to the state dir's
// logs/) unless they already run, and waits until dockerd answers. It records the host facts Teardown needs
// to leave the host as it found it, and installs the capfix runtime only when DetectQuirks says so.
func (l *Lab) StartDaemon(ctx context.Context) error {
	ctx, p := l.progress(ctx)
	if l.pingDocker(ctx) == nil {
		p.logf("lab dockerd already running (%s)", l.DockerHost())
		return nil
	}
	return l.locked(ctx, func() error { return l.startDaemon(ctx) })
}

// startDaemon is StartDaemon for a caller that holds the lab lock.
func (l *Lab) startDaemon(ctx context.Context) error {
	ctx, p := l.progress(ctx)
	if l.pingDocker(ctx) == nil {
		return nil // started by the caller we waited for
	}
	q, err := DetectQuirks()
	if err != nil {
		return err
	}
	t := findTools()
	if err := t.requireTools(q.NeedsCapfix(), false); err != nil {
		return err
	}
	for _, d := range []string{l.paths.run, l.paths.logs, l.paths.dataRoot, l.paths.containerdRoot, l.paths.cliConfig, l.paths.execRoot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("lab dirs: %w", err)
		}
	}
	if err := l.recordBaseline(ctx, t); err != nil {
		return err
	}
	if err := l.startContainerd(ctx, t); err != nil {
		return err
	}
	capfix := ""
	if q.NeedsCapfix() {
		if capfix, err = l.installCapfix(t); err != nil {
			return err
		}
		p.logf("bounding set lacks %s: dockerd uses the capfix runtime", strings.Join(q.MissingCaps, ","))
	}
	// An own config file, so /etc/docker/daemon.json of another Docker is never read; it also moves
	// dockerd's identity key out of /etc/docker.
	if err := writeFileAtomic(l.paths.daemonJSON, daemonJSON(l.paths), 0o644); err != nil {
		return fmt.Errorf("daemon.json: %w", err)
	}
	pid, alive := pidAlive(l.paths.dockerPid, l.paths.dockerSock)
	if !alive {
		logPath := filepath.Join(l.paths.logs, "dockerd.log")
		if pid, err = startDetached(t.dockerd, dockerdArgs(l.paths, capfix), []string{daemonPath}, logPath); err != nil {
			return err
		}
		p.logf("started dockerd (pid %d, log %s)", pid, logPath)
	}
	err = poll(ctx, 100*time.Millisecond, 90*time.Second, func() (bool, error) {
		if l.pingDocker(ctx) == nil {
			return true, nil
		}
		if !processRunning(pid) {
			return false, fmt.Errorf("dockerd exited: %s", tailFile(filepath.Join(l.paths.logs, "dockerd.log"), 8))
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("lab dockerd: %w", err)
	}
	p.logf("lab dockerd ready at %s", l.DockerHost())
	return nil
}

func (l *Lab) startContainerd(ctx context.Context, t tools) error {
	ctx, p := l.progress(ctx)
	pid, alive := pidAlive(l.paths.containerdPid, l.paths.containerdConfig)
	if !alive {
		if err := os.WriteFile(l.paths.containerdConfig, []byte(containerdConfig(l.paths)), 0o644); err != nil {
			return fmt.Errorf("containerd config: %w", err)
		}
		logPath := filepath.Join(l.paths.logs, "containerd.log")
		var err error
		if pid, err = startDetached(t.containerd, []string{"--config", l.paths.containerdConfig}, []string{daemonPath}, logPath); err != nil {
			return err
		}
		if err := os.WriteFile(l.paths.containerdPid, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			return fmt.Errorf("containerd pidfile: %w", err)
		}
		p.logf("started containerd (pid %d, log %s)", pid, logPath)
	}
	err := poll(ctx, 50*time.Millisecond, 60*time.Second, func() (bool, error) {
		if c, err := net.DialTimeout("unix", l.paths.containerdSock, time.Second); err == nil {
			_ = c.Close() // a probe connection: only its success mattered
			return true, nil
		}
		if !processRunning(pid) {
			return false, fmt.Errorf("containerd exited: %s", tailFile(filepath.Join(l.paths.logs, "containerd.log"), 8))
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("lab containerd: %w", err)
	}
	return nil
}

// installCapfix writes the runc wrapper with the real runc's path filled in.
func (l *Lab) installCapfix(t tools) (string, error) {
	script, err := assetFS.ReadFile("assets/runc-capfix.sh")
	if err != nil {
		return "", fmt.Errorf("capfix asset: %w", err)
	}
	if t.runc == "" {
		return "", errors.New("capfix: runc not found")
	}
	body := bytes.ReplaceAll(script, []byte("@RUNC@"), []byte(t.runc))
	if err := os.MkdirAll(filepath.Dir(l.paths.capfix), 0o755); err != nil {
		return "", fmt.Errorf("capfix: %w", err)
	}
	if err := writeFileAtomic(l.paths.capfix, body, 0o755); err != nil {
		return "", fmt.Errorf("capfix: %w", err)
	}
	return l.paths.capfix, nil
}

// StopDaemon stops the lab's dockerd and then its containerd (SIGTERM, then SIGKILL after a minute). Only
// processes whose command line names the lab's own socket or config are signalled, never another Docker.
func (l *Lab) StopDaemon(ctx context.Context) error {
	return l.locked(ctx, func() error { return l.stopDaemon(ctx) })
}

// stopDaemon is StopDaemon for a caller that holds the lab lock.
func (l *Lab) stopDaemon(ctx context.Context) error {
	ctx, p := l.progress(ctx)
	for _, d := range []struct{ name, pidFile, marker string }{
		{"dockerd", l.paths.dockerPid, l.paths.dockerSock},
		{"containerd", l.paths.containerdPid, l.paths.containerdConfig},
	} {
		pid, alive := pidAlive(d.pidFile, d.marker)
		if !alive {
			continue
		}
		if err := stopProcess(ctx, pid, d.marker, time.Minute); err != nil {
			return fmt.Errorf("stop lab %s: %w", d.name, err)
		}
		p.logf("stopped lab %s (pid %d)", d.name, pid)
		if err := os.Remove(d.pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("stop lab %s: %w", d.name, err)
		}
	}
	return nil
}

func stopProcess(ctx context.Context, pid int, marker string, grace time.Duration) error {
	if err := signalProcess(pid, syscall.SIGTERM); err != nil {
		return err
	}
	gone := func() (bool, error) { return !processAlive(pid, marker), nil }
	err := poll(ctx, 100*time.Millisecond, grace, gone)
	if err == nil || ctx.Err() != nil {
		return err
	}
	if err := signalProcess(pid, syscall.SIGKILL); err != nil {
		return err
	}
	return poll(ctx, 100*time.Millisecond, 10*time.Second, gone)
}

// locked runs f while holding the lab lock (an flock on StateDir/lab.lock), so concurrent processes never
// start or stop the lab's daemons at the same time. It waits for the lock as long as ctx allows.
func (l *Lab) locked(ctx context.Context, f func() error) error {
	if err := os.MkdirAll(l.paths.state, 0o755); err != nil {
		return fmt.Errorf("lab lock: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(l.paths.state, "lab.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("lab lock: %w", err)
	}
	defer func() { _ = lf.Close() }() // releases the lock; the lock file holds no data
	err = poll(ctx, 200*time.Millisecond, 10*time.Minute, func() (bool, error) {
		ok, err := tryLock(lf)
		return ok, err
	})
	if err != nil {
		return fmt.Errorf("lab lock: %w", err)
	}
	return f()
}

// pingDocker asks the lab's dockerd for /_ping over its socket.
func (l *Lab) pingDocker(ctx context.Context) error {
	client := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", l.paths.dockerSock)
		}},
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://lab-docker/_ping", nil)
	if err != nil {
		return fmt.Errorf("ping lab dockerd: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("ping lab dockerd: %w", err)
	}
	defer func() { _ = resp.Body.Close() }() // read side: nothing to lose on close
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping lab dockerd: %s %s", resp.Status, body)
	}
	return nil
}

// pidAlive reads a pidfile and reports whether that process still runs with marker in its command line.
func pidAlive(pidFile, marker string) (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, processAlive(pid, marker)
}

// processAlive reports whether pid runs (is not a zombie) and has marker in its command line, so a reused
// pid never makes the lab signal somebody else's process. Right after a fork+exec the command line can
// still read empty (the kernel wakes the parent before the new image's arguments are in place): for a
// child just started, use processRunning.
func processAlive(pid int, marker string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(marker)) {
		return false
	}
	return processRunning(pid)
}

// processRunning reports whether pid exists and is not a zombie.
func processRunning(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
		return false
	}
	return true
}

// poll calls cond every interval until it reports done, returns an error, timeout passes or ctx ends.
func poll(ctx context.Context, interval, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		done, err := cond()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("timed out after %s", timeout)
		case <-tick.C:
		}
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

// writeFileAtomic writes data to a temporary file next to path and renames it into place.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the write error is reported; the file is removed
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close() // the chmod error is reported; the file is removed
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
