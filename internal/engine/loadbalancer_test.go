package engine

import (
	"strings"
	"testing"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
)

func lbSpec() LoadBalancerSpec {
	return LoadBalancerSpec{
		Name: "edge",
		Cluster: Join{
			ClusterUID: "uid-1", Endpoint: "https://172.30.0.250:6443", CACertificate: "pem", NodeNetwork: "172.30.0.0/24",
			PodCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12", Masters: []string{"172.30.0.11", "172.30.0.12", "172.30.0.13"},
		},
		Credentials:  PoolCredentials{ClientCert: "c", ClientKey: "k"},
		ServicePools: []ServicePool{{Name: "default", Addresses: []string{"172.30.0.200-172.30.0.210"}}},
		VIP:          "172.30.0.249",
		Frontends:    []Frontend{{Port: 80, TargetPort: 30080, BackendAddresses: []string{"172.30.0.21", "172.30.0.22"}}},
		Hosts: []Host{
			{Name: "lb1", Address: "172.30.0.26", HostPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEKFBQXSx5XIoOoaPpaPcx5O7CPmqna6Psd06EhrGsu3"},
			{Name: "lb2", Address: "172.30.0.27", HostPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEKFBQXSx5XIoOoaPpaPcx5O7CPmqna6Psd06EhrGsu3"},
		},
		SSH: SSH{PrivateKeyPath: "/k"},
	}
}

func TestValidateLoadBalancerSpec(t *testing.T) {
	if errs := ValidateLoadBalancerSpec(lbSpec()); len(errs) != 0 {
		t.Fatalf("valid spec: %v", errs)
	}
	cases := []struct {
		name   string
		mutate func(*LoadBalancerSpec)
		path   string
		want   string
	}{
		{"pool in the service CIDR", func(s *LoadBalancerSpec) {
			s.Cluster.NodeNetwork = "10.0.0.0/8"
			s.Cluster.Masters = nil
			s.Cluster.Endpoint = "https://10.1.0.1:6443"
			s.VIP, s.Hosts, s.Frontends = "", nil, nil
			s.ServicePools[0].Addresses = []string{"10.96.0.0/24"}
		}, "service_pools[0].addresses[0]", "overlaps the cluster's service network"},
		{
			"pool holds a backend", func(s *LoadBalancerSpec) { s.ServicePools[0].Addresses = []string{"172.30.0.16/28"} },
			"service_pools[0].addresses[0]", "172.30.0.21 (backend 172.30.0.21)",
		},
		{
			"pool holds a frontend host", func(s *LoadBalancerSpec) { s.ServicePools[0].Addresses = []string{"172.30.0.24/30"} },
			"service_pools[0].addresses[0]", "172.30.0.26 (frontend host",
		},
		{
			"pool holds the VIP", func(s *LoadBalancerSpec) { s.ServicePools[0].Addresses = []string{"172.30.0.248/30"} },
			"service_pools[0].addresses[0]", "the load balancer's VIP",
		},
		{
			"host bits", func(s *LoadBalancerSpec) { s.ServicePools[0].Addresses = []string{"172.30.0.201/28"} },
			"service_pools[0].addresses[0]", "did you mean 172.30.0.192/28",
		},
		{"duplicate pool", func(s *LoadBalancerSpec) {
			s.ServicePools = append(s.ServicePools, ServicePool{Name: "default", Addresses: []string{"172.30.0.220/32"}})
		}, "service_pools[1].name", "names two pools"},
		{"duplicate port", func(s *LoadBalancerSpec) { s.Frontends = append(s.Frontends, s.Frontends[0]) }, "frontends[1].port", "used by two"},
		{
			"backend is the VIP", func(s *LoadBalancerSpec) { s.Frontends[0].BackendAddresses = []string{"172.30.0.249"} },
			"frontends[0].backend_addresses[0]", "forward to itself",
		},
		{"host is the VIP", func(s *LoadBalancerSpec) { s.Hosts[1].Address = "172.30.0.249" }, "hosts[1].address", "needs its own address"},
		{"VIP is a master", func(s *LoadBalancerSpec) { s.VIP = "172.30.0.12" }, "vip", "master 172.30.0.12"},
		{"nothing", func(s *LoadBalancerSpec) { s.ServicePools, s.Frontends, s.VIP, s.Hosts = nil, nil, "", nil }, "service_pools", "needs service_pools, frontends, or both"},
		{"hosts without frontends", func(s *LoadBalancerSpec) { s.Frontends, s.VIP = nil, "" }, "hosts", "remove them or add frontends"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := lbSpec()
			s.Hosts = append([]Host(nil), s.Hosts...)
			s.ServicePools = append([]ServicePool(nil), s.ServicePools...)
			s.Frontends = append([]Frontend(nil), s.Frontends...)
			tc.mutate(&s)
			errs := ValidateLoadBalancerSpec(s)
			for _, e := range errs {
				if e.Path == tc.path && strings.Contains(e.Summary+": "+e.Detail, tc.want) {
					return
				}
			}
			t.Errorf("want an error at %s containing %q, got %v", tc.path, tc.want, errs)
		})
	}
}

func TestParseAddressRange(t *testing.T) {
	for in, want := range map[string]string{
		"172.30.0.200-172.30.0.210": "172.30.0.200 172.30.0.210",
		"172.30.0.192/28":           "172.30.0.192 172.30.0.207",
		"10.0.0.5/32":               "10.0.0.5 10.0.0.5",
		"fd00::/126":                "fd00:: fd00::3",
	} {
		a, b, err := parseAddressRange(in)
		if err != nil || a.String()+" "+b.String() != want {
			t.Errorf("%s: %s %s %v, want %s", in, a, b, err, want)
		}
	}
	for _, bad := range []string{"x", "172.30.0.5-fd00::1", "172.30.0.9-172.30.0.1", "172.30.0.1/24"} {
		if _, _, err := parseAddressRange(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestLBRouterIDDiffersFromTheAPIVIPs(t *testing.T) {
	for _, uid := range []string{"a", "b", "c", "3f1c2a9e-0000-4000-8000-000000000002"} {
		for _, name := range []string{"edge", "x", "ingress"} {
			s := lbSpec()
			s.Cluster.ClusterUID, s.Name = uid, name
			id := lbRouterID(s)
			if id < 1 || id > 255 {
				t.Errorf("%s/%s: router id %d out of range", uid, name, id)
			}
			if id == phase.KeepalivedRouterID(uid) {
				t.Errorf("%s/%s: router id %d equals the API VIP's", uid, name, id)
			}
		}
	}
}

func TestValidateLoadBalancerOnVMs(t *testing.T) {
	s := lbSpec()
	s.Cluster.ClusterName = "demo"
	s.Hosts = nil
	s.Libvirt = &LibvirtMachines{Count: 2, Network: "kubesmith", Addresses: []string{"172.30.0.26", "172.30.0.27"}}
	if errs := ValidateLoadBalancerSpec(s); len(errs) != 0 {
		t.Fatalf("valid spec on VMs: %v", errs)
	}
	if got := lbDefaults(s).Hosts; len(got) != 2 || got[1].Name != "ks-demo-lb-edge-2" || got[1].Address != "172.30.0.27" {
		t.Errorf("VM hosts %+v", got)
	}
	s.Libvirt = &LibvirtMachines{Count: 2, Network: "kubesmith", Addresses: []string{"172.30.0.26", "172.30.0.249"}}
	errs := ValidateLoadBalancerSpec(s)
	found := false
	for _, e := range errs {
		if e.Path == "libvirt.addresses[1]" && strings.Contains(e.Detail, "VIP") {
			found = true
		}
	}
	if !found {
		t.Errorf("want the VIP used as a VM address reported at libvirt.addresses[1], got %v", errs)
	}
	s.Libvirt = &LibvirtMachines{Count: 3, Network: "kubesmith", Addresses: []string{"172.30.0.26"}}
	if errs := ValidateLoadBalancerSpec(s); len(errs) == 0 || errs[0].Path != "libvirt.addresses" {
		t.Errorf("count/addresses mismatch: %v", errs)
	}
}
