package engine

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
	"golang.org/x/crypto/ssh"
)

var (
	dnsLabel   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	versionRe  = regexp.MustCompile(`^v?(\d+)\.(\d+)\.(\d+)$`)
	clusterRe  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$`)
	loopbackV4 = netip.MustParsePrefix("127.0.0.0/8")
)

// NormalizeVersion returns "v1.37.2" for "1.37.2" or "v1.37.2", and false for anything else.
func NormalizeVersion(v string) (string, bool) {
	m := versionRe.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return "", false
	}
	return "v" + m[1] + "." + m[2] + "." + m[3], true
}

// ValidateClusterSpec checks a cluster spec with no side effects. availableVersions are the Kubernetes versions
// in the artifact bundle (nil skips that check, for when the bundle cannot be read and the caller reports that
// separately). Values left empty because Terraform does not know them yet must be skipped by the caller.
func ValidateClusterSpec(spec ClusterSpec, availableVersions []string) []FieldError {
	if spec.Libvirt != nil {
		return validateMachineCluster(spec, availableVersions)
	}
	var errs []FieldError
	add := func(path, summary, detail string, args ...any) {
		errs = append(errs, FieldError{Path: path, Summary: summary, Detail: fmt.Sprintf(detail, args...)})
	}

	if !clusterRe.MatchString(spec.Name) {
		add("name", "Invalid cluster name",
			"%q must be 1-32 lower-case letters, digits or '-', starting and ending with a letter or digit, because it names hosts' units, VMs and certificates.", spec.Name)
	}

	if v, ok := NormalizeVersion(spec.KubernetesVersion); !ok {
		add("kubernetes_version", "Invalid Kubernetes version",
			"%q is not a version like \"1.37.2\".", spec.KubernetesVersion)
	} else if availableVersions != nil && !slices.Contains(availableVersions, v) {
		have := "none"
		if len(availableVersions) > 0 {
			have = strings.Join(availableVersions, ", ")
		}
		add("kubernetes_version", "Kubernetes version not in the artifact bundle",
			"%s is not in the bundle (it has: %s). Build it with `make artifacts K8S_VERSION=%s`, or pick one of those.", v, have, v)
	}

	nodeNet, nodeOK := parsePrefix(spec.NodeNetwork)
	if !nodeOK {
		add("node_network", "Invalid node network", "%q is not a CIDR such as 192.168.150.0/24.", spec.NodeNetwork)
	}
	podNet, podOK := parsePrefix(spec.PodCIDR)
	if !podOK {
		add("pod_cidr", "Invalid pod CIDR", "%q is not a CIDR such as 10.244.0.0/16.", spec.PodCIDR)
	} else if podNet.Bits() > 22 {
		add("pod_cidr", "Pod CIDR too small",
			"%s leaves fewer than 4 node subnets of /24; use a /22 or larger, such as 10.244.0.0/16.", podNet)
	}
	svcNet, svcOK := parsePrefix(spec.ServiceCIDR)
	if !svcOK {
		add("service_cidr", "Invalid service CIDR", "%q is not a CIDR such as 10.96.0.0/12.", spec.ServiceCIDR)
	} else if svcNet.Bits() > 28 {
		add("service_cidr", "Service CIDR too small", "%s is too small; use a /24 or larger, such as 10.96.0.0/12.", svcNet)
	}
	type named struct {
		attr string
		p    netip.Prefix
		ok   bool
	}
	nets := []named{{"node_network", nodeNet, nodeOK}, {"pod_cidr", podNet, podOK}, {"service_cidr", svcNet, svcOK}}
	for i := range nets {
		for j := i + 1; j < len(nets); j++ {
			a, b := nets[i], nets[j]
			if a.ok && b.ok && a.p.Overlaps(b.p) {
				add(b.attr, "Overlapping networks",
					"%s (%s) overlaps %s (%s). Node, pod and service networks must be disjoint; choose another range for %s.",
					b.attr, b.p, a.attr, a.p, b.attr)
			}
		}
	}

	if spec.APIPort != 0 && (spec.APIPort < 1 || spec.APIPort > 65535) {
		add("api_port", "Invalid port", "%d is not a TCP port.", spec.APIPort)
	}

	vip, vipErr := netip.ParseAddr(spec.APIVIP)
	switch {
	case vipErr != nil:
		add("api_vip", "Invalid API VIP", "%q is not an IP address.", spec.APIVIP)
	case nodeOK && !nodeNet.Contains(vip):
		add("api_vip", "API VIP outside the node network",
			"%s is not inside node_network %s. keepalived can only hold an address of the masters' own network; pick a free address in %s.", vip, nodeNet, nodeNet)
	case nodeOK && (vip == nodeNet.Masked().Addr() || isBroadcast(nodeNet, vip)):
		add("api_vip", "API VIP is not a host address", "%s is the network or broadcast address of %s.", vip, nodeNet)
	}

	n := len(spec.ControlPlane)
	if n != 1 && n != 3 {
		add("control_plane.hosts", "Unsupported number of masters",
			"Got %d masters. Use 3 for a highly available control plane (etcd keeps quorum when one fails) or 1 for development.", n)
	}
	validateHosts(spec.ControlPlane, hostRules{
		list:         "control_plane.hosts",
		loopbackHint: "; use the address the other nodes reach it on",
		network:      "node_network",
		missingKeyHint: func(h Host) string {
			return fmt.Sprintf(" Give its key (ssh-keyscan -t ed25519 %s, checked out of band) so that the connection is pinned.", h.Address)
		},
		malformedKeyHint: ` Expected one line such as "ssh-ed25519 AAAAC3Nza...".`,
		checkAddr: func(i int, h Host, a netip.Addr) {
			if vipErr == nil && a == vip {
				add("api_vip", "API VIP equals a node address",
					"%s is the address of control_plane.hosts[%d] (%s). The VIP must be a free address that moves between masters.", vip, i, h.Name)
			}
		},
	}, nodeNet, nodeOK, spec.SSH.KnownHostsPath != "", add)
	if spec.SSH.PrivateKey == "" && spec.SSH.PrivateKeyPath == "" && !spec.SSH.UseAgent {
		add("ssh", "Missing SSH key",
			"No SSH credentials: set ssh.private_key_path or ssh.private_key in the provider block, or ssh.use_agent = true.")
	}
	if spec.SSH.PrivateKey != "" {
		if _, err := ssh.ParseRawPrivateKey([]byte(spec.SSH.PrivateKey)); err != nil {
			add("ssh.private_key", "Malformed SSH private key", "The key does not parse (%v). Give an unencrypted OpenSSH or PEM private key.", err)
		}
	}

	for i, d := range spec.UpstreamDNS {
		a, err := netip.ParseAddr(d)
		p := fmt.Sprintf("upstream_dns[%d]", i)
		switch {
		case err != nil:
			add(p, "Invalid DNS server", "%q is not an IP address.", d)
		case a.IsLoopback():
			add(p, "Loopback DNS server", "%s is a loopback resolver; CoreDNS would forward to itself and its loop check stops it. Give the real upstream resolver, or leave upstream_dns empty for an air-gapped cluster.", a)
		}
	}
	switch spec.KubeProxyMode {
	case "", "iptables", "nftables":
	default:
		add("kube_proxy_mode", "Unsupported kube-proxy mode", "%q is not supported; use \"iptables\" or \"nftables\" (IPVS is not offered).", spec.KubeProxyMode)
	}
	seenAddon := map[string]bool{}
	for i, a := range spec.Addons {
		p := fmt.Sprintf("addons[%d]", i)
		switch {
		case !slices.Contains(phase.OptionalAddons(), a):
			add(p, "Unknown add-on", "%q is not an optional add-on; choose from %s.", a, strings.Join(phase.OptionalAddons(), ", "))
		case seenAddon[a]:
			add(p, "Duplicate add-on", "%q is listed twice.", a)
		}
		seenAddon[a] = true
	}
	t := spec.Tuning
	if t.EtcdHeartbeatMS != 0 && t.EtcdElectionMS != 0 && t.EtcdElectionMS < 5*t.EtcdHeartbeatMS {
		add("tuning.etcd_election_ms", "etcd election timeout too short",
			"%d ms is less than 5 x etcd_heartbeat_ms (%d ms); etcd requires at least that. Try %d.", t.EtcdElectionMS, t.EtcdHeartbeatMS, 10*t.EtcdHeartbeatMS)
	}
	if t.LeaderElectionLease != 0 && t.RenewDeadline != 0 && t.RenewDeadline >= t.LeaderElectionLease {
		add("tuning.renew_deadline", "Renew deadline not below the lease", "renew_deadline (%s) must be shorter than leader_election_lease (%s).", t.RenewDeadline, t.LeaderElectionLease)
	}
	return errs
}

// ValidateHostPublicKey checks one authorized_keys-format host key line.
func ValidateHostPublicKey(s string) error {
	if strings.Contains(strings.TrimSpace(s), "\n") {
		return fmt.Errorf("the host key has several lines")
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s)); err != nil {
		return fmt.Errorf("the host key does not parse: %w", err)
	}
	return nil
}

// hostRules are what differs between checking a cluster's masters and a node pool's hosts.
type hostRules struct {
	list             string                            // path of the host list, such as "hosts"
	loopbackHint     string                            // appended to the detail of a loopback or unspecified address
	network          string                            // how details name the node network
	missingKeyHint   func(h Host) string               // appended to the detail of a missing host key; nil: nothing
	malformedKeyHint string                            // appended to the detail of a malformed host key
	checkAddr        func(i int, h Host, a netip.Addr) // further checks of hosts[i]'s valid node address; nil: none
}

// validateHosts checks the names, addresses and host keys of hosts, reporting through add: names must be unique
// DNS labels, addresses unique usable IP addresses inside nodeNet (when nodeOK), and every host needs a
// well-formed host key unless knownHosts (the provider has a known_hosts file).
func validateHosts(hosts []Host, r hostRules, nodeNet netip.Prefix, nodeOK, knownHosts bool, add func(path, summary, detail string, args ...any)) {
	seenName, seenAddr := map[string]int{}, map[string]int{}
	for i, h := range hosts {
		p := fmt.Sprintf("%s[%d]", r.list, i)
		if !dnsLabel.MatchString(h.Name) {
			add(p+".name", "Invalid node name", "%q must be a lower-case DNS label (letters, digits, '-').", h.Name)
		} else if k, dup := seenName[h.Name]; dup {
			add(p+".name", "Duplicate node name", "%q is also the name of %s[%d].", h.Name, r.list, k)
		} else {
			seenName[h.Name] = i
		}
		a, err := netip.ParseAddr(h.Address)
		switch {
		case err != nil:
			add(p+".address", "Invalid address", "%q is not an IP address.", h.Address)
		case loopbackV4.Contains(a) || a.IsUnspecified():
			add(p+".address", "Invalid address", "%s cannot be a node address%s.", a, r.loopbackHint)
		default:
			if k, dup := seenAddr[a.String()]; dup {
				add(p+".address", "Duplicate address", "%s is also the address of %s[%d].", a, r.list, k)
			} else {
				seenAddr[a.String()] = i
			}
			if nodeOK && !nodeNet.Contains(a) {
				add(p+".address", "Address outside the node network", "%s is not inside %s %s.", a, r.network, nodeNet)
			}
			if r.checkAddr != nil {
				r.checkAddr(i, h, a)
			}
		}
		if h.HostPublicKey == "" {
			if !knownHosts {
				hint := ""
				if r.missingKeyHint != nil {
					hint = r.missingKeyHint(h)
				}
				add(p+".host_public_key", "Missing host key",
					"Host %q has no host_public_key and the provider's ssh.known_hosts_path is not set.%s", h.Name, hint)
			}
		} else if err := ValidateHostPublicKey(h.HostPublicKey); err != nil {
			add(p+".host_public_key", "Malformed host key", "%v.%s", err, r.malformedKeyHint)
		}
	}
}

func parsePrefix(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

func isBroadcast(p netip.Prefix, a netip.Addr) bool {
	if !a.Is4() || !p.Addr().Is4() {
		return false
	}
	b := p.Masked().Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= (1 << hostBits) - 1
	x := a.As4()
	return v == uint32(x[0])<<24|uint32(x[1])<<16|uint32(x[2])<<8|uint32(x[3])
}
