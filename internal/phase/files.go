package phase

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/render"
)

// Kernel settings kubesmith persists on every host.
const (
	SysctlFile  = "/etc/sysctl.d/99-kubesmith.conf"
	ModulesFile = "/etc/modules-load.d/kubesmith.conf"
)

// KeepalivedRouterID derives the VRRP virtual router ID (1-255) from the cluster UID, so that two clusters
// on one network do not collide by default.
func KeepalivedRouterID(uid string) int {
	var h uint32 = 2166136261
	for i := 0; i < len(uid); i++ {
		h ^= uint32(uid[i])
		h *= 16777619
	}
	return int(h%254) + 1
}

// renderedFiles renders the configuration (not certificates) of t.
func (c *Cluster) renderedFiles(t *Target) ([]render.File, error) {
	var files []render.File
	sandbox, err := c.Select.ImageRef("pause")
	if err != nil {
		return nil, err
	}
	files = append(files,
		render.ContainerdUnit{},
		render.ContainerdConfig{SandboxImage: sandbox, RestrictOOMScoreAdj: t.Facts.NoSysResource},
		render.CrictlConfig{},
	)
	labels := map[string]string{}
	for k, v := range t.Labels {
		labels[k] = v
	}
	var taints []render.Taint
	if t.Role == RoleMaster && !c.Schedulable {
		taints = append(taints, render.ControlPlaneTaint())
	}
	resolv := render.ResolvConf{Nameservers: nonLoopback(c.UpstreamDNS)}
	files = append(files,
		render.KubeletUnit{NodeName: t.Name, NodeIP: t.Address, NodeLabels: labels, Bootstrap: t.Role == RoleWorker},
		render.KubeletConfig{
			ClusterDNS: []string{c.DNSServiceIP().String()}, ClusterDomain: render.DefaultClusterDomain,
			ResolvConf: render.PathResolvConf, FailSwapOn: !t.Facts.IsContainer(), FailCgroupV1: !t.Facts.CgroupV1,
			RegisterWithTaints: taints, MaxPods: render.DefaultMaxPods, SharedDisk: t.Facts.IsContainer(),
		},
		resolv,
		render.KubeProxyUnit{},
		render.KubeProxyConfig{
			NodeName: t.Name, ClusterCIDR: c.PodCIDR.String(), Mode: c.ProxyMode,
			ConntrackMaxPerCore: conntrackFor(t),
		},
		render.FlanneldUnit{NodeName: t.Name, Interface: t.Facts.Iface, IPMasq: true, IPTablesResync: render.DefaultFlannelIPTablesResync},
		render.FlannelNetConf{
			Network: c.PodCIDR.String(), VNI: render.DefaultFlannelVNI, Port: render.DefaultFlannelPort,
			EnableNFTables: c.ProxyMode == "nftables",
		},
		render.FlannelCNIConf{CNIVersion: render.DefaultCNIVersion, NetworkName: render.DefaultCNINetworkName},
	)
	if t.Role != RoleMaster {
		return files, nil
	}
	var members []render.EtcdMember
	var ips, peers []string
	for _, m := range c.Masters {
		members = append(members, render.EtcdMember{Name: m.Name, IP: m.Address})
		ips = append(ips, m.Address)
		if m != t {
			peers = append(peers, m.Address)
		}
	}
	le := render.LeaderElection{
		Off:           len(c.Masters) == 1,
		LeaseDuration: c.LeaseDuration, RenewDeadline: c.RenewDeadline, RetryPeriod: c.RetryPeriod,
	}
	prefix := c.NodeNetwork.Bits()
	if t.Facts.Prefix > 0 {
		prefix = t.Facts.Prefix
	}
	priority := 150 - slices.Index(c.Masters, t)*10
	files = append(files,
		render.EtcdUnit{
			Name: t.Name, IP: t.Address, InitialCluster: members, InitialClusterState: "new", Token: c.UID,
			DataDir: render.EtcdDataDir, HeartbeatMS: c.EtcdHeartbeatMS, ElectionMS: c.EtcdElectionMS,
			QuotaBackendBytes: render.DefaultEtcdQuotaBackendBytes, AutoCompactionRetention: render.DefaultEtcdAutoCompactionRetention,
		},
		render.APIServerUnit{
			AdvertiseAddress: t.Address, SecurePort: c.APIPort, EtcdIPs: ips, ServiceCIDR: c.ServiceCIDR.String(),
			ServiceNodePortRange: render.DefaultServiceNodePortRange, ServiceAccountIssuer: render.DefaultServiceAccountIssuer,
		},
		render.AuthenticationConfig{AnonymousPaths: render.DefaultAnonymousPaths()},
		render.EncryptionConfig{Keys: []render.EncryptionKey{{Name: "key1", Secret: c.EncryptionKey}}},
		render.ControllerManagerUnit{
			ClusterName: c.Name, ClusterCIDR: c.PodCIDR.String(), ServiceCIDR: c.ServiceCIDR.String(),
			NodeCIDRMaskSize: render.DefaultNodeCIDRMaskSize, LeaderElection: le,
		},
		render.SchedulerUnit{},
		render.SchedulerConfig{LeaderElection: le},
		render.KeepalivedConfig{
			RouterID: t.Name, Interface: t.Facts.Iface, VIP: c.VIP.String(), VIPPrefixLen: prefix,
			VirtualRouterID: KeepalivedRouterID(c.UID), Priority: priority, AuthPass: c.KeepalivedPassword,
			UnicastSrcIP: t.Address, UnicastPeers: peers, CheckTimeoutSeconds: c.apiCheckSeconds(),
		},
		render.KeepalivedCheck{APIServerPort: c.APIPort, TimeoutSeconds: c.apiCheckSeconds()},
		render.KeepalivedDropIn{},
	)
	return files, nil
}

// conntrackFor returns kube-proxy's conntrack.maxPerCore: 0 (leave the kernel's value) on container hosts,
// whose conntrack table belongs to the machine's kernel.
func conntrackFor(t *Target) int {
	if t.Facts.IsContainer() {
		return 0
	}
	return render.DefaultConntrackMaxPerCore
}

func nonLoopback(in []string) []string {
	var out []string
	for _, s := range in {
		if a, err := netip.ParseAddr(s); err == nil && !a.IsLoopback() {
			out = append(out, s)
		}
	}
	return out
}

// NodeFiles returns every file kubesmith manages on t: certificates, kubeconfigs and rendered configuration.
// The result is kept in t.Planned for the drift record.
func (c *Cluster) NodeFiles(ctx context.Context, t *Target) ([]File, error) {
	certs, err := c.CertFiles(ctx, t)
	if err != nil {
		return nil, err
	}
	rf, err := c.renderedFiles(t)
	if err != nil {
		return nil, err
	}
	out := certs
	// Namespaced (net.*) sysctls only, so that container hosts never change the machine's kernel; applied at
	// every boot by systemd-sysctl.
	out = append(out, File{Path: SysctlFile, Mode: 0o644, Data: []byte("# kubesmith: Kubernetes networking\n" +
		"net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n")})
	if !t.Facts.IsContainer() {
		out = append(out, File{Path: ModulesFile, Mode: 0o644, Data: []byte("# kubesmith\noverlay\nbr_netfilter\n")})
	}
	for _, f := range rf {
		r, err := render.RenderFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		out = append(out, File{Path: r.Path, Data: r.Data, Mode: r.Mode, Secret: r.Mode == 0o600})
	}
	t.Planned = out
	return out, nil
}

// AddonMetalLB is the optional MetalLB add-on (controller and L2 speaker), which kubesmith_loadbalancer's
// service pools configure.
const AddonMetalLB = "metallb"

// AddonMetricsServer is the optional metrics-server add-on, which serves the metrics.k8s.io API behind
// `kubectl top` and the HorizontalPodAutoscaler.
const AddonMetricsServer = "metrics-server"

// OptionalAddons lists the optional built-in add-ons, in install order.
func OptionalAddons() []string { return []string{AddonMetalLB, AddonMetricsServer} }

// addonMarker is the object ("kind name") whose presence shows that an optional add-on is installed.
func addonMarker(name string) (string, error) {
	switch name {
	case AddonMetalLB:
		return "namespace metallb-system", nil
	case AddonMetricsServer:
		return "apiservice v1beta1.metrics.k8s.io", nil
	}
	return "", fmt.Errorf("unknown add-on %q", name)
}

// AddonManifest renders a built-in add-on: "rbac", "bootstrap-rbac", "coredns" or one of OptionalAddons.
func (c *Cluster) AddonManifest(name string) ([]byte, error) {
	var f render.File
	switch name {
	case "rbac":
		f = render.NewRBACAddon([]string{render.DefaultBootstrapGroup})
	case "bootstrap-rbac":
		f = render.BootstrapRBACAddon{Groups: []string{render.DefaultBootstrapGroup}}
	case "coredns":
		img, err := c.Select.ImageRef("coredns")
		if err != nil {
			return nil, err
		}
		f = render.CoreDNSAddon{
			Image: img, ImagePullPolicy: "IfNotPresent", ClusterDNSIP: c.DNSServiceIP().String(),
			ClusterDomain: render.DefaultClusterDomain, UpstreamDNS: nonLoopback(c.UpstreamDNS), Replicas: render.DefaultCoreDNSReplicas,
		}
	case AddonMetalLB:
		ctl, err := c.Select.ImageRef("metallb-controller")
		if err != nil {
			return nil, err
		}
		spk, err := c.Select.ImageRef("metallb-speaker")
		if err != nil {
			return nil, err
		}
		_, version, _ := strings.Cut(ctl, ":")
		f = render.MetalLBAddon{
			Version: version, ControllerImage: ctl, SpeakerImage: spk, ImagePullPolicy: "IfNotPresent",
			PoolManagerGroup: pki.GroupPoolManagers,
		}
	case AddonMetricsServer:
		img, err := c.Select.ImageRef("metrics-server")
		if err != nil {
			return nil, err
		}
		f = render.MetricsServerAddon{Image: img, ImagePullPolicy: "IfNotPresent", MetricResolution: render.DefaultMetricResolution}
	default:
		return nil, fmt.Errorf("unknown add-on %q", name)
	}
	r, err := render.RenderFile(f)
	if err != nil {
		return nil, err
	}
	return r.Data, nil
}

// PreinstallFile records, before kubesmith changes anything on a host, the host state that reset must restore
// and cannot infer: modes of pre-existing directories, package unit enablement, pre-existing runtime paths.
const PreinstallFile = StateDir + "/preinstall.env"

// preinstallScript writes PreinstallFile once, on the first install.
const preinstallScript = `if [ ! -f ` + PreinstallFile + ` ]; then
  e() { [ -e "$1" ] && echo 1 || echo 0; }
  {
    echo "containerd_dir_mode=$(stat -c %a /var/lib/containerd 2>/dev/null)"
    echo "keepalived_enabled=$(systemctl is-enabled keepalived 2>/dev/null)"
    echo "nri=$(e /run/nri)"
    echo "netns=$(e /run/netns)"
    echo "nat_prerouting=$(nft list chain ip nat PREROUTING >/dev/null 2>&1 && echo 1 || echo 0)"
    echo "network_online=$(systemctl is-active network-online.target 2>/dev/null)"
  } > ` + PreinstallFile + `.tmp && mv ` + PreinstallFile + `.tmp ` + PreinstallFile + `
fi`

// restoreScript puts back what PreinstallFile recorded; the values are substituted by Reset.
func restoreScript(pre map[string]string) string {
	var b strings.Builder
	b.WriteString("set +e\n")
	if m := pre["containerd_dir_mode"]; m != "" && isOctal(m) {
		fmt.Fprintf(&b, "[ -d /var/lib/containerd ] && chmod %s /var/lib/containerd\n", m)
	}
	switch pre["keepalived_enabled"] {
	case "disabled":
		b.WriteString("systemctl disable keepalived >/dev/null 2>&1\n")
	case "masked":
		b.WriteString("systemctl mask keepalived >/dev/null 2>&1\n")
	}
	if pre["nri"] == "0" {
		b.WriteString("rm -rf /run/nri\n")
	}
	if pre["netns"] == "0" {
		b.WriteString("rmdir /run/netns 2>/dev/null\n")
	}
	if pre["nat_prerouting"] == "0" {
		// An empty base chain lists as 5 lines (table, chain, hook, two braces); delete it only then.
		b.WriteString("n=$(nft list chain ip nat PREROUTING 2>/dev/null | wc -l); [ \"$n\" -gt 0 ] && [ \"$n\" -le 5 ] && nft delete chain ip nat PREROUTING\n")
	}
	if s := pre["network_online"]; s != "" && s != "active" {
		b.WriteString("systemctl stop network-online.target 2>/dev/null\n")
	}
	// The install lock is taken by kubesmith itself; nothing else uses it.
	b.WriteString("rm -f /run/lock/kubesmith-" + LockName + ".lock\n")
	b.WriteString("true\n")
	return b.String()
}

func isOctal(s string) bool {
	for _, r := range s {
		if r < '0' || r > '7' {
			return false
		}
	}
	return len(s) >= 3 && len(s) <= 4
}

// Reset undoes the install on t, removes the cluster marker and restores what PreinstallFile recorded.
func Reset(ctx context.Context, t *Target) error {
	pre := map[string]string{}
	if data, err := t.Runner.ReadFile(ctx, PreinstallFile); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				pre[k] = strings.TrimSpace(v)
			}
		}
	}
	r, err := render.RenderFile(render.ResetScript{
		Units: render.KubesmithUnits(), PackageUnits: render.PackageUnits(), Binaries: render.InstalledBinaries(),
		Files: []string{
			SysctlFile, ModulesFile, "/etc/kubesmith", "/var/lib/kubesmith", "/etc/crictl.yaml", "/etc/keepalived/keepalived.conf",
			"/etc/keepalived/kubesmith-check-apiserver.sh",
		},
	})
	if err != nil {
		return err
	}
	if _, err := t.Runner.RunInput(ctx, "sh -s", bytesReader(r.Data)); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	if _, err := t.Runner.RunInput(ctx, "sh -s", strings.NewReader(restoreScript(pre))); err != nil {
		return fmt.Errorf("restoring the pre-install state: %w", err)
	}
	return nil
}
