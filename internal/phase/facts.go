package phase

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
)

// Facts is what gather-facts found on a host.
type Facts struct {
	OSID          string
	OSVersion     string
	Arch          string // amd64, arm64
	Kernel        string
	Container     string // systemd-detect-virt -c, "none" on a machine
	CgroupV1      bool
	NoSysResource bool // CAP_SYS_RESOURCE missing from the bounding set
	SwapOn        bool
	BridgeNF      bool
	IPForward     bool
	Systemd       bool
	BusyPorts     []int
	DiskFreeMiB   int64
	Clock         time.Time
	ClockSkew     time.Duration
	Tools         map[string]bool
	ClusterUID    string
	// Iface is the interface that holds the node address.
	Iface    string
	Prefix   int
	Versions map[string]string
	// Units lists the kubesmith-managed units and whether each is active.
	Active map[string]bool
}

// IsContainer reports whether the host is a container sharing the machine's kernel (DESIGN §3.10).
func (f Facts) IsContainer() bool { return f.Container != "" && f.Container != "none" }

// ManagedUnits are the services kubesmith installs.
var ManagedUnits = []string{"containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "flanneld", "keepalived", "haproxy"}

// RequiredTools are the host programs every node needs.
var RequiredTools = []string{"iptables", "conntrack", "socat", "ip", "mount", "nsenter", "sha256sum", "gzip", "flock", "systemctl", "journalctl", "curl"}

// factsScript prints key=value lines; every value is on one line.
const factsScript = `set +e
. /etc/os-release 2>/dev/null
echo "os_id=$ID"
echo "os_version=$VERSION_ID"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "container=$(systemd-detect-virt -c 2>/dev/null || echo none)"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo cgroup=2; else echo cgroup=1; fi
echo "capbnd=$(awk '/^CapBnd/{print $2}' /proc/self/status)"
echo "swap=$(awk 'NR>1{n++} END{print n+0}' /proc/swaps)"
[ -d /proc/sys/net/bridge ] && echo bridge_nf=1 || echo bridge_nf=0
echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
[ -d /run/systemd/system ] && echo systemd=1 || echo systemd=0
echo "listening=$(ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -un | tr '\n' ' ')"
echo "disk_free_kib=$(df -Pk /var 2>/dev/null | awk 'NR==2{print $4}')"
echo "time=$(date +%s)"
for t in iptables nft conntrack socat ip mount nsenter sha256sum gzip flock systemctl journalctl curl keepalived haproxy ss; do
  command -v $t >/dev/null 2>&1 && echo "tool_$t=1" || echo "tool_$t=0"
done
echo "cluster_uid=$(cat /etc/kubesmith/cluster-uid 2>/dev/null)"
addr=__ADDR__
echo "iface=$(ip -o -4 addr show 2>/dev/null | awk -v a="$addr" '{split($4,p,"/"); if (p[1]==a) {print $2; exit}}')"
echo "prefix=$(ip -o -4 addr show 2>/dev/null | awk -v a="$addr" '{split($4,p,"/"); if (p[1]==a) {print p[2]; exit}}')"
for u in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy flanneld keepalived haproxy; do
  echo "active_$u=$(systemctl is-active $u 2>/dev/null)"
done
[ -x /usr/local/bin/kubelet ] && echo "version_kubelet=$(/usr/local/bin/kubelet --version 2>/dev/null | awk '{print $2}')"
[ -x /usr/local/bin/etcd ] && echo "version_etcd=$(/usr/local/bin/etcd --version 2>/dev/null | awk '/etcd Version/{print $3}')"
[ -x /usr/local/bin/containerd ] && echo "version_containerd=$(/usr/local/bin/containerd --version 2>/dev/null | awk '{print $3}')"
true
`

// GatherFacts runs the facts script on the host.
func GatherFacts(ctx context.Context, t *Target) (Facts, error) {
	before := time.Now()
	res, err := t.Runner.Run(ctx, strings.Replace(factsScript, "__ADDR__", node.Quote(t.Address), 1))
	if err != nil {
		return Facts{}, fmt.Errorf("gathering facts: %w", err)
	}
	after := time.Now()
	f, err := ParseFacts(res.Stdout)
	if err != nil {
		return Facts{}, err
	}
	mid := before.Add(after.Sub(before) / 2)
	f.ClockSkew = f.Clock.Sub(mid.Truncate(time.Second))
	return f, nil
}

// ParseFacts parses the output of the facts script.
func ParseFacts(out string) (Facts, error) {
	f := Facts{Tools: map[string]bool{}, Versions: map[string]string{}, Active: map[string]bool{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch {
		case k == "os_id":
			f.OSID = v
		case k == "os_version":
			f.OSVersion = v
		case k == "arch":
			f.Arch = goArch(v)
		case k == "kernel":
			f.Kernel = v
		case k == "container":
			f.Container = v
		case k == "cgroup":
			f.CgroupV1 = v == "1"
		case k == "capbnd":
			caps, err := strconv.ParseUint(v, 16, 64)
			if err == nil {
				const capSysResource = 24
				f.NoSysResource = caps&(1<<capSysResource) == 0
			}
		case k == "swap":
			f.SwapOn = v != "0" && v != ""
		case k == "bridge_nf":
			f.BridgeNF = v == "1"
		case k == "ip_forward":
			f.IPForward = v == "1"
		case k == "systemd":
			f.Systemd = v == "1"
		case k == "listening":
			for _, p := range strings.Fields(v) {
				if n, err := strconv.Atoi(p); err == nil {
					f.BusyPorts = append(f.BusyPorts, n)
				}
			}
		case k == "disk_free_kib":
			n, _ := strconv.ParseInt(v, 10, 64)
			f.DiskFreeMiB = n / 1024
		case k == "time":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return f, fmt.Errorf("bad time %q in facts", v)
			}
			f.Clock = time.Unix(n, 0)
		case strings.HasPrefix(k, "tool_"):
			f.Tools[strings.TrimPrefix(k, "tool_")] = v == "1"
		case k == "cluster_uid":
			f.ClusterUID = strings.TrimSpace(v)
		case k == "iface":
			f.Iface = v
		case k == "prefix":
			f.Prefix, _ = strconv.Atoi(v)
		case strings.HasPrefix(k, "active_"):
			f.Active[strings.TrimPrefix(k, "active_")] = v == "active"
		case strings.HasPrefix(k, "version_"):
			f.Versions[strings.TrimPrefix(k, "version_")] = v
		}
	}
	if f.Arch == "" {
		return f, fmt.Errorf("facts output is incomplete (no arch): %q", truncate(out, 200))
	}
	return f, nil
}

// Preflight checks the host against what a node of role needs. ownPorts are ports our own services may
// already hold on a re-run. Each problem names the host and the fix.
func Preflight(t *Target, ownPorts map[int]string, address netip.Addr) []error {
	f := t.Facts
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s (%s): %s", t.Name, t.Address, fmt.Sprintf(format, a...)))
	}
	if f.Arch != "amd64" && f.Arch != "arm64" {
		bad("unsupported architecture %q; kubesmith installs amd64 and arm64 hosts", f.Arch)
	}
	if !f.Systemd {
		bad("systemd is not running as PID 1; kubesmith installs systemd units, so boot the host with systemd")
	}
	if f.SwapOn && !f.IsContainer() {
		bad("swap is on; kubelet needs it off: run `swapoff -a` and remove swap from /etc/fstab")
	}
	if !f.BridgeNF {
		bad("br_netfilter is missing (/proc/sys/net/bridge does not exist): run `modprobe br_netfilter` and add it to /etc/modules-load.d")
	}
	for _, tool := range RequiredTools {
		if !f.Tools[tool] {
			bad("required tool %q is missing: install it (Debian: apt-get install %s, or from the bundle's debs/)", tool, debFor(tool))
		}
	}
	if t.Role == RoleMaster && !f.Tools["keepalived"] {
		bad("keepalived is missing on this master (it holds the API VIP): apt-get install keepalived, or install it from the bundle's debs/")
	}
	for _, p := range f.BusyPorts {
		if _, ours := ownPorts[p]; ours {
			continue
		}
		if name, needed := portsFor(t.Role)[p]; needed {
			bad("port %d (%s) is already in use by another program; stop it or use another host", p, name)
		}
	}
	if f.DiskFreeMiB > 0 && f.DiskFreeMiB < 2048 {
		bad("only %d MiB free on /var; kubesmith needs at least 2 GiB for binaries, images and etcd", f.DiskFreeMiB)
	}
	if s := f.ClockSkew; s > 30*time.Second || s < -30*time.Second {
		bad("clock differs from this machine's by %s; certificates would not be valid yet or expire early: sync it with NTP", s.Round(time.Second))
	}
	if f.Iface == "" {
		bad("no interface holds address %s; the node address must be configured on the host", address)
	}
	return errs
}

func portsFor(r Role) map[int]string {
	p := map[int]string{10250: "kubelet", 10256: "kube-proxy health"}
	if r == RoleMaster {
		p[2379] = "etcd client"
		p[2380] = "etcd peer"
		p[6443] = "kube-apiserver"
		p[10257] = "kube-controller-manager"
		p[10259] = "kube-scheduler"
	}
	return p
}

func debFor(tool string) string {
	switch tool {
	case "ip":
		return "iproute2"
	case "nsenter", "mount", "flock":
		return "util-linux"
	case "sha256sum":
		return "coreutils"
	case "systemctl", "journalctl":
		return "systemd"
	case "nft":
		return "nftables"
	default:
		return tool
	}
}

func goArch(uname string) string {
	switch uname {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	default:
		return uname
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
