package provider

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// Ensure clusterResource satisfies the framework interfaces.
var (
	_ resource.Resource                   = (*clusterResource)(nil)
	_ resource.ResourceWithConfigure      = (*clusterResource)(nil)
	_ resource.ResourceWithValidateConfig = (*clusterResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*clusterResource)(nil)
	_ resource.ResourceWithImportState    = (*clusterResource)(nil)
)

// Default operation timeouts.
const (
	defaultCreateTimeout = 30 * time.Minute
	defaultUpdateTimeout = 60 * time.Minute
	defaultDeleteTimeout = 15 * time.Minute
	defaultReadTimeout   = 5 * time.Minute
)

// clusterResource is kubesmith_cluster.
type clusterResource struct {
	resourceBase
}

// NewClusterResource returns the kubesmith_cluster resource.
func NewClusterResource() resource.Resource { return &clusterResource{} }

// Metadata sets the resource type name.
func (r *clusterResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster"
}

// Schema describes kubesmith_cluster.
func (r *clusterResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = clusterSchema(ctx)
}

// ValidateConfig reports what this build cannot do, before any plan.
func (r *clusterResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m clusterResourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
}

// ModifyPlan validates the planned spec with the engine (without touching any host), computes the desired
// config hash, and keeps what an update can change unknown, so that drift reported by Read shows up as an
// in-place update.
func (r *clusterResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return // destroy
	}
	var plan clusterResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	var prior *clusterResourceModel
	if !req.State.Raw.IsNull() {
		prior = &clusterResourceModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, prior)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	plan.APIEndpoint = apiEndpointValue(plan.APIVIP, plan.APIPort)

	spec, unknown, diags := specFromModel(ctx, plan, r.data)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	validated := r.data != nil && !r.data.configUnknown && r.data.engine != nil
	if validated {
		addFieldErrors(&resp.Diagnostics, r.data.engine.ValidateCluster(ctx, spec), unknown)
		if resp.Diagnostics.HasError() {
			return
		}
	} else {
		tflog.Debug(ctx, "cluster validation deferred: provider configuration not known yet")
	}

	// The join object is derived from the spec, except the UID and the CA that create generates: plan what is
	// known, so that pools and load balancers created in the same apply validate their addresses at plan time.
	if prior == nil && len(unknown) == 0 {
		if j, ok := engine.PlannedJoin(spec); ok {
			pj, d := plannedJoinValue(j)
			resp.Diagnostics.Append(d...)
			plan.Join = pj
		}
	}

	if prior != nil {
		plan.ConfigHash = types.StringUnknown()
		if validated && len(unknown) == 0 {
			hash, err := r.data.engine.DesiredClusterHash(spec, prior.ClusterUID.ValueString())
			if err != nil {
				resp.Diagnostics.AddError("Unable to Compute the Desired Configuration",
					engineErrorDetail("kubesmith renders every node's configuration to compare it with what "+
						"is on the hosts.", "", err))
				return
			}
			plan.ConfigHash = types.StringValue(hash)
			if applied := prior.ConfigHash.ValueString(); applied != hash && applied != "" {
				if cfg, err := r.data.engine.DesiredClusterConfig(spec, prior.ClusterUID.ValueString()); err == nil {
					tflog.Info(ctx, "the desired configuration differs from the one the hosts were installed with; "+
						"compare it with /var/lib/kubesmith/cluster.json on a master", map[string]any{"applied_hash": applied, "desired_hash": hash, "desired": string(cfg)})
				}
			}
		}
		priorSpec, _, diags := specFromModel(ctx, *prior, r.data)
		resp.Diagnostics.Append(diags...)
		if prior.Installed.ValueBool() && joinInputsEqual(spec, priorSpec) && len(unknown) == 0 {
			plan.Join = prior.Join
		} else if j, ok := engine.PlannedJoin(spec); ok && len(unknown) == 0 {
			j.ClusterUID = prior.ClusterUID.ValueString()
			pj, d := plannedJoinValue(j)
			resp.Diagnostics.Append(d...)
			if ca := prior.CACertificate.ValueString(); ca != "" {
				attrs := pj.Attributes()
				attrs["ca_certificate"] = types.StringValue(ca)
				pj, d = types.ObjectValue(joinAttrTypes(), attrs)
				resp.Diagnostics.Append(d...)
			}
			plan.Join = pj
		} else {
			plan.Join = types.ObjectUnknown(joinAttrTypes())
		}
		// After a failed create, generated values may be partly missing; the resumed apply fills the gaps
		// (and never replaces what exists, which the engine guarantees).
		if incomplete(prior.PKI) {
			plan.PKI = types.ObjectUnknown(pkiAttrTypes())
		}
		if incomplete(prior.PoolCredentials) {
			plan.PoolCredentials = types.ObjectUnknown(poolCredsAttrTypes())
		}
		if prior.CACertificate.ValueString() == "" {
			plan.CACertificate = types.StringUnknown()
		}
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	if prior == nil || resp.Diagnostics.HasError() {
		return
	}

	// An update is coming (drift, a changed attribute, or a previous apply that did not finish): what it
	// observes afterwards is not known yet.
	if !resp.Plan.Raw.Equal(req.State.Raw) || !prior.Installed.ValueBool() {
		plan.Installed = types.BoolUnknown()
		plan.Nodes = types.ListUnknown(types.ObjectType{AttrTypes: nodeAttrTypes()})
		plan.EtcdMembers = types.ListUnknown(types.StringType)
		plan.CertificatesExpire = types.StringUnknown()
		plan.Machines = types.ListUnknown(types.ObjectType{AttrTypes: machineAttrTypes()})
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	}
}

// incomplete reports whether a generated object in state is missing or has an empty string attribute.
func incomplete(o types.Object) bool {
	if o.IsNull() || o.IsUnknown() {
		return true
	}
	for _, v := range o.Attributes() {
		if s, ok := v.(types.String); ok && s.ValueString() == "" {
			return true
		}
	}
	return false
}

// joinInputsEqual reports whether everything the join object is derived from is unchanged.
func joinInputsEqual(a, b engine.ClusterSpec) bool {
	addrs := func(hs []engine.Host) []string {
		out := make([]string, 0, len(hs))
		for _, h := range hs {
			out = append(out, h.Address)
		}
		return out
	}
	return a.Name == b.Name && a.KubernetesVersion == b.KubernetesVersion && a.NodeNetwork == b.NodeNetwork &&
		a.APIVIP == b.APIVIP && a.APIPort == b.APIPort && a.PodCIDR == b.PodCIDR && a.ServiceCIDR == b.ServiceCIDR &&
		reflect.DeepEqual(addrs(a.ControlPlane), addrs(b.ControlPlane))
}

// mastersIdentityChanged asks for replacement when the masters' count, names or addresses change. Connection
// details (ssh_address, port, user, host key) change in place.
func mastersIdentityChanged(ctx context.Context, req planmodifier.ListRequest, resp *listplanmodifier.RequiresReplaceIfFuncResponse) {
	ids := func(l types.List) ([]string, bool) {
		if l.IsUnknown() {
			return nil, false
		}
		var hosts []types.Object
		if d := l.ElementsAs(ctx, &hosts, true); d.HasError() {
			return nil, false
		}
		out := make([]string, 0, len(hosts))
		for _, o := range hosts {
			if o.IsUnknown() {
				return nil, false
			}
			var h hostModel
			if d := o.As(ctx, &h, basetypes.ObjectAsOptions{}); d.HasError() {
				return nil, false
			}
			if h.Name.IsUnknown() || h.Address.IsUnknown() {
				return nil, false
			}
			out = append(out, h.Name.ValueString()+"="+h.Address.ValueString())
		}
		return out, true
	}
	before, ok1 := ids(req.StateValue)
	after, ok2 := ids(req.PlanValue)
	// Not knowing yet counts as a change: planning an update and then replacing at apply is not allowed.
	resp.RequiresReplace = !ok1 || !ok2 || !reflect.DeepEqual(before, after)
}

// Create installs the cluster.
func (r *clusterResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan clusterResourceModel
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
	st, err := eng.ApplyCluster(ctx, spec, nil, progress.Func())
	if err != nil {
		progress.AddWarning(&resp.Diagnostics)
		if st.UID == "" {
			resp.Diagnostics.AddError("Unable to Create Cluster", engineErrorDetail(
				"kubesmith failed before anything was recorded on the hosts; nothing needs cleaning up.",
				"Fix the cause and run terraform apply again.", err))
			return
		}
		// Keep the UID and PKI: the next apply must continue this cluster, never mint a new CA.
		st.ConfigHash = ""
		resp.Diagnostics.Append(setComputed(ctx, &plan, st)...)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		resp.Diagnostics.AddError("Cluster Creation Incomplete", engineErrorDetail(
			fmt.Sprintf("Installing cluster %q (UID %s) stopped part way.", spec.Name, st.UID), resumeHint, err))
		return
	}
	resp.Diagnostics.Append(setComputed(ctx, &plan, st)...)
	r.writeKubeconfig(ctx, &plan, spec, st, resumeHint, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Read probes the hosts. It removes the resource only when the engine says the cluster is positively gone.
func (r *clusterResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state clusterResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if r.data != nil && r.data.configUnknown {
		// Refresh cannot reach hosts without knowing how; keep what state says rather than failing the plan.
		resp.Diagnostics.AddWarning("Cluster Not Refreshed",
			"The kubesmith provider block depends on values that are not known yet, so the hosts were not "+
				"probed. The plan uses the last recorded state.")
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
	prior, diags := stateFromModel(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	res, err := eng.ReadCluster(ctx, spec, prior)
	if err != nil {
		resp.Diagnostics.AddError("Unable to Read Cluster", engineErrorDetail(
			fmt.Sprintf("Refreshing cluster %q (UID %s) failed.", spec.Name, prior.UID),
			"If the hosts are being repaired, plan with -refresh=false meanwhile.", err))
		return
	}
	if res.Gone {
		tflog.Info(ctx, "cluster is gone from every host; removing it from state", map[string]any{"uid": prior.UID})
		resp.State.RemoveResource(ctx)
		return
	}
	for _, w := range res.Warnings {
		resp.Diagnostics.AddWarning("Cluster Partly Observed", w)
	}
	// An empty observed hash means "could not tell" (unreachable hosts), which is not drift.
	if res.State.ConfigHash != "" {
		state.ConfigHash = types.StringValue(res.State.ConfigHash)
	}
	resp.Diagnostics.Append(setObserved(ctx, &state, res.State)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update converges the cluster to the plan: upgrades, drift repair, resumption after a failed create.
func (r *clusterResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state clusterResourceModel
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
	prior, diags := stateFromModel(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	st := prior
	if onlyLocalChanges(spec, priorSpec, plan, state) {
		tflog.Info(ctx, "only provider-local attributes changed; the hosts are not contacted")
	} else {
		progress := newProgressLog(ctx, "update")
		var err error
		st, err = eng.ApplyCluster(ctx, spec, &prior, progress.Func())
		if err != nil {
			progress.AddWarning(&resp.Diagnostics)
			if st.UID == "" {
				st.UID, st.PKI = prior.UID, prior.PKI
			}
			st.ConfigHash = "" // the next plan shows an update that resumes the work
			resp.Diagnostics.Append(setComputed(ctx, &plan, st)...)
			resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
			resp.Diagnostics.AddError("Cluster Update Incomplete", engineErrorDetail(
				fmt.Sprintf("Converging cluster %q (UID %s) stopped part way.", spec.Name, prior.UID),
				"Fix the cause and run terraform apply again; every phase skips what is already done.", err))
			return
		}
	}
	planned := plan.ConfigHash
	resp.Diagnostics.Append(setComputed(ctx, &plan, st)...)
	if !planned.IsUnknown() && planned.ValueString() != st.ConfigHash {
		// Plan and apply must agree. Saying so here beats Terraform's generic "inconsistent result" error.
		resp.Diagnostics.AddError("Cluster Did Not Converge", fmt.Sprintf(
			"After the update the hosts report configuration hash %q, but the plan expected %q. The state "+
				"records what the hosts report, so the next plan shows the remaining difference and applying "+
				"again retries. If this repeats, please report it with the provider's debug log (TF_LOG=DEBUG).",
			st.ConfigHash, planned.ValueString()))
	}
	r.writeKubeconfig(ctx, &plan, spec, st, "Fix the path or its directory's permissions and apply again.", &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// onlyLocalChanges reports whether an update changes nothing on the hosts: the specs are equal apart from the
// kubeconfig file, the desired hash equals the observed one, and the last apply finished.
func onlyLocalChanges(spec, priorSpec engine.ClusterSpec, plan, state clusterResourceModel) bool {
	spec.KubeconfigPath, priorSpec.KubeconfigPath = "", ""
	return state.Installed.ValueBool() && !plan.ConfigHash.IsUnknown() &&
		plan.ConfigHash.ValueString() == state.ConfigHash.ValueString() && reflect.DeepEqual(spec, priorSpec)
}

// Delete resets every host to its pre-install state.
func (r *clusterResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state clusterResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	eng := r.engineReady(&resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	spec, diags := r.knownSpec(ctx, state)
	resp.Diagnostics.Append(diags...)
	prior, diags := stateFromModel(ctx, state)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	progress := newProgressLog(ctx, "delete")
	if err := eng.DeleteCluster(ctx, spec, prior, progress.Func()); err != nil {
		progress.AddWarning(&resp.Diagnostics)
		resp.Diagnostics.AddError("Unable to Delete Cluster", engineErrorDetail(
			fmt.Sprintf("Resetting the hosts of cluster %q (UID %s) stopped part way.", spec.Name, prior.UID),
			"The cluster stays in state. Fix the cause and run terraform destroy again; hosts already reset are skipped.", err))
	}
}

// ImportState adopts an existing cluster from one of its masters. The ID is "ADDRESS" or
// "ADDRESS,HOST_PUBLIC_KEY" (for example "192.168.150.11,ssh-ed25519 AAAA...").
func (r *clusterResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	eng := r.engineReady(&resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	address, hostKey, _ := strings.Cut(req.ID, ",")
	address, hostKey = strings.TrimSpace(address), strings.TrimSpace(hostKey)
	if address == "" {
		resp.Diagnostics.AddError("Invalid Import ID", fmt.Sprintf(
			"The import ID %q must be a master's address, optionally followed by a comma and its SSH host key: "+
				"\"192.168.150.11\" or \"192.168.150.11,ssh-ed25519 AAAA...\".", req.ID))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, defaultReadTimeout)
	defer cancel()
	spec, st, err := eng.ImportCluster(ctx, r.data.ssh, r.data.artifacts, address, hostKey)
	if err != nil {
		resp.Diagnostics.AddError("Unable to Import Cluster", engineErrorDetail(
			fmt.Sprintf("Reading the cluster that master %s belongs to failed.", address),
			"Check that the address is a master installed by kubesmith and that its host key is given or in "+
				"ssh.known_hosts_path.", err))
		return
	}
	m, diags := modelFromImport(ctx, spec, st, r.data)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// knownSpec converts a model whose values must all be known (apply, read, delete).
func (r *clusterResource) knownSpec(ctx context.Context, m clusterResourceModel) (engine.ClusterSpec, diag.Diagnostics) {
	spec, unknown, diags := specFromModel(ctx, m, r.data)
	if len(unknown) > 0 {
		diags.AddError("Unknown Values at Apply", fmt.Sprintf(
			"These attributes are still unknown: %s. This is a bug in the provider; please report it.",
			strings.Join(unknown, ", ")))
	}
	return spec, diags
}

// writeKubeconfig writes the admin kubeconfig to kubeconfig_path, if set. A failure leaves config_hash empty so
// that the next plan shows an update that writes it again.
func (r *clusterResource) writeKubeconfig(ctx context.Context, m *clusterResourceModel, spec engine.ClusterSpec, st engine.ClusterState, remedy string, diags *diag.Diagnostics) {
	if m.KubeconfigPath.IsNull() || m.KubeconfigPath.ValueString() == "" {
		return
	}
	fail := func(err error) {
		m.ConfigHash = types.StringValue("")
		diags.AddAttributeError(path.Root("kubeconfig_path"), "Unable to Write Kubeconfig", engineErrorDetail(
			fmt.Sprintf("The cluster is installed, but its admin kubeconfig could not be written to %s.",
				m.KubeconfigPath.ValueString()),
			remedy, err))
	}
	validity, err := time.ParseDuration(m.KubeconfigValidity.ValueString())
	if err != nil {
		fail(fmt.Errorf("kubeconfig_validity: %w", err))
		return
	}
	kc, err := r.data.engine.AdminKubeconfig(spec, st, validity)
	if err != nil {
		fail(err)
		return
	}
	if err := writeKubeconfigFile(m.KubeconfigPath.ValueString(), kc); err != nil {
		fail(err)
		return
	}
	tflog.Info(ctx, "admin kubeconfig written", map[string]any{"path": m.KubeconfigPath.ValueString(), "validity": validity.String()})
}
