package phase

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
)

// Artifact is one bundle file and where it goes on a host.
type Artifact struct {
	File artifacts.File
	Dest string
	Mode fs.FileMode
}

// Image is a container image archive on the host, imported into containerd's k8s.io namespace.
type Image struct {
	Ref  string
	Path string
}

// Selection resolves which bundle files a node of a role needs.
type Selection struct {
	Manifest          *artifacts.Manifest
	KubernetesVersion string // v1.37.2
	Arch              string
}

// pick returns the file for component/name: the given version, or the newest one in the bundle.
func (s Selection) pick(component, name, version string) (artifacts.File, error) {
	if version == "" {
		for _, f := range s.Manifest.Files {
			if f.Component == component && f.Name == name && f.Arch == s.Arch && (version == "" || versionLess(version, f.Version)) {
				version = f.Version
			}
		}
		if version == "" {
			return artifacts.File{}, fmt.Errorf("the artifact bundle has no %s %s for %s; run `make artifacts`", component, name, s.Arch)
		}
	}
	f, ok := s.Manifest.Lookup(component, name, version, s.Arch)
	if !ok {
		return artifacts.File{}, fmt.Errorf("the artifact bundle has no %s %s %s for %s; run `make artifacts`", component, name, version, s.Arch)
	}
	return f, nil
}

// Binaries lists the executables a role needs and where they go.
func (s Selection) Binaries(role Role) ([]Artifact, error) {
	type want struct{ component, name, version, dest string }
	k := s.KubernetesVersion
	list := []want{
		{"containerd", "containerd", "", "/usr/local/bin/containerd"},
		{"containerd", "containerd-shim-runc-v2", "", "/usr/local/bin/containerd-shim-runc-v2"},
		{"containerd", "ctr", "", "/usr/local/bin/ctr"},
		{"runc", "runc", "", "/usr/local/sbin/runc"},
		{"crictl", "crictl", "", "/usr/local/bin/crictl"},
		{"kubernetes", "kubelet", k, "/usr/local/bin/kubelet"},
		{"kubernetes", "kube-proxy", k, "/usr/local/bin/kube-proxy"},
		{"kubernetes", "kubectl", k, "/usr/local/bin/kubectl"},
		{"flannel", "flanneld", "", "/usr/local/bin/flanneld"},
	}
	for _, p := range []string{"bridge", "loopback", "host-local", "portmap", "bandwidth", "firewall", "tuning"} {
		list = append(list, want{"cni-plugins", p, "", "/opt/cni/bin/" + p})
	}
	list = append(list, want{"cni-flannel", "flannel", "", "/opt/cni/bin/flannel"})
	if role == RoleMaster {
		list = append(list,
			want{"etcd", "etcd", "", "/usr/local/bin/etcd"},
			want{"etcd", "etcdctl", "", "/usr/local/bin/etcdctl"},
			want{"etcd", "etcdutl", "", "/usr/local/bin/etcdutl"},
			want{"kubernetes", "kube-apiserver", k, "/usr/local/bin/kube-apiserver"},
			want{"kubernetes", "kube-controller-manager", k, "/usr/local/bin/kube-controller-manager"},
			want{"kubernetes", "kube-scheduler", k, "/usr/local/bin/kube-scheduler"},
		)
	}
	out := make([]Artifact, 0, len(list))
	for _, w := range list {
		f, err := s.pick(w.component, w.name, w.version)
		if err != nil {
			return nil, err
		}
		out = append(out, Artifact{File: f, Dest: w.dest, Mode: 0o755})
	}
	return out, nil
}

// Images lists every image archive in the bundle for the node's architecture; all of them go to every node so
// that any pod can run anywhere without a registry.
func (s Selection) Images() []Artifact {
	var out []Artifact
	for _, f := range s.Manifest.Files {
		if f.Kind != "image" || f.Arch != s.Arch {
			continue
		}
		out = append(out, Artifact{File: f, Dest: path.Join(ImagesDir, path.Base(f.Path)), Mode: 0o644})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dest < out[j].Dest })
	return out
}

// ImageRef returns the reference of the newest image whose name is name.
func (s Selection) ImageRef(name string) (string, error) {
	var best artifacts.File
	for _, f := range s.Manifest.Files {
		if f.Kind == "image" && f.Name == name && f.Arch == s.Arch && (best.Version == "" || versionLess(best.Version, f.Version)) {
			best = f
		}
	}
	if best.Image == "" {
		return "", fmt.Errorf("the artifact bundle has no %s image; run `make artifacts`", name)
	}
	return best.Image, nil
}

// Fetcher gives the local path of a bundle file, verified against the manifest.
type Fetcher interface {
	Fetch(ctx context.Context, f artifacts.File) (string, error)
}

// UploadArtifacts copies the artifacts that are missing or different on the host, each once, and records what
// is installed in ArtifactsList. It returns the destinations it changed.
func UploadArtifacts(ctx context.Context, b Fetcher, t *Target, items []Artifact) ([]string, error) {
	res, err := t.Runner.Run(ctx, "cat "+ArtifactsList+" 2>/dev/null; true")
	if err != nil {
		return nil, fmt.Errorf("reading the installed artifact list: %w", err)
	}
	have := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(res.Stdout))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 {
			have[f[1]] = f[0]
		}
	}
	// A file recorded as installed must still be there with the right size; otherwise upload it again.
	var probe []string
	for _, it := range items {
		if have[it.Dest] == it.File.SHA256 {
			probe = append(probe, node.Quote(it.Dest))
		}
	}
	sizes := map[string]int64{}
	if len(probe) > 0 {
		res, err := t.Runner.Run(ctx, "stat -c '%s %n' "+strings.Join(probe, " ")+" 2>/dev/null; true")
		if err != nil {
			return nil, fmt.Errorf("checking installed artifacts: %w", err)
		}
		sc := bufio.NewScanner(strings.NewReader(res.Stdout))
		for sc.Scan() {
			var n int64
			var p string
			if _, err := fmt.Sscanf(sc.Text(), "%d %s", &n, &p); err == nil {
				sizes[p] = n
			}
		}
	}
	var changed []string
	for _, it := range items {
		if have[it.Dest] == it.File.SHA256 && sizes[it.Dest] == it.File.Size {
			continue
		}
		local, err := b.Fetch(ctx, it.File)
		if err != nil {
			return changed, fmt.Errorf("artifact %s: %w", it.File.Path, err)
		}
		if err := t.Runner.Upload(ctx, local, it.Dest, it.Mode); err != nil {
			return changed, fmt.Errorf("uploading %s to %s: %w", it.File.Path, it.Dest, err)
		}
		have[it.Dest] = it.File.SHA256
		changed = append(changed, it.Dest)
	}
	if len(changed) > 0 {
		lines := make([]string, 0, len(have))
		for d, sum := range have {
			lines = append(lines, sum+"  "+d)
		}
		sort.Strings(lines)
		if err := t.Runner.WriteFile(ctx, ArtifactsList, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return changed, fmt.Errorf("recording installed artifacts: %w", err)
		}
	}
	return changed, nil
}

// versionLess orders versions as the bundle does (numerically, a release after its pre-releases).
func versionLess(a, b string) bool { return artifacts.CompareVersions(a, b) < 0 }
