package pulumi

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"
)

func TestProviderTokens(t *testing.T) {
	info, err := Provider("0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"kubesmith_cluster":      "kubesmith:index/cluster:Cluster",
		"kubesmith_nodepool":     "kubesmith:index/nodepool:Nodepool",
		"kubesmith_loadbalancer": "kubesmith:index/loadbalancer:Loadbalancer",
	}
	served := 0
	info.P.ResourcesMap().Range(func(name string, _ shim.Resource) bool {
		served++
		ri := info.Resources[name]
		if ri == nil {
			t.Errorf("%s is not mapped", name)
			return true
		}
		if w, ok := want[name]; ok && string(ri.Tok) != w {
			t.Errorf("%s maps to %s, want %s", name, ri.Tok, w)
		}
		return true
	})
	if served < 2 || len(info.Resources) != served {
		t.Errorf("the provider serves %d resources, %d are mapped", served, len(info.Resources))
	}
}

func TestCheckMappingReportsUnmappedAndStale(t *testing.T) {
	info, err := Provider("0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	delete(info.Resources, "kubesmith_nodepool")
	info.Resources["kubesmith_gone"] = &tfbridge.ResourceInfo{Tok: "kubesmith:index/gone:Gone"}
	err = checkMapping(info)
	if err == nil {
		t.Fatal("checkMapping accepted an unmapped and a stale resource")
	}
	for _, want := range []string{"kubesmith_nodepool has no Pulumi token", "kubesmith_gone is mapped but the provider has no such resource"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestSchemaSecrets reads the committed schema: every key, certificate bundle and credential is a Pulumi secret.
func TestSchemaSecrets(t *testing.T) {
	data, err := os.ReadFile("cmd/pulumi-resource-kubesmith/schema.json")
	if err != nil {
		t.Fatal(err)
	}
	type prop struct {
		Secret bool `json:"secret"`
	}
	var spec struct {
		Resources map[string]struct {
			Properties      map[string]prop `json:"properties"`
			InputProperties map[string]prop `json:"inputProperties"`
		} `json:"resources"`
		Types map[string]struct {
			Properties map[string]prop `json:"properties"`
		} `json:"types"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ where, name string }{
		{"kubesmith:index/cluster:Cluster properties", "pki"},
		{"kubesmith:index/cluster:Cluster properties", "poolCredentials"},
		{"kubesmith:index/nodepool:Nodepool properties", "credentials"},
		{"kubesmith:index/nodepool:Nodepool inputProperties", "credentials"},
		{"kubesmith:index/loadbalancer:Loadbalancer inputProperties", "credentials"},
		{"kubesmith:index/loadbalancer:Loadbalancer properties", "vrrpPassword"},
		{"kubesmith:config/ssh:ssh", "privateKey"},
		{"kubesmith:index/ProviderSsh:ProviderSsh", "privateKey"},
		{"kubesmith:index/ClusterPki:ClusterPki", "caKey"},
		{"kubesmith:index/ClusterPoolCredentials:ClusterPoolCredentials", "clientKey"},
	}
	for _, c := range checks {
		var props map[string]prop
		tok, section, _ := strings.Cut(c.where, " ")
		switch section {
		case "properties":
			props = spec.Resources[tok].Properties
		case "inputProperties":
			props = spec.Resources[tok].InputProperties
		default:
			props = spec.Types[tok].Properties
		}
		p, ok := props[c.name]
		if !ok {
			t.Errorf("%s has no %s", c.where, c.name)
			continue
		}
		if !p.Secret {
			t.Errorf("%s.%s is not a secret", c.where, c.name)
		}
	}
}
