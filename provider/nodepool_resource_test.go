package provider

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

const poolAddr = "kubesmith_nodepool.workers"

// poolPKI is a CA certificate and a pool-manager client certificate signed by it, as the cluster exports.
type poolPKI struct{ ca, cert, key string }

func newPoolPKI(t *testing.T) poolPKI {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, leafKey := key(), key()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kubesmith:pool-manager:demo", Organization: []string{"kubesmith:pool-managers"}},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caTmpl, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	return poolPKI{ca: enc("CERTIFICATE", caDER), cert: enc("CERTIFICATE", leafDER), key: enc("PRIVATE KEY", keyDER)}
}

type poolConfig struct {
	pki     poolPKI
	uid     string
	hosts   []string // "name=address"
	labels  string   // HCL map or ""
	taints  string   // HCL list or ""
	version string
	libvirt string // HCL object or ""
}

func (c poolConfig) render() string {
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

resource "kubesmith_nodepool" "workers" {
  name = "general"
  cluster = {
    cluster_name       = "demo"
    cluster_uid        = %q
    endpoint           = "https://172.30.0.250:6443"
    ca_certificate     = %q
    kubernetes_version = %q
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
`, c.uid, c.pki.ca, c.version, c.pki.cert, c.pki.key)
	if c.hosts != nil {
		b.WriteString("  hosts = [\n")
		for _, h := range c.hosts {
			name, addr, _ := strings.Cut(h, "=")
			fmt.Fprintf(&b, "    { name = %q, address = %q, host_public_key = %q },\n", name, addr, testHostKey)
		}
		b.WriteString("  ]\n")
	}
	if c.libvirt != "" {
		fmt.Fprintf(&b, "  libvirt = %s\n", c.libvirt)
	}
	if c.labels != "" {
		fmt.Fprintf(&b, "  labels = %s\n", c.labels)
	}
	if c.taints != "" {
		fmt.Fprintf(&b, "  taints = %s\n", c.taints)
	}
	b.WriteString("}\n")
	return b.String()
}

func defaultPoolConfig(t *testing.T) poolConfig {
	return poolConfig{
		pki: newPoolPKI(t), uid: "3f1c2a9e-0000-4000-8000-000000000001", version: "v1.37.2",
		hosts: []string{"w1=172.30.0.21", "w2=172.30.0.22"}, labels: `{ tier = "general" }`,
		taints: `[{ key = "dedicated", value = "batch", effect = "NoSchedule" }]`,
	}
}

// TestAccNodePool_lifecycle creates a pool, imports it, scales it up and down, changes labels in place and
// repairs a label changed out of band.
func TestAccNodePool_lifecycle(t *testing.T) {
	fake := newFakeEngine()
	base := defaultPoolConfig(t)
	up := base
	up.hosts = append(slices.Clone(base.hosts), "w3=172.30.0.23")
	relabel := up
	relabel.labels = `{ tier = "gold" }`
	down := relabel
	down.hosts = []string{"w1=172.30.0.21"}

	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factories(fake),
		CheckDestroy: func(*terraform.State) error {
			if n := fake.hostCount(); n != 0 {
				return fmt.Errorf("%d workers still joined after destroy", n)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: base.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(poolAddr, plancheck.ResourceActionCreate),
						plancheck.ExpectKnownValue(poolAddr, tfjsonpath.New("addresses"), knownvalue.ListExact([]knownvalue.Check{
							knownvalue.StringExact("172.30.0.21"), knownvalue.StringExact("172.30.0.22"),
						})),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(poolAddr, tfjsonpath.New("id"), knownvalue.StringExact(base.uid+"/general")),
					statecheck.ExpectKnownValue(poolAddr, tfjsonpath.New("config_hash"), knownvalue.StringRegexp(regexp.MustCompile(`^[0-9a-f]{32}$`))),
					statecheck.ExpectKnownValue(poolAddr, tfjsonpath.New("max_unavailable"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(poolAddr, tfjsonpath.New("drain_timeout"), knownvalue.StringExact("5m")),
					statecheck.ExpectKnownValue(poolAddr, tfjsonpath.New("nodes").AtSliceIndex(1), knownvalue.ObjectPartial(map[string]knownvalue.Check{
						"name": knownvalue.StringExact("w2"), "role": knownvalue.StringExact("worker"), "ready": knownvalue.Bool(true),
					})),
				},
			},
			{
				// Import from a worker; the credentials are not on workers and come from the configuration.
				ResourceName: poolAddr, ImportState: true, ImportStateId: "172.30.0.22", ImportStateVerify: true,
				ImportStateVerifyIgnore: []string{"credentials", "timeouts"},
			},
			{
				Config: up.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(poolAddr, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(poolAddr, tfjsonpath.New("addresses"), knownvalue.ListSizeExact(3)),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					if log := fake.poolLog(); !slices.Equal(log, []string{"join w1", "join w2", "join w3"}) {
						return fmt.Errorf("scale up joined %v, want w3 only after w1 and w2", log)
					}
					return nil
				},
			},
			{
				Config: relabel.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(poolAddr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					if n := len(fake.poolLog()); n != 3 {
						return fmt.Errorf("a label change joined or removed nodes: %v", fake.poolLog())
					}
					return nil
				},
			},
			{
				// A label changed in the cluster shows as drift and an in-place update.
				PreConfig: func() { fake.relabelOutOfBand(base.uid, "general", "w2", map[string]string{"tier": "bronze"}) },
				Config:    relabel.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(poolAddr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				Config: down.render(),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(poolAddr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(poolAddr, tfjsonpath.New("nodes"), knownvalue.ListSizeExact(1)),
				},
				Check: func(*terraform.State) error {
					log := fake.poolLog()
					if !slices.Equal(log[3:], []string{"remove w2", "remove w3"}) {
						return fmt.Errorf("scale down: %v", log)
					}
					return nil
				},
			},
		},
	})
}

// TestAccNodePool_badInput reports invalid input at plan time, on the attribute, before any host is touched.
func TestAccNodePool_badInput(t *testing.T) {
	fake := newFakeEngine()
	base := defaultPoolConfig(t)
	cases := []struct {
		mutate func(*poolConfig)
		want   string
	}{
		{func(c *poolConfig) { c.hosts = []string{"w1=10.9.9.9"} }, `Address outside the node network`},
		{func(c *poolConfig) { c.hosts = []string{"w1=172.30.0.21", "w1=172.30.0.22"} }, `Duplicate node name`},
		{func(c *poolConfig) { c.hosts = []string{"w1=172.30.0.11"} }, `Address of a master`},
		{func(c *poolConfig) { c.labels = `{ "bad key!" = "x" }` }, `Invalid label key`},
		{func(c *poolConfig) { c.taints = `[{ key = "a", effect = "Never" }]` }, `Invalid taint effect`},
		{func(c *poolConfig) { c.version = "v1.30.0" }, `not in the artifact bundle`},
		{func(c *poolConfig) { c.pki.key = "not a key" }, `Invalid pool credentials`},
		{func(c *poolConfig) { c.libvirt = `{ count = 1, network = "kubesmith", addresses = ["172.30.0.21"] }` }, `Invalid Attribute Combination`},
		{func(c *poolConfig) { c.hosts = nil }, `Exactly one of these attributes must be configured: [hosts,libvirt]`},
		{func(c *poolConfig) {
			c.hosts, c.libvirt = nil, `{ count = 1, network = "kubesmith", addresses = ["172.30.0.11"] }`
		}, `Address of a master`},
		{func(c *poolConfig) {
			c.hosts, c.libvirt = nil, `{ count = 2, network = "kubesmith", addresses = ["172.30.0.21"] }`
		}, `1 addresses for 2 VMs`},
	}
	for _, c := range cases {
		cfg := base
		c.mutate(&cfg)
		resource.UnitTest(t, resource.TestCase{
			ProtoV6ProviderFactories: factories(fake),
			Steps: []resource.TestStep{{
				Config: cfg.render(), PlanOnly: true,
				ExpectError: regexp.MustCompile(regexp.QuoteMeta(c.want)),
			}},
		})
	}
	if fake.poolApplies != 0 {
		t.Errorf("bad input reached the engine's apply %d times", fake.poolApplies)
	}
}
