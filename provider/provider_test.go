package provider

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/echoprovider"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// TestMain makes the test harness serve the provider under its real address, which the test configurations
// name in full (registry.terraform.io/kubesmith/kubesmith), so that the same tests run under OpenTofu.
func TestMain(m *testing.M) {
	if os.Getenv("TF_ACC_PROVIDER_NAMESPACE") == "" {
		_ = os.Setenv("TF_ACC_PROVIDER_NAMESPACE", "kubesmith")
	}
	if os.Getenv("TF_ACC_PROVIDER_HOST") == "" {
		_ = os.Setenv("TF_ACC_PROVIDER_HOST", "registry.terraform.io")
	}
	os.Exit(m.Run())
}

const (
	testAddr    = "kubesmith_cluster.test"
	testHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
)

// factories serves the provider with the given engine (and the echo provider, for ephemeral values).
func factories(eng engine.API) map[string]func() (tfprotov6.ProviderServer, error) {
	return map[string]func() (tfprotov6.ProviderServer, error){
		"kubesmith": providerserver.NewProtocol6WithError(NewWithEngine("test", eng)()),
		"echo":      echoprovider.NewProviderServer(),
	}
}

// hostConfig is one master in a test configuration. Address is HCL: a quoted string or an expression.
type hostConfig struct {
	Name, Address, Key string
}

// clusterConfig renders a test configuration; every field is HCL text or a plain value.
type clusterConfig struct {
	ProviderSSH  string // the provider's ssh attribute; empty leaves it out
	Prelude      string // extra blocks before the cluster
	Name         string
	Version      string
	NodeNetwork  string
	VIP          string
	PodCIDR      string
	Hosts        []hostConfig
	ControlPlane string // replaces the whole control_plane value when set
	Extra        string // extra attribute lines in the cluster
	Epilogue     string // extra blocks after the cluster
}

func defaultClusterConfig() clusterConfig {
	return clusterConfig{
		ProviderSSH: `{ private_key_path = "/nonexistent/id_ed25519" }`,
		Name:        "demo",
		Version:     "1.37.2",
		NodeNetwork: "172.30.0.0/24",
		VIP:         "172.30.0.250",
		Hosts: []hostConfig{
			{"m1", `"172.30.0.11"`, testHostKey},
			{"m2", `"172.30.0.12"`, testHostKey},
			{"m3", `"172.30.0.13"`, testHostKey},
		},
	}
}

func (c clusterConfig) render() string {
	var b strings.Builder
	b.WriteString(`terraform {
  required_providers {
    kubesmith = { source = "registry.terraform.io/kubesmith/kubesmith" }
    echo      = { source = "registry.terraform.io/kubesmith/echo" }
  }
}

provider "kubesmith" {
  artifacts = { bundle = "/nonexistent/bundle" }
`)
	if c.ProviderSSH != "" {
		fmt.Fprintf(&b, "  ssh       = %s\n", c.ProviderSSH)
	}
	b.WriteString("}\n\n")
	b.WriteString(c.Prelude)
	fmt.Fprintf(&b, `
resource "kubesmith_cluster" "test" {
  name               = %q
  kubernetes_version = %q
  node_network       = %q
  api_vip            = %q
`, c.Name, c.Version, c.NodeNetwork, c.VIP)
	if c.PodCIDR != "" {
		fmt.Fprintf(&b, "  pod_cidr           = %q\n", c.PodCIDR)
	}
	if c.ControlPlane != "" {
		fmt.Fprintf(&b, "  control_plane = %s\n", c.ControlPlane)
	} else {
		b.WriteString("  control_plane = {\n    hosts = [\n")
		for _, h := range c.Hosts {
			fmt.Fprintf(&b, "      {\n        name            = %q\n        address         = %s\n", h.Name, h.Address)
			if h.Key != "" {
				fmt.Fprintf(&b, "        host_public_key = %q\n", h.Key)
			}
			b.WriteString("      },\n")
		}
		b.WriteString("    ]\n  }\n")
	}
	if c.Extra != "" {
		b.WriteString("  " + c.Extra + "\n")
	}
	b.WriteString("}\n")
	b.WriteString(c.Epilogue)
	return b.String()
}

// terraformBinary is the CLI the harness uses: TF_ACC_TERRAFORM_PATH (terraform or tofu) or terraform on PATH.
func terraformBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TF_ACC_TERRAFORM_PATH"); p != "" {
		return p
	}
	p, err := exec.LookPath("terraform")
	if err != nil {
		t.Fatalf("no terraform binary: %v", err)
	}
	return p
}

// workingStateFile finds the state file of the test case's working directory under base (TestCase.WorkingDir).
func workingStateFile(t *testing.T, base string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(base, "work*", "terraform.tfstate"))
	if err != nil || len(matches) != 1 {
		t.Fatalf("want one state file under %s, got %v (%v)", base, matches, err)
	}
	return matches[0]
}

// untaint runs `terraform untaint addr` in the test case's working directory: the command a user runs to
// resume after a failed create, which the harness does not offer.
func untaint(t *testing.T, base, addr string) {
	t.Helper()
	stateFile := workingStateFile(t, base)
	cmd := exec.Command(terraformBinary(t), "untaint", "-no-color", addr)
	cmd.Dir = filepath.Dir(stateFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("terraform untaint %s: %v\n%s", addr, err, out)
	}
}

// stateInstance reads the attributes and status of addr from a state file.
func stateInstance(t *testing.T, stateFile, addr string) (attrs map[string]any, status string) {
	t.Helper()
	raw, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Resources []struct {
			Type, Name string
			Instances  []struct {
				Status     string         `json:"status"`
				Attributes map[string]any `json:"attributes"`
			} `json:"instances"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Resources {
		if r.Type+"."+r.Name == addr && len(r.Instances) == 1 {
			return r.Instances[0].Attributes, r.Instances[0].Status
		}
	}
	t.Fatalf("%s not in %s", addr, stateFile)
	return nil, ""
}

// quoted is strconv.Quote, for HCL string literals in configurations.
func quoted(s string) string { return strconv.Quote(s) }
