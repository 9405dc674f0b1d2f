package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// resourceBase is what every kubesmith resource shares: the provider's data (engine and defaults), set by
// Configure.
type resourceBase struct {
	data *providerData
}

// Configure receives the engine and provider defaults.
func (r *resourceBase) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	d, err := providerDataFrom(req.ProviderData)
	if err != nil {
		resp.Diagnostics.AddError("Unexpected Resource Configure Type", err.Error())
		return
	}
	r.data = d
}

// engineReady returns the engine, or adds an error when the provider was not configured.
func (r *resourceBase) engineReady(diags *diag.Diagnostics) engine.API {
	if r.data == nil || r.data.engine == nil {
		diags.AddError("Provider Not Configured",
			"The kubesmith provider was not configured before this operation. This is a bug in Terraform or the "+
				"provider; please report it.")
		return nil
	}
	if r.data.configUnknown {
		diags.AddError("Provider Configuration Unknown",
			"The kubesmith provider block depends on values that are not known yet. Apply the resources it "+
				"depends on first (terraform apply -target=...).")
		return nil
	}
	return r.data.engine
}
