package artifacts

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Scratch modules. `go install pkg@version` refuses modules whose go.mod has replace directives, so those are built
// from a generated main module in the build directory. The texts below are byte-for-byte what
// shared/lab/build-k8s-bins.sh writes, so both share GOCACHE entries.

// scratchGoVersion is the go directive of every scratch module.
const scratchGoVersion = "1.26.0"

// kubernetesCommands are the k8s.io/kubernetes/cmd/* tools of the scratch module, in the lab script's order.
// kubeadm is listed (so the module is the lab's) but not built.
func kubernetesCommands() []string {
	return []string{"kubelet", "kubeadm", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubectl"}
}

// KubernetesBinaries are the Kubernetes binaries a bundle carries.
func KubernetesBinaries() []string {
	return []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"}
}

var k8sVersionRE = regexp.MustCompile(`^v1\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$`)

// kubernetesStagingVersion maps a Kubernetes version to the version of its staging modules: v1.37.2 → v0.37.2.
func kubernetesStagingVersion(version string) (string, error) {
	if !k8sVersionRE.MatchString(version) {
		return "", fmt.Errorf("artifacts: Kubernetes version %q is not of the form v1.<minor>.<patch>", version)
	}
	return "v0." + strings.TrimPrefix(version, "v1."), nil
}

var stagingReplaceRE = regexp.MustCompile(`^\s*k8s\.io/(\S+) => \./staging/src/k8s\.io/`)

// kubernetesStagingModules lists the staging modules of a k8s.io/kubernetes go.mod: the "k8s.io/X => ./staging/
// src/k8s.io/X" replace lines, in file order.
func kubernetesStagingModules(kubernetesGoMod []byte) []string {
	var mods []string
	sc := bufio.NewScanner(bytes.NewReader(kubernetesGoMod))
	for sc.Scan() {
		if m := stagingReplaceRE.FindStringSubmatch(sc.Text()); m != nil {
			mods = append(mods, m[1])
		}
	}
	return mods
}

// kubernetesScratchGoMod is the scratch go.mod for building Kubernetes at version: every staging module is
// replaced by its published v0.<minor>.<patch> version.
func kubernetesScratchGoMod(version string, kubernetesGoMod []byte) (string, error) {
	staging, err := kubernetesStagingVersion(version)
	if err != nil {
		return "", err
	}
	mods := kubernetesStagingModules(kubernetesGoMod)
	if len(mods) == 0 {
		return "", fmt.Errorf("artifacts: k8s.io/kubernetes %s: its go.mod has no ./staging/src replace directives", version)
	}
	var b strings.Builder
	_, _ = fmt.Fprintf(&b, "module example.invalid/k8sbins\n\ngo %s\n\ngodebug default=go1.26\n\ntool (\n", scratchGoVersion)
	for _, c := range kubernetesCommands() {
		_, _ = fmt.Fprintf(&b, "\tk8s.io/kubernetes/cmd/%s\n", c)
	}
	_, _ = fmt.Fprintf(&b, ")\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n", version)
	for _, m := range mods {
		_, _ = fmt.Fprintf(&b, "\tk8s.io/%s => k8s.io/%s %s\n", m, m, staging)
	}
	b.WriteString(")\n")
	return b.String(), nil
}

// kubernetesLDFlags sets the version variables of component-base and client-go like the release build does.
// buildDate is the tag's publication time from the module proxy, so the binaries are reproducible.
func kubernetesLDFlags(version, buildDate, gitCommit string) (string, error) {
	m := k8sVersionRE.FindStringSubmatch(version)
	if m == nil {
		return "", fmt.Errorf("artifacts: Kubernetes version %q is not of the form v1.<minor>.<patch>", version)
	}
	if gitCommit == "" {
		gitCommit = strings.Repeat("0", 40)
	}
	ld := "-s -w"
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld += fmt.Sprintf(" -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s", p, version, p, p, m[1])
		ld += fmt.Sprintf(" -X %s.gitTreeState=clean -X %s.buildDate=%s -X %s.gitCommit=%s", p, p, buildDate, p, gitCommit)
	}
	return ld, nil
}

// etcdScratchGoMod is the scratch go.mod for etcd, etcdctl and etcdutl. It needs no replace: the published go.mods
// pin the sibling modules to the same version.
func etcdScratchGoMod(version string) string {
	return fmt.Sprintf(`module example.invalid/etcdbins

go %s

tool (
	go.etcd.io/etcd/etcdctl/v3
	go.etcd.io/etcd/etcdutl/v3
	go.etcd.io/etcd/server/v3
)

require (
	go.etcd.io/etcd/etcdctl/v3 %s
	go.etcd.io/etcd/etcdutl/v3 %s
	go.etcd.io/etcd/server/v3 %s
)
`, scratchGoVersion, version, version, version)
}

// moduleDirectives returns the replace and exclude directives of a published go.mod that also apply when it is
// not the main module: single-line directives verbatim, blocks re-emitted as blocks, and without the replacements
// by a relative directory (those point into the repository, which the module zip does not have).
func moduleDirectives(goMod []byte) string {
	var out []string
	var block []string // current block lines (kept ones), nil when not in a block
	var blockVerb string
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(goMod))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(stripComment(line))
		switch {
		case inBlock && trimmed == ")":
			if len(block) > 0 {
				out = append(out, blockVerb+" (\n"+strings.Join(block, "\n")+"\n)")
			}
			inBlock, block = false, nil
		case inBlock:
			if trimmed != "" && !isLocalReplace(trimmed) {
				block = append(block, "\t"+trimmed)
			}
		case trimmed == "replace (" || trimmed == "exclude (":
			inBlock, blockVerb = true, strings.Fields(trimmed)[0]
		case strings.HasPrefix(trimmed, "replace ") || strings.HasPrefix(trimmed, "exclude "):
			if !isLocalReplace(trimmed) {
				out = append(out, trimmed)
			}
		}
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

func stripComment(line string) string {
	if i := strings.Index(line, "//"); i >= 0 {
		return line[:i]
	}
	return line
}

// isLocalReplace reports whether a replace directive points at a directory.
func isLocalReplace(directive string) bool {
	_, target, ok := strings.Cut(directive, "=>")
	if !ok {
		return false
	}
	t := strings.TrimSpace(target)
	return strings.HasPrefix(t, "./") || strings.HasPrefix(t, "../") || strings.HasPrefix(t, "/")
}

// hasReplace reports whether a go.mod has replace directives, which make `go install pkg@version` fail.
func hasReplace(goMod []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(goMod))
	for sc.Scan() {
		t := strings.TrimSpace(stripComment(sc.Text()))
		if t == "replace (" || strings.HasPrefix(t, "replace ") {
			return true
		}
	}
	return false
}

// scratchGoMod is a generic scratch main module: tools from one required module, the published module's replace
// and exclude directives (copied as lab's build_tofu does) and extra replace directives.
func scratchGoMod(name string, tools []string, module, version string, directives string, extraReplaces []string) string {
	var b strings.Builder
	_, _ = fmt.Fprintf(&b, "module example.invalid/%s\n\ngo %s\n\n", name, scratchGoVersion)
	tools = slices.Clone(tools)
	switch len(tools) {
	case 0:
	case 1:
		_, _ = fmt.Fprintf(&b, "tool %s\n\n", tools[0])
	default:
		slices.Sort(tools)
		b.WriteString("tool (\n")
		for _, t := range tools {
			_, _ = fmt.Fprintf(&b, "\t%s\n", t)
		}
		b.WriteString(")\n\n")
	}
	_, _ = fmt.Fprintf(&b, "require %s %s\n\n", module, version)
	b.WriteString(directives)
	for _, r := range extraReplaces {
		_, _ = fmt.Fprintf(&b, "replace %s\n", r)
	}
	return b.String()
}
