package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// Node pool defaults.
const (
	defaultMaxUnavailable = 1
	defaultDrainTimeout   = "5m"
)

// nodePoolResourceModel is kubesmith_nodepool.
type nodePoolResourceModel struct {
	ID             types.String   `tfsdk:"id"`
	Name           types.String   `tfsdk:"name"`
	Cluster        types.Object   `tfsdk:"cluster"`
	Credentials    types.Object   `tfsdk:"credentials"`
	Hosts          types.List     `tfsdk:"hosts"`
	Libvirt        types.Object   `tfsdk:"libvirt"`
	Machines       types.List     `tfsdk:"machines"`
	Labels         types.Map      `tfsdk:"labels"`
	Taints         types.List     `tfsdk:"taints"`
	MaxUnavailable types.Int64    `tfsdk:"max_unavailable"`
	DrainTimeout   types.String   `tfsdk:"drain_timeout"`
	Addresses      types.List     `tfsdk:"addresses"`
	ConfigHash     types.String   `tfsdk:"config_hash"`
	Nodes          types.List     `tfsdk:"nodes"`
	Timeouts       timeouts.Value `tfsdk:"timeouts"`
}

// taintModel is one element of taints.
type taintModel struct {
	Key    types.String `tfsdk:"key"`
	Value  types.String `tfsdk:"value"`
	Effect types.String `tfsdk:"effect"`
}

func nodePoolAttrType(name string) attr.Type {
	return nodePoolSchema(context.Background()).Attributes[name].GetType()
}

func taintAttrTypes() map[string]attr.Type {
	if lt, ok := nodePoolAttrType("taints").(types.ListType); ok {
		return objectAttrTypes(lt.ElemType)
	}
	return nil
}

func poolCredentialAttrTypes() map[string]attr.Type {
	return objectAttrTypes(nodePoolAttrType("credentials"))
}

// nodePoolSchema describes kubesmith_nodepool.
func nodePoolSchema(ctx context.Context) schema.Schema {
	return schema.Schema{
		Description: "Workers that join a kubesmith cluster over SSH: binaries and images from the artifact bundle, " +
			"kubelet TLS bootstrap with one-node tokens whose CSRs kubesmith approves by name, and ordered removal " +
			"(cordon, PDB-aware drain, Node deletion, host reset).",
		MarkdownDescription: "Workers that join a `kubesmith_cluster` over SSH. Binaries and images come from the " +
			"artifact bundle; each kubelet joins through TLS bootstrap with a one-node bootstrap token, and kubesmith " +
			"approves exactly the client CSRs of the nodes it planned. Removal is ordered: cordon, PDB-aware drain " +
			"(`drain_timeout`), Node deletion, host reset, `max_unavailable` at a time. Labels and taints are " +
			"patched on the Node objects in place, without touching the hosts.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, Description: "CLUSTER_UID/NAME.", MarkdownDescription: "`CLUSTER_UID/NAME`.",
				PlanModifiers: stableString(),
			},
			"name": schema.StringAttribute{
				Required:            true,
				Description:         "Pool name, a lower-case DNS label; nodes carry it as the kubesmith.io/pool label.",
				MarkdownDescription: "Pool name, a lower-case DNS label; nodes carry it as the `kubesmith.io/pool` label.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"cluster":     joinInputAttribute("pool"),
			"credentials": credentialsInputAttribute("creates bootstrap tokens, approves its own nodes' CSRs and labels or drains nodes"),
			"hosts": schema.ListNestedAttribute{
				Optional: true,
				Description: "The workers, existing machines (exactly one of hosts or libvirt). Adding a host joins it " +
					"without touching the others; removing one drains, deletes and resets it.",
				MarkdownDescription: "The workers, existing machines (exactly one of `hosts` or `libvirt`). Adding a host " +
					"joins it without touching the others; removing one cordons, drains, deletes and resets it.",
				NestedObject: schema.NestedAttributeObject{Attributes: hostAttributes()},
			},
			"libvirt": schema.SingleNestedAttribute{
				Optional: true,
				Description: "The workers as libvirt VMs that kubesmith creates on the provider's libvirt_uri (exactly one " +
					"of hosts or libvirt). Raising count creates and joins VMs; lowering it cordons, drains and deletes " +
					"the last nodes, then destroys their VMs.",
				MarkdownDescription: "The workers as libvirt VMs that kubesmith creates on the provider's `libvirt_uri` " +
					"(exactly one of `hosts` or `libvirt`), named `ks-<cluster>-<pool>-<n>`. Raising `count` creates and " +
					"joins VMs; lowering it cordons, drains and deletes the last nodes, then destroys their VMs. Changing " +
					"the VMs' shape, network, image or accelerator replaces the pool.",
				Attributes: libvirtAttributes(true),
			},
			"machines": machinesAttribute(),
			"labels": schema.MapAttribute{
				ElementType: types.StringType, Optional: true,
				Description:         "Labels kept on every Node of the pool (patched in place).",
				MarkdownDescription: "Labels kept on every Node of the pool (patched in place).",
			},
			"taints": schema.ListNestedAttribute{
				Optional:            true,
				Description:         "Taints kept on every Node of the pool (patched in place).",
				MarkdownDescription: "Taints kept on every Node of the pool (patched in place).",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"key": schema.StringAttribute{Required: true, Description: "Taint key.", MarkdownDescription: "Taint key."},
					"value": schema.StringAttribute{
						Optional: true, Description: "Taint value.",
						MarkdownDescription: "Taint value.",
					},
					"effect": schema.StringAttribute{
						Required:            true,
						Description:         "NoSchedule, PreferNoSchedule or NoExecute.",
						MarkdownDescription: "`NoSchedule`, `PreferNoSchedule` or `NoExecute`.",
					},
				}},
			},
			"max_unavailable": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(defaultMaxUnavailable),
				Description:         "How many nodes are drained at once on removal. Default 1.",
				MarkdownDescription: "How many nodes are drained at once on removal. Default `1`.",
			},
			"drain_timeout": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString(defaultDrainTimeout),
				Validators:          []validator.String{durationValidator{}},
				Description:         "How long to wait for one node's pods to be evicted. Default 5m.",
				MarkdownDescription: "How long to wait for one node's pods to be evicted (a Go duration). Default `5m`.",
			},
			"addresses": schema.ListAttribute{
				ElementType: types.StringType, Computed: true,
				Description:         "The workers' addresses, known at plan time (backends for load balancer frontends).",
				MarkdownDescription: "The workers' addresses, known at plan time (backends for load balancer frontends).",
			},
			"config_hash": schema.StringAttribute{
				Computed: true,
				Description: "Hash of the workers' configuration, labels and taints; drift observed by refresh shows " +
					"as an in-place update.",
				MarkdownDescription: "Hash of the workers' configuration, labels and taints; drift observed by " +
					"refresh shows as an in-place update.",
			},
			"nodes": schema.ListNestedAttribute{
				Computed:            true,
				Description:         "What the last refresh observed on each node.",
				MarkdownDescription: "What the last refresh observed on each node.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":            computedString("Node name."),
					"address":         computedString("Node address."),
					"role":            computedString("Role: worker."),
					"reachable":       computedBool("Whether the node answered over SSH."),
					"ready":           computedBool("Whether the Kubernetes Node is Ready."),
					"kubelet_version": computedString("Running kubelet version."),
					"config_hash":     computedString("Hash of the configuration observed on this node, or what is wrong (unreachable, drift, node-missing)."),
				}},
			},
			"timeouts": timeoutsAttribute(ctx),
		},
	}
}

// clusterUIDChanged replaces the pool when it would move to another cluster.
func clusterUIDChanged(_ context.Context, req planmodifier.ObjectRequest, resp *objectplanmodifier.RequiresReplaceIfFuncResponse) {
	if req.StateValue.IsNull() {
		return
	}
	uid := func(o types.Object) (string, bool) {
		if o.IsUnknown() || o.IsNull() {
			return "", false
		}
		v, ok := o.Attributes()["cluster_uid"].(types.String)
		if !ok || v.IsUnknown() {
			return "", false
		}
		return v.ValueString(), true
	}
	before, ok1 := uid(req.StateValue)
	after, ok2 := uid(req.PlanValue)
	resp.RequiresReplace = !ok1 || !ok2 || before != after
}

// nodePoolSpecFromModel builds the engine spec; unknown values are left empty and their paths returned.
func nodePoolSpecFromModel(ctx context.Context, m nodePoolResourceModel, data *providerData) (engine.NodePoolSpec, []string, diag.Diagnostics) {
	r := &specReader{ctx: ctx}
	spec := engine.NodePoolSpec{
		Name:           r.str(m.Name, "name"),
		MaxUnavailable: r.num(m.MaxUnavailable, "max_unavailable"),
		DrainTimeout:   r.duration(m.DrainTimeout, "drain_timeout"),
		Hosts:          r.hosts(m.Hosts, "hosts"),
		Libvirt:        r.libvirt(m.Libvirt, "libvirt"),
	}
	if data != nil {
		spec.SSH, spec.Artifacts = data.ssh, data.artifacts
	}
	spec.Cluster = r.joinInput(m.Cluster, "cluster")
	spec.Credentials = r.credentialsInput(m.Credentials, "credentials")
	switch {
	case m.Labels.IsUnknown():
		r.unknown = append(r.unknown, "labels")
	case !m.Labels.IsNull():
		var labels map[string]types.String
		r.diags.Append(m.Labels.ElementsAs(ctx, &labels, true)...)
		spec.Labels = map[string]string{}
		for k, v := range labels {
			spec.Labels[k] = r.str(v, "labels["+k+"]")
		}
	}
	switch {
	case m.Taints.IsUnknown():
		r.unknown = append(r.unknown, "taints")
	case !m.Taints.IsNull():
		var taints []taintModel
		r.diags.Append(m.Taints.ElementsAs(ctx, &taints, true)...)
		for i, t := range taints {
			p := fmt.Sprintf("taints[%d]", i)
			spec.Taints = append(spec.Taints, engine.Taint{Key: r.str(t.Key, p+".key"), Value: r.str(t.Value, p+".value"), Effect: r.str(t.Effect, p+".effect")})
		}
	}
	return spec, r.unknown, r.diags
}

// nodePoolStateFromModel is what the engine needs of a pool's state.
func nodePoolStateFromModel(ctx context.Context, m nodePoolResourceModel, spec engine.NodePoolSpec) (engine.NodePoolState, diag.Diagnostics) {
	var diags diag.Diagnostics
	st := engine.NodePoolState{ClusterUID: spec.Cluster.ClusterUID, Hosts: spec.Hosts, ConfigHash: m.ConfigHash.ValueString()}
	if spec.Libvirt != nil {
		st.Hosts = engine.MachineHosts(spec.Cluster.ClusterName, spec.Name, spec.Libvirt)
	}
	r := &specReader{ctx: ctx}
	st.Machines = r.machines(m.Machines)
	diags.Append(r.diags...)
	if !m.Nodes.IsNull() && !m.Nodes.IsUnknown() {
		var nodes []nodeModel
		diags.Append(m.Nodes.ElementsAs(ctx, &nodes, true)...)
		for _, n := range nodes {
			st.Nodes = append(st.Nodes, engine.NodeStatus{
				Name: n.Name.ValueString(), Address: n.Address.ValueString(),
				Role: n.Role.ValueString(), Reachable: n.Reachable.ValueBool(), Ready: n.Ready.ValueBool(),
				KubeletVersion: n.KubeletVersion.ValueString(), ConfigHash: n.ConfigHash.ValueString(),
			})
		}
	}
	return st, diags
}

// setNodePoolObserved fills the computed attributes from the engine's state.
func setNodePoolObserved(m *nodePoolResourceModel, st engine.NodePoolState) diag.Diagnostics {
	var diags diag.Diagnostics
	m.ID = types.StringValue(st.ClusterUID + "/" + m.Name.ValueString())
	m.ConfigHash = types.StringValue(st.ConfigHash)
	m.Addresses = stringList(st.Addresses)
	var d diag.Diagnostics
	m.Machines, d = machinesValue(st.Machines)
	diags.Append(d...)
	elems := make([]attr.Value, 0, len(st.Nodes))
	for _, n := range st.Nodes {
		o, d := types.ObjectValue(nodeAttrTypes(), map[string]attr.Value{
			"name": types.StringValue(n.Name), "address": types.StringValue(n.Address), "role": types.StringValue(n.Role),
			"reachable": types.BoolValue(n.Reachable), "ready": types.BoolValue(n.Ready),
			"kubelet_version": types.StringValue(n.KubeletVersion), "config_hash": types.StringValue(n.ConfigHash),
		})
		diags.Append(d...)
		elems = append(elems, o)
	}
	l, d := types.ListValue(types.ObjectType{AttrTypes: nodeAttrTypes()}, elems)
	diags.Append(d...)
	m.Nodes = l
	return diags
}

// nodePoolModelFromImport builds the state of an imported pool. Credentials are not on the workers, so they
// stay null until the configuration supplies them.
func nodePoolModelFromImport(spec engine.NodePoolSpec, st engine.NodePoolState) (nodePoolResourceModel, diag.Diagnostics) {
	var diags diag.Diagnostics
	m := nodePoolResourceModel{
		Name:           types.StringValue(spec.Name),
		MaxUnavailable: types.Int64Value(int64(orInt(spec.MaxUnavailable, defaultMaxUnavailable))),
		DrainTimeout:   types.StringValue(orDuration(spec.DrainTimeout, defaultDrainTimeout)),
		Credentials:    types.ObjectNull(poolCredentialAttrTypes()),
		Timeouts:       timeouts.Value{Object: types.ObjectNull(timeoutsAttrTypes())},
	}
	j, d := joinValue(spec.Cluster)
	diags.Append(d...)
	m.Cluster = j
	hosts := make([]attr.Value, 0, len(spec.Hosts))
	for _, h := range spec.Hosts {
		o, d := types.ObjectValue(hostAttrTypes(), map[string]attr.Value{
			"name": types.StringValue(h.Name), "address": types.StringValue(h.Address),
			"ssh_address": nullIfEmpty(h.SSHAddress), "user": nullIfEmpty(h.User),
			"host_public_key": nullIfEmpty(h.HostPublicKey), "port": nullIfZero(h.Port),
		})
		diags.Append(d...)
		hosts = append(hosts, o)
	}
	m.Hosts, d = types.ListValue(types.ObjectType{AttrTypes: hostAttrTypes()}, hosts)
	diags.Append(d...)
	m.Libvirt = types.ObjectNull(objectAttrTypes(nodePoolAttrType("libvirt")))
	m.Labels = types.MapNull(types.StringType)
	if len(spec.Labels) > 0 {
		vals := map[string]attr.Value{}
		for k, v := range spec.Labels {
			vals[k] = types.StringValue(v)
		}
		m.Labels, d = types.MapValue(types.StringType, vals)
		diags.Append(d...)
	}
	m.Taints = types.ListNull(types.ObjectType{AttrTypes: taintAttrTypes()})
	if len(spec.Taints) > 0 {
		var ts []attr.Value
		for _, t := range spec.Taints {
			o, d := types.ObjectValue(taintAttrTypes(), map[string]attr.Value{
				"key": types.StringValue(t.Key), "value": nullIfEmpty(t.Value), "effect": types.StringValue(t.Effect),
			})
			diags.Append(d...)
			ts = append(ts, o)
		}
		m.Taints, d = types.ListValue(types.ObjectType{AttrTypes: taintAttrTypes()}, ts)
		diags.Append(d...)
	}
	diags.Append(setNodePoolObserved(&m, st)...)
	return m, diags
}

func nullIfZero(v int) types.Int64 {
	if v == 0 {
		return types.Int64Null()
	}
	return types.Int64Value(int64(v))
}

// hostAddresses lists the addresses of a hosts list when they are all known.
func hostAddresses(spec engine.NodePoolSpec, unknown []string) (types.List, bool) {
	for _, u := range unknown {
		if u == "hosts" || (len(u) > 6 && u[:6] == "hosts[") || strings.HasPrefix(u, "libvirt") {
			return types.ListUnknown(types.StringType), false
		}
	}
	if spec.Libvirt != nil {
		return stringList(spec.Libvirt.Addresses), true
	}
	addrs := make([]string, 0, len(spec.Hosts))
	for _, h := range spec.Hosts {
		addrs = append(addrs, h.Address)
	}
	return stringList(addrs), true
}
