// Package pulumi bridges kubesmith's Terraform provider (terraform-plugin-framework) to Pulumi with the Pulumi
// Terraform bridge. It holds no resource logic of its own: every create, read, update, delete and diff runs the
// same provider package that Terraform serves, so both tools get the same behaviour.
//
// The generated schema (cmd/pulumi-resource-kubesmith/schema.json) and bridge metadata are committed; the
// repository's `make pulumi-check` fails when they no longer match the provider.
package pulumi

import (
	"bytes"
	_ "embed" // bridge-metadata.json
	"fmt"
	"sort"
	"strings"

	pfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"

	"github.com/kubesmith/terraform-provider-kubesmith/provider"
)

// Names of the Pulumi package.
const (
	// PackageName is the Pulumi package name: plugins are pulumi-resource-kubesmith and pulumi-tfgen-kubesmith.
	PackageName = "kubesmith"
	// GoImportBasePath is the import path of the generated Go SDK.
	GoImportBasePath = "github.com/kubesmith/terraform-provider-kubesmith/sdk/go/kubesmith"
	// tfPrefix is the prefix of every Terraform resource type of the provider.
	tfPrefix = PackageName + "_"
	// module is the one Pulumi module every resource lives in.
	module = "index"
)

//go:embed cmd/pulumi-resource-kubesmith/bridge-metadata.json
var bridgeMetadata []byte

// secretFields names attributes that must be Pulumi secrets. The provider marks all of them Sensitive, which the
// bridge already turns into secrets; naming them here keeps them secret even if a schema change drops the flag,
// and Provider fails when one of them no longer exists.
func secretFields() map[string][]string {
	return map[string][]string{
		"kubesmith_cluster":      {"pool_credentials", "pki"},
		"kubesmith_nodepool":     {"credentials"},
		"kubesmith_loadbalancer": {"credentials", "vrrp_password"},
	}
}

// Provider returns the bridge's description of the kubesmith provider at the given version: the wrapped
// plugin-framework provider and one Pulumi resource per Terraform resource in the index module
// (kubesmith_cluster is kubesmith:index/cluster:Cluster, written kubesmith:index:Cluster in Pulumi YAML and
// kubesmith.NewCluster in Go; kubesmith_nodepool is Nodepool, kubesmith_loadbalancer Loadbalancer). Every resource
// the provider serves is mapped; tfgen fails on any it cannot map.
//
// Ephemeral resources (kubesmith_kubeconfig) are not bridged: bridge v3.120.0 neither lists nor serves them.
// Pulumi programs get an admin kubeconfig through the cluster's kubeconfigPath.
func Provider(version string) (tfbridge.ProviderInfo, error) {
	p := pfbridge.ShimProvider(provider.New(version)())
	info := tfbridge.ProviderInfo{
		P:            p,
		Name:         PackageName,
		DisplayName:  "kubesmith",
		Version:      version,
		Publisher:    "kubesmith",
		Description:  "Highly available Kubernetes on SSH hosts from an air-gapped artifact bundle.",
		Keywords:     []string{"kubernetes", "kubesmith", "category/infrastructure"},
		Homepage:     "https://github.com/kubesmith/terraform-provider-kubesmith",
		Repository:   "https://github.com/kubesmith/terraform-provider-kubesmith",
		GitHubOrg:    "kubesmith",
		MetadataInfo: tfbridge.NewProviderMetadata(bridgeMetadata),
		// tfgen runs in pulumi/ and reads the provider's tfplugindocs output from the repository root.
		UpstreamRepoPath: "..",
		Resources:        map[string]*tfbridge.ResourceInfo{},
		Config: map[string]*tfbridge.SchemaInfo{
			"ssh": {Fields: map[string]*tfbridge.SchemaInfo{"private_key": {Secret: ptr(true)}}},
		},
		Golang: &tfbridge.GolangInfo{
			ImportBasePath:                 GoImportBasePath,
			GenerateResourceContainerTypes: true,
			GenerateExtraInputTypes:        true,
		},
	}
	for res, fields := range secretFields() {
		ri := &tfbridge.ResourceInfo{Fields: map[string]*tfbridge.SchemaInfo{}}
		for _, f := range fields {
			ri.Fields[f] = &tfbridge.SchemaInfo{Secret: ptr(true)}
		}
		info.Resources[res] = ri
	}
	// kubesmith_<name> becomes kubesmith:index/<name>:<Name>, which Pulumi YAML also accepts as
	// kubesmith:index:<Name>. Hand-written entries above only carry field overrides; ComputeTokens fills in their
	// tokens and maps every other resource the provider has. (Tokens of the short form kubesmith:index:<Name> crash
	// bridge v3.120.0's tfgen as soon as a description names another resource.)
	if err := info.ComputeTokens(tokens.SingleModule(tfPrefix, module, tokens.MakeStandard(PackageName))); err != nil {
		return tfbridge.ProviderInfo{}, fmt.Errorf("computing Pulumi tokens: %w", err)
	}
	if err := checkMapping(info); err != nil {
		return tfbridge.ProviderInfo{}, err
	}
	info.DocRules = &tfbridge.DocRuleInfo{EditRules: func(defaults []tfbridge.DocsEdit) []tfbridge.DocsEdit {
		return append(defaults, introOnly())
	}}
	return info, nil
}

// introOnly is a docs edit that keeps a resource page of docs/ (tfplugindocs output) up to its first section:
// the description and security notes. The sections after it are written for Terraform users (HCL examples,
// terraform import, taint); the bridge would drop the whole description for mentioning Terraform. Property
// descriptions come from the provider schema, the same text tfplugindocs renders.
func introOnly() tfbridge.DocsEdit {
	return tfbridge.DocsEdit{
		Path: "*",
		Edit: func(_ string, content []byte) ([]byte, error) {
			if i := bytes.Index(content, []byte("\n## ")); i >= 0 {
				return content[:i+1], nil
			}
			return content, nil
		},
	}
}

// checkMapping fails when a Terraform resource has no Pulumi token, when a token does not have the
// kubesmith:index/<name>:<Name> form, or when a field named in secretFields is not in the resource's schema.
func checkMapping(info tfbridge.ProviderInfo) error {
	var problems []string
	info.P.ResourcesMap().Range(func(name string, r shim.Resource) bool {
		ri := info.Resources[name]
		switch {
		case ri == nil || ri.Tok == "":
			problems = append(problems, fmt.Sprintf("%s has no Pulumi token", name))
		case !strings.HasPrefix(string(ri.Tok), PackageName+":"+module+"/"):
			problems = append(problems, fmt.Sprintf("%s maps to %s, want %s:%s/<name>:<Name>", name, ri.Tok, PackageName, module))
		}
		for _, f := range secretFields()[name] {
			if _, ok := r.Schema().GetOk(f); !ok {
				problems = append(problems, fmt.Sprintf("%s has no attribute %s to mark secret", name, f))
			}
		}
		return true
	})
	for name := range info.Resources {
		if _, ok := info.P.ResourcesMap().GetOk(name); !ok {
			problems = append(problems, fmt.Sprintf("%s is mapped but the provider has no such resource", name))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("pulumi resource mapping: %s", strings.Join(problems, "; "))
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
