package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/render"
)

// ServicePool is a MetalLB address pool from which Services of type LoadBalancer get their addresses.
type ServicePool struct {
	// Name is a DNS label, unique within the load balancer.
	Name string
	// Addresses are CIDRs ("192.168.150.200/29") or ranges ("192.168.150.200-192.168.150.220").
	Addresses []string
}

// Frontend is one TCP port on the load balancer's VIP, forwarded by HAProxy to health-checked backends.
type Frontend struct {
	// Port is the port on the VIP.
	Port int
	// TargetPort is the backends' port; Port when zero.
	TargetPort int
	// BackendAddresses are the servers, for example a node pool's addresses.
	BackendAddresses []string
}

// LoadBalancerSpec is the desired state of a load balancer: MetalLB service pools, and optional HA TCP
// frontends (keepalived VIP + HAProxy) on frontend hosts.
type LoadBalancerSpec struct {
	// Name is a DNS label; it names the MetalLB objects and the VRRP instance.
	Name string
	// Cluster is the cluster's non-secret join object; Credentials its restricted pool-manager identity.
	Cluster     Join
	Credentials PoolCredentials
	// ServicePools are MetalLB L2 address pools.
	ServicePools []ServicePool
	// VIP is the frontends' address; required when Frontends is not empty.
	VIP string
	// Frontends are TCP ports on the VIP.
	Frontends []Frontend
	// Hosts run HAProxy and keepalived for the frontends: dedicated machines (two for HA) or a pool's nodes.
	Hosts []Host
	// Libvirt, when set, makes the frontend hosts libvirt VMs that kubesmith creates; Hosts is then derived
	// from it. The VMs are named ks-<cluster>-lb-<name>-<n>.
	Libvirt *LibvirtMachines
	SSH     SSH
}

// BackendStatus is one backend's health as HAProxy on the VIP holder sees it.
type BackendStatus struct {
	Port       int
	Address    string
	TargetPort int
	// Status is HAProxy's check result: UP, DOWN, NOLB, MAINT, or "no check".
	Status string
}

// ServiceAddress is a LoadBalancer Service that holds an address from one of the load balancer's pools.
type ServiceAddress struct {
	// Service is "namespace/name".
	Service string
	Address string
	// Node is the node that announces the address (L2), empty when none does.
	Node string
}

// LoadBalancerState is what exists of a load balancer.
type LoadBalancerState struct {
	// ClusterUID is the cluster the load balancer belongs to.
	ClusterUID string
	// Hosts are the frontend hosts that carry (or may carry, after a failed apply) its configuration.
	Hosts []Host
	// VRRPPassword authenticates VRRP between the frontend hosts (secret).
	VRRPPassword string
	// ConfigHash is DesiredLoadBalancerHash when everything matches, otherwise "drift:<what>" or "".
	ConfigHash string
	// VIPHolder is the frontend host that holds the VIP, empty when none does.
	VIPHolder string
	// Backends is the health of every frontend backend.
	Backends []BackendStatus
	// Services are the Services that got an address from the pools.
	Services []ServiceAddress
	// Machines are the VMs kubesmith created for the frontends (libvirt only).
	Machines []Machine
}

// LoadBalancerReadResult is what ReadLoadBalancer observed.
type LoadBalancerReadResult struct {
	State LoadBalancerState
	// Gone is true only when the cluster answered without any of the load balancer's pools and every frontend
	// host answered without its marker.
	Gone     bool
	Warnings []string
}

// MetalLB objects.
const (
	metallbNamespace = "metallb-system"
	metallbAPI       = "/apis/metallb.io/v1beta1/namespaces/" + metallbNamespace
	// LabelLoadBalancer marks the MetalLB objects of one load balancer with its name.
	LabelLoadBalancer = "kubesmith.io/loadbalancer"
	labelManagedBy    = "app.kubernetes.io/managed-by"
)

// ValidateLoadBalancerSpec checks a load balancer spec without touching anything: names, that every pool and
// the VIP lie in the cluster's node network and overlap neither each other, nor the API VIP, nor node or backend
// addresses, nor the pod and service networks.
func ValidateLoadBalancerSpec(spec LoadBalancerSpec) []FieldError {
	if spec.Libvirt != nil {
		var errs []FieldError
		add := func(path, summary, detail string, args ...any) {
			errs = append(errs, FieldError{Path: path, Summary: summary, Detail: fmt.Sprintf(detail, args...)})
		}
		validateLibvirt(spec.Libvirt, "libvirt", spec.Cluster.ClusterName, LoadBalancerRole(spec.Name), add)
		s := spec
		s.Libvirt = nil
		s.Hosts = MachineHosts(spec.Cluster.ClusterName, LoadBalancerRole(spec.Name), spec.Libvirt)
		return append(errs, mapMachineErrors(ValidateLoadBalancerSpec(s), "libvirt")...)
	}
	var errs []FieldError
	add := func(path, summary, detail string, args ...any) {
		errs = append(errs, FieldError{Path: path, Summary: summary, Detail: fmt.Sprintf(detail, args...)})
	}
	if !poolNameRe.MatchString(spec.Name) {
		add("name", "Invalid load balancer name", "%q must be 1-32 lower-case letters, digits or '-', starting and ending with a letter or digit.", spec.Name)
	}
	j := spec.Cluster
	validateJoinIdentity(j, add)
	if spec.Credentials.ClientCert == "" || spec.Credentials.ClientKey == "" {
		add("credentials", "Missing pool credentials", "credentials must be the pool_credentials attribute of the kubesmith_cluster.")
	}
	nodeNet, nodeOK := parsePrefix(j.NodeNetwork)
	if !nodeOK {
		add("cluster.node_network", "Invalid node network", "%q is not a CIDR.", j.NodeNetwork)
	}
	// Addresses nothing may take: the API VIP, the masters, the frontend hosts, the backends, the frontend VIP.
	taken := map[netip.Addr]string{}
	if ap, err := endpointAddr(j.Endpoint); err == nil {
		taken[ap.Addr()] = "the cluster's API VIP"
	}
	for _, m := range j.Masters {
		if a, err := netip.ParseAddr(m); err == nil {
			taken[a] = "master " + m
		}
	}
	if len(spec.ServicePools) == 0 && len(spec.Frontends) == 0 {
		add("service_pools", "Nothing to do", "A load balancer needs service_pools, frontends, or both.")
	}

	// Frontends.
	var vip netip.Addr
	if spec.VIP != "" {
		a, err := netip.ParseAddr(spec.VIP)
		switch {
		case err != nil:
			add("vip", "Invalid VIP", "%q is not an IP address.", spec.VIP)
		case nodeOK && !nodeNet.Contains(a):
			add("vip", "VIP outside the node network", "%s is not in the cluster's node network %s; keepalived can only hold an address of the nodes' own network.", a, nodeNet)
		case taken[a] != "":
			add("vip", "VIP already in use", "%s is %s; choose a free address in %s.", a, taken[a], j.NodeNetwork)
		default:
			vip = a
		}
	}
	if len(spec.Frontends) > 0 {
		if spec.VIP == "" {
			add("vip", "Missing VIP", "frontends need a vip: a free address in the node network %s that keepalived moves between the frontend hosts.", j.NodeNetwork)
		}
		if len(spec.Hosts) == 0 {
			add("hosts", "No frontend hosts", "frontends run on hosts: list two (for HA) dedicated machines or nodes of a pool.")
		}
	} else {
		if spec.VIP != "" {
			add("vip", "VIP without frontends", "vip is only used by frontends; remove it or add frontends.")
		}
		if len(spec.Hosts) > 0 {
			add("hosts", "Hosts without frontends", "hosts run the frontends; remove them or add frontends.")
		}
	}
	seenPort := map[int]bool{}
	for i, f := range spec.Frontends {
		p := fmt.Sprintf("frontends[%d]", i)
		if f.Port < 1 || f.Port > 65535 {
			add(p+".port", "Invalid port", "%d is not a TCP port (1-65535).", f.Port)
		} else if seenPort[f.Port] {
			add(p+".port", "Duplicate port", "port %d is used by two frontends.", f.Port)
		}
		seenPort[f.Port] = true
		if f.TargetPort < 0 || f.TargetPort > 65535 {
			add(p+".target_port", "Invalid port", "%d is not a TCP port (1-65535).", f.TargetPort)
		}
		if len(f.BackendAddresses) == 0 {
			add(p+".backend_addresses", "No backends", "A frontend needs at least one backend address, for example a node pool's addresses.")
		}
		for k, b := range f.BackendAddresses {
			a, err := netip.ParseAddr(b)
			switch {
			case err != nil:
				add(fmt.Sprintf("%s.backend_addresses[%d]", p, k), "Invalid backend address", "%q is not an IP address.", b)
			case a == vip:
				add(fmt.Sprintf("%s.backend_addresses[%d]", p, k), "Backend is the VIP", "%s is the load balancer's own VIP; HAProxy would forward to itself.", a)
			default:
				if _, ok := taken[a]; !ok {
					taken[a] = "backend " + b
				}
			}
		}
	}
	validateHosts(spec.Hosts, hostRules{
		list:    "hosts",
		network: "the cluster's node network",
		checkAddr: func(i int, _ Host, a netip.Addr) {
			if a == vip {
				add(fmt.Sprintf("hosts[%d].address", i), "Address is the VIP", "%s is the load balancer's VIP; a frontend host needs its own address.", a)
			}
			taken[a] = fmt.Sprintf("frontend host %s", a)
		},
	}, nodeNet, nodeOK, spec.SSH.KnownHostsPath != "", add)
	if vip.IsValid() {
		taken[vip] = "the load balancer's VIP"
	}
	if len(spec.Hosts) > 0 && spec.SSH.PrivateKey == "" && spec.SSH.PrivateKeyPath == "" && !spec.SSH.UseAgent {
		add("ssh", "Missing SSH key", "No SSH credentials: set ssh.private_key_path or ssh.private_key in the provider block, or ssh.use_agent = true.")
	}

	// Service pools.
	podNet, podOK := parsePrefix(j.PodCIDR)
	svcNet, svcOK := parsePrefix(j.ServiceCIDR)
	type span struct {
		path     string
		from, to netip.Addr
	}
	var spans []span
	seenPool := map[string]bool{}
	for i, sp := range spec.ServicePools {
		p := fmt.Sprintf("service_pools[%d]", i)
		if !poolNameRe.MatchString(sp.Name) {
			add(p+".name", "Invalid pool name", "%q must be 1-32 lower-case letters, digits or '-', starting and ending with a letter or digit.", sp.Name)
		} else if seenPool[sp.Name] {
			add(p+".name", "Duplicate pool name", "%q names two pools.", sp.Name)
		}
		seenPool[sp.Name] = true
		if len(sp.Addresses) == 0 {
			add(p+".addresses", "Empty pool", "A pool needs at least one CIDR or range, such as \"192.168.150.200-192.168.150.220\".")
		}
		for k, s := range sp.Addresses {
			ap := fmt.Sprintf("%s.addresses[%d]", p, k)
			from, to, err := parseAddressRange(s)
			if err != nil {
				add(ap, "Invalid address range", "%v.", err)
				continue
			}
			if nodeOK && (!nodeNet.Contains(from) || !nodeNet.Contains(to)) {
				add(ap, "Pool outside the node network", "%s is not inside the cluster's node network %s: in L2 mode, MetalLB answers ARP for these addresses on the nodes' network, so they must belong to it.", s, nodeNet)
				continue
			}
			for _, net := range []struct {
				ok   bool
				p    netip.Prefix
				name string
			}{{podOK, podNet, "pod network"}, {svcOK, svcNet, "service network"}} {
				if net.ok && rangeOverlapsPrefix(from, to, net.p) {
					add(ap, "Pool overlaps the "+net.name, "%s overlaps the cluster's %s %s.", s, net.name, net.p)
				}
			}
			var hits []string
			for a, what := range taken {
				if a.Compare(from) >= 0 && a.Compare(to) <= 0 {
					hits = append(hits, fmt.Sprintf("%s (%s)", a, what))
				}
			}
			if len(hits) > 0 {
				sort.Strings(hits)
				add(ap, "Pool contains addresses in use", "%s contains %s; MetalLB would hand them to Services. Shrink the range.", s, strings.Join(hits, ", "))
			}
			for _, o := range spans {
				if from.Compare(o.to) <= 0 && o.from.Compare(to) <= 0 {
					add(ap, "Overlapping pools", "%s overlaps %s.", s, o.path)
				}
			}
			spans = append(spans, span{path: ap, from: from, to: to})
		}
	}
	return errs
}

// parseAddressRange parses "a.b.c.d/n" or "a.b.c.d-a.b.c.e" into its first and last address.
func parseAddressRange(s string) (netip.Addr, netip.Addr, error) {
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(from))
		b, err2 := netip.ParseAddr(strings.TrimSpace(to))
		if err1 != nil || err2 != nil || a.Is4() != b.Is4() {
			return netip.Addr{}, netip.Addr{}, fmt.Errorf("%q is not a range like \"192.168.150.200-192.168.150.220\"", s)
		}
		if b.Less(a) {
			return netip.Addr{}, netip.Addr{}, fmt.Errorf("%q ends before it starts", s)
		}
		return a, b, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("%q is neither a CIDR nor a range like \"192.168.150.200-192.168.150.220\"", s)
	}
	if p != p.Masked() {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p.Addr(), lastAddr(p), nil
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - uint(i%8))
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func rangeOverlapsPrefix(from, to netip.Addr, p netip.Prefix) bool {
	if from.Is4() != p.Addr().Is4() {
		return false
	}
	first, last := p.Masked().Addr(), lastAddr(p)
	return from.Compare(last) <= 0 && first.Compare(to) <= 0
}

// ValidateLoadBalancer implements API.
func (e *Engine) ValidateLoadBalancer(_ context.Context, spec LoadBalancerSpec) []FieldError {
	return ValidateLoadBalancerSpec(spec)
}

// withMachineKeys pins the host keys of VMs kubesmith created (recorded in state) on the hosts that stand for them.
func withMachineKeys(hosts []Host, ms []Machine) {
	for i := range hosts {
		for _, m := range ms {
			if m.Name == hosts[i].Name && hosts[i].HostPublicKey == "" {
				hosts[i].HostPublicKey, hosts[i].User = m.HostPublicKey, "root"
			}
		}
	}
}

// LoadBalancerRole is the role part of the names of a load balancer's VMs: they are ks-<cluster>-lb-<name>-<n>.
func LoadBalancerRole(name string) string { return "lb-" + name }

func lbDefaults(s LoadBalancerSpec) LoadBalancerSpec {
	if s.Libvirt != nil {
		s.Hosts = expandMachines(s.Hosts, s.Cluster.ClusterName, LoadBalancerRole(s.Name), s.Libvirt)
	}
	s.Frontends = slices.Clone(s.Frontends)
	for i := range s.Frontends {
		if s.Frontends[i].TargetPort == 0 {
			s.Frontends[i].TargetPort = s.Frontends[i].Port
		}
	}
	if s.SSH.ConnectTimeout == 0 {
		s.SSH.ConnectTimeout = 5 * time.Minute
	}
	return s
}

// DesiredLoadBalancerHash implements API: it covers the pools and everything rendered on the frontend hosts.
func (e *Engine) DesiredLoadBalancerHash(spec LoadBalancerSpec) (string, error) {
	spec = lbDefaults(spec)
	hosts := make([]string, 0, len(spec.Hosts))
	for _, h := range spec.Hosts {
		hosts = append(hosts, h.Name+"="+h.Address)
	}
	b, err := json.Marshal(struct {
		V         string        `json:"v"`
		UID       string        `json:"uid"`
		Name      string        `json:"name"`
		Pools     []ServicePool `json:"pools"`
		VIP       string        `json:"vip"`
		Frontends []Frontend    `json:"frontends"`
		Hosts     []string      `json:"hosts"`
	}{engineConfigVersion, spec.Cluster.ClusterUID, spec.Name, spec.ServicePools, spec.VIP, spec.Frontends, hosts})
	if err != nil {
		return "", fmt.Errorf("hashing the load balancer: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

// lbOwner is the marker a frontend host carries.
func lbOwner(spec LoadBalancerSpec) string { return spec.Cluster.ClusterUID + "/" + spec.Name }

// lbRouterID derives the VRRP virtual router ID from the cluster UID and the name, different from the
// API VIP's, so that both instances share the node network.
func lbRouterID(spec LoadBalancerSpec) int {
	api := phase.KeepalivedRouterID(spec.Cluster.ClusterUID)
	id := phase.KeepalivedRouterID(spec.Cluster.ClusterUID + "/lb/" + spec.Name)
	if id == api {
		id = id%254 + 1
	}
	return id
}

// lbConfig is the frontend configuration of spec.
func lbConfig(spec LoadBalancerSpec, password string) phase.LBConfig {
	cfg := phase.LBConfig{
		Owner: lbOwner(spec), Instance: strings.ReplaceAll(spec.Name, "-", "_"), VIP: netip.MustParseAddr(spec.VIP),
		VirtualRouterID: lbRouterID(spec), Password: password,
	}
	for _, h := range spec.Hosts {
		cfg.Hosts = append(cfg.Hosts, h.Address)
	}
	for _, f := range spec.Frontends {
		fe := render.LBFrontend{Port: f.Port}
		for _, b := range f.BackendAddresses {
			fe.Backends = append(fe.Backends, render.LBBackend{Address: b, Port: f.TargetPort})
		}
		cfg.Frontends = append(cfg.Frontends, fe)
	}
	return cfg
}

// ApplyLoadBalancer implements API: it converges the MetalLB pools, the frontend hosts, and removes the
// frontend from hosts that left the spec.
func (e *Engine) ApplyLoadBalancer(ctx context.Context, spec LoadBalancerSpec, prior *LoadBalancerState, progress Progress) (LoadBalancerState, error) {
	spec = lbDefaults(spec)
	ctx = machineContext(ctx, spec.Libvirt) // slow (emulated) machines get longer waits and API timeouts
	state := LoadBalancerState{ClusterUID: spec.Cluster.ClusterUID}
	if prior != nil {
		state = *prior
	}
	if errs := ValidateLoadBalancerSpec(spec); len(errs) > 0 {
		return state, fmt.Errorf("invalid load balancer: %w", joinFieldErrors(errs))
	}
	if prior != nil && prior.ClusterUID != "" && prior.ClusterUID != spec.Cluster.ClusterUID {
		return state, fmt.Errorf("the load balancer belongs to cluster %s, not %s; a load balancer cannot move between clusters", prior.ClusterUID, spec.Cluster.ClusterUID)
	}
	if state.VRRPPassword == "" {
		pw, err := randomString(8)
		if err != nil {
			return state, err
		}
		state.VRRPPassword = pw
	}
	p := progressAdapter(progress)
	api, err := newKubeAPI(ctx, spec.Cluster, spec.Credentials)
	if err != nil {
		return state, err
	}
	if err := phaseOnce(ctx, p, "service-pools", func(ctx context.Context) error {
		return e.applyServicePools(ctx, api, spec)
	}); err != nil {
		return state, err
	}
	if spec.Libvirt != nil {
		keys, err := authorizedKeys(spec.SSH)
		if err != nil {
			return state, err
		}
		g := machineGroup(spec.Cluster.ClusterName, spec.Cluster.ClusterUID, LoadBalancerRole(spec.Name), spec.Hosts, spec.Libvirt, keys)
		ms, err := e.ensureMachines(ctx, g, spec.Hosts, progress)
		state.Machines = mergeMachines(state.Machines, ms)
		if err != nil {
			return state, err
		}
	}
	// Record the hosts before touching them, so that a failed apply still knows where to clean up.
	state.Hosts = mergeHosts(state.Hosts, spec.Hosts)
	if len(spec.Frontends) > 0 {
		if err := e.applyFrontends(ctx, spec, state.VRRPPassword, p); err != nil {
			return state, err
		}
	}
	var removed []Host
	for _, h := range state.Hosts {
		if !slices.ContainsFunc(spec.Hosts, func(s Host) bool { return s.Address == h.Address }) {
			removed = append(removed, h)
		}
	}
	if len(removed) > 0 {
		if err := e.removeFrontends(ctx, spec, removed, p); err != nil {
			return state, err
		}
	}
	state.Hosts = slices.Clone(spec.Hosts)
	state.Machines = keepMachines(state.Machines, spec.Hosts)
	e.observeLB(ctx, spec, &state, api, nil)
	if state.ConfigHash == "" || strings.HasPrefix(state.ConfigHash, "drift:") {
		return state, fmt.Errorf("the load balancer did not converge: %s", strings.TrimPrefix(state.ConfigHash, "drift:"))
	}
	return state, nil
}

// applyServicePools creates or updates the MetalLB IPAddressPools and the L2Advertisement of spec, and
// deletes the load balancer's pools that left the spec.
func (e *Engine) applyServicePools(ctx context.Context, api *kubeAPI, spec LoadBalancerSpec) error {
	have, err := listLBObjects(ctx, api, "ipaddresspools", spec.Name)
	if err != nil {
		if isStatus(err, 404) && len(spec.ServicePools) == 0 {
			return nil // MetalLB is not installed and nothing asks for it
		}
		if isStatus(err, 404) {
			return errors.New("MetalLB is not installed in the cluster: keep \"metallb\" in the kubesmith_cluster's addons (the default) and apply the cluster first")
		}
		return err
	}
	var want []string
	if len(spec.ServicePools) > 0 {
		if err := waitMetalLBWebhook(ctx, api); err != nil {
			return err
		}
		for _, sp := range spec.ServicePools {
			name := spec.Name + "-" + sp.Name
			want = append(want, name)
			obj := metallbObject("IPAddressPool", name, spec.Name, map[string]any{
				"addresses": sp.Addresses, "autoAssign": true, "avoidBuggyIPs": false,
			})
			if err := applyMetalLB(ctx, api, "ipaddresspools", name, obj); err != nil {
				return err
			}
		}
		adv := metallbObject("L2Advertisement", spec.Name, spec.Name, map[string]any{"ipAddressPools": want})
		if err := applyMetalLB(ctx, api, "l2advertisements", spec.Name, adv); err != nil {
			return err
		}
	} else if err := deleteMetalLB(ctx, api, "l2advertisements", spec.Name); err != nil {
		return err
	}
	for _, name := range have {
		if !slices.Contains(want, name) {
			if err := deleteMetalLB(ctx, api, "ipaddresspools", name); err != nil {
				return err
			}
		}
	}
	return nil
}

func metallbObject(kind, name, lb string, spec map[string]any) map[string]any {
	return map[string]any{
		"apiVersion": "metallb.io/v1beta1",
		"kind":       kind,
		"metadata": map[string]any{
			"name": name, "namespace": metallbNamespace,
			"labels": map[string]string{labelManagedBy: "kubesmith", LabelLoadBalancer: lb},
		},
		"spec": spec,
	}
}

// applyMetalLB server-side applies obj. The webhook may still reject requests for a few seconds after its
// endpoints turn ready (its certificate is injected asynchronously), so server errors are retried; a client
// error (an invalid pool) is not.
func applyMetalLB(ctx context.Context, api *kubeAPI, resource, name string, obj map[string]any) error {
	path := metallbAPI + "/" + resource + "/" + url.PathEscape(name) + "?fieldManager=kubesmith&force=true"
	var final error
	err := phase.Poll(ctx, 2*time.Second, 2*time.Minute, "MetalLB to accept "+resource+"/"+name, func(ctx context.Context) (bool, error) {
		err := api.do(ctx, "PATCH", path, "application/apply-patch+yaml", obj, nil)
		var ae *apiError
		if errors.As(err, &ae) && ae.Code >= 400 && ae.Code < 500 && ae.Code != 404 && ae.Code != 409 && ae.Code != 429 {
			final = fmt.Errorf("MetalLB refused %s %s: %w", resource, name, err)
			return true, nil
		}
		return err == nil, err
	})
	if err != nil {
		return err
	}
	return final
}

func deleteMetalLB(ctx context.Context, api *kubeAPI, resource, name string) error {
	err := api.do(ctx, "DELETE", metallbAPI+"/"+resource+"/"+url.PathEscape(name), "", nil, nil)
	if err != nil && !isStatus(err, 404) {
		return fmt.Errorf("deleting MetalLB %s %s: %w", resource, name, err)
	}
	return nil
}

// listLBObjects lists the names of the load balancer's MetalLB objects of one resource.
func listLBObjects(ctx context.Context, api *kubeAPI, resource, lb string) ([]string, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Addresses []string `json:"addresses"`
			} `json:"spec"`
		} `json:"items"`
	}
	sel := url.QueryEscape(LabelLoadBalancer + "=" + lb)
	if err := api.do(ctx, "GET", metallbAPI+"/"+resource+"?labelSelector="+sel, "", nil, &list); err != nil {
		return nil, err
	}
	var names []string
	for _, it := range list.Items {
		names = append(names, it.Metadata.Name)
	}
	sort.Strings(names)
	return names, nil
}

// waitMetalLBWebhook waits until the MetalLB controller's webhook has a ready endpoint: MetalLB refuses its
// custom resources until then.
func waitMetalLBWebhook(ctx context.Context, api *kubeAPI) error {
	return phase.Poll(ctx, 2*time.Second, 4*time.Minute, "the MetalLB webhook (controller pod in metallb-system)", func(ctx context.Context) (bool, error) {
		var list struct {
			Items []struct {
				Endpoints []struct {
					Conditions struct {
						Ready *bool `json:"ready"`
					} `json:"conditions"`
				} `json:"endpoints"`
			} `json:"items"`
		}
		sel := url.QueryEscape("kubernetes.io/service-name=metallb-webhook-service")
		if err := api.do(ctx, "GET", "/apis/discovery.k8s.io/v1/namespaces/"+metallbNamespace+"/endpointslices?labelSelector="+sel, "", nil, &list); err != nil {
			return false, err
		}
		for _, it := range list.Items {
			for _, ep := range it.Endpoints {
				if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
					return true, nil
				}
			}
		}
		return false, errors.New("no ready endpoint yet")
	})
}

// applyFrontends converges HAProxy and keepalived on every frontend host, then waits until one holds the VIP.
func (e *Engine) applyFrontends(ctx context.Context, spec LoadBalancerSpec, password string, p phase.Progress) error {
	ses, err := e.connect(ctx, spec.SSH, spec.Hosts, phase.RoleWorker)
	if err != nil {
		return err
	}
	defer ses.close()
	cfg := lbConfig(spec, password)
	return withHostLocks(ctx, ses.targets, func() error {
		if err := e.forEach(ctx, ses.targets, func(ctx context.Context, t *phase.Target) error {
			return phase.Step(ctx, p, "frontend", t, func(ctx context.Context) error {
				h, err := phase.ProbeLB(ctx, t, spec.VIP)
				if err != nil {
					return err
				}
				if len(h.Missing) > 0 {
					return fmt.Errorf("%s lacks %s: install the haproxy, keepalived and socat packages (the bundle's debs/ has them for Debian 12)", t.Name, strings.Join(h.Missing, ", "))
				}
				if h.Owner != "" && h.Owner != cfg.Owner {
					return fmt.Errorf("%s already runs the frontends of load balancer %s; a host serves one load balancer", t.Name, h.Owner)
				}
				files, err := phase.LBFiles(cfg, t, h)
				if err != nil {
					return err
				}
				return phase.ConvergeLB(ctx, t, files, h)
			})
		}); err != nil {
			return err
		}
		// VRRP settles within a few adverts: the VIP may pass through a lower-priority host first. Wait until
		// the same host has held it for three probes in a row.
		return phaseOnce(ctx, p, "frontend-vip", func(ctx context.Context) error {
			last, streak := "", 0
			return phase.Poll(ctx, time.Second, 2*time.Minute, "a frontend host to hold the VIP "+spec.VIP, func(ctx context.Context) (bool, error) {
				holder, err := vipHolder(ctx, ses.targets, spec.VIP)
				if holder == "" || holder != last {
					last, streak = holder, 0
				}
				if holder != "" {
					streak++
				}
				return streak >= 3, err
			})
		})
	})
}

// vipHolder returns the name of the target that holds vip, "" when none does.
func vipHolder(ctx context.Context, targets []*phase.Target, vip string) (string, error) {
	var errs []error
	for _, t := range targets {
		h, err := phase.ProbeLB(ctx, t, vip)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if h.HoldsVIP {
			return t.Name, nil
		}
	}
	return "", errors.Join(errs...)
}

// holderBackends is the backends' health as HAProxy on the VIP holder t reports it.
func holderBackends(ctx context.Context, t *phase.Target, warn func(string)) []BackendStatus {
	bs, err := phase.LBBackends(ctx, t)
	if err != nil {
		warn(err.Error())
		return nil
	}
	out := make([]BackendStatus, 0, len(bs))
	for _, b := range bs {
		out = append(out, BackendStatus(b))
	}
	return out
}

// settledVIPHolder probes again after VRRP's handover time (three adverts).
func (e *Engine) settledVIPHolder(ctx context.Context, targets []*phase.Target, vip string) (string, error) {
	t := time.NewTimer(3 * time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-t.C:
	}
	return vipHolder(ctx, targets, vip)
}

// removeFrontends ends frontend hosts that left the spec: VMs kubesmith created are destroyed, other hosts reset.
func (e *Engine) removeFrontends(ctx context.Context, spec LoadBalancerSpec, hosts []Host, p phase.Progress) error {
	if spec.Libvirt == nil {
		return e.resetFrontends(ctx, spec.SSH, hosts, p)
	}
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	drv, err := e.machineDriver(nil)
	if err != nil {
		return err
	}
	g := machineGroup(spec.Cluster.ClusterName, spec.Cluster.ClusterUID, LoadBalancerRole(spec.Name), nil, spec.Libvirt, nil)
	return phase.Step(ctx, p, "vm-destroy", &phase.Target{Name: strings.Join(names, ",")}, func(ctx context.Context) error {
		if err := drv.Delete(ctx, g, names); err != nil {
			return fmt.Errorf("destroying VMs %s: %w", strings.Join(names, ", "), err)
		}
		return nil
	})
}

// resetFrontends removes the frontend from hosts.
func (e *Engine) resetFrontends(ctx context.Context, s SSH, hosts []Host, p phase.Progress) error {
	ses, err := e.connect(ctx, s, hosts, phase.RoleWorker)
	if err != nil {
		return err
	}
	defer ses.close()
	return withHostLocks(ctx, ses.targets, func() error {
		return e.forEach(ctx, ses.targets, func(ctx context.Context, t *phase.Target) error {
			return phase.Step(ctx, p, "frontend-reset", t, func(ctx context.Context) error { return phase.ResetLB(ctx, t) })
		})
	})
}

// observeLB fills the observed parts of state: the pools' Services, the VIP holder and the backends' health,
// and the config hash (the desired one when nothing drifted). warn receives non-fatal findings.
func (e *Engine) observeLB(ctx context.Context, spec LoadBalancerSpec, state *LoadBalancerState, api *kubeAPI, warn func(string)) lbPresence {
	if warn == nil {
		warn = func(string) {}
	}
	var drift []string
	var pres lbPresence
	// Pools.
	have, err := listLBObjects(ctx, api, "ipaddresspools", spec.Name)
	switch {
	case err != nil && isStatus(err, 404):
		pres.apiAnswered = true
		if len(spec.ServicePools) > 0 {
			drift = append(drift, "MetalLB is not installed")
		}
	case err != nil:
		warn(fmt.Sprintf("the cluster API did not answer: %v", err))
		drift = append(drift, "cluster API unreachable")
	default:
		pres.apiAnswered, pres.pools = true, len(have)
		var want []string
		for _, sp := range spec.ServicePools {
			want = append(want, spec.Name+"-"+sp.Name)
		}
		sort.Strings(want)
		if !slices.Equal(have, want) {
			drift = append(drift, fmt.Sprintf("pools %v, want %v", have, want))
		} else if bad := poolSpecDrift(ctx, api, spec); bad != "" {
			drift = append(drift, bad)
		}
		state.Services = lbServices(ctx, api, spec, warn)
	}
	// Frontends.
	state.VIPHolder, state.Backends = "", nil
	if len(spec.Hosts) > 0 && spec.VIP != "" {
		ses, err := e.connectLenient(ctx, spec.SSH, spec.Hosts, warn)
		if err == nil {
			defer ses.close()
			cfg := lbConfig(spec, state.VRRPPassword)
			for _, t := range ses.targets {
				h, err := phase.ProbeLB(ctx, t, spec.VIP)
				if err != nil {
					warn(err.Error())
					drift = append(drift, t.Name+" unreachable")
					continue
				}
				if h.Owner != "" {
					pres.markedHosts++
				}
				pres.answeredHosts++
				files, err := phase.LBFiles(cfg, t, h)
				if err != nil {
					drift = append(drift, err.Error())
					continue
				}
				if d, err := phase.LBFilesDrift(ctx, t, files); err != nil || len(d) > 0 {
					drift = append(drift, fmt.Sprintf("%s: files %v differ", t.Name, d))
				}
				for _, u := range []string{render.LBHAProxyUnit, render.LBKeepalivedUnit} {
					if !h.Active[u] {
						drift = append(drift, t.Name+": "+u+" is not running")
					}
				}
				if h.HoldsVIP && state.VIPHolder == "" {
					state.VIPHolder = t.Name
					state.Backends = holderBackends(ctx, t, warn)
				}
			}
			if state.VIPHolder == "" && pres.answeredHosts == len(spec.Hosts) {
				// A VRRP handover moves the VIP between two probes; look once more before calling it drift.
				if holder, _ := e.settledVIPHolder(ctx, ses.targets, spec.VIP); holder != "" {
					state.VIPHolder = holder
					if i := slices.IndexFunc(ses.targets, func(t *phase.Target) bool { return t.Name == holder }); i >= 0 {
						state.Backends = holderBackends(ctx, ses.targets[i], warn)
					}
				} else {
					drift = append(drift, "no frontend host holds the VIP "+spec.VIP)
				}
			}
		} else {
			drift = append(drift, "frontend hosts unreachable")
		}
	}
	if len(drift) > 0 {
		state.ConfigHash = "drift:" + strings.Join(drift, "; ")
		return pres
	}
	hash, err := e.DesiredLoadBalancerHash(spec)
	if err != nil {
		state.ConfigHash = ""
		return pres
	}
	state.ConfigHash = hash
	return pres
}

// lbPresence is what observeLB saw of the load balancer's existence.
type lbPresence struct {
	apiAnswered                bool
	pools                      int
	answeredHosts, markedHosts int
}

// connectLenient connects to every host it can, in parallel; unreachable ones are reported to warn and left
// out. It fails only when no host answers.
func (e *Engine) connectLenient(ctx context.Context, s SSH, hosts []Host, warn func(string)) (*session, error) {
	s.ConnectTimeout = 20 * time.Second
	sessions := make([]*session, len(hosts))
	errs := make([]error, len(hosts))
	_ = phase.Parallel(ctx, e.opts.Parallelism, hosts, func(ctx context.Context, h Host) error {
		i := slices.IndexFunc(hosts, func(o Host) bool { return o.Address == h.Address })
		sessions[i], errs[i] = e.connect(ctx, s, []Host{h}, phase.RoleWorker)
		return nil
	})
	all := &session{}
	for i, ses := range sessions {
		if errs[i] != nil {
			warn(errs[i].Error())
			continue
		}
		all.targets = append(all.targets, ses.targets...)
		all.release = append(all.release, ses.release...)
	}
	if len(all.targets) == 0 {
		return nil, errors.Join(errs...)
	}
	return all, nil
}

// poolSpecDrift compares the addresses of the load balancer's pools with the spec.
func poolSpecDrift(ctx context.Context, api *kubeAPI, spec LoadBalancerSpec) string {
	for _, sp := range spec.ServicePools {
		var obj struct {
			Spec struct {
				Addresses []string `json:"addresses"`
			} `json:"spec"`
		}
		name := spec.Name + "-" + sp.Name
		if err := api.do(ctx, "GET", metallbAPI+"/ipaddresspools/"+url.PathEscape(name), "", nil, &obj); err != nil {
			return fmt.Sprintf("pool %s: %v", name, err)
		}
		if !slices.Equal(obj.Spec.Addresses, sp.Addresses) {
			return fmt.Sprintf("pool %s has addresses %v, want %v", name, obj.Spec.Addresses, sp.Addresses)
		}
	}
	return ""
}

// lbServices lists the LoadBalancer Services whose addresses come from the load balancer's pools, with the node
// that announces each (MetalLB's ServiceL2Status).
func lbServices(ctx context.Context, api *kubeAPI, spec LoadBalancerSpec, warn func(string)) []ServiceAddress {
	var svcs struct {
		Items []struct {
			Metadata struct {
				Name        string            `json:"name"`
				Namespace   string            `json:"namespace"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				Type string `json:"type"`
			} `json:"spec"`
			Status struct {
				LoadBalancer struct {
					Ingress []struct {
						IP string `json:"ip"`
					} `json:"ingress"`
				} `json:"loadBalancer"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := api.do(ctx, "GET", "/api/v1/services", "", nil, &svcs); err != nil {
		warn(fmt.Sprintf("listing Services: %v", err))
		return nil
	}
	var l2 struct {
		Items []struct {
			Status struct {
				Node             string `json:"node"`
				ServiceName      string `json:"serviceName"`
				ServiceNamespace string `json:"serviceNamespace"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := api.do(ctx, "GET", metallbAPI+"/servicel2statuses", "", nil, &l2); err != nil {
		warn(fmt.Sprintf("listing MetalLB's L2 status: %v", err))
	}
	announcer := map[string]string{}
	for _, it := range l2.Items {
		announcer[it.Status.ServiceNamespace+"/"+it.Status.ServiceName] = it.Status.Node
	}
	type rng struct{ from, to netip.Addr }
	var ranges []rng
	for _, sp := range spec.ServicePools {
		for _, s := range sp.Addresses {
			if f, t, err := parseAddressRange(s); err == nil {
				ranges = append(ranges, rng{f, t})
			}
		}
	}
	var out []ServiceAddress
	for _, s := range svcs.Items {
		if s.Spec.Type != "LoadBalancer" {
			continue
		}
		id := s.Metadata.Namespace + "/" + s.Metadata.Name
		for _, in := range s.Status.LoadBalancer.Ingress {
			a, err := netip.ParseAddr(in.IP)
			if err != nil {
				continue
			}
			if slices.ContainsFunc(ranges, func(r rng) bool { return a.Compare(r.from) >= 0 && a.Compare(r.to) <= 0 }) {
				out = append(out, ServiceAddress{Service: id, Address: in.IP, Node: announcer[id]})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service+out[i].Address < out[j].Service+out[j].Address })
	return out
}

// ReadLoadBalancer implements API.
func (e *Engine) ReadLoadBalancer(ctx context.Context, spec LoadBalancerSpec, state LoadBalancerState) (LoadBalancerReadResult, error) {
	spec = lbDefaults(spec)
	ctx = machineContext(ctx, spec.Libvirt) // slow (emulated) machines get longer waits and API timeouts
	res := LoadBalancerReadResult{State: state}
	api, err := newKubeAPI(ctx, spec.Cluster, spec.Credentials)
	if err != nil {
		return res, err
	}
	if spec.Libvirt != nil {
		// The VMs' host keys are in libvirt (and in state); a VM that is gone shows as drift on the next apply.
		g := machineGroup(spec.Cluster.ClusterName, spec.Cluster.ClusterUID, LoadBalancerRole(spec.Name), spec.Hosts, spec.Libvirt, nil)
		found, _, err := e.lookupMachines(ctx, g, spec.Hosts)
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("the frontend VMs could not be looked up: %v", err))
			withMachineKeys(spec.Hosts, state.Machines)
		} else {
			res.State.Machines = found
		}
	}
	pres := e.observeLB(ctx, spec, &res.State, api, func(w string) { res.Warnings = append(res.Warnings, w) })
	hadPools := len(spec.ServicePools) > 0
	hadHosts := len(spec.Hosts) > 0 && len(spec.Frontends) > 0
	poolsGone := !hadPools || (pres.apiAnswered && pres.pools == 0)
	hostsGone := !hadHosts || (pres.answeredHosts == len(spec.Hosts) && pres.markedHosts == 0)
	res.Gone = poolsGone && hostsGone && (hadPools || hadHosts)
	return res, nil
}

// DeleteLoadBalancer implements API: it deletes the MetalLB pools (Services lose their addresses) and removes
// the frontends from every host.
func (e *Engine) DeleteLoadBalancer(ctx context.Context, spec LoadBalancerSpec, state LoadBalancerState, progress Progress) error {
	spec = lbDefaults(spec)
	ctx = machineContext(ctx, spec.Libvirt) // slow (emulated) machines get longer waits and API timeouts
	withMachineKeys(spec.Hosts, state.Machines)
	p := progressAdapter(progress)
	api, err := newKubeAPI(ctx, spec.Cluster, spec.Credentials)
	if err != nil {
		return err
	}
	if err := phaseOnce(ctx, p, "service-pools-delete", func(ctx context.Context) error {
		names, err := listLBObjects(ctx, api, "ipaddresspools", spec.Name)
		if isStatus(err, 404) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := deleteMetalLB(ctx, api, "l2advertisements", spec.Name); err != nil {
			return err
		}
		for _, n := range names {
			if err := deleteMetalLB(ctx, api, "ipaddresspools", n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	hosts := mergeHosts(state.Hosts, spec.Hosts)
	for _, m := range state.Machines {
		if !slices.ContainsFunc(hosts, func(h Host) bool { return h.Name == m.Name }) {
			hosts = append(hosts, Host{Name: m.Name, Address: m.Address, HostPublicKey: m.HostPublicKey})
		}
	}
	if len(hosts) == 0 {
		return nil
	}
	return e.removeFrontends(ctx, spec, hosts, p)
}
