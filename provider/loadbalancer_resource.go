package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/resourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

var (
	_ resource.ResourceWithConfigure        = (*loadBalancerResource)(nil)
	_ resource.ResourceWithModifyPlan       = (*loadBalancerResource)(nil)
	_ resource.ResourceWithConfigValidators = (*loadBalancerResource)(nil)
)

// ConfigValidators allows hosts or libvirt, not both.
func (r *loadBalancerResource) ConfigValidators(context.Context) []resource.ConfigValidator {
	return []resource.ConfigValidator{resourcevalidator.Conflicting(path.MatchRoot("hosts"), path.MatchRoot("libvirt"))}
}

// loadBalancerResource is kubesmith_loadbalancer.
type loadBalancerResource struct {
	resourceBase
}

// NewLoadBalancerResource returns the kubesmith_loadbalancer resource.
func NewLoadBalancerResource() resource.Resource { return &loadBalancerResource{} }

// Metadata sets the resource type name.
func (r *loadBalancerResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_loadbalancer"
}

// Schema describes kubesmith_loadbalancer.
func (r *loadBalancerResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = loadBalancerSchema(ctx)
}

// ModifyPlan validates the load balancer with the engine (every pool and the VIP against the cluster's
// networks and addresses) and plans the desired config hash on update, so that drift shows as an update.
func (r *loadBalancerResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var plan loadBalancerResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	var prior *loadBalancerResourceModel
	if !req.State.Raw.IsNull() {
		prior = &loadBalancerResourceModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, prior)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	spec, unknown, diags := loadBalancerSpecFromModel(ctx, plan, r.data)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	validated := r.data != nil && !r.data.configUnknown && r.data.engine != nil
	if validated {
		addFieldErrors(&resp.Diagnostics, r.data.engine.ValidateLoadBalancer(ctx, spec), unknown)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	if prior == nil {
		return
	}
	plan.ConfigHash = types.StringUnknown()
	if validated && len(unknown) == 0 {
		hash, err := r.data.engine.DesiredLoadBalancerHash(spec)
		if err != nil {
			resp.Diagnostics.AddError("Unable to Compute the Desired Configuration", engineErrorDetail(
				"kubesmith hashes the load balancer's configuration to compare it with what refresh observed.", "", err))
			return
		}
		plan.ConfigHash = types.StringValue(hash)
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	if !resp.Plan.Raw.Equal(req.State.Raw) {
		plan.unknownObserved()
		if !plan.Libvirt.IsNull() {
			plan.Machines = types.ListUnknown(types.ObjectType{AttrTypes: machineAttrTypes()})
		}
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	}
}

func (r *loadBalancerResource) knownSpec(ctx context.Context, m loadBalancerResourceModel) (engine.LoadBalancerSpec, diag.Diagnostics) {
	spec, unknown, diags := loadBalancerSpecFromModel(ctx, m, r.data)
	if len(unknown) > 0 {
		diags.AddError("Unknown Values at Apply", fmt.Sprintf(
			"These attributes are still unknown: %s. This is a bug in the provider; please report it.", strings.Join(unknown, ", ")))
	}
	return spec, diags
}

// Create configures the service pools and the frontends.
func (r *loadBalancerResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan loadBalancerResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	eng := r.engineReady(&resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultCreateTimeout)
	resp.Diagnostics.Append(diags...)
	spec, diags := r.knownSpec(ctx, plan)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	progress := newProgressLog(ctx, "create")
	st, err := eng.ApplyLoadBalancer(ctx, spec, nil, progress.Func())
	if err != nil {
		progress.AddWarning(&resp.Diagnostics)
		// Whatever was started is recorded, so that the next apply resumes and destroy cleans it up.
		st.ConfigHash = ""
		resp.Diagnostics.Append(setLoadBalancerObserved(&plan, st)...)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		resp.Diagnostics.AddError("Load Balancer Creation Incomplete", engineErrorDetail(
			fmt.Sprintf("Setting up load balancer %q stopped part way.", spec.Name),
			"What was done is saved in state. Fix the cause and run terraform untaint ADDR && terraform apply; finished steps are skipped.", err))
		return
	}
	resp.Diagnostics.Append(setLoadBalancerObserved(&plan, st)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Read probes the pools through the API and the frontend hosts over SSH. The load balancer leaves state only
// when the cluster answered without its pools and every frontend host answered without its marker.
func (r *loadBalancerResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state loadBalancerResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if r.data != nil && r.data.configUnknown {
		resp.Diagnostics.AddWarning("Load Balancer Not Refreshed",
			"The kubesmith provider block depends on values that are not known yet, so nothing was probed.")
		return
	}
	eng := r.engineReady(&resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Read(ctx, defaultReadTimeout)
	resp.Diagnostics.Append(diags...)
	spec, diags := r.knownSpec(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	prior, diags := loadBalancerStateFromModel(ctx, state, spec)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	res, err := eng.ReadLoadBalancer(ctx, spec, prior)
	if err != nil {
		resp.Diagnostics.AddError("Unable to Read Load Balancer", engineErrorDetail(
			fmt.Sprintf("Refreshing load balancer %q failed.", spec.Name),
			"If the cluster or the hosts are being repaired, plan with -refresh=false meanwhile.", err))
		return
	}
	if res.Gone {
		tflog.Info(ctx, "load balancer is gone from the cluster and every host; removing it from state", map[string]any{"name": spec.Name})
		resp.State.RemoveResource(ctx)
		return
	}
	for _, w := range res.Warnings {
		resp.Diagnostics.AddWarning("Load Balancer Partly Observed", w)
	}
	if res.State.ClusterUID == "" {
		res.State.ClusterUID = spec.Cluster.ClusterUID
	}
	resp.Diagnostics.Append(setLoadBalancerObserved(&state, res.State)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update converges the pools and the frontends and removes the frontend from hosts that left.
func (r *loadBalancerResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state loadBalancerResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	eng := r.engineReady(&resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, defaultUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	spec, diags := r.knownSpec(ctx, plan)
	resp.Diagnostics.Append(diags...)
	priorSpec, diags := r.knownSpec(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	prior, diags := loadBalancerStateFromModel(ctx, state, priorSpec)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	progress := newProgressLog(ctx, "update")
	st, err := eng.ApplyLoadBalancer(ctx, spec, &prior, progress.Func())
	if err != nil {
		progress.AddWarning(&resp.Diagnostics)
		st.ConfigHash = ""
		resp.Diagnostics.Append(setLoadBalancerObserved(&plan, st)...)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		resp.Diagnostics.AddError("Load Balancer Update Incomplete", engineErrorDetail(
			fmt.Sprintf("Converging load balancer %q stopped part way.", spec.Name),
			"Fix the cause and run terraform apply again; finished steps are skipped.", err))
		return
	}
	planned := plan.ConfigHash
	resp.Diagnostics.Append(setLoadBalancerObserved(&plan, st)...)
	if !planned.IsUnknown() && planned.ValueString() != st.ConfigHash {
		resp.Diagnostics.AddError("Load Balancer Did Not Converge", fmt.Sprintf(
			"After the update the load balancer reports configuration hash %q, but the plan expected %q. The state "+
				"records what was observed; apply again to retry.", st.ConfigHash, planned.ValueString()))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Delete removes the pools (Services lose their addresses) and the frontends from every host.
func (r *loadBalancerResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state loadBalancerResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	eng := r.engineReady(&resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	spec, diags := r.knownSpec(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	progress := newProgressLog(ctx, "delete")
	prior, diags := loadBalancerStateFromModel(ctx, state, spec)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := eng.DeleteLoadBalancer(ctx, spec, prior, progress.Func()); err != nil {
		progress.AddWarning(&resp.Diagnostics)
		resp.Diagnostics.AddError("Unable to Delete Load Balancer", engineErrorDetail(
			fmt.Sprintf("Removing load balancer %q stopped part way.", spec.Name),
			"It stays in state. Fix the cause and run terraform destroy again; finished steps are skipped.", err))
	}
}
