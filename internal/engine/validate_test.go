package engine

import (
	"strings"
	"testing"
)

const testHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

func validSpec() ClusterSpec {
	h := func(n, a string) Host { return Host{Name: n, Address: a, HostPublicKey: testHostKey} }
	return ClusterSpec{
		Name: "demo", KubernetesVersion: "1.37.2", NodeNetwork: "172.30.0.0/24", APIVIP: "172.30.0.250",
		PodCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12",
		ControlPlane: []Host{h("m1", "172.30.0.11"), h("m2", "172.30.0.12"), h("m3", "172.30.0.13")},
		SSH:          SSH{PrivateKeyPath: "/root/.ssh/id_ed25519"},
	}
}

func TestValidateClusterSpec(t *testing.T) {
	versions := []string{"v1.37.2"}
	if errs := ValidateClusterSpec(validSpec(), versions); len(errs) != 0 {
		t.Fatalf("valid spec rejected: %v", errs)
	}
	cases := []struct {
		name   string
		mutate func(*ClusterSpec)
		path   string
		want   string
	}{
		{"two masters", func(s *ClusterSpec) { s.ControlPlane = s.ControlPlane[:2] }, "control_plane.hosts", "Got 2 masters"},
		{"pod overlaps service", func(s *ClusterSpec) { s.PodCIDR = "10.96.0.0/16" }, "service_cidr", "overlaps pod_cidr"},
		{"pod overlaps nodes", func(s *ClusterSpec) { s.PodCIDR = "172.30.0.0/16" }, "pod_cidr", "overlaps node_network"},
		{"vip outside", func(s *ClusterSpec) { s.APIVIP = "10.1.1.1" }, "api_vip", "not inside node_network"},
		{"vip is node", func(s *ClusterSpec) { s.APIVIP = "172.30.0.12" }, "api_vip", "control_plane.hosts[1]"},
		{"unknown version", func(s *ClusterSpec) { s.KubernetesVersion = "1.36.3" }, "kubernetes_version", "not in the bundle"},
		{"bad version", func(s *ClusterSpec) { s.KubernetesVersion = "latest" }, "kubernetes_version", "not a version"},
		{"duplicate address", func(s *ClusterSpec) { s.ControlPlane[2].Address = "172.30.0.11" }, "control_plane.hosts[2].address", "also the address of control_plane.hosts[0]"},
		{"missing key", func(s *ClusterSpec) { s.SSH = SSH{} }, "ssh", "No SSH credentials"},
		{"missing host key", func(s *ClusterSpec) { s.ControlPlane[0].HostPublicKey = "" }, "control_plane.hosts[0].host_public_key", "known_hosts_path"},
		{"malformed host key", func(s *ClusterSpec) { s.ControlPlane[1].HostPublicKey = "ssh-ed25519 notbase64" }, "control_plane.hosts[1].host_public_key", "does not parse"},
		{"loopback dns", func(s *ClusterSpec) { s.UpstreamDNS = []string{"127.0.0.53"} }, "upstream_dns[0]", "loop"},
		{"bad name", func(s *ClusterSpec) { s.Name = "Demo_1" }, "name", "lower-case"},
		{"etcd timing", func(s *ClusterSpec) { s.Tuning.EtcdHeartbeatMS, s.Tuning.EtcdElectionMS = 500, 1000 }, "tuning.etcd_election_ms", "5 x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := validSpec()
			s.ControlPlane = append([]Host(nil), s.ControlPlane...)
			c.mutate(&s)
			errs := ValidateClusterSpec(s, versions)
			for _, e := range errs {
				if e.Path == c.path && strings.Contains(e.Detail, c.want) {
					return
				}
			}
			t.Fatalf("want an error at %s containing %q, got %v", c.path, c.want, errs)
		})
	}
}

func TestOneMasterAllowed(t *testing.T) {
	s := validSpec()
	s.ControlPlane = s.ControlPlane[:1]
	if errs := ValidateClusterSpec(s, nil); len(errs) != 0 {
		t.Fatalf("one master rejected: %v", errs)
	}
}
