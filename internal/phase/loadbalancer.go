package phase

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/render"
)

// LBOwnerFile marks a frontend host with the load balancer that owns it ("<cluster UID>/<name>"). A host owned
// by another load balancer is refused.
const LBOwnerFile = render.LBDir + "/owner"

// lbUnits are the frontend units, in start order.
var lbUnits = []string{render.LBHAProxyUnit, render.LBKeepalivedUnit}

// lbTools are the programs a frontend host needs; they are host prerequisites (the bundle carries Debian
// packages of them for air-gapped hosts).
var lbTools = []string{"/usr/sbin/haproxy", "/usr/sbin/keepalived", "socat", "ip", "systemctl"}

// LBHost is what ProbeLB learned about a frontend host.
type LBHost struct {
	// Iface and Prefix are the interface that holds the host's address and its prefix length.
	Iface  string
	Prefix int
	// Owner is the content of LBOwnerFile, empty when the host carries no load balancer.
	Owner string
	// Missing lists the prerequisites that are not installed.
	Missing []string
	// HoldsVIP reports whether the VIP is on one of the host's interfaces.
	HoldsVIP bool
	// Active reports, per frontend unit, whether it runs.
	Active map[string]bool
}

// ProbeLB inspects a frontend host in one round trip: its interface, the owner marker, the prerequisites, the
// VIP and the frontend units.
func ProbeLB(ctx context.Context, t *Target, vip string) (LBHost, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "ip -o -4 addr show | awk -v a=%s '{split($4, p, \"/\"); if (p[1] == a) print \"iface \" $2 \" \" p[2]}'\n", node.Quote(t.Address))
	fmt.Fprintf(&b, "printf 'owner %%s\\n' \"$(cat %s 2>/dev/null)\"\n", LBOwnerFile)
	for _, tool := range lbTools {
		fmt.Fprintf(&b, "command -v %s >/dev/null 2>&1 || echo 'missing %s'\n", tool, tool)
	}
	b.WriteString("id -u haproxy >/dev/null 2>&1 || echo 'missing the haproxy user'\n")
	if vip != "" {
		fmt.Fprintf(&b, "[ -n \"$(ip -o addr show to %s)\" ] && echo vip\n", node.Quote(vip))
	}
	for _, u := range lbUnits {
		fmt.Fprintf(&b, "systemctl is-active --quiet %s && echo 'active %s'\n", u, u)
	}
	b.WriteString("true\n")
	res, err := t.Runner.RunInput(ctx, "sh -s", strings.NewReader(b.String()))
	if err != nil {
		return LBHost{}, fmt.Errorf("probing %s: %w", t.Name, err)
	}
	h := LBHost{Active: map[string]bool{}}
	for _, line := range strings.Split(res.Stdout, "\n") {
		key, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch key {
		case "iface":
			if f := strings.Fields(rest); len(f) == 2 {
				h.Iface = f[0]
				h.Prefix, _ = strconv.Atoi(f[1])
			}
		case "owner":
			h.Owner = strings.TrimSpace(rest)
		case "missing":
			h.Missing = append(h.Missing, rest)
		case "vip":
			h.HoldsVIP = true
		case "active":
			h.Active[rest] = true
		}
	}
	return h, nil
}

// LBConfig is the frontend configuration shared by every frontend host of one load balancer.
type LBConfig struct {
	// Owner is written to LBOwnerFile ("<cluster UID>/<name>"); Instance names the VRRP instance.
	Owner    string
	Instance string
	VIP      netip.Addr
	// Frontends are the ports on the VIP and their backends.
	Frontends []render.LBFrontend
	// VirtualRouterID and Password configure VRRP; every host of the load balancer shares them.
	VirtualRouterID int
	Password        string
	// Hosts are the frontend hosts' addresses; a host's priority follows its position, so the first one holds
	// the VIP while it is healthy.
	Hosts []string
}

// LBFiles renders the frontend files of host t (which must be one of cfg.Hosts), probed as h.
func LBFiles(cfg LBConfig, t *Target, h LBHost) ([]File, error) {
	if h.Iface == "" {
		return nil, fmt.Errorf("%s: no interface holds %s; the host's address must be on one of its interfaces", t.Name, t.Address)
	}
	idx := slices.Index(cfg.Hosts, t.Address)
	if idx < 0 {
		return nil, fmt.Errorf("%s is not a frontend host of %s", t.Name, cfg.Instance)
	}
	var peers []string
	for _, o := range cfg.Hosts {
		if o != t.Address {
			peers = append(peers, o)
		}
	}
	list := []render.File{
		render.LBHAProxyConfig{VIP: cfg.VIP.String(), Frontends: cfg.Frontends},
		render.LBKeepalivedConfig{
			Instance: cfg.Instance, RouterID: t.Name, Interface: h.Iface, VIP: cfg.VIP.String(), VIPPrefixLen: h.Prefix,
			VirtualRouterID: cfg.VirtualRouterID, Priority: max(1, 150-10*idx), AuthPass: cfg.Password,
			UnicastSrcIP: t.Address, UnicastPeers: peers,
		},
		render.LBCheck{},
		render.LBHAProxyUnitFile{},
		render.LBKeepalivedUnitFile{},
	}
	files := make([]File, 0, len(list)+1)
	for _, f := range list {
		r, err := render.RenderFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		files = append(files, File{Path: r.Path, Data: r.Data, Mode: r.Mode, Secret: r.Mode == 0o600})
	}
	files = append(files, File{Path: LBOwnerFile, Data: []byte(cfg.Owner + "\n"), Mode: 0o644})
	return files, nil
}

// ConvergeLB writes the frontend files of t and (re)starts what changed: a changed HAProxy configuration is
// reloaded, which keeps established connections; a changed unit or keepalived configuration restarts.
func ConvergeLB(ctx context.Context, t *Target, files []File, h LBHost) error {
	changed, err := SyncFiles(ctx, t.Runner, files)
	if err != nil {
		return err
	}
	if err := DaemonReload(ctx, t.Runner, changed); err != nil {
		return err
	}
	haproxyUnitChanged := slices.Contains(changed, render.PathLBHAProxyUnit)
	switch {
	case haproxyUnitChanged || !h.Active[render.LBHAProxyUnit]:
		err = EnsureService(ctx, t.Runner, render.LBHAProxyUnit, haproxyUnitChanged, false, PendingDir+"/"+render.LBHAProxyUnit)
	case slices.Contains(changed, render.PathLBHAProxyConfig):
		if _, rerr := t.Runner.Run(ctx, "systemctl reload "+render.LBHAProxyUnit); rerr != nil {
			err = fmt.Errorf("reloading HAProxy: %w", rerr)
		}
	}
	if err != nil {
		return err
	}
	restart := AnyUnder(changed, render.PathLBKeepalivedUnit, render.PathLBKeepalivedConfig, render.PathLBCheck)
	return EnsureService(ctx, t.Runner, render.LBKeepalivedUnit, restart, false, PendingDir+"/"+render.LBKeepalivedUnit)
}

// LBFilesDrift reports which of files differ on the host (or are missing), for Read.
func LBFilesDrift(ctx context.Context, t *Target, files []File) ([]string, error) {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	have, err := RemoteSums(ctx, t.Runner, paths)
	if err != nil {
		return nil, err
	}
	var drift []string
	for _, f := range files {
		if have[f.Path] != Sum(f.Data) {
			drift = append(drift, f.Path)
		}
	}
	return drift, nil
}

// ResetLB removes a load balancer's frontend from a host: it stops and disables the units and deletes every
// file kubesmith wrote for it. A host that never had one is left as it is.
func ResetLB(ctx context.Context, t *Target) error {
	var b strings.Builder
	for i := len(lbUnits) - 1; i >= 0; i-- {
		u := lbUnits[i]
		fmt.Fprintf(&b, "systemctl disable --now %s >/dev/null 2>&1 || true\n", u)
		fmt.Fprintf(&b, "systemctl reset-failed %s >/dev/null 2>&1 || true\n", u)
	}
	fmt.Fprintf(&b, "rm -f %s %s %s/%s %s/%s\n", render.PathLBHAProxyUnit, render.PathLBKeepalivedUnit,
		PendingDir, render.LBHAProxyUnit, PendingDir, render.LBKeepalivedUnit)
	fmt.Fprintf(&b, "rm -rf %s\n", render.LBDir)
	// The directories kubesmith created for this host go too, when nothing else of kubesmith's is in them.
	fmt.Fprintf(&b, "rmdir %s 2>/dev/null || true\n", PendingDir)
	fmt.Fprintf(&b, "rmdir /var/lib/kubesmith 2>/dev/null || true\n")
	fmt.Fprintf(&b, "rmdir %s 2>/dev/null || true\n", StateDir)
	// The host lock file goes too when nothing else of kubesmith's is left on the host.
	fmt.Fprintf(&b, "[ -d %s ] || rm -f /run/lock/kubesmith-%s.lock\n", StateDir, LockName)
	b.WriteString("systemctl daemon-reload\n")
	if _, err := t.Runner.RunInput(ctx, "sh -s", strings.NewReader(b.String())); err != nil {
		return fmt.Errorf("removing the frontend from %s: %w", t.Name, err)
	}
	return nil
}

// LBBackend is the health of one backend server as HAProxy sees it.
type LBBackend struct {
	Port    int
	Address string
	// TargetPort is the backend port.
	TargetPort int
	// Status is HAProxy's: UP, DOWN, MAINT, or "UP 1/2" while a check is in transition.
	Status string
}

// LBBackends reads the backends' health from HAProxy's admin socket on t.
func LBBackends(ctx context.Context, t *Target) ([]LBBackend, error) {
	res, err := t.Runner.Run(ctx, "echo 'show stat' | socat stdio unix-connect:"+render.LBStatsSocket)
	if err != nil {
		return nil, fmt.Errorf("reading HAProxy's status on %s: %w", t.Name, err)
	}
	return ParseHAProxyStat(res.Stdout)
}

// ParseHAProxyStat parses the CSV of HAProxy's `show stat` into the backends of kubesmith's frontends.
func ParseHAProxyStat(out string) ([]LBBackend, error) {
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parsing HAProxy's status: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("HAProxy's status is empty")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, c := range []string{"pxname", "svname", "status", "addr"} {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("HAProxy's status has no %s column", c)
		}
	}
	var out2 []LBBackend
	for _, row := range rows[1:] {
		if len(row) < len(rows[0]) {
			continue
		}
		px, sv := row[col["pxname"]], row[col["svname"]]
		if sv == "FRONTEND" || sv == "BACKEND" || !strings.HasPrefix(px, "port_") {
			continue
		}
		port, err := strconv.Atoi(strings.TrimPrefix(px, "port_"))
		if err != nil {
			continue
		}
		ap, err := netip.ParseAddrPort(row[col["addr"]])
		if err != nil {
			continue
		}
		out2 = append(out2, LBBackend{Port: port, Address: ap.Addr().String(), TargetPort: int(ap.Port()), Status: row[col["status"]]})
	}
	return out2, nil
}
