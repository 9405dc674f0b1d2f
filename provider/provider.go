// Package provider is kubesmith's Terraform adapter: provider and resource schemas, conversion between Terraform
// models and engine specs, diagnostics and progress logging. Everything that touches hosts lives in
// internal/engine; this package never talks SSH itself.
package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/resource"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// ProviderAddress is the full registry address of this provider. It is always written in full: under OpenTofu
// the short form "kubesmith/kubesmith" would resolve to another registry.
const ProviderAddress = "registry.terraform.io/kubesmith/kubesmith"

// Ensure the provider satisfies the framework interfaces.
var (
	_ provider.Provider                       = (*kubesmithProvider)(nil)
	_ provider.ProviderWithEphemeralResources = (*kubesmithProvider)(nil)
)

// kubesmithProvider is the kubesmith provider implementation.
type kubesmithProvider struct {
	version string
	// engine is used as given when not nil (tests, the Pulumi bridge); otherwise Configure builds the real one.
	engine engine.API
}

// providerData is what Configure hands to every resource: the engine and the provider-level defaults that
// become part of each spec.
type providerData struct {
	engine     engine.API
	ssh        engine.SSH
	artifacts  engine.Artifacts
	libvirtURI string
	// configUnknown is true while the provider block still holds values Terraform does not know (during plan,
	// when they come from other resources). Resources then skip host-independent validation until apply.
	configUnknown bool
}

// New returns a constructor of the kubesmith provider backed by the real engine. It is what main.go serves and
// what a Terraform-to-Pulumi bridge wraps.
func New(version string) func() provider.Provider {
	return NewWithEngine(version, nil)
}

// NewWithEngine returns a constructor of the kubesmith provider that uses eng for every operation. A nil eng
// means the real engine, built when the provider is configured. Tests pass a fake.
func NewWithEngine(version string, eng engine.API) func() provider.Provider {
	return func() provider.Provider {
		return &kubesmithProvider{version: version, engine: eng}
	}
}

// Metadata sets the provider type name, the prefix of every resource type.
func (p *kubesmithProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "kubesmith"
	resp.Version = p.version
}

// Schema describes the provider block.
func (p *kubesmithProvider) Schema(ctx context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = providerSchema()
}

// Configure resolves the provider block (with environment fallbacks and defaults) and hands the engine and the
// resolved defaults to resources.
func (p *kubesmithProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	data := &providerData{}
	if !req.Config.Raw.IsFullyKnown() {
		data.configUnknown = true
	} else {
		resolved, diags := resolveProviderConfig(ctx, cfg, osEnv{})
		resp.Diagnostics.Append(diags...)
		if resp.Diagnostics.HasError() {
			return
		}
		data.ssh, data.artifacts, data.libvirtURI = resolved.ssh, resolved.artifacts, resolved.libvirtURI
	}

	data.engine = p.engine
	if data.engine == nil {
		eng, err := newRealEngine(data.libvirtURI)
		if err != nil {
			resp.Diagnostics.AddError("Unable to Start the kubesmith Engine",
				fmt.Sprintf("The provider could not initialise its engine.\n\nOriginal Error: %s", err))
			return
		}
		data.engine = eng
	}
	resp.ResourceData = data
	resp.EphemeralResourceData = data
}

// Resources lists the managed resources.
func (p *kubesmithProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{NewClusterResource, NewNodePoolResource, NewLoadBalancerResource}
}

// DataSources lists the data sources; there are none yet.
func (p *kubesmithProvider) DataSources(context.Context) []func() datasource.DataSource {
	return nil
}

// EphemeralResources lists the ephemeral resources.
func (p *kubesmithProvider) EphemeralResources(context.Context) []func() ephemeral.EphemeralResource {
	return []func() ephemeral.EphemeralResource{NewKubeconfigEphemeralResource}
}

// providerDataFrom type-checks the value a resource receives in Configure.
func providerDataFrom(v any) (*providerData, error) {
	if v == nil {
		return nil, nil
	}
	d, ok := v.(*providerData)
	if !ok {
		return nil, fmt.Errorf("expected *providerData, got %T; please report this issue to the provider developers", v)
	}
	return d, nil
}
