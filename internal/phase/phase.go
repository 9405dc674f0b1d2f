// Package phase holds kubesmith's ordered, idempotent installation steps. Each step talks to hosts only through
// node.Runner and skips what the host's facts say is already done, so a second run changes nothing.
package phase

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
)

// Role is what a node does in the cluster.
type Role string

// Roles.
const (
	RoleMaster Role = "control-plane"
	RoleWorker Role = "worker"
)

// Well-known paths on every host.
const (
	StateDir      = "/etc/kubesmith"
	MarkerFile    = StateDir + "/cluster-uid"
	RecordFile    = StateDir + "/cluster.json"
	FilesManifest = StateDir + "/files.sha256"
	AppliedHash   = StateDir + "/applied-hash"
	ArtifactsList = "/var/lib/kubesmith/artifacts.sha256"
	ImagesDir     = "/var/lib/kubesmith/images"
	PKIDir        = "/etc/kubernetes/pki"
	LockName      = "install"
)

// Target is one host being worked on.
type Target struct {
	Name    string
	Address string
	Role    Role
	Runner  node.Runner
	Facts   Facts
	// Labels and Taints are applied to the Node object (workers).
	Labels map[string]string
	Taints []string
	// Planned holds the files rendered for this host during the current run.
	Planned []File
}

// File is one managed file on a host.
type File struct {
	Path string
	Data []byte
	Mode fs.FileMode
	// Secret files are excluded from the drift hash reported in logs but still checked.
	Secret bool
}

// Progress reports a phase on a host ending (or failing).
type Progress func(phase, host, msg string, d time.Duration, err error)

// Step runs fn as a named phase on t, reporting timing to p.
func Step(ctx context.Context, p Progress, name string, t *Target, fn func(context.Context) error) error {
	start := time.Now()
	host := ""
	if t != nil {
		host = t.Name
	}
	err := fn(ctx)
	if p != nil {
		p(name, host, "", time.Since(start), err)
	}
	if err != nil {
		if t != nil {
			return fmt.Errorf("%s on %s (%s): %w", name, t.Name, t.Address, err)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Sum is the hex sha256 of data.
func Sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// RemoteSums returns the sha256 of each existing path on the host; missing files are absent from the map.
func RemoteSums(ctx context.Context, r node.Runner, paths []string) (map[string]string, error) {
	out := map[string]string{}
	if len(paths) == 0 {
		return out, nil
	}
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = node.Quote(p)
	}
	res, err := r.Run(ctx, "for f in "+strings.Join(quoted, " ")+"; do [ -f \"$f\" ] && sha256sum \"$f\"; done; true")
	if err != nil {
		return nil, fmt.Errorf("hashing files: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(res.Stdout))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 {
			out[f[1]] = f[0]
		}
	}
	return out, nil
}

// SyncFiles writes the files whose content differs on the host and returns the paths it changed. Modes are
// applied on write only.
func SyncFiles(ctx context.Context, r node.Runner, files []File) ([]string, error) {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	have, err := RemoteSums(ctx, r, paths)
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, f := range files {
		if have[f.Path] == Sum(f.Data) {
			continue
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := r.WriteFile(ctx, f.Path, f.Data, mode); err != nil {
			return changed, fmt.Errorf("writing %s: %w", f.Path, err)
		}
		changed = append(changed, f.Path)
	}
	return changed, nil
}

// ManifestOf renders the sha256sum-format list of files, sorted, as stored in FilesManifest.
func ManifestOf(files []File) []byte {
	lines := make([]string, 0, len(files))
	for _, f := range files {
		lines = append(lines, Sum(f.Data)+"  "+f.Path)
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n")
}

// Service is the state of one systemd unit.
type Service struct {
	Active  bool
	Enabled bool
}

// EnsureService enables the unit and (re)starts it when restart is true, when the pending marker file exists,
// or when it is not active; the marker is removed once the restart was issued. With noBlock the start is
// queued and not awaited (etcd members must start together to reach quorum; the caller polls health).
func EnsureService(ctx context.Context, r node.Runner, unit string, restart, noBlock bool, pendingMarker string) error {
	flag := ""
	if noBlock {
		flag = "--no-block "
	}
	cmd := fmt.Sprintf("systemctl enable %[1]s >/dev/null 2>&1; if %[2]s || [ -e %[4]s ] || ! systemctl is-active --quiet %[1]s; then systemctl %[3]srestart %[1]s && rm -f %[4]s; fi",
		node.Quote(unit), boolShell(restart), flag, node.Quote(pendingMarker))
	if _, err := r.Run(ctx, cmd); err != nil {
		logs, _ := r.Run(ctx, "journalctl -u "+node.Quote(unit)+" -n 25 --no-pager 2>&1 | tail -n 25")
		return fmt.Errorf("starting %s: %w\n%s", unit, err, logs.Stdout)
	}
	return nil
}

// DaemonReload reloads systemd when any unit file changed.
func DaemonReload(ctx context.Context, r node.Runner, changed []string) error {
	if !slices.ContainsFunc(changed, func(p string) bool {
		return strings.HasPrefix(p, "/etc/systemd/") || strings.HasPrefix(p, "/usr/lib/systemd/")
	}) {
		return nil
	}
	if _, err := r.Run(ctx, "systemctl daemon-reload"); err != nil {
		return fmt.Errorf("systemctl daemon-reload: %w", err)
	}
	return nil
}

// AnyUnder reports whether a changed path is one of paths or lies under a directory among them.
func AnyUnder(changed []string, paths ...string) bool {
	for _, c := range changed {
		for _, p := range paths {
			if c == p || strings.HasPrefix(c, strings.TrimSuffix(p, "/")+"/") {
				return true
			}
		}
	}
	return false
}

// Poll runs check every interval until it returns true, an error, or ctx or timeout ends. The last check
// error is reported on timeout.
func Poll(ctx context.Context, interval, timeout time.Duration, what string, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, Scaled(ctx, timeout))
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		ok, err := check(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("waiting for %s: %w (last error: %w)", what, ctx.Err(), last)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

func boolShell(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// Dir returns the directory of p.
func Dir(p string) string { return path.Dir(p) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

type waitScaleKey struct{}

// WithWaitScale makes every Poll under ctx wait factor times longer. The waits are sized for real hardware;
// TCG-emulated VMs on a busy host start services 5-30x slower (kube-apiserver needed 5 minutes to /readyz).
func WithWaitScale(ctx context.Context, factor int) context.Context {
	return context.WithValue(ctx, waitScaleKey{}, factor)
}

// Scaled is d stretched by the wait scale of ctx (see WithWaitScale), for timeouts outside Poll.
func Scaled(ctx context.Context, d time.Duration) time.Duration {
	if f, ok := ctx.Value(waitScaleKey{}).(int); ok && f > 1 {
		return d * time.Duration(f)
	}
	return d
}
