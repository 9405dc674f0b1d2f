package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// Defaults of the cluster resource.
const (
	defaultAPIPort            = 6443
	defaultPodCIDR            = "10.244.0.0/16"
	defaultServiceCIDR        = "10.96.0.0/12"
	defaultKubeProxyMode      = "iptables"
	defaultKubeconfigValidity = "8760h"
	defaultEtcdHeartbeatMS    = 100
	defaultEtcdElectionMS     = 1000
	defaultLeaseDuration      = "15s"
	defaultRenewDeadline      = "10s"
	defaultRetryPeriod        = "2s"
)

// clusterResourceModel is the kubesmith_cluster resource.
type clusterResourceModel struct {
	ID                 types.String   `tfsdk:"id"`
	Name               types.String   `tfsdk:"name"`
	KubernetesVersion  types.String   `tfsdk:"kubernetes_version"`
	NodeNetwork        types.String   `tfsdk:"node_network"`
	APIVIP             types.String   `tfsdk:"api_vip"`
	APIPort            types.Int64    `tfsdk:"api_port"`
	PodCIDR            types.String   `tfsdk:"pod_cidr"`
	ServiceCIDR        types.String   `tfsdk:"service_cidr"`
	UpstreamDNS        types.List     `tfsdk:"upstream_dns"`
	ControlPlane       types.Object   `tfsdk:"control_plane"`
	MastersSchedulable types.Bool     `tfsdk:"masters_schedulable"`
	KubeProxyMode      types.String   `tfsdk:"kube_proxy_mode"`
	Manifests          types.List     `tfsdk:"manifests"`
	Addons             types.Set      `tfsdk:"addons"`
	KubeconfigPath     types.String   `tfsdk:"kubeconfig_path"`
	KubeconfigValidity types.String   `tfsdk:"kubeconfig_validity"`
	Tuning             types.Object   `tfsdk:"tuning"`
	Timeouts           timeouts.Value `tfsdk:"timeouts"`

	ClusterUID         types.String `tfsdk:"cluster_uid"`
	APIEndpoint        types.String `tfsdk:"api_endpoint"`
	CACertificate      types.String `tfsdk:"ca_certificate"`
	Join               types.Object `tfsdk:"join"`
	PoolCredentials    types.Object `tfsdk:"pool_credentials"`
	PKI                types.Object `tfsdk:"pki"`
	ConfigHash         types.String `tfsdk:"config_hash"`
	Installed          types.Bool   `tfsdk:"installed"`
	Nodes              types.List   `tfsdk:"nodes"`
	EtcdMembers        types.List   `tfsdk:"etcd_members"`
	CertificatesExpire types.String `tfsdk:"certificates_expire"`
	Machines           types.List   `tfsdk:"machines"`
}

// controlPlaneModel is control_plane.
type controlPlaneModel struct {
	Hosts   types.List   `tfsdk:"hosts"`
	Libvirt types.Object `tfsdk:"libvirt"`
}

// hostModel is one element of control_plane.hosts.
type hostModel struct {
	Name          types.String `tfsdk:"name"`
	Address       types.String `tfsdk:"address"`
	SSHAddress    types.String `tfsdk:"ssh_address"`
	Port          types.Int64  `tfsdk:"port"`
	User          types.String `tfsdk:"user"`
	HostPublicKey types.String `tfsdk:"host_public_key"`
}

// tuningModel is tuning.
type tuningModel struct {
	EtcdHeartbeatMS     types.Int64  `tfsdk:"etcd_heartbeat_ms"`
	EtcdElectionMS      types.Int64  `tfsdk:"etcd_election_ms"`
	LeaderElectionLease types.String `tfsdk:"leader_election_lease"`
	RenewDeadline       types.String `tfsdk:"renew_deadline"`
	RetryPeriod         types.String `tfsdk:"retry_period"`
}

// joinModel is the non-secret join object (also the cluster input of kubesmith_kubeconfig).
type joinModel struct {
	ClusterName       types.String `tfsdk:"cluster_name"`
	ClusterUID        types.String `tfsdk:"cluster_uid"`
	Endpoint          types.String `tfsdk:"endpoint"`
	CACertificate     types.String `tfsdk:"ca_certificate"`
	KubernetesVersion types.String `tfsdk:"kubernetes_version"`
	NodeNetwork       types.String `tfsdk:"node_network"`
	PodCIDR           types.String `tfsdk:"pod_cidr"`
	ServiceCIDR       types.String `tfsdk:"service_cidr"`
	ClusterDNS        types.String `tfsdk:"cluster_dns"`
	Masters           types.List   `tfsdk:"masters"`
}

// poolCredentialsModel is pool_credentials.
type poolCredentialsModel struct {
	ClientCertificate types.String `tfsdk:"client_certificate"`
	ClientKey         types.String `tfsdk:"client_key"`
}

// pkiModel is the pki object: the cluster's CAs and keys.
type pkiModel struct {
	CACert            types.String `tfsdk:"ca_cert"`
	CAKey             types.String `tfsdk:"ca_key"`
	EtcdCACert        types.String `tfsdk:"etcd_ca_cert"`
	EtcdCAKey         types.String `tfsdk:"etcd_ca_key"`
	FrontProxyCACert  types.String `tfsdk:"front_proxy_ca_cert"`
	FrontProxyCAKey   types.String `tfsdk:"front_proxy_ca_key"`
	ServiceAccountKey types.String `tfsdk:"service_account_key"`
	ServiceAccountPub types.String `tfsdk:"service_account_pub"`
	EncryptionKey     types.String `tfsdk:"encryption_key"`
	KeepalivedPwd     types.String `tfsdk:"keepalived_password"`
}

// nodeModel is one element of nodes.
type nodeModel struct {
	Name           types.String `tfsdk:"name"`
	Address        types.String `tfsdk:"address"`
	Role           types.String `tfsdk:"role"`
	Reachable      types.Bool   `tfsdk:"reachable"`
	Ready          types.Bool   `tfsdk:"ready"`
	KubeletVersion types.String `tfsdk:"kubelet_version"`
	ConfigHash     types.String `tfsdk:"config_hash"`
}

// Attribute types of the nested objects, taken from the schema so they cannot drift from it.
func clusterAttrType(name string) attr.Type {
	return clusterSchema(context.Background()).Attributes[name].GetType()
}

func objectAttrTypes(t attr.Type) map[string]attr.Type {
	// Custom object types such as timeouts.Type embed basetypes.ObjectType and expose the same method.
	if ot, ok := t.(attr.TypeWithAttributeTypes); ok {
		return ot.AttributeTypes()
	}
	return nil
}

func controlPlaneAttrTypes() map[string]attr.Type {
	return objectAttrTypes(clusterAttrType("control_plane"))
}
func tuningAttrTypes() map[string]attr.Type { return objectAttrTypes(clusterAttrType("tuning")) }
func joinAttrTypes() map[string]attr.Type   { return objectAttrTypes(clusterAttrType("join")) }
func poolCredsAttrTypes() map[string]attr.Type {
	return objectAttrTypes(clusterAttrType("pool_credentials"))
}
func pkiAttrTypes() map[string]attr.Type      { return objectAttrTypes(clusterAttrType("pki")) }
func timeoutsAttrTypes() map[string]attr.Type { return objectAttrTypes(clusterAttrType("timeouts")) }

func hostAttrTypes() map[string]attr.Type {
	if lt, ok := controlPlaneAttrTypes()["hosts"].(types.ListType); ok {
		return objectAttrTypes(lt.ElemType)
	}
	return nil
}

func libvirtAttrTypes() map[string]attr.Type {
	return objectAttrTypes(controlPlaneAttrTypes()["libvirt"])
}

func nodeAttrTypes() map[string]attr.Type {
	if lt, ok := clusterAttrType("nodes").(types.ListType); ok {
		return objectAttrTypes(lt.ElemType)
	}
	return nil
}

// defaultAddonsSet is engine.DefaultAddons as a set value.
func defaultAddonsSet() types.Set {
	vals := make([]attr.Value, 0, len(engine.DefaultAddons()))
	for _, a := range engine.DefaultAddons() {
		vals = append(vals, types.StringValue(a))
	}
	return types.SetValueMust(types.StringType, vals)
}

func emptyStringList() types.List { return types.ListValueMust(types.StringType, []attr.Value{}) }

// stableString keeps a computed value from the prior state when nothing invalidates it.
func stableString() []planmodifier.String {
	return []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
}

func stableObject() []planmodifier.Object {
	return []planmodifier.Object{objectplanmodifier.UseStateForUnknown()}
}

func clusterSchema(ctx context.Context) schema.Schema {
	return schema.Schema{
		Description: "A highly available Kubernetes cluster installed over SSH: etcd, the control plane and a " +
			"keepalived API VIP on 1 or 3 masters.",
		MarkdownDescription: "A highly available Kubernetes cluster installed over SSH: etcd, kube-apiserver, " +
			"kube-controller-manager and kube-scheduler as systemd services on 1 or 3 masters, with keepalived " +
			"holding `api_vip`. Worker pools and load balancers attach to it through `join` and `pool_credentials`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				Description:         "The cluster UID (same as cluster_uid).",
				MarkdownDescription: "The cluster UID (same as `cluster_uid`).",
				PlanModifiers:       stableString(),
			},
			"name": schema.StringAttribute{
				Required: true,
				Description: "Cluster name: 1-32 lower-case letters, digits or '-'. It names units, VMs and certificates. " +
					"Changing it replaces the cluster.",
				MarkdownDescription: "Cluster name: 1-32 lower-case letters, digits or `-`. It names units, VMs and " +
					"certificates. Changing it **replaces** the cluster.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"kubernetes_version": schema.StringAttribute{
				Required: true,
				Description: "Kubernetes version, such as 1.37.2; it must be in the artifact bundle. Changing it " +
					"upgrades the cluster in place, one master at a time, never by replacement.",
				MarkdownDescription: "Kubernetes version, such as `1.37.2`; it must be in the artifact bundle. Changing it " +
					"upgrades the cluster **in place**, one master at a time, one minor version per step. A version change " +
					"never replaces the cluster.",
			},
			"node_network": schema.StringAttribute{
				Required: true,
				Description: "CIDR of the network the nodes live in, such as 192.168.150.0/24. Every node address and " +
					"the API VIP must be inside it.",
				MarkdownDescription: "CIDR of the network the nodes live in, such as `192.168.150.0/24`. Every node address " +
					"and `api_vip` must be inside it.",
			},
			"api_vip": schema.StringAttribute{
				Required: true,
				Description: "A free address in node_network that keepalived (VRRP, unicast) moves to a master whose " +
					"apiserver answers. It is in every apiserver certificate and kubeconfig.",
				MarkdownDescription: "A free address in `node_network` that keepalived (VRRP with unicast peers) moves to " +
					"a master whose apiserver answers `/readyz`. It is in every apiserver certificate and kubeconfig.",
			},
			"api_port": schema.Int64Attribute{
				Optional:            true,
				Computed:            true,
				Default:             int64default.StaticInt64(defaultAPIPort),
				Description:         "Port of the Kubernetes API on the VIP. Defaults to 6443.",
				MarkdownDescription: "Port of the Kubernetes API on the VIP. Defaults to `6443`.",
			},
			"pod_cidr": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(defaultPodCIDR),
				Description:         "Pod network (a /22 or larger). Defaults to 10.244.0.0/16. Changing it replaces the cluster.",
				MarkdownDescription: "Pod network (a /22 or larger). Defaults to `10.244.0.0/16`. Changing it **replaces** the cluster.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"service_cidr": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(defaultServiceCIDR),
				Description:         "Service network. Defaults to 10.96.0.0/12. Changing it replaces the cluster.",
				MarkdownDescription: "Service network. Defaults to `10.96.0.0/12`. Changing it **replaces** the cluster.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"upstream_dns": schema.ListAttribute{
				ElementType: types.StringType,
				Optional:    true,
				Computed:    true,
				Default:     listdefault.StaticValue(emptyStringList()),
				Description: "Resolvers CoreDNS forwards external names to. Empty (the default) forwards nowhere, " +
					"for air-gapped clusters. Loopback resolvers are refused.",
				MarkdownDescription: "Resolvers CoreDNS forwards external names to. Empty (the default) forwards nowhere, " +
					"for air-gapped clusters. Loopback resolvers such as `127.0.0.53` are refused because they trip " +
					"CoreDNS's loop check.",
			},
			"control_plane": schema.SingleNestedAttribute{
				Required: true,
				Description: "The masters: exactly one of hosts (existing machines) or libvirt (VMs kubesmith creates). " +
					"Use 3 for high availability, 1 for development.",
				MarkdownDescription: "The masters: exactly one of `hosts` (existing machines) or `libvirt` (VMs kubesmith " +
					"creates). Use 3 for high availability, 1 for development.",
				Validators: []validator.Object{exactlyOneChild{names: []string{"hosts", "libvirt"}}},
				Attributes: map[string]schema.Attribute{
					"hosts": schema.ListNestedAttribute{
						Optional: true,
						Description: "Existing machines reached over SSH. Adding, removing, renaming or readdressing a " +
							"master currently replaces the cluster; rolling master replacement lands later.",
						MarkdownDescription: "Existing machines reached over SSH. Adding, removing, renaming or readdressing " +
							"a master currently **replaces** the cluster; rolling master replacement lands in a later " +
							"release. Changing only connection details (`ssh_address`, `port`, `user`, `host_public_key`) " +
							"is an in-place update.",
						PlanModifiers: []planmodifier.List{
							listplanmodifier.RequiresReplaceIf(mastersIdentityChanged,
								"Changing the set, names or addresses of masters replaces the cluster.",
								"Changing the set, names or addresses of masters replaces the cluster."),
						},
						NestedObject: schema.NestedAttributeObject{Attributes: hostAttributes()},
					},
					"libvirt": schema.SingleNestedAttribute{
						Optional: true,
						Description: "Masters as libvirt VMs that kubesmith creates on the provider's libvirt_uri: a qcow2 " +
							"overlay on the base image, a seed ISO with the address, root's key and a host key generated " +
							"by kubesmith (then pinned), direct kernel boot. Any change replaces the cluster.",
						MarkdownDescription: "Masters as libvirt VMs that kubesmith creates on the provider's `libvirt_uri`: " +
							"a qcow2 overlay on the base image, a seed ISO with the static address, root's authorized key " +
							"(the public half of the provider's SSH key) and an SSH host key generated by kubesmith and then " +
							"pinned, direct kernel boot. Nothing relies on DHCP or guest agents. Any change **replaces** the " +
							"cluster.",
						PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
						Attributes:    libvirtAttributes(false),
					},
				},
			},
			"masters_schedulable": schema.BoolAttribute{
				Optional:            true,
				Computed:            true,
				Default:             booldefault.StaticBool(false),
				Description:         "Let ordinary workloads run on masters (removes the NoSchedule taint). Defaults to false.",
				MarkdownDescription: "Let ordinary workloads run on masters (removes the `NoSchedule` taint). Defaults to `false`.",
			},
			"kube_proxy_mode": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(defaultKubeProxyMode),
				Description:         "kube-proxy mode: iptables (default) or nftables.",
				MarkdownDescription: "kube-proxy mode: `iptables` (default) or `nftables`. IPVS is not offered.",
				Validators:          []validator.String{stringvalidator.OneOf("iptables", "nftables")},
			},
			"manifests": schema.ListAttribute{
				ElementType: types.StringType,
				Optional:    true,
				Computed:    true,
				Default:     listdefault.StaticValue(emptyStringList()),
				Description: "Extra Kubernetes manifests (YAML documents) applied after the built-in add-ons. Their " +
					"images must be in the bundle or a mirror the nodes can reach; the plan warns about each container " +
					"image the bundle does not carry.",
				MarkdownDescription: "Extra Kubernetes manifests (YAML documents) applied after the built-in add-ons, " +
					"for example `file(\"ingress.yaml\")`. Their images must come from the bundle or a registry the " +
					"nodes can reach; the plan warns about each container image the bundle does not carry, and says " +
					"how to build it into the bundle when kubesmith can (Traefik: `make artifacts-ingress`).",
			},
			"addons": schema.SetAttribute{
				ElementType: types.StringType,
				Optional:    true,
				Computed:    true,
				Default:     setdefault.StaticValue(defaultAddonsSet()),
				Description: "Optional built-in add-ons, installed from the bundle: metallb (MetalLB controller and " +
					"L2 speaker, configured by kubesmith_loadbalancer's service_pools) and metrics-server (the metrics.k8s.io " +
					"API behind kubectl top and the HorizontalPodAutoscaler; it verifies kubelet serving certificates with " +
					"the cluster CA). Defaults to [\"metallb\", \"metrics-server\"]. An add-on removed from the list is uninstalled.",
				MarkdownDescription: "Optional built-in add-ons, installed from the bundle: `metallb` (MetalLB controller " +
					"and L2 speaker, configured by `kubesmith_loadbalancer`'s `service_pools`) and `metrics-server` (the " +
					"`metrics.k8s.io` API behind `kubectl top` and the HorizontalPodAutoscaler; it verifies kubelet serving " +
					"certificates with the cluster CA). Defaults to `[\"metallb\", \"metrics-server\"]`. An add-on removed " +
					"from the list is uninstalled. CoreDNS, the RBAC rules and the pod network are always installed.",
				Validators: []validator.Set{setvalidator.ValueStringsAre(stringvalidator.OneOf(engine.OptionalAddons()...))},
			},
			"kubeconfig_path": schema.StringAttribute{
				Optional: true,
				Description: "A file the provider writes an admin kubeconfig to (mode 0600) after every apply. Only the " +
					"path is kept in state. Prefer the kubesmith_kubeconfig ephemeral resource.",
				MarkdownDescription: "A file the provider writes an admin kubeconfig to (mode `0600`) after every " +
					"successful apply; `~` is expanded. Only the path is kept in state, never the kubeconfig. " +
					"Prefer the `kubesmith_kubeconfig` ephemeral resource where you can.",
			},
			"kubeconfig_validity": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(defaultKubeconfigValidity),
				Description:         "Lifetime of the client certificate in the kubeconfig_path file. Defaults to 8760h (one year).",
				MarkdownDescription: "Lifetime of the client certificate in the `kubeconfig_path` file. Defaults to `8760h` (one year).",
				Validators:          []validator.String{durationValidator{}},
			},
			"tuning": schema.SingleNestedAttribute{
				Optional: true,
				Computed: true,
				// The default depends on control_plane.libvirt (slow-host values for VMs that may be emulated),
				// so a plan modifier sets it instead of a static default.
				PlanModifiers: []planmodifier.Object{tuningDefault{}},
				Description: "Timing parameters. The defaults suit real hardware; raise them for slow hosts such as " +
					"TCG-emulated VMs. Libvirt masters whose accelerator is not kvm default to the slow-host values " +
					"(etcd 500/5000 ms, leader election 60s/40s/10s).",
				MarkdownDescription: "Timing parameters. The defaults suit real hardware; raise them for slow hosts such " +
					"as TCG-emulated VMs. Libvirt masters whose `accelerator` is not `kvm` default to the slow-host " +
					"values (etcd 500/5000 ms, leader election 60s/40s/10s), measured stable under TCG.",
				Attributes: map[string]schema.Attribute{
					"etcd_heartbeat_ms": schema.Int64Attribute{
						Optional: true, Computed: true,
						Description:         "etcd --heartbeat-interval in milliseconds. Defaults to 100 (500 for libvirt masters that may run under TCG).",
						MarkdownDescription: "etcd `--heartbeat-interval` in milliseconds. Defaults to `100` (`500` for libvirt masters that may run under TCG).",
					},
					"etcd_election_ms": schema.Int64Attribute{
						Optional: true, Computed: true,
						Description:         "etcd --election-timeout in milliseconds, at least 5 x the heartbeat. Defaults to 1000 (5000 for libvirt masters that may run under TCG).",
						MarkdownDescription: "etcd `--election-timeout` in milliseconds, at least 5 x the heartbeat. Defaults to `1000` (`5000` for libvirt masters that may run under TCG).",
					},
					"leader_election_lease": schema.StringAttribute{
						Optional: true, Computed: true,
						Description:         "Leader election lease of controller-manager and scheduler. Defaults to 15s (60s under TCG).",
						MarkdownDescription: "Leader election lease of controller-manager and scheduler. Defaults to `15s` (`60s` under TCG).",
						Validators:          []validator.String{durationValidator{}},
					},
					"renew_deadline": schema.StringAttribute{
						Optional: true, Computed: true,
						Description:         "Leader election renew deadline, shorter than the lease. Defaults to 10s (40s under TCG).",
						MarkdownDescription: "Leader election renew deadline, shorter than the lease. Defaults to `10s` (`40s` under TCG).",
						Validators:          []validator.String{durationValidator{}},
					},
					"retry_period": schema.StringAttribute{
						Optional: true, Computed: true,
						Description:         "Leader election retry period. Defaults to 2s (10s under TCG).",
						MarkdownDescription: "Leader election retry period. Defaults to `2s` (`10s` under TCG).",
						Validators:          []validator.String{durationValidator{}},
					},
				},
			},
			"timeouts": timeoutsAttribute(ctx),

			"cluster_uid": schema.StringAttribute{
				Computed: true,
				Description: "The cluster's UID, written to every host and used as the etcd cluster token. Hosts " +
					"carrying another UID are refused.",
				MarkdownDescription: "The cluster's UID, written to every host and used as the etcd cluster token. Hosts " +
					"carrying another cluster's UID are refused.",
				PlanModifiers: stableString(),
			},
			"api_endpoint": schema.StringAttribute{
				Computed:            true,
				Description:         "The Kubernetes API URL, https://api_vip:api_port. Known at plan time.",
				MarkdownDescription: "The Kubernetes API URL, `https://<api_vip>:<api_port>`. Known at plan time.",
			},
			"ca_certificate": schema.StringAttribute{
				Computed:            true,
				Description:         "PEM certificate of the cluster CA. Not secret.",
				MarkdownDescription: "PEM certificate of the cluster CA. Not secret.",
				PlanModifiers:       stableString(),
			},
			"join": schema.SingleNestedAttribute{
				Computed: true,
				Description: "Non-secret facts node pools and load balancers need to join: pass it as their cluster " +
					"attribute, and to kubesmith_kubeconfig.",
				MarkdownDescription: "Non-secret facts node pools and load balancers need to join. Pass it as their " +
					"`cluster` attribute, and to the `kubesmith_kubeconfig` ephemeral resource.",
				Attributes: joinAttributes(),
			},
			"pool_credentials": schema.SingleNestedAttribute{
				Computed:  true,
				Sensitive: true,
				Description: "A restricted client identity for node pools and load balancers: it creates bootstrap " +
					"tokens, approves its own nodes' CSRs and drains or labels nodes. It is not cluster-admin.",
				MarkdownDescription: "A restricted client identity for node pools and load balancers: it creates " +
					"bootstrap tokens, approves its own nodes' CSRs and drains or labels nodes. It is **not** cluster-admin.",
				PlanModifiers: stableObject(),
				Attributes: map[string]schema.Attribute{
					"client_certificate": schema.StringAttribute{
						Computed: true, Sensitive: true,
						Description: "PEM client certificate.", MarkdownDescription: "PEM client certificate.",
					},
					"client_key": schema.StringAttribute{
						Computed: true, Sensitive: true,
						Description: "PEM private key.", MarkdownDescription: "PEM private key.",
					},
				},
			},
			"pki": schema.SingleNestedAttribute{
				Computed:  true,
				Sensitive: true,
				Description: "The cluster's CAs and keys. Kept in state so that no certificate of an existing cluster is " +
					"ever regenerated; use an encrypted state backend.",
				MarkdownDescription: "The cluster's CAs and keys. Kept in state so that no certificate of an existing " +
					"cluster is ever regenerated, even after a failed apply. **Use an encrypted state backend.** " +
					"Pass it with `join` to the `kubesmith_kubeconfig` ephemeral resource.",
				PlanModifiers: stableObject(),
				Attributes:    pkiAttributes(),
			},
			"config_hash": schema.StringAttribute{
				Computed: true,
				Description: "Hash of everything rendered for the nodes. The plan shows the desired hash and refresh " +
					"the observed one, so drift on the hosts appears as an in-place update. Empty after a failed apply.",
				MarkdownDescription: "Hash of everything rendered for the nodes. The plan shows the desired hash and " +
					"refresh the observed one, so drift on the hosts (a changed file, a stopped service) appears as an " +
					"in-place update that repairs it. Empty after a failed apply.",
			},
			"installed": schema.BoolAttribute{
				Computed:            true,
				Description:         "Whether the last apply completed every phase.",
				MarkdownDescription: "Whether the last apply completed every phase.",
			},
			"machines": machinesAttribute(),
			"nodes": schema.ListNestedAttribute{
				Computed:            true,
				Description:         "What the last refresh observed on each node.",
				MarkdownDescription: "What the last refresh observed on each node.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":            computedString("Node name."),
					"address":         computedString("Node address."),
					"role":            computedString("Role: control-plane or worker."),
					"reachable":       computedBool("Whether the node answered over SSH."),
					"ready":           computedBool("Whether the Kubernetes Node is Ready."),
					"kubelet_version": computedString("Running kubelet version."),
					"config_hash":     computedString("Hash of the configuration observed on this node."),
				}},
			},
			"etcd_members": schema.ListAttribute{
				ElementType:         types.StringType,
				Computed:            true,
				Description:         "Names of the etcd members.",
				MarkdownDescription: "Names of the etcd members.",
			},
			"certificates_expire": schema.StringAttribute{
				Computed:            true,
				Description:         "Earliest expiry of any leaf certificate, RFC 3339.",
				MarkdownDescription: "Earliest expiry of any leaf certificate, in RFC 3339 format.",
			},
		},
	}
}

// defaultTuningValue is the tuning object used when the configuration leaves tuning out. It spells out its
// type instead of asking the schema, which is built from it.
func defaultTuningValue() types.Object {
	return types.ObjectValueMust(map[string]attr.Type{
		"etcd_heartbeat_ms":     types.Int64Type,
		"etcd_election_ms":      types.Int64Type,
		"leader_election_lease": types.StringType,
		"renew_deadline":        types.StringType,
		"retry_period":          types.StringType,
	}, map[string]attr.Value{
		"etcd_heartbeat_ms":     types.Int64Value(defaultEtcdHeartbeatMS),
		"etcd_election_ms":      types.Int64Value(defaultEtcdElectionMS),
		"leader_election_lease": types.StringValue(defaultLeaseDuration),
		"renew_deadline":        types.StringValue(defaultRenewDeadline),
		"retry_period":          types.StringValue(defaultRetryPeriod),
	})
}

func timeoutsAttribute(ctx context.Context) schema.Attribute {
	a := timeouts.Attributes(ctx, timeouts.Opts{Create: true, Read: true, Update: true, Delete: true})
	if sa, ok := a.(schema.SingleNestedAttribute); ok {
		sa.Description = "Operation timeouts as Go durations. Defaults: create 30m, update 60m, delete 15m, read 5m."
		sa.MarkdownDescription = "Operation timeouts as Go durations such as `45m`. Defaults: `create` 30m, " +
			"`update` 60m, `delete` 15m, `read` 5m."
		return sa
	}
	return a
}

func hostAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"name": schema.StringAttribute{
			Required:            true,
			Description:         "Node name, a lower-case DNS label.",
			MarkdownDescription: "Node name, a lower-case DNS label.",
		},
		"address": schema.StringAttribute{
			Required:            true,
			Description:         "The node's IP address in node_network. SSH connects to it unless ssh_address is set.",
			MarkdownDescription: "The node's IP address in `node_network`. SSH connects to it unless `ssh_address` is set.",
		},
		"ssh_address": schema.StringAttribute{
			Optional:            true,
			Description:         "Address SSH connects to, when it differs from address (NAT, port forwarding).",
			MarkdownDescription: "Address SSH connects to, when it differs from `address` (NAT, port forwarding).",
		},
		"port": schema.Int64Attribute{
			Optional:            true,
			Description:         "SSH port; defaults to the provider's ssh.port.",
			MarkdownDescription: "SSH port; defaults to the provider's `ssh.port`.",
		},
		"user": schema.StringAttribute{
			Optional:            true,
			Description:         "SSH user; defaults to the provider's ssh.user.",
			MarkdownDescription: "SSH user; defaults to the provider's `ssh.user`.",
		},
		"host_public_key": schema.StringAttribute{
			Optional: true,
			Description: "The host's SSH public key (\"ssh-ed25519 AAAA...\"), pinned for every connection. Required " +
				"unless the provider's ssh.known_hosts_path is set.",
			MarkdownDescription: "The host's SSH public key (`ssh-ed25519 AAAA...`), pinned for every connection. " +
				"Required unless the provider's `ssh.known_hosts_path` is set. Get it out of band, for example with " +
				"`ssh-keyscan -t ed25519` from a trusted network.",
		},
	}
}

func joinAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"cluster_name":       computedString("Cluster name."),
		"cluster_uid":        computedString("Cluster UID."),
		"endpoint":           computedString("Kubernetes API URL (on the VIP)."),
		"ca_certificate":     computedString("PEM certificate of the cluster CA."),
		"kubernetes_version": computedString("Kubernetes version of the control plane."),
		"node_network":       computedString("CIDR of the node network."),
		"pod_cidr":           computedString("Pod network."),
		"service_cidr":       computedString("Service network."),
		"cluster_dns":        computedString("Address of the cluster DNS Service."),
		"masters": schema.ListAttribute{
			ElementType: types.StringType, Computed: true,
			Description:         "Master addresses, used before the VIP answers.",
			MarkdownDescription: "Master addresses, used before the VIP answers.",
		},
	}
}

func pkiAttributes() map[string]schema.Attribute {
	s := func(d string) schema.Attribute {
		return schema.StringAttribute{Computed: true, Sensitive: true, Description: d, MarkdownDescription: d}
	}
	return map[string]schema.Attribute{
		"ca_cert":             s("Cluster CA certificate (PEM)."),
		"ca_key":              s("Cluster CA private key (PEM)."),
		"etcd_ca_cert":        s("etcd CA certificate (PEM)."),
		"etcd_ca_key":         s("etcd CA private key (PEM)."),
		"front_proxy_ca_cert": s("Front proxy (aggregation layer) CA certificate (PEM)."),
		"front_proxy_ca_key":  s("Front proxy CA private key (PEM)."),
		"service_account_key": s("Service account signing key (PEM)."),
		"service_account_pub": s("Service account public key (PEM)."),
		"encryption_key":      s("Key that encrypts Secrets at rest in etcd."),
		"keepalived_password": s("Password that authenticates VRRP between the masters."),
	}
}

func computedString(d string) schema.Attribute {
	return schema.StringAttribute{Computed: true, Description: d, MarkdownDescription: d}
}

func computedBool(d string) schema.Attribute {
	return schema.BoolAttribute{Computed: true, Description: d, MarkdownDescription: d}
}
