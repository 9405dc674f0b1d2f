package render

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Defaults for node data.
const (
	// DefaultPauseImage is the sandbox image pinned in containerd (kubeadm 1.37's PauseVersion).
	DefaultPauseImage = "registry.k8s.io/pause:3.10.2"
	// DefaultMaxPods is kubelet's default pod limit.
	DefaultMaxPods = 110
	// DefaultConntrackMaxPerCore is kube-proxy's default. Use 0 on container hosts, where the conntrack table
	// size is global to the shared kernel.
	DefaultConntrackMaxPerCore = 32768
	// ControlPlaneTaintKey is the taint (and node-role label) of masters.
	ControlPlaneTaintKey = "node-role.kubernetes.io/control-plane"
)

// ContainerdUnit is the data of systemd/containerd.service.tmpl. The unit has no variable parts.
type ContainerdUnit struct{}

// Target implements File.
func (ContainerdUnit) Target() Target {
	return Target{Template: "systemd/containerd.service.tmpl", Path: PathContainerdUnit, Mode: modeConfig}
}

// Validate implements File.
func (ContainerdUnit) Validate() error { return nil }

// ContainerdConfig is the data of containerd/config.toml.tmpl (containerd 2.x, config version 3). The file lives
// under /etc/kubernetes, not /etc/containerd, so that it never collides with a distribution package's conffile
// and a reset removes it with the rest.
type ContainerdConfig struct {
	// SandboxImage is the pause image; it must be imported, because it is never pulled.
	SandboxImage string
	// RestrictOOMScoreAdj keeps containers' oom_score_adj at or above containerd's own. Set it only where the
	// host lacks CAP_SYS_RESOURCE (some container hosts), where lowering the score fails.
	RestrictOOMScoreAdj bool
}

// Target implements File.
func (ContainerdConfig) Target() Target {
	return Target{Template: "containerd/config.toml.tmpl", Path: PathContainerdConfig, Mode: modeConfig}
}

// Validate implements File.
func (c ContainerdConfig) Validate() error {
	var e errs
	e.image("SandboxImage", c.SandboxImage)
	return e.join("containerd config")
}

// CrictlConfig is the data of containerd/crictl.yaml.tmpl, which points crictl at containerd. It has no
// variable parts.
type CrictlConfig struct{}

// Target implements File.
func (CrictlConfig) Target() Target {
	return Target{Template: "containerd/crictl.yaml.tmpl", Path: PathCrictlConfig, Mode: modeConfig}
}

// Validate implements File.
func (CrictlConfig) Validate() error { return nil }

// KubeletUnit is the data of systemd/kubelet.service.tmpl.
type KubeletUnit struct {
	// NodeName is the Node object's name (--hostname-override).
	NodeName string
	// NodeIP is the node's address in the node network (--node-ip).
	NodeIP string
	// NodeLabels are set by the kubelet at registration. NodeRestriction only lets a kubelet set labels outside
	// kubernetes.io and k8s.io, or in the kubelet.kubernetes.io and node.kubernetes.io namespaces, or a few
	// well-known ones; role labels such as node-role.kubernetes.io/control-plane must be set through the API.
	NodeLabels map[string]string
	// Bootstrap adds --bootstrap-kubeconfig: the node joins with a bootstrap token and obtains its client
	// certificate through a CSR. Without it the kubelet uses the kubesmith-issued kubelet.conf (masters).
	Bootstrap bool
}

// Target implements File.
func (KubeletUnit) Target() Target {
	return Target{Template: "systemd/kubelet.service.tmpl", Path: PathKubeletUnit, Mode: modeConfig}
}

// NodeLabelsFlag is the --node-labels value, sorted by key.
func (u KubeletUnit) NodeLabelsFlag() string {
	keys := make([]string, 0, len(u.NodeLabels))
	for k := range u.NodeLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+u.NodeLabels[k])
	}
	return strings.Join(parts, ",")
}

// kubeletAllowedLabels are the kubernetes.io labels a kubelet may set on itself (k8s.io/kubelet's
// IsKubeletLabel); kubelet refuses to start with any other kubernetes.io or k8s.io label in --node-labels.
var kubeletAllowedLabels = []string{
	"kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os",
	"beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
	"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
	"failure-domain.beta.kubernetes.io/zone",
}

// KubeletMaySetLabel reports whether a kubelet may set the label key on its own Node (see KubeletUnit.NodeLabels).
func KubeletMaySetLabel(key string) bool {
	ns, _, ok := strings.Cut(key, "/")
	if !ok {
		return true
	}
	restricted := ns == "kubernetes.io" || strings.HasSuffix(ns, ".kubernetes.io") || ns == "k8s.io" || strings.HasSuffix(ns, ".k8s.io")
	if !restricted || slices.Contains(kubeletAllowedLabels, key) {
		return true
	}
	for _, allowed := range []string{"kubelet.kubernetes.io", "node.kubernetes.io"} {
		if ns == allowed || strings.HasSuffix(ns, "."+allowed) {
			return true
		}
	}
	return false
}

// Validate implements File.
func (u KubeletUnit) Validate() error {
	var e errs
	e.nodeName("NodeName", u.NodeName)
	e.nonLoopbackIP("NodeIP", u.NodeIP)
	for k, v := range u.NodeLabels {
		e.labelKey("NodeLabels key", k)
		e.labelValue("NodeLabels["+k+"]", v)
		if !KubeletMaySetLabel(k) {
			e.addf("NodeLabels key %q is reserved: the kubelet may not set it on itself; set it through the API", k)
		}
	}
	return e.join("kubelet unit")
}

// Taint is a node taint.
type Taint struct {
	Key    string
	Value  string
	Effect string
}

// ControlPlaneTaint is the NoSchedule taint of masters.
func ControlPlaneTaint() Taint { return Taint{Key: ControlPlaneTaintKey, Effect: "NoSchedule"} }

// KubeletConfig is the data of kubelet/config.yaml.tmpl (KubeletConfiguration v1beta1).
type KubeletConfig struct {
	// ClusterDNS are the cluster DNS Service IPs.
	ClusterDNS []string
	// ClusterDomain is the cluster DNS domain (DefaultClusterDomain).
	ClusterDomain string
	// ResolvConf is the resolver file pods with dnsPolicy Default (CoreDNS among them) inherit. It must hold no
	// loopback nameserver; PathResolvConf, rendered from ResolvConf, qualifies.
	ResolvConf string
	// FailSwapOn makes kubelet refuse to start while swap is on. Container hosts share the host's swap, so set
	// it false there.
	FailSwapOn bool
	// FailCgroupV1 makes kubelet refuse cgroup v1 hosts (the kubelet default since 1.35). Set it false only on
	// hosts that really are cgroup v1.
	FailCgroupV1 bool
	// RegisterWithTaints are the taints the node registers with (ControlPlaneTaint on masters).
	RegisterWithTaints []Taint
	// MaxPods is the pod limit (DefaultMaxPods).
	MaxPods int
	// SharedDisk lowers the disk-based eviction thresholds: set it on container hosts, whose filesystem is the
	// machine's, shared with every other node and the machine itself. Pod eviction there frees nothing, and the
	// kubelet's defaults (15% free for images) would evict every pod once the shared disk is 85% full.
	SharedDisk bool
}

// Target implements File.
func (KubeletConfig) Target() Target {
	return Target{Template: "kubelet/config.yaml.tmpl", Path: PathKubeletConfig, Mode: modeConfig}
}

// Validate implements File.
func (c KubeletConfig) Validate() error {
	var e errs
	if len(c.ClusterDNS) == 0 {
		e.addf("ClusterDNS is empty")
	}
	for i, ip := range c.ClusterDNS {
		e.nonLoopbackIP("ClusterDNS["+strconv.Itoa(i)+"]", ip)
	}
	e.nodeName("ClusterDomain", c.ClusterDomain)
	e.absPath("ResolvConf", c.ResolvConf)
	if c.ResolvConf == "/etc/resolv.conf" {
		e.addf("ResolvConf must not be /etc/resolv.conf: it may name a loopback resolver (systemd-resolved, docker) that pods cannot reach")
	}
	for i, t := range c.RegisterWithTaints {
		f := "RegisterWithTaints[" + strconv.Itoa(i) + "]"
		e.labelKey(f+".Key", t.Key)
		e.labelValue(f+".Value", t.Value)
		e.oneOf(f+".Effect", t.Effect, "NoSchedule", "PreferNoSchedule", "NoExecute")
	}
	e.positive("MaxPods", c.MaxPods)
	return e.join("kubelet config")
}

// ResolvConf is the data of kubelet/resolv.conf.tmpl: the resolver configuration the kubelet hands to pods
// with dnsPolicy Default, CoreDNS included. With no nameservers pods resolve only cluster names, which is what
// an air-gapped cluster wants.
type ResolvConf struct {
	// Nameservers are upstream resolver IPs (at most 3, the glibc limit). Loopback addresses are refused.
	Nameservers []string
	// Search are search domains.
	Search []string
}

// Target implements File.
func (ResolvConf) Target() Target {
	return Target{Template: "kubelet/resolv.conf.tmpl", Path: PathResolvConf, Mode: modeConfig}
}

// Validate implements File.
func (r ResolvConf) Validate() error {
	var e errs
	if len(r.Nameservers) > 3 {
		e.addf("%d nameservers; the resolver uses at most 3", len(r.Nameservers))
	}
	for i, ns := range r.Nameservers {
		f := "Nameservers[" + strconv.Itoa(i) + "]"
		if a, err := netip.ParseAddr(ns); err != nil || a.IsLoopback() || a.IsUnspecified() {
			e.addf("%s %q is not a non-loopback IP address", f, ns)
		}
	}
	for i, s := range r.Search {
		e.nodeName("Search["+strconv.Itoa(i)+"]", s)
	}
	return e.join("resolv.conf")
}

// KubeProxyUnit is the data of systemd/kube-proxy.service.tmpl. The unit has no variable parts.
type KubeProxyUnit struct{}

// Target implements File.
func (KubeProxyUnit) Target() Target {
	return Target{Template: "systemd/kube-proxy.service.tmpl", Path: PathKubeProxyUnit, Mode: modeConfig}
}

// Validate implements File.
func (KubeProxyUnit) Validate() error { return nil }

// KubeProxyConfig is the data of kube-proxy/config.yaml.tmpl (KubeProxyConfiguration v1alpha1).
type KubeProxyConfig struct {
	// NodeName must equal the kubelet's node name (hostnameOverride).
	NodeName string
	// ClusterCIDR is the pod CIDR (traffic from outside it to Services is masqueraded).
	ClusterCIDR string
	// Mode is "iptables" or "nftables" (this machine's kernel has no IPVS).
	Mode string
	// ConntrackMaxPerCore sizes the conntrack table; 0 leaves the kernel setting alone, which container hosts
	// need (the table is not namespaced). DefaultConntrackMaxPerCore elsewhere.
	ConntrackMaxPerCore int
	// NodePortAddresses limits the addresses NodePorts listen on; "primary" means the node IPs. Empty means all
	// local addresses.
	NodePortAddresses []string
}

// Target implements File.
func (KubeProxyConfig) Target() Target {
	return Target{Template: "kube-proxy/config.yaml.tmpl", Path: PathKubeProxyConfig, Mode: modeConfig}
}

// Validate implements File.
func (c KubeProxyConfig) Validate() error {
	var e errs
	e.nodeName("NodeName", c.NodeName)
	e.cidr("ClusterCIDR", c.ClusterCIDR)
	e.oneOf("Mode", c.Mode, "iptables", "nftables")
	if c.ConntrackMaxPerCore < 0 {
		e.addf("ConntrackMaxPerCore %d is negative", c.ConntrackMaxPerCore)
	}
	for i, a := range c.NodePortAddresses {
		if a != "primary" {
			e.cidr("NodePortAddresses["+strconv.Itoa(i)+"]", a)
		}
	}
	return e.join("kube-proxy config")
}
