package render

import (
	"fmt"
	"regexp"
	"strconv"
)

// Load balancer paths. A frontend host runs its own HAProxy and keepalived units next to (never instead of) the
// distribution's, so that a master, which runs the distribution's keepalived for the API VIP, can also be one.
const (
	// LBDir holds a frontend host's configuration and its ownership marker.
	LBDir = "/etc/kubesmith/lb"
	// PathLBHAProxyConfig is HAProxy's configuration on a frontend host.
	PathLBHAProxyConfig = LBDir + "/haproxy.cfg"
	// PathLBKeepalivedConfig is keepalived's configuration on a frontend host.
	PathLBKeepalivedConfig = LBDir + "/keepalived.conf"
	// PathLBCheck is the keepalived health check of the local HAProxy.
	PathLBCheck = LBDir + "/check-haproxy.sh"
	// PathLBHAProxyUnit and PathLBKeepalivedUnit are the frontend units.
	PathLBHAProxyUnit    = UnitDir + "/" + LBHAProxyUnit + ".service"
	PathLBKeepalivedUnit = UnitDir + "/" + LBKeepalivedUnit + ".service"
	// LBHAProxyUnit and LBKeepalivedUnit are the frontend units' names.
	LBHAProxyUnit    = "kubesmith-lb-haproxy"
	LBKeepalivedUnit = "kubesmith-lb-keepalived"
	// LBStatsSocket is HAProxy's admin socket; Read takes the backends' health from `show stat`.
	LBStatsSocket = "/run/kubesmith-lb-haproxy/admin.sock"
)

// MetalLBAddon is the data of addons/metallb.yaml.tmpl: MetalLB's controller and speaker (L2 mode) with images
// from the bundle, and the Role that lets the pool manager manage address pools.
type MetalLBAddon struct {
	// Version is the MetalLB release the manifest comes from (v0.15.2).
	Version string
	// ControllerImage and SpeakerImage are imported from the bundle.
	ControllerImage string
	SpeakerImage    string
	// ImagePullPolicy is IfNotPresent or Never: nodes never pull.
	ImagePullPolicy string
	// PoolManagerGroup gets the metallb-system Role.
	PoolManagerGroup string
}

// PathMetalLBAddon keeps a copy of the MetalLB manifest on masters.
const PathMetalLBAddon = AddonsDir + "/metallb.yaml"

// Target implements File.
func (MetalLBAddon) Target() Target {
	return Target{Template: "addons/metallb.yaml.tmpl", Path: PathMetalLBAddon, Mode: modeConfig}
}

// Validate implements File.
func (a MetalLBAddon) Validate() error {
	var e errs
	if a.Version != "v0.15.2" {
		e.addf("Version %q: the embedded manifest is MetalLB v0.15.2; rebuild the bundle or update templates/files/addons/metallb.yaml.tmpl", a.Version)
	}
	e.image("ControllerImage", a.ControllerImage)
	e.image("SpeakerImage", a.SpeakerImage)
	e.oneOf("ImagePullPolicy", a.ImagePullPolicy, "IfNotPresent", "Never")
	e.word("PoolManagerGroup", a.PoolManagerGroup)
	return e.join("metallb add-on")
}

// LBBackend is one server of a frontend.
type LBBackend struct {
	// Address and Port are where HAProxy forwards to.
	Address string
	Port    int
}

// LBFrontend is one TCP port on the VIP.
type LBFrontend struct {
	// Port is the port on the VIP.
	Port int
	// Backends are health-checked and balanced round-robin.
	Backends []LBBackend
}

// Name is the HAProxy proxy name of the frontend.
func (f LBFrontend) Name() string { return "port_" + strconv.Itoa(f.Port) }

// LBHAProxyConfig is the data of lb/haproxy.cfg.tmpl: TCP frontends on the VIP, each with health-checked backends.
type LBHAProxyConfig struct {
	// VIP is the frontend address. HAProxy binds it with "transparent" (IP_TRANSPARENT), so it starts on hosts that do not hold it.
	VIP       string
	Frontends []LBFrontend
}

// Target implements File.
func (LBHAProxyConfig) Target() Target {
	return Target{Template: "lb/haproxy.cfg.tmpl", Path: PathLBHAProxyConfig, Mode: modeConfig}
}

// Validate implements File.
func (c LBHAProxyConfig) Validate() error {
	var e errs
	e.nonLoopbackIP("VIP", c.VIP)
	if len(c.Frontends) == 0 {
		e.addf("no frontends")
	}
	seen := map[int]bool{}
	for i, f := range c.Frontends {
		field := "Frontends[" + strconv.Itoa(i) + "]"
		validPort(&e, field+".Port", f.Port)
		if seen[f.Port] {
			e.addf("%s: port %d is given twice", field, f.Port)
		}
		seen[f.Port] = true
		if len(f.Backends) == 0 {
			e.addf("%s has no backends", field)
		}
		for j, b := range f.Backends {
			bf := fmt.Sprintf("%s.Backends[%d]", field, j)
			e.nonLoopbackIP(bf+".Address", b.Address)
			validPort(&e, bf+".Port", b.Port)
		}
	}
	return e.join("haproxy config")
}

func validPort(e *errs, field string, p int) {
	if p < 1 || p > 65535 {
		e.addf("%s %d is not a port (1-65535)", field, p)
	}
}

// LBKeepalivedConfig is the data of lb/keepalived.conf.tmpl: the frontend VIP on a host whose HAProxy runs,
// over unicast VRRP.
type LBKeepalivedConfig struct {
	// Instance names the VRRP instance (the load balancer's name).
	Instance string
	// The rest is as in KeepalivedConfig.
	RouterID        string
	Interface       string
	VIP             string
	VIPPrefixLen    int
	VirtualRouterID int
	Priority        int
	AuthPass        string
	UnicastSrcIP    string
	UnicastPeers    []string
}

// Target implements File.
func (LBKeepalivedConfig) Target() Target {
	return Target{Template: "lb/keepalived.conf.tmpl", Path: PathLBKeepalivedConfig, Mode: modeSecret}
}

var instanceName = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,62})$`)

// Validate implements File.
func (c LBKeepalivedConfig) Validate() error {
	var e errs
	if !instanceName.MatchString(c.Instance) {
		e.addf("Instance %q is not a plain name", c.Instance)
	}
	if err := (KeepalivedConfig{
		RouterID: c.RouterID, Interface: c.Interface, VIP: c.VIP, VIPPrefixLen: c.VIPPrefixLen,
		VirtualRouterID: c.VirtualRouterID, Priority: c.Priority, AuthPass: c.AuthPass,
		UnicastSrcIP: c.UnicastSrcIP, UnicastPeers: c.UnicastPeers, CheckTimeoutSeconds: 1, // its check is systemctl is-active
	}).Validate(); err != nil {
		e = append(e, err)
	}
	return e.join("load balancer keepalived config")
}

// LBCheck is the data of lb/check-haproxy.sh.tmpl (no fields).
type LBCheck struct{}

// Target implements File.
func (LBCheck) Target() Target {
	return Target{Template: "lb/check-haproxy.sh.tmpl", Path: PathLBCheck, Mode: modeExec}
}

// Validate implements File.
func (LBCheck) Validate() error { return nil }

// LBHAProxyUnitFile is the data of systemd/kubesmith-lb-haproxy.service.tmpl.
type LBHAProxyUnitFile struct{}

// Target implements File.
func (LBHAProxyUnitFile) Target() Target {
	return Target{Template: "systemd/kubesmith-lb-haproxy.service.tmpl", Path: PathLBHAProxyUnit, Mode: modeConfig}
}

// Validate implements File.
func (LBHAProxyUnitFile) Validate() error { return nil }

// LBKeepalivedUnitFile is the data of systemd/kubesmith-lb-keepalived.service.tmpl.
type LBKeepalivedUnitFile struct{}

// Target implements File.
func (LBKeepalivedUnitFile) Target() Target {
	return Target{Template: "systemd/kubesmith-lb-keepalived.service.tmpl", Path: PathLBKeepalivedUnit, Mode: modeConfig}
}

// Validate implements File.
func (LBKeepalivedUnitFile) Validate() error { return nil }
