package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// loadBalancerResourceModel is kubesmith_loadbalancer.
type loadBalancerResourceModel struct {
	ID           types.String   `tfsdk:"id"`
	Name         types.String   `tfsdk:"name"`
	Cluster      types.Object   `tfsdk:"cluster"`
	Credentials  types.Object   `tfsdk:"credentials"`
	ServicePools types.List     `tfsdk:"service_pools"`
	VIP          types.String   `tfsdk:"vip"`
	Frontends    types.List     `tfsdk:"frontends"`
	Hosts        types.List     `tfsdk:"hosts"`
	Libvirt      types.Object   `tfsdk:"libvirt"`
	Machines     types.List     `tfsdk:"machines"`
	VRRPPassword types.String   `tfsdk:"vrrp_password"`
	ConfigHash   types.String   `tfsdk:"config_hash"`
	VIPHolder    types.String   `tfsdk:"vip_holder"`
	Backends     types.List     `tfsdk:"backends"`
	Services     types.List     `tfsdk:"services"`
	Timeouts     timeouts.Value `tfsdk:"timeouts"`
}

type servicePoolModel struct {
	Name      types.String `tfsdk:"name"`
	Addresses types.List   `tfsdk:"addresses"`
}

type frontendModel struct {
	Port             types.Int64 `tfsdk:"port"`
	TargetPort       types.Int64 `tfsdk:"target_port"`
	BackendAddresses types.List  `tfsdk:"backend_addresses"`
}

func loadBalancerAttrType(name string) attr.Type {
	return loadBalancerSchema(context.Background()).Attributes[name].GetType()
}

func listElemAttrTypes(t attr.Type) map[string]attr.Type {
	if lt, ok := t.(types.ListType); ok {
		return objectAttrTypes(lt.ElemType)
	}
	return nil
}

// joinInputAttribute is the cluster's join object as an input of a pool or a load balancer.
func joinInputAttribute(what string) schema.SingleNestedAttribute {
	req := func(d string) schema.Attribute {
		return schema.StringAttribute{Required: true, Description: d, MarkdownDescription: d}
	}
	return schema.SingleNestedAttribute{
		Required: true,
		Description: "The cluster's join attribute (kubesmith_cluster.NAME.join). Moving a " + what +
			" to another cluster replaces it.",
		MarkdownDescription: "The cluster's `join` attribute (`kubesmith_cluster.NAME.join`). Moving a " + what +
			" to another cluster replaces it.",
		Attributes: map[string]schema.Attribute{
			"cluster_name":       req("Cluster name."),
			"cluster_uid":        req("Cluster UID."),
			"endpoint":           req("Kubernetes API URL."),
			"ca_certificate":     req("PEM certificate of the cluster CA."),
			"kubernetes_version": req("Kubernetes version of the control plane."),
			"node_network":       req("CIDR of the node network."),
			"pod_cidr":           req("Pod network."),
			"service_cidr":       req("Service network."),
			"cluster_dns":        req("Address of the cluster DNS Service."),
			"masters": schema.ListAttribute{
				ElementType: types.StringType, Required: true,
				Description: "Master addresses.", MarkdownDescription: "Master addresses.",
			},
		},
		PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplaceIf(clusterUIDChanged,
			"Replaces the "+what+" when the cluster UID changes.", "Replaces the "+what+" when the cluster UID changes.")},
	}
}

// credentialsInputAttribute is the cluster's pool_credentials as an input.
func credentialsInputAttribute(use string) schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		Required:            true,
		Sensitive:           true,
		Description:         "The cluster's pool_credentials: a restricted identity (not cluster-admin) that " + use + ".",
		MarkdownDescription: "The cluster's `pool_credentials`: a restricted identity (not cluster-admin) that " + use + ".",
		Attributes: map[string]schema.Attribute{
			"client_certificate": schema.StringAttribute{
				Required: true, Sensitive: true,
				Description: "PEM client certificate.", MarkdownDescription: "PEM client certificate.",
			},
			"client_key": schema.StringAttribute{
				Required: true, Sensitive: true,
				Description: "PEM private key.", MarkdownDescription: "PEM private key.",
			},
		},
	}
}

// loadBalancerSchema describes kubesmith_loadbalancer.
func loadBalancerSchema(ctx context.Context) schema.Schema {
	return schema.Schema{
		Description: "Load balancing for workloads: MetalLB address pools (L2 mode) from which Services of type " +
			"LoadBalancer get addresses, and optional HA TCP frontends (a keepalived VIP and HAProxy) that forward " +
			"ports to explicit backends, such as an ingress controller's NodePort on a node pool.",
		MarkdownDescription: "Load balancing for workloads.\n\n" +
			"* `service_pools` configures MetalLB (installed by the cluster's `metallb` add-on, from the bundle) in " +
			"L2 mode: Services of `type: LoadBalancer` get an address from a pool, announced by one node with ARP " +
			"and moved when that node fails.\n" +
			"* `frontends` run HAProxy and keepalived on `hosts` (two dedicated machines for HA, or nodes of a " +
			"pool): a second VIP whose ports forward to health-checked `backend_addresses`, for example 80/443 to an " +
			"ingress controller's NodePorts on the workers.\n\n" +
			"Every pool and the VIP are checked at plan time: they must lie in the cluster's node network and " +
			"overlap neither each other, nor the API VIP, nor node, host or backend addresses, nor the pod and " +
			"service networks.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, Description: "CLUSTER_UID/NAME.", MarkdownDescription: "`CLUSTER_UID/NAME`.",
				PlanModifiers: stableString(),
			},
			"name": schema.StringAttribute{
				Required:            true,
				Description:         "Load balancer name, a lower-case DNS label; it prefixes its MetalLB objects.",
				MarkdownDescription: "Load balancer name, a lower-case DNS label; it prefixes its MetalLB objects.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"cluster":     joinInputAttribute("load balancer"),
			"credentials": credentialsInputAttribute("manages MetalLB address pools and reads Services"),
			"service_pools": schema.ListNestedAttribute{
				Optional: true,
				Description: "MetalLB address pools for Services of type LoadBalancer. Each address is a CIDR or a " +
					"range FIRST-LAST inside the node network.",
				MarkdownDescription: "MetalLB address pools for Services of `type: LoadBalancer`. Each address is a " +
					"CIDR or a range `FIRST-LAST` inside the node network.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name": schema.StringAttribute{
						Required: true, Description: "Pool name (a DNS label).", MarkdownDescription: "Pool name (a DNS label).",
					},
					"addresses": schema.ListAttribute{
						ElementType: types.StringType, Required: true,
						Description:         "CIDRs or ranges such as 192.168.150.200-192.168.150.220.",
						MarkdownDescription: "CIDRs or ranges such as `192.168.150.200-192.168.150.220`.",
						Validators:          []validator.List{listvalidator.SizeAtLeast(1)},
					},
				}},
			},
			"vip": schema.StringAttribute{
				Optional: true,
				Description: "The frontends' virtual IP in the node network, held by keepalived (unicast VRRP) on a " +
					"frontend host whose HAProxy runs. Required with frontends.",
				MarkdownDescription: "The frontends' virtual IP in the node network, held by keepalived (unicast VRRP) " +
					"on a frontend host whose HAProxy runs. Required with `frontends`.",
			},
			"frontends": schema.ListNestedAttribute{
				Optional:            true,
				Description:         "TCP ports on the VIP, forwarded by HAProxy to health-checked backends.",
				MarkdownDescription: "TCP ports on the VIP, forwarded by HAProxy to health-checked backends.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"port": schema.Int64Attribute{
						Required: true, Description: "Port on the VIP.", MarkdownDescription: "Port on the VIP.",
						Validators: []validator.Int64{int64validator.Between(1, 65535)},
					},
					"target_port": schema.Int64Attribute{
						Optional: true, Description: "Backend port; the same as port when unset.",
						MarkdownDescription: "Backend port; the same as `port` when unset.",
						Validators:          []validator.Int64{int64validator.Between(1, 65535)},
					},
					"backend_addresses": schema.ListAttribute{
						ElementType: types.StringType, Required: true,
						Description:         "Backend addresses, for example kubesmith_nodepool.NAME.addresses.",
						MarkdownDescription: "Backend addresses, for example `kubesmith_nodepool.NAME.addresses`.",
						Validators:          []validator.List{listvalidator.SizeAtLeast(1)},
					},
				}},
			},
			"hosts": schema.ListNestedAttribute{
				Optional: true,
				Description: "Machines that run the frontends (HAProxy and keepalived must be installed): two " +
					"dedicated hosts for HA, or nodes of a pool. The first healthy one holds the VIP.",
				MarkdownDescription: "Machines that run the frontends (the `haproxy`, `keepalived` and `socat` " +
					"packages must be installed): two dedicated hosts for HA, or nodes of a pool. The first healthy " +
					"one holds the VIP. Removing a host removes the frontend from it.",
				NestedObject: schema.NestedAttributeObject{Attributes: hostAttributes()},
			},
			"libvirt": schema.SingleNestedAttribute{
				Optional: true,
				Description: "The frontend hosts as libvirt VMs that kubesmith creates on the provider's libvirt_uri, " +
					"named ks-<cluster>-lb-<name>-<n> (instead of hosts). Lowering count destroys the last VMs.",
				MarkdownDescription: "The frontend hosts as libvirt VMs that kubesmith creates on the provider's " +
					"`libvirt_uri`, named `ks-<cluster>-lb-<name>-<n>` (instead of `hosts`). The `make lab` image has " +
					"HAProxy and keepalived. Lowering `count` destroys the last VMs.",
				Attributes: libvirtAttributes(true),
			},
			"machines": machinesAttribute(),
			"vrrp_password": schema.StringAttribute{
				Computed: true, Sensitive: true,
				Description:         "Generated password that authenticates VRRP between the frontend hosts.",
				MarkdownDescription: "Generated password that authenticates VRRP between the frontend hosts.",
				PlanModifiers:       stableString(),
			},
			"config_hash": schema.StringAttribute{
				Computed: true,
				Description: "Hash of the pools and the frontend configuration; drift observed by refresh shows as " +
					"an in-place update.",
				MarkdownDescription: "Hash of the pools and the frontend configuration; drift observed by refresh " +
					"shows as an in-place update.",
			},
			"vip_holder": computedString("The frontend host that held the VIP at the last refresh; empty when none did."),
			"backends": schema.ListNestedAttribute{
				Computed:            true,
				Description:         "The health of every frontend backend, as HAProxy on the VIP holder saw it at the last refresh.",
				MarkdownDescription: "The health of every frontend backend, as HAProxy on the VIP holder saw it at the last refresh.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"port":        computedInt("Frontend port."),
					"address":     computedString("Backend address."),
					"target_port": computedInt("Backend port."),
					"status":      computedString("HAProxy's check result: UP, DOWN, NOLB or MAINT."),
				}},
			},
			"services": schema.ListNestedAttribute{
				Computed:            true,
				Description:         "LoadBalancer Services holding an address from the pools, and the node announcing each.",
				MarkdownDescription: "`LoadBalancer` Services holding an address from the pools, and the node announcing each.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"service": computedString("namespace/name."),
					"address": computedString("The Service's address."),
					"node":    computedString("The node that announces it (L2); empty when none does."),
				}},
			},
			"timeouts": timeoutsAttribute(ctx),
		},
	}
}

func computedInt(d string) schema.Attribute {
	return schema.Int64Attribute{Computed: true, Description: d, MarkdownDescription: d}
}

// readJoin reads the cluster join input.
func (r *specReader) joinInput(v types.Object, p string) engine.Join {
	var j joinModel
	if !r.object(v, p, &j) {
		return engine.Join{}
	}
	return engine.Join{
		ClusterName: r.str(j.ClusterName, p+".cluster_name"), ClusterUID: r.str(j.ClusterUID, p+".cluster_uid"),
		Endpoint: r.str(j.Endpoint, p+".endpoint"), CACertificate: r.str(j.CACertificate, p+".ca_certificate"),
		KubernetesVersion: r.str(j.KubernetesVersion, p+".kubernetes_version"),
		NodeNetwork:       r.str(j.NodeNetwork, p+".node_network"), PodCIDR: r.str(j.PodCIDR, p+".pod_cidr"),
		ServiceCIDR: r.str(j.ServiceCIDR, p+".service_cidr"), ClusterDNS: r.str(j.ClusterDNS, p+".cluster_dns"),
		Masters: r.strings(j.Masters, p+".masters"),
	}
}

// credentialsInput reads the pool credentials input.
func (r *specReader) credentialsInput(v types.Object, p string) engine.PoolCredentials {
	var c poolCredentialsModel
	if !r.object(v, p, &c) {
		return engine.PoolCredentials{}
	}
	return engine.PoolCredentials{ClientCert: r.str(c.ClientCertificate, p), ClientKey: r.str(c.ClientKey, p)}
}

// loadBalancerSpecFromModel builds the engine spec; unknown values are left empty and their paths returned.
func loadBalancerSpecFromModel(ctx context.Context, m loadBalancerResourceModel, data *providerData) (engine.LoadBalancerSpec, []string, diag.Diagnostics) {
	r := &specReader{ctx: ctx}
	spec := engine.LoadBalancerSpec{
		Name:        r.str(m.Name, "name"),
		Cluster:     r.joinInput(m.Cluster, "cluster"),
		Credentials: r.credentialsInput(m.Credentials, "credentials"),
		VIP:         r.str(m.VIP, "vip"),
		Hosts:       r.hosts(m.Hosts, "hosts"),
		Libvirt:     r.libvirt(m.Libvirt, "libvirt"),
	}
	if data != nil {
		spec.SSH = data.ssh
	}
	switch {
	case m.ServicePools.IsUnknown():
		r.unknown = append(r.unknown, "service_pools")
	case !m.ServicePools.IsNull():
		var pools []servicePoolModel
		r.diags.Append(m.ServicePools.ElementsAs(ctx, &pools, true)...)
		for i, sp := range pools {
			p := fmt.Sprintf("service_pools[%d]", i)
			spec.ServicePools = append(spec.ServicePools, engine.ServicePool{
				Name: r.str(sp.Name, p+".name"), Addresses: r.strings(sp.Addresses, p+".addresses"),
			})
		}
	}
	switch {
	case m.Frontends.IsUnknown():
		r.unknown = append(r.unknown, "frontends")
	case !m.Frontends.IsNull():
		var fes []frontendModel
		r.diags.Append(m.Frontends.ElementsAs(ctx, &fes, true)...)
		for i, f := range fes {
			p := fmt.Sprintf("frontends[%d]", i)
			spec.Frontends = append(spec.Frontends, engine.Frontend{
				Port: r.num(f.Port, p+".port"), TargetPort: r.num(f.TargetPort, p+".target_port"),
				BackendAddresses: r.strings(f.BackendAddresses, p+".backend_addresses"),
			})
		}
	}
	return spec, r.unknown, r.diags
}

// loadBalancerStateFromModel is what the engine needs of a load balancer's state.
func loadBalancerStateFromModel(ctx context.Context, m loadBalancerResourceModel, spec engine.LoadBalancerSpec) (engine.LoadBalancerState, diag.Diagnostics) {
	st := engine.LoadBalancerState{
		ClusterUID: spec.Cluster.ClusterUID, Hosts: spec.Hosts,
		VRRPPassword: m.VRRPPassword.ValueString(), ConfigHash: m.ConfigHash.ValueString(),
	}
	if spec.Libvirt != nil {
		st.Hosts = engine.MachineHosts(spec.Cluster.ClusterName, engine.LoadBalancerRole(spec.Name), spec.Libvirt)
	}
	r := &specReader{ctx: ctx}
	st.Machines = r.machines(m.Machines)
	return st, r.diags
}

// setLoadBalancerObserved fills the computed attributes from the engine's state.
func setLoadBalancerObserved(m *loadBalancerResourceModel, st engine.LoadBalancerState) diag.Diagnostics {
	var diags diag.Diagnostics
	m.ID = types.StringValue(st.ClusterUID + "/" + m.Name.ValueString())
	m.VRRPPassword = types.StringValue(st.VRRPPassword)
	m.ConfigHash = types.StringValue(st.ConfigHash)
	m.VIPHolder = types.StringValue(st.VIPHolder)
	ms, d := machinesValue(st.Machines)
	diags.Append(d...)
	m.Machines = ms
	bt := listElemAttrTypes(loadBalancerAttrType("backends"))
	backends := make([]attr.Value, 0, len(st.Backends))
	for _, b := range st.Backends {
		o, d := types.ObjectValue(bt, map[string]attr.Value{
			"port": types.Int64Value(int64(b.Port)), "address": types.StringValue(b.Address),
			"target_port": types.Int64Value(int64(b.TargetPort)), "status": types.StringValue(b.Status),
		})
		diags.Append(d...)
		backends = append(backends, o)
	}
	l, d := types.ListValue(types.ObjectType{AttrTypes: bt}, backends)
	diags.Append(d...)
	m.Backends = l
	stt := listElemAttrTypes(loadBalancerAttrType("services"))
	svcs := make([]attr.Value, 0, len(st.Services))
	for _, s := range st.Services {
		o, d := types.ObjectValue(stt, map[string]attr.Value{
			"service": types.StringValue(s.Service), "address": types.StringValue(s.Address), "node": types.StringValue(s.Node),
		})
		diags.Append(d...)
		svcs = append(svcs, o)
	}
	l, d = types.ListValue(types.ObjectType{AttrTypes: stt}, svcs)
	diags.Append(d...)
	m.Services = l
	return diags
}

// unknownObserved marks the observed attributes unknown: an update is coming.
func (m *loadBalancerResourceModel) unknownObserved() {
	m.VIPHolder = types.StringUnknown()
	m.Backends = types.ListUnknown(types.ObjectType{AttrTypes: listElemAttrTypes(loadBalancerAttrType("backends"))})
	m.Services = types.ListUnknown(types.ObjectType{AttrTypes: listElemAttrTypes(loadBalancerAttrType("services"))})
}
