package phase

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"strings"
)

// UnitsFor lists the services a node of role runs.
func UnitsFor(role Role) []string {
	u := []string{"containerd", "kubelet", "kube-proxy", "flanneld"}
	if role == RoleMaster {
		u = append(u, "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "keepalived")
	}
	slices.Sort(u)
	return u
}

// recordApplied stores, on the host, the list of managed files with their hashes and the applied config hash,
// which Read compares against to detect drift.
func (c *Cluster) recordApplied(ctx context.Context, t *Target) error {
	files := []File{{Path: FilesManifest, Data: ManifestOf(t.Planned), Mode: 0o644}}
	if t.Role == RoleMaster && len(c.Record) > 0 {
		files = append(files, File{Path: RecordFile, Data: c.Record, Mode: 0o600})
	}
	files = append(files, File{Path: AppliedHash, Data: []byte(c.AppliedHash + "\n"), Mode: 0o644})
	_, err := SyncFiles(ctx, t.Runner, files)
	return err
}

// Observation is what Observe found on one host.
type Observation struct {
	UID         string
	AppliedHash string
	// Drift lists what differs from the last apply: changed or missing files, stopped services.
	Drift          []string
	KubeletVersion string
	Active         map[string]bool
}

// Observe reads a host's marker, applied hash, managed-file hashes and service states in one round trip.
func Observe(ctx context.Context, t *Target) (Observation, error) {
	units := UnitsFor(t.Role)
	script := fmt.Sprintf(`echo "uid=$(cat %s 2>/dev/null)"
echo "hash=$(cat %s 2>/dev/null)"
if [ -f %[3]s ]; then sha256sum -c --quiet %[3]s 2>/dev/null | sed 's/^/file=/'; fi
for u in %[4]s; do echo "unit=$u $(systemctl is-active $u 2>/dev/null)"; done
[ -x /usr/local/bin/kubelet ] && echo "kubelet=$(/usr/local/bin/kubelet --version 2>/dev/null | awk '{print $2}')"
true`, MarkerFile, AppliedHash, FilesManifest, strings.Join(units, " "))
	res, err := t.Runner.Run(ctx, script)
	if err != nil {
		return Observation{}, fmt.Errorf("observing %s: %w", t.Name, err)
	}
	o := Observation{Active: map[string]bool{}}
	sc := bufio.NewScanner(strings.NewReader(res.Stdout))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "uid":
			o.UID = strings.TrimSpace(v)
		case "hash":
			o.AppliedHash = strings.TrimSpace(v)
		case "file":
			o.Drift = append(o.Drift, "file "+strings.TrimSpace(v))
		case "unit":
			name, state, _ := strings.Cut(v, " ")
			o.Active[name] = state == "active"
			if state != "active" {
				o.Drift = append(o.Drift, fmt.Sprintf("service %s is %s", name, strings.TrimSpace(state)))
			}
		case "kubelet":
			o.KubeletVersion = strings.TrimSpace(v)
		}
	}
	return o, nil
}
