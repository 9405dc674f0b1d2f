package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

var (
	_ resource.Resource                = (*nodePoolResource)(nil)
	_ resource.ResourceWithConfigure   = (*nodePoolResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*nodePoolResource)(nil)
	_ resource.ResourceWithImportState = (*nodePoolResource)(nil)
)

// nodePoolResource is kubesmith_nodepool.
type nodePoolResource struct {
	resourceBase
}

// NewNodePoolResource returns the kubesmith_nodepool resource.
func NewNodePoolResource() resource.Resource { return &nodePoolResource{} }

// Metadata sets the resource type name.
func (r *nodePoolResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_nodepool"
}

// Schema describes kubesmith_nodepool.
func (r *nodePoolResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = nodePoolSchema(ctx)
}

// ModifyPlan validates the pool with the engine, plans the addresses from the hosts, and the desired config
// hash on update, so that drift observed by Read shows as an in-place update.
func (r *nodePoolResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var plan nodePoolResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	var prior *nodePoolResourceModel
	if !req.State.Raw.IsNull() {
		prior = &nodePoolResourceModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, prior)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	spec, unknown, diags := nodePoolSpecFromModel(ctx, plan, r.data)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	validated := r.data != nil && !r.data.configUnknown && r.data.engine != nil
	if validated {
		addFieldErrors(&resp.Diagnostics, r.data.engine.ValidateNodePool(ctx, spec), unknown)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	plan.Addresses, _ = hostAddresses(spec, unknown)
	if prior == nil {
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	plan.ConfigHash = types.StringUnknown()
	if validated && len(unknown) == 0 {
		hash, err := r.data.engine.DesiredNodePoolHash(spec)
		if err != nil {
			resp.Diagnostics.AddError("Unable to Compute the Desired Configuration", engineErrorDetail(
				"kubesmith hashes the workers' configuration to compare it with what refresh observed.", "", err))
			return
		}
		plan.ConfigHash = types.StringValue(hash)
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	if !resp.Plan.Raw.Equal(req.State.Raw) {
		plan.Nodes = types.ListUnknown(types.ObjectType{AttrTypes: nodeAttrTypes()})
		plan.Machines = types.ListUnknown(types.ObjectType{AttrTypes: machineAttrTypes()})
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	}
}

func (r *nodePoolResource) knownSpec(ctx context.Context, m nodePoolResourceModel) (engine.NodePoolSpec, diag.Diagnostics) {
	spec, unknown, diags := nodePoolSpecFromModel(ctx, m, r.data)
	if len(unknown) > 0 {
		diags.AddError("Unknown Values at Apply", fmt.Sprintf(
			"These attributes are still unknown: %s. This is a bug in the provider; please report it.", strings.Join(unknown, ", ")))
	}
	return spec, diags
}

// Create joins the workers.
func (r *nodePoolResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan nodePoolResourceModel
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
	st, err := eng.ApplyNodePool(ctx, spec, nil, progress.Func())
	if err != nil {
		progress.AddWarning(&resp.Diagnostics)
		if len(st.Hosts) == 0 {
			resp.Diagnostics.AddError("Unable to Create Node Pool", engineErrorDetail(
				"kubesmith failed before touching any host.", "Fix the cause and run terraform apply again.", err))
			return
		}
		st.ConfigHash = "" // the next plan shows an update that resumes the join
		resp.Diagnostics.Append(setNodePoolObserved(&plan, st)...)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		resp.Diagnostics.AddError("Node Pool Creation Incomplete", engineErrorDetail(
			fmt.Sprintf("Joining the workers of node pool %q stopped part way.", spec.Name),
			"The hosts that were touched are saved in state. Fix the cause and run terraform untaint ADDR && terraform apply; joined workers are skipped.", err))
		return
	}
	resp.Diagnostics.Append(setNodePoolObserved(&plan, st)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Read probes the workers and their Nodes. The pool leaves state only when every host answered and none
// carries the cluster's marker.
func (r *nodePoolResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state nodePoolResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if r.data != nil && r.data.configUnknown {
		resp.Diagnostics.AddWarning("Node Pool Not Refreshed",
			"The kubesmith provider block depends on values that are not known yet, so the hosts were not probed.")
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
	prior, diags := nodePoolStateFromModel(ctx, state, spec)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := eng.ReadNodePool(ctx, spec, prior)
	if err != nil {
		resp.Diagnostics.AddError("Unable to Read Node Pool", engineErrorDetail(
			fmt.Sprintf("Refreshing node pool %q failed.", spec.Name),
			"If the hosts are being repaired, plan with -refresh=false meanwhile.", err))
		return
	}
	if res.Gone {
		tflog.Info(ctx, "node pool is gone from every host; removing it from state", map[string]any{"name": spec.Name})
		resp.State.RemoveResource(ctx)
		return
	}
	for _, w := range res.Warnings {
		resp.Diagnostics.AddWarning("Node Pool Partly Observed", w)
	}
	if res.State.ClusterUID == "" {
		res.State.ClusterUID = spec.Cluster.ClusterUID
	}
	hash := res.State.ConfigHash
	if hash == "" {
		hash = state.ConfigHash.ValueString()
	}
	res.State.ConfigHash = hash
	resp.Diagnostics.Append(setNodePoolObserved(&state, res.State)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update scales the pool, repairs drift and patches labels and taints.
func (r *nodePoolResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state nodePoolResourceModel
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
	prior, diags := nodePoolStateFromModel(ctx, state, priorSpec)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	progress := newProgressLog(ctx, "update")
	st, err := eng.ApplyNodePool(ctx, spec, &prior, progress.Func())
	if err != nil {
		progress.AddWarning(&resp.Diagnostics)
		st.ConfigHash = ""
		resp.Diagnostics.Append(setNodePoolObserved(&plan, st)...)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		resp.Diagnostics.AddError("Node Pool Update Incomplete", engineErrorDetail(
			fmt.Sprintf("Converging node pool %q stopped part way.", spec.Name),
			"Fix the cause and run terraform apply again; nodes already done are skipped.", err))
		return
	}
	planned := plan.ConfigHash
	resp.Diagnostics.Append(setNodePoolObserved(&plan, st)...)
	if !planned.IsUnknown() && planned.ValueString() != st.ConfigHash {
		resp.Diagnostics.AddError("Node Pool Did Not Converge", fmt.Sprintf(
			"After the update the pool reports configuration hash %q, but the plan expected %q. The state records "+
				"what was observed; apply again to retry.", st.ConfigHash, planned.ValueString()))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Delete drains, deletes and resets every worker.
func (r *nodePoolResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state nodePoolResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	eng := r.engineReady(&resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	spec, diags := r.knownSpec(ctx, state)
	resp.Diagnostics.Append(diags...)
	prior, diags := nodePoolStateFromModel(ctx, state, spec)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	progress := newProgressLog(ctx, "delete")
	if err := eng.DeleteNodePool(ctx, spec, prior, progress.Func()); err != nil {
		progress.AddWarning(&resp.Diagnostics)
		resp.Diagnostics.AddError("Unable to Delete Node Pool", engineErrorDetail(
			fmt.Sprintf("Removing the workers of node pool %q stopped part way.", spec.Name),
			"The pool stays in state. Fix the cause and run terraform destroy again; removed workers are skipped.", err))
	}
}

// ImportState adopts a pool from one of its workers. The ID is "ADDRESS" or "ADDRESS,HOST_PUBLIC_KEY".
// Credentials are not kept on workers: the first plan after an import sets them from the configuration.
func (r *nodePoolResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	eng := r.engineReady(&resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	address, hostKey, _ := strings.Cut(req.ID, ",")
	address, hostKey = strings.TrimSpace(address), strings.TrimSpace(hostKey)
	if address == "" {
		resp.Diagnostics.AddError("Invalid Import ID", fmt.Sprintf(
			"The import ID %q must be a worker's address, optionally followed by a comma and its SSH host key.", req.ID))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, defaultReadTimeout)
	defer cancel()
	spec, st, err := eng.ImportNodePool(ctx, r.data.ssh, r.data.artifacts, address, hostKey)
	if err != nil {
		resp.Diagnostics.AddError("Unable to Import Node Pool", engineErrorDetail(
			fmt.Sprintf("Reading the node pool that worker %s belongs to failed.", address),
			"Check that the address is a worker joined by kubesmith and that its host key is given or in ssh.known_hosts_path.", err))
		return
	}
	m, diags := nodePoolModelFromImport(spec, st)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
