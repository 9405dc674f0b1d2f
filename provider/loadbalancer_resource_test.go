package provider

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

const lbAddr = "kubesmith_loadbalancer.edge"

type lbConfig struct {
	pki   poolPKI
	uid   string
	pools string   // HCL list
	vip   string   // "" for none
	hosts []string // "name=address"
	ports []int    // frontends, each to 172.30.0.21/22 on 30000+port
}

func (c lbConfig) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, `terraform {
  required_providers {
    kubesmith = { source = "registry.terraform.io/kubesmith/kubesmith" }
  }
}

provider "kubesmith" {
  artifacts = { bundle = "/nonexistent/bundle" }
  ssh       = { private_key_path = "/nonexistent/id_ed25519" }
}

resource "kubesmith_loadbalancer" "edge" {
  name = "edge"
  cluster = {
    cluster_name       = "demo"
    cluster_uid        = %q
    endpoint           = "https://172.30.0.250:6443"
    ca_certificate     = %q
    kubernetes_version = "v1.37.2"
    node_network       = "172.30.0.0/24"
    pod_cidr           = "10.244.0.0/16"
    service_cidr       = "10.96.0.0/12"
    cluster_dns        = "10.96.0.10"
    masters            = ["172.30.0.11", "172.30.0.12", "172.30.0.13"]
  }
  credentials = {
    client_certificate = %q
    client_key         = %q
  }
  service_pools = %s
`, c.uid, c.pki.ca, c.pki.cert, c.pki.key, c.pools)
	if c.vip != "" {
		fmt.Fprintf(&b, "  vip = %q\n", c.vip)
	}
	if len(c.ports) > 0 {
		b.WriteString("  frontends = [\n")
		for _, p := range c.ports {
			fmt.Fprintf(&b, "    { port = %d, target_port = %d, backend_addresses = [\"172.30.0.21\", \"172.30.0.22\"] },\n", p, 30000+p)
		}
		b.WriteString("  ]\n")
	}
	if len(c.hosts) > 0 {
		b.WriteString("  hosts = [\n")
		for _, h := range c.hosts {
			name, addr, _ := strings.Cut(h, "=")
			fmt.Fprintf(&b, "    { name = %q, address = %q, host_public_key = %q },\n", name, addr, testHostKey)
		}
		b.WriteString("  ]\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func defaultLBConfig(t *testing.T) lbConfig {
	return lbConfig{
		pki: newPoolPKI(t), uid: "3f1c2a9e-0000-4000-8000-000000000002",
		pools: `[{ name = "default", addresses = ["172.30.0.200-172.30.0.210"] }]`,
		vip:   "172.30.0.249", hosts: []string{"lb1=172.30.0.26", "lb2=172.30.0.27"}, ports: []int{80},
	}
}

// TestAccLoadBalancer_lifecycle creates a load balancer, repairs drift on a frontend host, adds a port, moves
// the frontend off one host and destroys it.
func TestAccLoadBalancer_lifecycle(t *testing.T) {
	fake := newFakeEngine()
	base := defaultLBConfig(t)
	morePorts := base
	morePorts.ports = []int{80, 443}
	oneHost := morePorts
	oneHost.hosts = []string{"lb1=172.30.0.26"}

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factories(fake),
		CheckDestroy: func(*terraform.State) error {
			if n := fake.lbCount(); n != 0 {
				return fmt.Errorf("%d load balancers left after destroy", n)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: base.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(lbAddr, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(lbAddr, tfjsonpath.New("id"), knownvalue.StringExact(base.uid+"/edge")),
					statecheck.ExpectKnownValue(lbAddr, tfjsonpath.New("config_hash"), knownvalue.StringRegexp(regexp.MustCompile(`^[0-9a-f]{32}$`))),
					statecheck.ExpectKnownValue(lbAddr, tfjsonpath.New("vip_holder"), knownvalue.StringExact("lb1")),
					statecheck.ExpectSensitiveValue(lbAddr, tfjsonpath.New("vrrp_password")),
					statecheck.ExpectKnownValue(lbAddr, tfjsonpath.New("backends"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"port": knownvalue.Int64Exact(80), "address": knownvalue.StringExact("172.30.0.21"),
							"target_port": knownvalue.Int64Exact(30080), "status": knownvalue.StringExact("UP"),
						}),
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"address": knownvalue.StringExact("172.30.0.22")}),
					})),
				},
			},
			{
				// A frontend host's configuration changed out of band: refresh shows drift and apply repairs it.
				PreConfig: func() { fake.tamperLB(base.uid, "edge", "172.30.0.27") },
				Config:    base.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(lbAddr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				Config: morePorts.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(lbAddr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(lbAddr, tfjsonpath.New("backends"), knownvalue.ListSizeExact(4)),
				},
			},
			{
				Config: oneHost.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(lbAddr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					if log := fake.lbLog(); !slices.Contains(log, "reset 172.30.0.27") {
						return fmt.Errorf("the removed host was not reset: %v", log)
					}
					return nil
				},
			},
		},
	})
}

// TestAccLoadBalancer_planTimeValidation: bad pools and VIPs fail at plan time, naming the attribute.
func TestAccLoadBalancer_planTimeValidation(t *testing.T) {
	fake := newFakeEngine()
	cases := []struct {
		name   string
		mutate func(*lbConfig)
		want   string
	}{
		{"pool outside the node network", func(c *lbConfig) {
			c.pools = `[{ name = "default", addresses = ["10.0.0.0/29"] }]`
		}, `(?s)Pool outside the node network.*This concerns service_pools\[0\]\.addresses\[0\]`},
		{"pool contains the API VIP", func(c *lbConfig) {
			c.pools = `[{ name = "default", addresses = ["172.30.0.240-172.30.0.254"] }]`
		}, `(?s)Pool contains addresses in use.*172\.30\.0\.250 \(the cluster's API VIP\)`},
		{"pool contains a master", func(c *lbConfig) {
			c.pools = `[{ name = "default", addresses = ["172.30.0.8/29"] }]`
		}, `(?s)Pool contains addresses in use.*172\.30\.0\.11 \(master`},
		{"overlapping pools", func(c *lbConfig) {
			c.pools = `[{ name = "a", addresses = ["172.30.0.200-172.30.0.210"] }, { name = "b", addresses = ["172.30.0.208/29"] }]`
		}, `(?s)Overlapping pools`},
		{"range backwards", func(c *lbConfig) {
			c.pools = `[{ name = "default", addresses = ["172.30.0.210-172.30.0.200"] }]`
		}, `(?s)ends before it starts`},
		{"VIP outside the node network", func(c *lbConfig) { c.vip = "192.168.1.10" }, `(?s)VIP outside the node network`},
		{"VIP is the API VIP", func(c *lbConfig) { c.vip = "172.30.0.250" }, `(?s)VIP already in use`},
		{"frontends without a VIP", func(c *lbConfig) { c.vip = "" }, `(?s)Missing VIP`},
		{"frontends without hosts", func(c *lbConfig) { c.hosts = nil }, `(?s)No frontend hosts`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultLBConfig(t)
			tc.mutate(&c)
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: factories(fake),
				Steps: []resource.TestStep{{
					Config: c.render(), PlanOnly: true, ExpectError: regexp.MustCompile(tc.want),
				}},
			})
		})
	}
	if n := fake.lbCount(); n != 0 {
		t.Errorf("validation failures created %d load balancers", n)
	}
}

// TestAccLoadBalancer_validatedOnTheFirstPlan: a cluster and a load balancer created in one apply. The
// cluster plans its join object (all but the UID and CA), so a Service pool that contains a master's address
// fails on the very first plan, before anything exists; a good one plans and applies.
func TestAccLoadBalancer_validatedOnTheFirstPlan(t *testing.T) {
	fake := newFakeEngine()
	stack := func(pool string) string {
		c := defaultClusterConfig()
		c.Epilogue = fmt.Sprintf(`
resource "kubesmith_loadbalancer" "edge" {
  name          = "edge"
  cluster       = kubesmith_cluster.test.join
  credentials   = kubesmith_cluster.test.pool_credentials
  service_pools = [{ name = "default", addresses = [%q] }]
}
`, pool)
		return c.render()
	}
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factories(fake),
		Steps: []resource.TestStep{
			{
				Config: stack("172.30.0.8/29"), PlanOnly: true,
				ExpectError: regexp.MustCompile(`(?s)Pool contains addresses in use.*172\.30\.0\.11 \(master`),
			},
			{
				Config: stack("172.30.0.200-172.30.0.210"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectKnownValue("kubesmith_cluster.test", tfjsonpath.New("join").AtMapKey("endpoint"),
							knownvalue.StringExact("https://172.30.0.250:6443")),
						plancheck.ExpectUnknownValue("kubesmith_cluster.test", tfjsonpath.New("join").AtMapKey("cluster_uid")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}
