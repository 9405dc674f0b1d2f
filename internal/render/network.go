package render

import (
	"net/netip"
	"regexp"
	"strconv"
)

// Defaults for network data.
const (
	// DefaultFlannelVNI and DefaultFlannelPort are flannel's VXLAN defaults (the Linux kernel's VXLAN port).
	DefaultFlannelVNI  = 1
	DefaultFlannelPort = 8472
	// DefaultFlannelIPTablesResync is how often (seconds) flanneld re-checks its iptables rules: kube-proxy's
	// own resync period. flannel's default, 5 s, runs about ten iptables commands every 5 s, which kept an
	// emulated (TCG) master's CPU busy.
	DefaultFlannelIPTablesResync = 30
	// DefaultCNIVersion is the CNI spec version of the flannel conflist: the flannel meta plugin from
	// containernetworking/plugins v0.9.1 supports up to 0.4.0 (lab/cni-notes.md).
	DefaultCNIVersion = "0.4.0"
	// DefaultCNINetworkName is the CNI network name flannel's manifests use.
	DefaultCNINetworkName = "cbr0"
	// KeepalivedCheckInterval is how often (seconds) keepalived probes the local apiserver.
	KeepalivedCheckInterval = 3
)

// ifaceName is a Linux interface name (IFNAMSIZ-1 characters, no '/', whitespace or ':').
var ifaceName = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,15}$`)

// FlanneldUnit is the data of systemd/flanneld.service.tmpl: flanneld as a host service with the Kubernetes
// subnet manager. It talks to the API VIP or a master directly, not through the kubernetes Service, which
// avoids the start-up race with kube-proxy (lab/cni-notes.md).
type FlanneldUnit struct {
	// NodeName is the node's name (NODE_NAME), whose podCIDR flannel uses.
	NodeName string
	// Interface is the interface (name or IP) that carries VXLAN traffic: the one holding the node IP.
	Interface string
	// IPMasq masquerades pod traffic that leaves the pod network.
	IPMasq bool
	// IPTablesResync is how often (seconds) flanneld re-checks its iptables rules (DefaultFlannelIPTablesResync).
	IPTablesResync int
}

// Target implements File.
func (FlanneldUnit) Target() Target {
	return Target{Template: "systemd/flanneld.service.tmpl", Path: PathFlanneldUnit, Mode: modeConfig}
}

// Validate implements File.
func (u FlanneldUnit) Validate() error {
	var e errs
	e.nodeName("NodeName", u.NodeName)
	if _, err := netip.ParseAddr(u.Interface); err != nil && !ifaceName.MatchString(u.Interface) {
		e.addf("Interface %q is neither an interface name nor an IP address", u.Interface)
	}
	if u.IPTablesResync < 1 {
		e.addf("IPTablesResync %d: want at least 1 second", u.IPTablesResync)
	}
	return e.join("flanneld unit")
}

// FlannelNetConf is the data of flannel/net-conf.json.tmpl.
type FlannelNetConf struct {
	// Network is the pod CIDR; it must equal kube-controller-manager's --cluster-cidr.
	Network string
	// VNI and Port are the VXLAN network identifier and UDP port.
	VNI  int
	Port int
	// EnableNFTables makes flannel write nftables rules instead of iptables ones.
	EnableNFTables bool
}

// Target implements File.
func (FlannelNetConf) Target() Target {
	return Target{Template: "flannel/net-conf.json.tmpl", Path: PathFlannelNetConf, Mode: modeConfig}
}

// Validate implements File.
func (c FlannelNetConf) Validate() error {
	var e errs
	if p := e.cidr("Network", c.Network); p.IsValid() && !p.Addr().Is4() {
		e.addf("Network %q: only IPv4 pod networks are supported", c.Network)
	}
	if c.VNI < 1 || c.VNI > 1<<24-1 {
		e.addf("VNI %d is out of range 1-16777215", c.VNI)
	}
	port(&e, "Port", c.Port)
	return e.join("flannel net-conf")
}

// FlannelCNIConf is the data of cni/10-flannel.conflist.tmpl: the flannel meta plugin (delegating to bridge
// with the node's podCIDR from /run/flannel/subnet.env) chained with portmap for hostPort.
type FlannelCNIConf struct {
	// CNIVersion is the CNI spec version (DefaultCNIVersion).
	CNIVersion string
	// NetworkName is the CNI network name (DefaultCNINetworkName).
	NetworkName string
}

// Target implements File.
func (FlannelCNIConf) Target() Target {
	return Target{Template: "cni/10-flannel.conflist.tmpl", Path: PathFlannelCNIConf, Mode: modeConfig}
}

// Validate implements File.
func (c FlannelCNIConf) Validate() error {
	var e errs
	e.oneOf("CNIVersion", c.CNIVersion, "0.3.0", "0.3.1", "0.4.0")
	if !labelName.MatchString(c.NetworkName) {
		e.addf("NetworkName %q is not a plain name", c.NetworkName)
	}
	return e.join("flannel CNI config")
}

// KeepalivedConfig is the data of keepalived/keepalived.conf.tmpl: one VRRP instance that holds the API VIP on
// the master whose apiserver answers /readyz. All masters start as BACKUP; with preemption (the default), the
// healthy master with the highest priority takes the VIP. A failing check puts the instance into FAULT, which
// releases the VIP. VRRP runs over unicast, so networks without multicast work.
type KeepalivedConfig struct {
	// RouterID names this node in keepalived's logs (the node name).
	RouterID string
	// Interface is the interface that holds the node IP; the VIP is added to it.
	Interface string
	// VIP and VIPPrefixLen are the API address and its prefix length in the node network.
	VIP          string
	VIPPrefixLen int
	// VirtualRouterID (1-255) must be unique among VRRP instances on the network segment.
	VirtualRouterID int
	// Priority (1-254) orders the masters; give each master a different one.
	Priority int
	// AuthPass authenticates VRRP adverts (PASS, at most 8 characters: keepalived ignores the rest).
	AuthPass string
	// UnicastSrcIP is this node's IP; UnicastPeers are the other masters' IPs.
	UnicastSrcIP string
	UnicastPeers []string
	// CheckTimeoutSeconds bounds one run of the apiserver check (its curl --max-time); the check runs every
	// CheckTimeoutSeconds+1 seconds. Slow hosts (TCG VMs) need more than the 2 s real hardware answers in.
	CheckTimeoutSeconds int
}

// CheckInterval is how often keepalived runs the apiserver check: one second more than a run may take, so
// that runs never overlap and keepalived sees curl's own verdict rather than its own timeout.
func (c KeepalivedConfig) CheckInterval() int { return c.CheckTimeoutSeconds + 1 }

// TrackCheck reports whether the apiserver check moves the VIP. With a single master nobody could take the
// VIP over, and releasing it would turn a slow /readyz into "no route to host" for every client, so the only
// master always holds it.
func (c KeepalivedConfig) TrackCheck() bool { return len(c.UnicastPeers) > 0 }

// Target implements File.
func (KeepalivedConfig) Target() Target {
	return Target{Template: "keepalived/keepalived.conf.tmpl", Path: PathKeepalivedConfig, Mode: modeSecret}
}

var vrrpPass = regexp.MustCompile(`^[A-Za-z0-9._~+-]{1,8}$`)

// Validate implements File.
func (c KeepalivedConfig) Validate() error {
	var e errs
	e.nodeName("RouterID", c.RouterID)
	if !ifaceName.MatchString(c.Interface) {
		e.addf("Interface %q is not an interface name", c.Interface)
	}
	vip := e.ip("VIP", c.VIP)
	if vip.IsValid() && (vip.IsLoopback() || vip.IsUnspecified()) {
		e.addf("VIP %q must be a routable address", c.VIP)
	}
	if vip.IsValid() && (c.VIPPrefixLen < 1 || c.VIPPrefixLen > vip.BitLen()) {
		e.addf("VIPPrefixLen %d is out of range", c.VIPPrefixLen)
	}
	if c.VirtualRouterID < 1 || c.VirtualRouterID > 255 {
		e.addf("VirtualRouterID %d is out of range 1-255", c.VirtualRouterID)
	}
	if c.Priority < 1 || c.Priority > 254 {
		e.addf("Priority %d is out of range 1-254", c.Priority)
	}
	if !vrrpPass.MatchString(c.AuthPass) {
		e.addf("AuthPass must be 1-8 characters of [A-Za-z0-9._~+-]")
	}
	src := e.ip("UnicastSrcIP", c.UnicastSrcIP)
	for i, p := range c.UnicastPeers {
		if a := e.ip("UnicastPeers["+strconv.Itoa(i)+"]", p); a.IsValid() && a == src {
			e.addf("UnicastPeers lists this node's own IP %s", p)
		}
		if p == c.VIP {
			e.addf("UnicastPeers lists the VIP %s", p)
		}
	}
	if c.UnicastSrcIP == c.VIP {
		e.addf("UnicastSrcIP must be the node IP, not the VIP")
	}
	if c.CheckTimeoutSeconds < 1 || c.CheckTimeoutSeconds > 60 {
		e.addf("CheckTimeoutSeconds %d is out of range 1-60", c.CheckTimeoutSeconds)
	}
	return e.join("keepalived config")
}

// KeepalivedCheck is the data of keepalived/check-apiserver.sh.tmpl.
type KeepalivedCheck struct {
	// APIServerPort is the local apiserver's secure port.
	APIServerPort int
	// TimeoutSeconds is curl's --max-time (KeepalivedConfig.CheckTimeoutSeconds).
	TimeoutSeconds int
}

// Target implements File.
func (KeepalivedCheck) Target() Target {
	return Target{Template: "keepalived/check-apiserver.sh.tmpl", Path: PathKeepalivedCheck, Mode: modeExec}
}

// Validate implements File.
func (c KeepalivedCheck) Validate() error {
	var e errs
	port(&e, "APIServerPort", c.APIServerPort)
	if c.TimeoutSeconds < 1 || c.TimeoutSeconds > 60 {
		e.addf("TimeoutSeconds %d is out of range 1-60", c.TimeoutSeconds)
	}
	return e.join("keepalived check")
}

// KeepalivedDropIn is the data of systemd/keepalived.service.d/10-kubesmith.conf.tmpl, a drop-in for the
// distribution's keepalived.service (keepalived is a host prerequisite from apt) that restarts it on failure.
type KeepalivedDropIn struct{}

// Target implements File.
func (KeepalivedDropIn) Target() Target {
	return Target{Template: "systemd/keepalived.service.d/10-kubesmith.conf.tmpl", Path: PathKeepalivedDropIn, Mode: modeConfig}
}

// Validate implements File.
func (KeepalivedDropIn) Validate() error { return nil }
