package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/resourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// libvirtModel is a libvirt block (control_plane.libvirt, or libvirt of a node pool).
type libvirtModel struct {
	Count       types.Int64  `tfsdk:"count"`
	Network     types.String `tfsdk:"network"`
	Addresses   types.List   `tfsdk:"addresses"`
	VCPU        types.Int64  `tfsdk:"vcpu"`
	MemoryMiB   types.Int64  `tfsdk:"memory_mib"`
	DiskGiB     types.Int64  `tfsdk:"disk_gib"`
	BaseImage   types.String `tfsdk:"base_image"`
	Accelerator types.String `tfsdk:"accelerator"`
}

// machineModel is one element of machines.
type machineModel struct {
	Name          types.String `tfsdk:"name"`
	ID            types.String `tfsdk:"id"`
	Address       types.String `tfsdk:"address"`
	HostPublicKey types.String `tfsdk:"host_public_key"`
}

// libvirtSpec reads a libvirt block; nil when it is null.
func (r *specReader) libvirt(v types.Object, p string) *engine.LibvirtMachines {
	if v.IsNull() {
		return nil
	}
	if v.IsUnknown() {
		r.unknown = append(r.unknown, p)
		return nil
	}
	var m libvirtModel
	if !r.object(v, p, &m) {
		return nil
	}
	return &engine.LibvirtMachines{
		Count:       r.num(m.Count, p+".count"),
		Network:     r.str(m.Network, p+".network"),
		Addresses:   r.strings(m.Addresses, p+".addresses"),
		VCPU:        r.num(m.VCPU, p+".vcpu"),
		MemoryMiB:   r.num(m.MemoryMiB, p+".memory_mib"),
		DiskGiB:     r.num(m.DiskGiB, p+".disk_gib"),
		BaseImage:   r.str(m.BaseImage, p+".base_image"),
		Accelerator: r.str(m.Accelerator, p+".accelerator"),
	}
}

// libvirtAttributes is the libvirt block. pool says whether it belongs to a node pool, where count and
// addresses change in place (scaling); everything else needs new VMs.
func libvirtAttributes(pool bool) map[string]schema.Attribute {
	replaceInt := []planmodifier.Int64{int64planmodifier.RequiresReplace()}
	replaceStr := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	countDesc := "Number of master VMs (1 or 3)."
	if pool {
		countDesc = "Number of worker VMs. Raising it creates and joins VMs; lowering it drains, deletes and destroys the last ones."
	}
	a := map[string]schema.Attribute{
		"count": schema.Int64Attribute{Required: true, Description: countDesc, MarkdownDescription: countDesc},
		"network": schema.StringAttribute{
			Required: true, PlanModifiers: replaceStr,
			Description:         "libvirt network the VMs attach to (make lab creates kubesmith). The addresses must be inside its range.",
			MarkdownDescription: "libvirt network the VMs attach to (`make lab` creates `kubesmith`). The addresses must be inside its range.",
		},
		"addresses": schema.ListAttribute{
			ElementType: types.StringType, Required: true,
			Description: "Static IPv4 addresses of the VMs in node_network, one per VM in order; VM n is named " +
				"ks-<cluster>-<m or pool>-<n>. Nothing relies on DHCP or guest agents.",
			MarkdownDescription: "Static IPv4 addresses of the VMs in `node_network`, one per VM in order; VM *n* is " +
				"named `ks-<cluster>-<m|pool>-<n>`. Nothing relies on DHCP or guest agents.",
		},
		"vcpu": schema.Int64Attribute{
			Optional: true, PlanModifiers: replaceInt,
			Description: "Virtual CPUs per VM; 2 by default. Under TCG (no usable KVM) keep 2 for masters (a " +
				"1-vCPU emulated master cannot keep its apiserver answering once workers join) and prefer 1 for " +
				"workers: with QEMU 7.2 (Debian 12), a 2-vCPU TCG guest was once seen to lock up in the kernel.",
			MarkdownDescription: "Virtual CPUs per VM; `2` by default. Under TCG (no usable KVM) keep `2` for masters " +
				"(a 1-vCPU emulated master cannot keep its apiserver answering once workers join) and prefer `1` for " +
				"workers: with QEMU 7.2 (Debian 12), a 2-vCPU TCG guest was once seen to lock up in the kernel.",
		},
		"memory_mib": schema.Int64Attribute{
			Optional: true, PlanModifiers: replaceInt,
			Description: "Memory per VM in MiB; 2048 by default.", MarkdownDescription: "Memory per VM in MiB; `2048` by default.",
		},
		"disk_gib": schema.Int64Attribute{
			Optional: true, PlanModifiers: replaceInt,
			Description:         "Root disk per VM in GiB (a qcow2 overlay on the base image); 20 by default.",
			MarkdownDescription: "Root disk per VM in GiB (a qcow2 overlay on the base image); `20` by default.",
		},
		"base_image": schema.StringAttribute{
			Optional: true, PlanModifiers: replaceStr,
			Description: "Base image in the kubesmith storage pool: volumes <base>.qcow2, <base>.vmlinuz and " +
				"<base>.initrd. kubesmith-debian12 (from make lab) by default.",
			MarkdownDescription: "Base image in the `kubesmith` storage pool: volumes `<base>.qcow2`, `<base>.vmlinuz` " +
				"and `<base>.initrd`. `kubesmith-debian12` (built by `make lab`) by default.",
		},
		"accelerator": schema.StringAttribute{
			Optional: true, PlanModifiers: replaceStr,
			Validators: []validator.String{stringvalidator.OneOf("auto", "kvm", "tcg")},
			Description: "auto (default) uses KVM when a probe boots a guest kernel quickly, else TCG emulation; kvm " +
				"or tcg force one. Unless it is kvm, the tuning defaults are the slow-host ones (etcd 500/5000 ms).",
			MarkdownDescription: "`auto` (default) uses KVM when a probe boots a guest kernel quickly (cached per " +
				"libvirt host), else TCG emulation; `kvm` or `tcg` force one. Unless it is `kvm`, `tuning` defaults to " +
				"the slow-host values (etcd 500/5000 ms, leader election 60s/40s/10s).",
		},
	}
	return a
}

func machinesAttribute() schema.Attribute {
	return schema.ListNestedAttribute{
		Computed: true,
		Description: "The VMs kubesmith created (libvirt only): name, libvirt domain UUID, address and the SSH host " +
			"key it generated and pins.",
		MarkdownDescription: "The VMs kubesmith created (libvirt only): name, libvirt domain UUID, address and the SSH " +
			"host key it generated and pins.",
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"name":            computedString("VM (domain) name, also the node name."),
			"id":              computedString("libvirt domain UUID."),
			"address":         computedString("Static address."),
			"host_public_key": computedString("SSH host key generated by kubesmith and pinned."),
		}},
	}
}

func machineAttrTypes() map[string]attr.Type {
	return map[string]attr.Type{
		"name": types.StringType, "id": types.StringType, "address": types.StringType, "host_public_key": types.StringType,
	}
}

func machinesValue(ms []engine.Machine) (types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	elems := make([]attr.Value, 0, len(ms))
	for _, m := range ms {
		o, d := types.ObjectValue(machineAttrTypes(), map[string]attr.Value{
			"name": types.StringValue(m.Name), "id": types.StringValue(m.ID),
			"address": types.StringValue(m.Address), "host_public_key": types.StringValue(m.HostPublicKey),
		})
		diags.Append(d...)
		elems = append(elems, o)
	}
	l, d := types.ListValue(types.ObjectType{AttrTypes: machineAttrTypes()}, elems)
	diags.Append(d...)
	return l, diags
}

func (r *specReader) machines(v types.List) []engine.Machine {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	var ms []machineModel
	r.diags.Append(v.ElementsAs(r.ctx, &ms, true)...)
	out := make([]engine.Machine, 0, len(ms))
	for _, m := range ms {
		out = append(out, engine.Machine{
			Name: m.Name.ValueString(), ID: m.ID.ValueString(), Address: m.Address.ValueString(), HostPublicKey: m.HostPublicKey.ValueString(),
		})
	}
	return out
}

// tcgTuningValue is the tuning object planned when the configuration leaves tuning out and the masters may
// be emulated (see engine.SlowMachines).
func tcgTuningValue() types.Object {
	t := engine.TCGTuning()
	return types.ObjectValueMust(defaultTuningValue().AttributeTypes(context.Background()), map[string]attr.Value{
		"etcd_heartbeat_ms":     types.Int64Value(int64(t.EtcdHeartbeatMS)),
		"etcd_election_ms":      types.Int64Value(int64(t.EtcdElectionMS)),
		"leader_election_lease": types.StringValue(t.LeaderElectionLease.String()),
		"renew_deadline":        types.StringValue(t.RenewDeadline.String()),
		"retry_period":          types.StringValue(t.RetryPeriod.String()),
	})
}

// tuningDefault plans tuning when the configuration leaves it out: the slow-host values when the masters are
// libvirt VMs that may be emulated (see engine.SlowMachines), else the defaults for real hardware.
type tuningDefault struct{}

var _ planmodifier.Object = tuningDefault{}

func (tuningDefault) Description(context.Context) string {
	return "defaults to the slow-host tuning for libvirt masters that may run under TCG, else to the hardware defaults"
}

func (d tuningDefault) MarkdownDescription(ctx context.Context) string { return d.Description(ctx) }

func (tuningDefault) PlanModifyObject(ctx context.Context, req planmodifier.ObjectRequest, resp *planmodifier.ObjectResponse) {
	attrTypes := defaultTuningValue().AttributeTypes(ctx)
	var lv types.Object
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("control_plane").AtName("libvirt"), &lv)...)
	if resp.Diagnostics.HasError() {
		return
	}
	want := defaultTuningValue()
	if !lv.IsNull() {
		var acc types.String
		resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("control_plane").AtName("libvirt").AtName("accelerator"), &acc)...)
		switch {
		case lv.IsUnknown() || acc.IsUnknown():
			want = types.ObjectUnknown(attrTypes)
		case engine.SlowMachines(&engine.LibvirtMachines{Accelerator: acc.ValueString()}):
			want = tcgTuningValue()
		}
	}
	if req.ConfigValue.IsNull() {
		resp.PlanValue = want
		return
	}
	if req.ConfigValue.IsUnknown() || req.PlanValue.IsUnknown() {
		return
	}
	// Fill what the configuration leaves out, attribute by attribute.
	cfg, plan := req.ConfigValue.Attributes(), req.PlanValue.Attributes()
	out := make(map[string]attr.Value, len(attrTypes))
	for name, t := range attrTypes {
		switch {
		case cfg[name] != nil && !cfg[name].IsNull():
			out[name] = plan[name]
		case want.IsUnknown():
			out[name] = unknownOf(t)
		default:
			out[name] = want.Attributes()[name]
		}
	}
	v, d := types.ObjectValue(attrTypes, out)
	resp.Diagnostics.Append(d...)
	resp.PlanValue = v
}

func unknownOf(t attr.Type) attr.Value {
	if t == types.Int64Type {
		return types.Int64Unknown()
	}
	return types.StringUnknown()
}

var _ resource.ResourceWithConfigValidators = (*nodePoolResource)(nil)

// ConfigValidators requires exactly one of hosts and libvirt.
func (r *nodePoolResource) ConfigValidators(context.Context) []resource.ConfigValidator {
	return []resource.ConfigValidator{resourcevalidator.ExactlyOneOf(path.MatchRoot("hosts"), path.MatchRoot("libvirt"))}
}
