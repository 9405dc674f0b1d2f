package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"
)

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkDestroyed verifies that destroy reset every host.
func checkDestroyed(fake *fakeEngine) resource.TestCheckFunc {
	return func(*terraform.State) error {
		if n := fake.hostCount(); n != 0 {
			return fmt.Errorf("%d hosts still carry the cluster after destroy", n)
		}
		return nil
	}
}

// TestAccCluster_lifecycle creates a cluster, imports it both ways (plannable import must be a no-op, the import
// command must reproduce the state) and upgrades Kubernetes in place.
func TestAccCluster_lifecycle(t *testing.T) {
	fake := newFakeEngine()
	kubeconfig := filepath.Join(t.TempDir(), "sub", "admin.kubeconfig")
	withFile := defaultClusterConfig()
	withFile.Extra = fmt.Sprintf("kubeconfig_path = %s", quoted(kubeconfig))
	upgraded := withFile
	upgraded.Version = "1.38.0"
	sameID := statecheck.CompareValue(compare.ValuesSame())
	sameCA := statecheck.CompareValue(compare.ValuesSame())

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factories(fake),
		CheckDestroy:             checkDestroyed(fake),
		Steps: []resource.TestStep{
			{
				Config: withFile.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionCreate),
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("api_endpoint"), knownvalue.StringExact("https://172.30.0.250:6443")),
						plancheck.ExpectUnknownValue(testAddr, tfjsonpath.New("pki")),
						plancheck.ExpectUnknownValue(testAddr, tfjsonpath.New("id")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					sameCA.AddStateValue(testAddr, tfjsonpath.New("ca_certificate")),
					statecheck.CompareValuePairs(testAddr, tfjsonpath.New("id"), testAddr, tfjsonpath.New("cluster_uid"), compare.ValuesSame()),
					statecheck.CompareValuePairs(testAddr, tfjsonpath.New("ca_certificate"), testAddr, tfjsonpath.New("pki").AtMapKey("ca_cert"), compare.ValuesSame()),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("installed"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("config_hash"), knownvalue.StringRegexp(hexHash)),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("api_port"), knownvalue.Int64Exact(6443)),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("pod_cidr"), knownvalue.StringExact("10.244.0.0/16")),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("tuning").AtMapKey("renew_deadline"), knownvalue.StringExact("10s")),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("nodes"), knownvalue.ListSizeExact(3)),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("nodes").AtSliceIndex(1), knownvalue.ObjectPartial(map[string]knownvalue.Check{
						"name": knownvalue.StringExact("m2"), "ready": knownvalue.Bool(true), "role": knownvalue.StringExact("control-plane"),
						"kubelet_version": knownvalue.StringExact("v1.37.2"),
					})),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("etcd_members"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringExact("m1"), knownvalue.StringExact("m2"), knownvalue.StringExact("m3"),
					})),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("certificates_expire"), knownvalue.StringExact("2031-01-02T03:04:05Z")),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("join"), knownvalue.ObjectPartial(map[string]knownvalue.Check{
						"endpoint":    knownvalue.StringExact("https://172.30.0.250:6443"),
						"cluster_dns": knownvalue.StringExact("10.96.0.10"),
						"masters": knownvalue.ListExact([]knownvalue.Check{
							knownvalue.StringExact("172.30.0.11"), knownvalue.StringExact("172.30.0.12"), knownvalue.StringExact("172.30.0.13"),
						}),
					})),
					statecheck.ExpectSensitiveValue(testAddr, tfjsonpath.New("pki")),
					statecheck.ExpectSensitiveValue(testAddr, tfjsonpath.New("pool_credentials")),
				},
				Check: checkKubeconfigFile(kubeconfig, 8760*time.Hour),
			},
			{
				// Plannable import: the imported state must match the configuration exactly (no-op plan). The
				// kubeconfig file is local to the machine that applied, so this configuration leaves it out.
				Config:          defaultClusterConfig().render(),
				ResourceName:    testAddr,
				ImportState:     true,
				ImportStateKind: resource.ImportBlockWithID,
				ImportStateId:   "172.30.0.11," + testHostKey,
			},
			{
				ResourceName:            testAddr,
				ImportState:             true,
				ImportStateId:           "172.30.0.12",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts", "kubeconfig_path"},
			},
			{
				Config: upgraded.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						// DESIGN §3.4: a version change never replaces the cluster.
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("config_hash"), knownvalue.StringRegexp(hexHash)),
						// The join object is planned from the spec: pools see the new version at plan time.
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("join").AtMapKey("kubernetes_version"), knownvalue.StringExact("v1.38.0")),
						plancheck.ExpectUnknownValue(testAddr, tfjsonpath.New("nodes")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					sameCA.AddStateValue(testAddr, tfjsonpath.New("ca_certificate")),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("join").AtMapKey("kubernetes_version"), knownvalue.StringExact("v1.38.0")),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("nodes").AtSliceIndex(0).AtMapKey("kubelet_version"), knownvalue.StringExact("v1.38.0")),
				},
			},
			{
				// Connection details change in place; identity (name/address) changes replace.
				Config: func() string {
					c := upgraded
					c.Hosts = append([]hostConfig(nil), c.Hosts...)
					c.Hosts[0].Key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPNaUSBOaAwh1QmHrcanF8ZL8fBCHqPb+6PJPBmbrJ03"
					return c.render()
				}(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)},
				},
			},
			{
				Config: func() string {
					c := upgraded
					c.Hosts = append([]hostConfig(nil), c.Hosts...)
					c.Hosts[2].Address = `"172.30.0.14"`
					return c.render()
				}(),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionReplace)},
				},
			},
		},
	})
}

// checkKubeconfigFile verifies the file the cluster writes at kubeconfig_path.
func checkKubeconfigFile(path string, validity time.Duration) resource.TestCheckFunc {
	return func(*terraform.State) error {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o600 {
			return fmt.Errorf("kubeconfig mode %v, want 0600", fi.Mode().Perm())
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		kc, err := parseKubeconfig(raw)
		if err != nil {
			return err
		}
		if kc.server != "https://172.30.0.250:6443" {
			return fmt.Errorf("server %q", kc.server)
		}
		if left := time.Until(kc.notAfter); left < validity-time.Hour || left > validity+time.Hour {
			return fmt.Errorf("certificate valid for %s more, want about %s", left, validity)
		}
		return nil
	}
}

// TestAccCluster_drift stops a node and edits another's configuration behind Terraform's back: refresh must
// report it, the plan must be an in-place update, and applying it must repair the hosts.
func TestAccCluster_drift(t *testing.T) {
	fake := newFakeEngine()
	cfg := defaultClusterConfig().render()
	sameHash := statecheck.CompareValue(compare.ValuesSame())
	sameID := statecheck.CompareValue(compare.ValuesSame())

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factories(fake),
		CheckDestroy:             checkDestroyed(fake),
		Steps: []resource.TestStep{
			{
				Config: cfg,
				ConfigStateChecks: []statecheck.StateCheck{
					sameHash.AddStateValue(testAddr, tfjsonpath.New("config_hash")),
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
				},
			},
			{
				PreConfig: func() {
					fake.stopNode("172.30.0.12")
					fake.tamper("172.30.0.13")
				},
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAddr, "nodes.1.ready", "false"),
					resource.TestCheckResourceAttr(testAddr, "nodes.2.config_hash", "edited-by-hand"),
					resource.TestCheckResourceAttr(testAddr, "config_hash", "mixed"),
				),
			},
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("config_hash"), knownvalue.StringRegexp(hexHash)),
						plancheck.ExpectUnknownValue(testAddr, tfjsonpath.New("nodes")),
						plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("pki"), knownvalue.NotNull()),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					sameHash.AddStateValue(testAddr, tfjsonpath.New("config_hash")),
					sameID.AddStateValue(testAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("nodes").AtSliceIndex(1).AtMapKey("ready"), knownvalue.Bool(true)),
				},
				Check: func(*terraform.State) error {
					if applies, _, _, cas := fake.counts(); applies != 2 || len(cas) != 1 {
						return fmt.Errorf("want 2 applies and 1 CA, got %d applies and %d CAs", applies, len(cas))
					}
					return nil
				},
			},
			{
				// A cluster whose hosts are all positively gone leaves state; the plan recreates it.
				PreConfig: func() {
					for _, a := range []string{"172.30.0.11", "172.30.0.12", "172.30.0.13"} {
						fake.wipe(a)
					}
				},
				Config:             cfg,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionCreate)},
				},
			},
		},
	})
}

// TestAccCluster_resumeAfterFailedCreate fails a create after the UID and PKI exist. State must keep them, the
// error must say how to resume, and `terraform untaint` + apply must continue through an update with the same
// CA.
func TestAccCluster_resumeAfterFailedCreate(t *testing.T) {
	fake := newFakeEngine()
	fake.failNextCreates(1)
	base := t.TempDir()
	cfg := defaultClusterConfig().render()
	var failedID, failedCA string

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factories(fake),
		CheckDestroy:             checkDestroyed(fake),
		WorkingDir:               base,
		Steps: []resource.TestStep{
			{
				Config:      cfg,
				ExpectError: regexp.MustCompile(`(?s)Cluster Creation Incomplete.*terraform untaint <address> && terraform apply.*simulated failure`),
			},
			{
				PreConfig: func() {
					attrs, status := stateInstance(t, workingStateFile(t, base), testAddr)
					if status != "tainted" {
						t.Errorf("after a failed create the resource is %q, want tainted", status)
					}
					failedID, _ = attrs["id"].(string)
					pki, _ := attrs["pki"].(map[string]any)
					failedCA, _ = pki["ca_cert"].(string)
					if failedID == "" || failedCA == "" {
						t.Fatalf("failed create did not keep the UID and PKI in state: id=%q ca=%d bytes", failedID, len(failedCA))
					}
					if attrs["installed"] != false || attrs["config_hash"] != "" {
						t.Errorf("failed create recorded installed=%v config_hash=%v", attrs["installed"], attrs["config_hash"])
					}
					untaint(t, base, testAddr)
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("installed"), knownvalue.Bool(true)),
				},
				Check: func(s *terraform.State) error {
					rs := s.RootModule().Resources[testAddr]
					if rs.Primary.ID != failedID {
						return fmt.Errorf("resumed cluster has id %s, want %s", rs.Primary.ID, failedID)
					}
					if got, want := caFingerprint(rs.Primary.Attributes["pki.ca_cert"]), caFingerprint(failedCA); got != want {
						return fmt.Errorf("CA fingerprint changed from %s to %s", want, got)
					}
					_, resumes, _, cas := fake.counts()
					if len(cas) != 1 || resumes != 1 {
						return fmt.Errorf("want 1 CA minted and 1 resume, got %d and %d", len(cas), resumes)
					}
					return nil
				},
			},
		},
	})
}

// TestAccCluster_validation checks that each bad input is reported on the right attribute at plan time, by the
// engine's real validation, without touching any host.
func TestAccCluster_validation(t *testing.T) {
	fake := newFakeEngine()
	type tc struct {
		name   string
		mutate func(*clusterConfig)
		// want is a regexp over the rendered diagnostic. Terraform shows the configuration line of root
		// attributes; for nested ones it shows the resource, so TestModifyPlanAttributePaths checks their paths.
		want string
	}
	cases := []tc{
		{
			"two masters", func(c *clusterConfig) { c.Hosts = c.Hosts[:2] },
			`(?s)Unsupported number of masters.*Got 2 masters`,
		},
		{
			"overlapping CIDRs", func(c *clusterConfig) { c.PodCIDR = "10.96.0.0/16" },
			`(?s)Overlapping networks.*service_cidr \(10.96.0.0/12\) overlaps pod_cidr`,
		},
		{
			"VIP outside node network", func(c *clusterConfig) { c.VIP = "10.1.1.1" },
			`(?s)API VIP outside the node network.*api_vip\s+= "10.1.1.1"`,
		},
		{
			"VIP equals a node address", func(c *clusterConfig) { c.VIP = "172.30.0.12" },
			`(?s)API VIP equals a node address.*api_vip\s+= "172.30.0.12".*control_plane.hosts\[1\]`,
		},
		{
			"unknown version", func(c *clusterConfig) { c.Version = "1.36.3" },
			`(?s)Kubernetes version not in the artifact bundle.*kubernetes_version = "1.36.3".*v1.36.3 is not in the bundle`,
		},
		{
			"duplicate addresses", func(c *clusterConfig) { c.Hosts[2].Address = `"172.30.0.11"` },
			`(?s)Duplicate address.*also the address of control_plane.hosts\[0\]`,
		},
		{
			"missing SSH key", func(c *clusterConfig) { c.ProviderSSH = "" },
			`(?s)Missing SSH key.*No SSH credentials.*provider "kubesmith" block`,
		},
		{
			"missing host key", func(c *clusterConfig) { c.Hosts[0].Key = "" },
			`(?s)Missing host key.*known_hosts_path`,
		},
		{
			"malformed host key", func(c *clusterConfig) { c.Hosts[1].Key = "ssh-ed25519 notbase64" },
			`(?s)Malformed host key.*does not parse`,
		},
		{"libvirt address outside the node network", func(c *clusterConfig) {
			c.ControlPlane = `{ libvirt = { count = 1, network = "kubesmith", addresses = ["10.9.9.9"] } }`
		}, `(?s)Address outside the node network.*10.9.9.9 is not inside node_network`},
		{"libvirt count and addresses differ", func(c *clusterConfig) {
			c.ControlPlane = `{ libvirt = { count = 3, network = "kubesmith", addresses = ["172.30.0.11"] } }`
		}, `(?s)Addresses do not match the count.*1 addresses for 3 VMs`},
		{"libvirt bad accelerator", func(c *clusterConfig) {
			c.ControlPlane = `{ libvirt = { count = 1, network = "kubesmith", addresses = ["172.30.0.11"], accelerator = "xen" } }`
		}, `(?s)accelerator.*value must be one of`},
		{
			"neither hosts nor libvirt", func(c *clusterConfig) { c.ControlPlane = "{}" },
			`(?s)Invalid Attribute Combination.*control_plane needs exactly one of hosts or libvirt; 0 are set`,
		},
		{"both hosts and libvirt", func(c *clusterConfig) {
			c.ControlPlane = `{
    hosts   = [{ name = "m1", address = "172.30.0.11", host_public_key = "` + testHostKey + `" }]
    libvirt = { count = 1, network = "kubesmith", addresses = ["172.30.0.11"] }
  }`
		}, `(?s)Invalid Attribute Combination.*control_plane needs exactly one of hosts or libvirt; 2 are set`},
		{
			"bad tuning duration", func(c *clusterConfig) { c.Extra = `tuning = { retry_period = "soon" }` },
			`(?s)Invalid Duration.*"soon"`,
		},
		{
			"bad kube-proxy mode", func(c *clusterConfig) { c.Extra = `kube_proxy_mode = "ipvs"` },
			`(?s)kube_proxy_mode.*value must be one of`,
		},
	}
	steps := make([]resource.TestStep, 0, len(cases)+2)
	for _, c := range cases {
		cfg := defaultClusterConfig()
		cfg.Hosts = append([]hostConfig(nil), cfg.Hosts...)
		c.mutate(&cfg)
		steps = append(steps, resource.TestStep{
			Config:      cfg.render(),
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(c.want),
		})
	}

	// A value Terraform does not know yet is not validated (it is checked again when known at apply), but
	// known values next to it still are.
	unknown := defaultClusterConfig()
	unknown.Hosts = append([]hostConfig(nil), unknown.Hosts...)
	unknown.Prelude = "resource \"terraform_data\" \"addr\" {\n  input = \"172.30.0.13\"\n}\n"
	unknown.Hosts[2].Address = "terraform_data.addr.output"
	steps = append(steps, resource.TestStep{
		Config:             unknown.render(),
		PlanOnly:           true,
		ExpectNonEmptyPlan: true,
	})
	unknown.VIP = "10.1.1.1"
	steps = append(steps, resource.TestStep{
		Config:      unknown.render(),
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(`API VIP outside the node network`),
	})

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factories(fake),
		Steps:                    steps,
	})
	if applies, _, _, _ := fake.counts(); applies != 0 {
		t.Fatalf("validation applied %d times", applies)
	}
}

// TestAccKubeconfig_ephemeral mints an admin kubeconfig from the cluster's join and pki outputs. The echo
// provider copies the ephemeral result into state so that the test can inspect it.
func TestAccKubeconfig_ephemeral(t *testing.T) {
	fake := newFakeEngine()
	cfg := defaultClusterConfig()
	cfg.Epilogue = `
ephemeral "kubesmith_kubeconfig" "admin" {
  cluster  = kubesmith_cluster.test.join
  pki      = kubesmith_cluster.test.pki
  validity = "30m"
}

provider "echo" {
  data = ephemeral.kubesmith_kubeconfig.admin
}

resource "echo" "kubeconfig" {}
`
	resource.UnitTest(t, resource.TestCase{
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_10_0)},
		ProtoV6ProviderFactories: factories(fake),
		Steps: []resource.TestStep{{
			Config: cfg.render(),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("echo.kubeconfig", tfjsonpath.New("data").AtMapKey("host"), knownvalue.StringExact("https://172.30.0.250:6443")),
				statecheck.ExpectKnownValue("echo.kubeconfig", tfjsonpath.New("data").AtMapKey("client_certificate"), knownvalue.StringRegexp(regexp.MustCompile(`^-----BEGIN CERTIFICATE-----`))),
				statecheck.ExpectKnownValue("echo.kubeconfig", tfjsonpath.New("data").AtMapKey("client_key"), knownvalue.StringRegexp(regexp.MustCompile(`^-----BEGIN PRIVATE KEY-----`))),
				statecheck.ExpectKnownValue("echo.kubeconfig", tfjsonpath.New("data").AtMapKey("kubeconfig_raw"), knownvalue.StringRegexp(regexp.MustCompile(`current-context: demo`))),
				statecheck.CompareValuePairs("echo.kubeconfig", tfjsonpath.New("data").AtMapKey("cluster_ca_certificate"), testAddr, tfjsonpath.New("ca_certificate"), compare.ValuesSame()),
			},
			Check: func(*terraform.State) error {
				if v := fake.validity(); v != 30*time.Minute {
					return fmt.Errorf("kubeconfig issued for %s, want 30m", v)
				}
				return nil
			},
		}},
	})
}

// TestAccCluster_libvirt plans and applies masters as libvirt VMs: the slow-host tuning is planned unless the
// accelerator is kvm, and a change of the libvirt block replaces the cluster.
func TestAccCluster_libvirt(t *testing.T) {
	fake := newFakeEngine()
	vms := defaultClusterConfig()
	vms.ControlPlane = `{ libvirt = { count = 1, network = "kubesmith", addresses = ["172.30.0.11"] } }`
	kvm := vms
	kvm.ControlPlane = `{ libvirt = { count = 1, network = "kubesmith", addresses = ["172.30.0.11"], accelerator = "kvm" } }`
	explicit := vms
	explicit.Extra = `tuning = { etcd_heartbeat_ms = 200, etcd_election_ms = 2000 }`
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factories(fake),
		Steps: []resource.TestStep{
			{
				Config: vms.render(),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("tuning").AtMapKey("etcd_heartbeat_ms"), knownvalue.Int64Exact(500)),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("tuning").AtMapKey("etcd_election_ms"), knownvalue.Int64Exact(5000)),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("tuning").AtMapKey("renew_deadline"), knownvalue.StringExact("40s")),
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("machines"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"name": knownvalue.StringExact("ks-demo-m-1"), "id": knownvalue.StringExact("fake-ks-demo-m-1"),
							"address": knownvalue.StringExact("172.30.0.11"), "host_public_key": knownvalue.StringExact(testHostKey),
						}),
					})),
				},
			},
			{
				Config: kvm.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(testAddr, plancheck.ResourceActionDestroyBeforeCreate),
					plancheck.ExpectKnownValue(testAddr, tfjsonpath.New("tuning").AtMapKey("etcd_heartbeat_ms"), knownvalue.Int64Exact(100)),
				}},
			},
			{
				Config: explicit.render(),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(testAddr, tfjsonpath.New("tuning").AtMapKey("etcd_heartbeat_ms"), knownvalue.Int64Exact(200)),
				},
			},
		},
	})
}
