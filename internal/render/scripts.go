package render

import (
	"bufio"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// KubesmithUnits are the systemd units kubesmith installs, in the order reset stops them (kubelet first, so
// that it restarts no pod; containerd last, because pods are removed through it).
func KubesmithUnits() []string {
	return []string{
		"kubelet.service", "kube-proxy.service", "flanneld.service", "kube-scheduler.service",
		"kube-controller-manager.service", "kube-apiserver.service", "etcd.service", "containerd.service",
	}
}

// PackageUnits are units of host packages that kubesmith configures with a drop-in and a config file.
func PackageUnits() []string { return []string{"keepalived.service"} }

// InstalledBinaries are the binaries kubesmith installs from the artifact bundle.
func InstalledBinaries() []string {
	bins := []string{
		"etcd", "etcdctl", "etcdutl", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
		"kubelet", "kube-proxy", "kubectl", "containerd", "containerd-shim-runc-v2", "ctr", "crictl", "flanneld",
	}
	out := make([]string, 0, len(bins)+1)
	for _, b := range bins {
		out = append(out, path.Join(BinDir, b))
	}
	return append(out, RuncPath)
}

// ResetScript is the data of scripts/reset.sh.tmpl, which undoes an install on one host: units, pods and
// containers, mounts, network links, iptables chains and nftables tables, files, binaries and the cluster UID
// marker. It is idempotent and exits non-zero, listing what is left, when something could not be removed.
// Run it as root with `sh -s`.
type ResetScript struct {
	// Units are kubesmith's own unit files in UnitDir, stopped in this order, then disabled and removed
	// (KubesmithUnits).
	Units []string
	// PackageUnits are package units kubesmith configured (PackageUnits): stopped and disabled, kubesmith's
	// drop-in removed; the package stays installed.
	PackageUnits []string
	// Binaries are the absolute paths of installed binaries to remove (InstalledBinaries).
	Binaries []string
	// Files are further absolute paths kubesmith wrote (sysctl.d and modules-load.d files, for example).
	Files []string
}

// Target implements File. The script is not installed: it is piped to `sh -s`.
func (ResetScript) Target() Target {
	return Target{Template: "scripts/reset.sh.tmpl", Mode: modeExec}
}

// protectedPaths may never be removed by reset, whatever the data says.
var protectedPaths = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc",
	"/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/local/bin",
	"/usr/local/sbin", "/usr/sbin", "/var", "/var/lib", "/var/log", "/etc/systemd", "/etc/systemd/system",
}

// Validate implements File.
func (s ResetScript) Validate() error {
	var e errs
	for _, u := range slices.Concat(s.Units, s.PackageUnits) {
		if !unitName.MatchString(u) {
			e.addf("unit %q is not a unit name", u)
		}
	}
	for _, p := range slices.Concat(s.Binaries, s.Files) {
		e.absPath("path", p)
		if slices.Contains(protectedPaths, p) {
			e.addf("path %q is protected and may not be removed", p)
		}
	}
	return e.join("reset script")
}

// Defaults for the preflight script.
var (
	// DefaultPreflightTCPPorts are the TCP ports a fresh node must have free: etcd, apiserver, kubelet,
	// controller-manager, scheduler, kube-proxy health and metrics, etcd metrics.
	defaultPreflightTCPPorts = []int{2379, 2380, 2381, 6443, 10248, 10249, 10250, 10256, 10257, 10259}
	// defaultPreflightUDPPorts are flannel's VXLAN port.
	defaultPreflightUDPPorts = []int{8472}
	// defaultPreflightTools are the host programs kubesmith uses or that its components need.
	defaultPreflightTools = []string{
		"iptables", "ip6tables", "iptables-save", "nft", "conntrack", "socat", "ip",
		"mount", "umount", "findmnt", "curl", "keepalived", "haproxy", "systemctl", "sha256sum", "flock", "ss",
		"modprobe", "sysctl", "timeout",
	}
)

// DefaultPreflightTCPPorts returns the default TCP ports to check.
func DefaultPreflightTCPPorts() []int { return slices.Clone(defaultPreflightTCPPorts) }

// DefaultPreflightUDPPorts returns the default UDP ports to check.
func DefaultPreflightUDPPorts() []int { return slices.Clone(defaultPreflightUDPPorts) }

// DefaultPreflightTools returns the default tool list.
func DefaultPreflightTools() []string { return slices.Clone(defaultPreflightTools) }

// PreflightScript is the data of scripts/preflight.sh.tmpl, a read-only probe that prints facts about a host as
// KEY=VALUE lines (see ParseFacts and the comment at the top of the template). Run it with `sh -s`; it needs
// root only for the port owners and for reading root-only files.
type PreflightScript struct {
	// TCPPorts and UDPPorts are checked for listeners.
	TCPPorts []int
	UDPPorts []int
	// Tools are looked up in PATH.
	Tools []string
	// Binaries are installed binaries whose version is reported (InstalledBinaries).
	Binaries []string
	// ManagedFiles are files whose SHA-256 is reported, for the config hash (HashDigests).
	ManagedFiles []string
	// Units are systemd units whose state is reported.
	Units []string
	// NodeIP, when set, is looked up among the host's addresses to report its interface and prefix length.
	NodeIP string
}

// Target implements File. The script is not installed: it is piped to `sh -s`.
func (PreflightScript) Target() Target {
	return Target{Template: "scripts/preflight.sh.tmpl", Mode: modeExec}
}

// Validate implements File.
func (s PreflightScript) Validate() error {
	var e errs
	for _, p := range slices.Concat(s.TCPPorts, s.UDPPorts) {
		port(&e, "port", p)
	}
	for _, t := range s.Tools {
		if !toolName.MatchString(t) {
			e.addf("tool %q is not a command name", t)
		}
	}
	for _, p := range slices.Concat(s.Binaries, s.ManagedFiles) {
		e.absPath("path", p)
	}
	for _, u := range s.Units {
		if !unitName.MatchString(u) {
			e.addf("unit %q is not a unit name", u)
		}
	}
	if s.NodeIP != "" {
		e.nonLoopbackIP("NodeIP", s.NodeIP)
	}
	return e.join("preflight script")
}

// Facts are the KEY=VALUE lines printed by the preflight script.
type Facts map[string]string

var factKey = regexp.MustCompile(`^[A-Za-z0-9_.:/@+-]+$`)

// ParseFacts parses preflight output: one KEY=VALUE per line, split at the first '='. Empty lines and lines
// starting with '#' are skipped. A line without '=', an invalid key or a repeated key is an error.
func ParseFacts(out string) (Facts, error) {
	facts := Facts{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !factKey.MatchString(k) {
			return nil, fmt.Errorf("preflight output line %d: %q is not KEY=VALUE", n, line)
		}
		if _, dup := facts[k]; dup {
			return nil, fmt.Errorf("preflight output line %d: key %q repeated", n, k)
		}
		facts[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read preflight output: %w", err)
	}
	if facts["preflight.version"] != strconv.Itoa(PreflightVersion) {
		return nil, fmt.Errorf("preflight output has version %q, want %d", facts["preflight.version"], PreflightVersion)
	}
	return facts, nil
}

// PreflightVersion is the output format version printed as preflight.version.
const PreflightVersion = 1

// FileDigests extracts the "sha256:<path>" facts as a path→digest map ("absent" for missing files), ready for
// HashDigests.
func (f Facts) FileDigests() map[string]string {
	out := map[string]string{}
	for k, v := range f {
		if p, ok := strings.CutPrefix(k, "sha256:"); ok {
			out[p] = v
		}
	}
	return out
}
