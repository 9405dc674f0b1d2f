package provider

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// specReader converts Terraform values into Go values and remembers the attribute paths (in engine.FieldError
// syntax) whose values are not known yet, so that validation can skip them.
type specReader struct {
	ctx     context.Context
	unknown []string
	diags   diag.Diagnostics
}

func (r *specReader) str(v types.String, p string) string {
	if v.IsUnknown() {
		r.unknown = append(r.unknown, p)
		return ""
	}
	return v.ValueString()
}

func (r *specReader) num(v types.Int64, p string) int {
	if v.IsUnknown() {
		r.unknown = append(r.unknown, p)
		return 0
	}
	return int(v.ValueInt64())
}

func (r *specReader) boolean(v types.Bool, p string) bool {
	if v.IsUnknown() {
		r.unknown = append(r.unknown, p)
		return false
	}
	return v.ValueBool()
}

func (r *specReader) duration(v types.String, p string) time.Duration {
	s := r.str(v, p)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		// The schema validator reports the attribute; an unparsable value never reaches the engine.
		r.diags.AddError("Invalid Duration", fmt.Sprintf("%s: %q: %s", p, s, err))
	}
	return d
}

func (r *specReader) strings(v types.List, p string) []string {
	if v.IsUnknown() {
		r.unknown = append(r.unknown, p)
		return nil
	}
	if v.IsNull() {
		return nil
	}
	var elems []types.String
	r.diags.Append(v.ElementsAs(r.ctx, &elems, true)...)
	out := make([]string, 0, len(elems))
	for i, e := range elems {
		out = append(out, r.str(e, fmt.Sprintf("%s[%d]", p, i)))
	}
	return out
}

// stringSet reads a set of strings, sorted; an empty set gives an empty (non-nil) slice.
func (r *specReader) stringSet(v types.Set, p string) []string {
	if v.IsUnknown() {
		r.unknown = append(r.unknown, p)
		return nil
	}
	if v.IsNull() {
		return nil
	}
	var elems []types.String
	r.diags.Append(v.ElementsAs(r.ctx, &elems, true)...)
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		out = append(out, r.str(e, p))
	}
	sort.Strings(out)
	return out
}

// addonsSet is the addons attribute for an imported spec.
func addonsSet(addons []string) types.Set {
	if addons == nil {
		return defaultAddonsSet()
	}
	vals := make([]attr.Value, 0, len(addons))
	for _, a := range addons {
		vals = append(vals, types.StringValue(a))
	}
	return types.SetValueMust(types.StringType, vals)
}

// object reads a nested object into target. It returns false when the object is null or unknown.
func (r *specReader) object(v types.Object, p string, target any) bool {
	if v.IsUnknown() {
		r.unknown = append(r.unknown, p)
		return false
	}
	if v.IsNull() {
		return false
	}
	r.diags.Append(v.As(r.ctx, target, basetypes.ObjectAsOptions{})...)
	return !r.diags.HasError()
}

// specFromModel builds the engine spec from a configuration, plan or state. Values Terraform does not know yet
// are left empty and their paths returned, so that validation can skip them.
func specFromModel(ctx context.Context, m clusterResourceModel, data *providerData) (engine.ClusterSpec, []string, diag.Diagnostics) {
	r := &specReader{ctx: ctx}
	spec := engine.ClusterSpec{
		Name:               r.str(m.Name, "name"),
		KubernetesVersion:  r.str(m.KubernetesVersion, "kubernetes_version"),
		NodeNetwork:        r.str(m.NodeNetwork, "node_network"),
		APIVIP:             r.str(m.APIVIP, "api_vip"),
		APIPort:            r.num(m.APIPort, "api_port"),
		PodCIDR:            r.str(m.PodCIDR, "pod_cidr"),
		ServiceCIDR:        r.str(m.ServiceCIDR, "service_cidr"),
		UpstreamDNS:        r.strings(m.UpstreamDNS, "upstream_dns"),
		MastersSchedulable: r.boolean(m.MastersSchedulable, "masters_schedulable"),
		KubeProxyMode:      r.str(m.KubeProxyMode, "kube_proxy_mode"),
		Manifests:          r.strings(m.Manifests, "manifests"),
		Addons:             r.stringSet(m.Addons, "addons"),
		KubeconfigPath:     r.str(m.KubeconfigPath, "kubeconfig_path"),
	}
	if data != nil {
		spec.SSH = data.ssh
		spec.Artifacts = data.artifacts
	}

	var cp controlPlaneModel
	if r.object(m.ControlPlane, "control_plane", &cp) {
		spec.ControlPlane = r.hosts(cp.Hosts, "control_plane.hosts")
		spec.Libvirt = r.libvirt(cp.Libvirt, "control_plane.libvirt")
	}

	var t tuningModel
	if r.object(m.Tuning, "tuning", &t) {
		spec.Tuning = engine.Tuning{
			EtcdHeartbeatMS:     r.num(t.EtcdHeartbeatMS, "tuning.etcd_heartbeat_ms"),
			EtcdElectionMS:      r.num(t.EtcdElectionMS, "tuning.etcd_election_ms"),
			LeaderElectionLease: r.duration(t.LeaderElectionLease, "tuning.leader_election_lease"),
			RenewDeadline:       r.duration(t.RenewDeadline, "tuning.renew_deadline"),
			RetryPeriod:         r.duration(t.RetryPeriod, "tuning.retry_period"),
		}
	}
	return spec, r.unknown, r.diags
}

func (r *specReader) hosts(v types.List, p string) []engine.Host {
	if v.IsUnknown() {
		r.unknown = append(r.unknown, p)
		return nil
	}
	if v.IsNull() {
		return nil
	}
	var elems []types.Object
	r.diags.Append(v.ElementsAs(r.ctx, &elems, true)...)
	out := make([]engine.Host, 0, len(elems))
	for i, e := range elems {
		hp := fmt.Sprintf("%s[%d]", p, i)
		var h hostModel
		if !r.object(e, hp, &h) {
			out = append(out, engine.Host{})
			continue
		}
		out = append(out, engine.Host{
			Name:          r.str(h.Name, hp+".name"),
			Address:       r.str(h.Address, hp+".address"),
			SSHAddress:    r.str(h.SSHAddress, hp+".ssh_address"),
			Port:          r.num(h.Port, hp+".port"),
			User:          r.str(h.User, hp+".user"),
			HostPublicKey: r.str(h.HostPublicKey, hp+".host_public_key"),
		})
	}
	return out
}

// stateFromModel rebuilds the engine's view of what exists from the computed attributes in state.
func stateFromModel(ctx context.Context, m clusterResourceModel) (engine.ClusterState, diag.Diagnostics) {
	r := &specReader{ctx: ctx}
	st := engine.ClusterState{
		UID:        m.ClusterUID.ValueString(),
		ConfigHash: m.ConfigHash.ValueString(),
		Installed:  m.Installed.ValueBool(),
	}
	var pk pkiModel
	if r.object(m.PKI, "pki", &pk) {
		st.PKI = engine.PKI{
			CACert: pk.CACert.ValueString(), CAKey: pk.CAKey.ValueString(),
			EtcdCACert: pk.EtcdCACert.ValueString(), EtcdCAKey: pk.EtcdCAKey.ValueString(),
			FrontProxyCACert: pk.FrontProxyCACert.ValueString(), FrontProxyCAKey: pk.FrontProxyCAKey.ValueString(),
			ServiceAccountKey: pk.ServiceAccountKey.ValueString(), ServiceAccountPub: pk.ServiceAccountPub.ValueString(),
			EncryptionKey:      pk.EncryptionKey.ValueString(),
			KeepalivedPassword: pk.KeepalivedPwd.ValueString(),
		}
	}
	var pc poolCredentialsModel
	if r.object(m.PoolCredentials, "pool_credentials", &pc) {
		st.Pool = engine.PoolCredentials{ClientCert: pc.ClientCertificate.ValueString(), ClientKey: pc.ClientKey.ValueString()}
	}
	st.Join = r.join(m.Join)
	st.Machines = r.machines(m.Machines)
	if !m.Nodes.IsNull() && !m.Nodes.IsUnknown() {
		var nodes []nodeModel
		r.diags.Append(m.Nodes.ElementsAs(ctx, &nodes, false)...)
		for _, n := range nodes {
			st.Nodes = append(st.Nodes, engine.NodeStatus{
				Name: n.Name.ValueString(), Address: n.Address.ValueString(), Role: n.Role.ValueString(),
				Reachable: n.Reachable.ValueBool(), Ready: n.Ready.ValueBool(),
				KubeletVersion: n.KubeletVersion.ValueString(), ConfigHash: n.ConfigHash.ValueString(),
			})
		}
	}
	st.EtcdMembers = r.strings(m.EtcdMembers, "etcd_members")
	if s := m.CertificatesExpire.ValueString(); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			r.diags.AddError("Invalid State", fmt.Sprintf("certificates_expire %q is not RFC 3339: %s", s, err))
		}
		st.CertificatesExpire = t
	}
	return st, r.diags
}

// join reads a join object (the cluster's output, or the kubeconfig ephemeral resource's input).
func (r *specReader) join(v types.Object) engine.Join {
	var j joinModel
	if !r.object(v, "join", &j) {
		return engine.Join{}
	}
	return engine.Join{
		ClusterName:       j.ClusterName.ValueString(),
		ClusterUID:        j.ClusterUID.ValueString(),
		Endpoint:          j.Endpoint.ValueString(),
		CACertificate:     j.CACertificate.ValueString(),
		KubernetesVersion: j.KubernetesVersion.ValueString(),
		NodeNetwork:       j.NodeNetwork.ValueString(),
		PodCIDR:           j.PodCIDR.ValueString(),
		ServiceCIDR:       j.ServiceCIDR.ValueString(),
		ClusterDNS:        j.ClusterDNS.ValueString(),
		Masters:           r.strings(j.Masters, "join.masters"),
	}
}

// setComputed fills every computed attribute of m from what the engine reports, leaving nothing unknown.
func setComputed(ctx context.Context, m *clusterResourceModel, st engine.ClusterState) diag.Diagnostics {
	var diags diag.Diagnostics
	m.ID = types.StringValue(st.UID)
	m.ClusterUID = types.StringValue(st.UID)
	m.APIEndpoint = apiEndpointValue(m.APIVIP, m.APIPort)
	ca := st.PKI.CACert
	if ca == "" {
		ca = st.Join.CACertificate
	}
	m.CACertificate = types.StringValue(ca)

	var d diag.Diagnostics
	m.Join, d = joinValue(st.Join)
	diags.Append(d...)
	m.PoolCredentials, d = types.ObjectValue(poolCredsAttrTypes(), map[string]attr.Value{
		"client_certificate": types.StringValue(st.Pool.ClientCert),
		"client_key":         types.StringValue(st.Pool.ClientKey),
	})
	diags.Append(d...)
	m.PKI, d = pkiValue(st.PKI)
	diags.Append(d...)
	m.ConfigHash = types.StringValue(st.ConfigHash)
	m.Installed = types.BoolValue(st.Installed)
	m.Machines, d = machinesValue(st.Machines)
	diags.Append(d...)
	diags.Append(setObserved(ctx, m, st)...)
	return diags
}

// setObserved fills the attributes Read refreshes: nodes, etcd members and certificate expiry.
func setObserved(_ context.Context, m *clusterResourceModel, st engine.ClusterState) diag.Diagnostics {
	var diags diag.Diagnostics
	nodes := make([]attr.Value, 0, len(st.Nodes))
	for _, n := range st.Nodes {
		v, d := types.ObjectValue(nodeAttrTypes(), map[string]attr.Value{
			"name":            types.StringValue(n.Name),
			"address":         types.StringValue(n.Address),
			"role":            types.StringValue(n.Role),
			"reachable":       types.BoolValue(n.Reachable),
			"ready":           types.BoolValue(n.Ready),
			"kubelet_version": types.StringValue(n.KubeletVersion),
			"config_hash":     types.StringValue(n.ConfigHash),
		})
		diags.Append(d...)
		nodes = append(nodes, v)
	}
	var d diag.Diagnostics
	m.Nodes, d = types.ListValue(types.ObjectType{AttrTypes: nodeAttrTypes()}, nodes)
	diags.Append(d...)
	m.EtcdMembers = stringList(st.EtcdMembers)
	if st.CertificatesExpire.IsZero() {
		m.CertificatesExpire = types.StringNull()
	} else {
		m.CertificatesExpire = types.StringValue(st.CertificatesExpire.UTC().Format(time.RFC3339))
	}
	return diags
}

func joinValue(j engine.Join) (types.Object, diag.Diagnostics) {
	return types.ObjectValue(joinAttrTypes(), map[string]attr.Value{
		"cluster_name":       types.StringValue(j.ClusterName),
		"cluster_uid":        types.StringValue(j.ClusterUID),
		"endpoint":           types.StringValue(j.Endpoint),
		"ca_certificate":     types.StringValue(j.CACertificate),
		"kubernetes_version": types.StringValue(j.KubernetesVersion),
		"node_network":       types.StringValue(j.NodeNetwork),
		"pod_cidr":           types.StringValue(j.PodCIDR),
		"service_cidr":       types.StringValue(j.ServiceCIDR),
		"cluster_dns":        types.StringValue(j.ClusterDNS),
		"masters":            stringList(j.Masters),
	})
}

// plannedJoinValue is the join object at plan time: the UID (when j has none) and the CA certificate are left
// unknown, because create generates them.
func plannedJoinValue(j engine.Join) (types.Object, diag.Diagnostics) {
	uid := types.StringUnknown()
	if j.ClusterUID != "" {
		uid = types.StringValue(j.ClusterUID)
	}
	return types.ObjectValue(joinAttrTypes(), map[string]attr.Value{
		"cluster_name":       types.StringValue(j.ClusterName),
		"cluster_uid":        uid,
		"endpoint":           types.StringValue(j.Endpoint),
		"ca_certificate":     types.StringUnknown(),
		"kubernetes_version": types.StringValue(j.KubernetesVersion),
		"node_network":       types.StringValue(j.NodeNetwork),
		"pod_cidr":           types.StringValue(j.PodCIDR),
		"service_cidr":       types.StringValue(j.ServiceCIDR),
		"cluster_dns":        types.StringValue(j.ClusterDNS),
		"masters":            stringList(j.Masters),
	})
}

func pkiValue(p engine.PKI) (types.Object, diag.Diagnostics) {
	return types.ObjectValue(pkiAttrTypes(), map[string]attr.Value{
		"ca_cert":             types.StringValue(p.CACert),
		"ca_key":              types.StringValue(p.CAKey),
		"etcd_ca_cert":        types.StringValue(p.EtcdCACert),
		"etcd_ca_key":         types.StringValue(p.EtcdCAKey),
		"front_proxy_ca_cert": types.StringValue(p.FrontProxyCACert),
		"front_proxy_ca_key":  types.StringValue(p.FrontProxyCAKey),
		"service_account_key": types.StringValue(p.ServiceAccountKey),
		"service_account_pub": types.StringValue(p.ServiceAccountPub),
		"encryption_key":      types.StringValue(p.EncryptionKey),
		"keepalived_password": types.StringValue(p.KeepalivedPassword),
	})
}

func stringList(ss []string) types.List {
	vals := make([]attr.Value, 0, len(ss))
	for _, s := range ss {
		vals = append(vals, types.StringValue(s))
	}
	return types.ListValueMust(types.StringType, vals)
}

// apiEndpoint is the API URL on the VIP.
func apiEndpoint(vip string, port int64) string {
	return "https://" + net.JoinHostPort(vip, strconv.FormatInt(port, 10))
}

// apiEndpointValue is apiEndpoint as a Terraform value: unknown while the VIP or port is.
func apiEndpointValue(vip types.String, port types.Int64) types.String {
	if vip.IsUnknown() || port.IsUnknown() {
		return types.StringUnknown()
	}
	if vip.IsNull() {
		return types.StringNull()
	}
	p := port.ValueInt64()
	if port.IsNull() {
		p = defaultAPIPort
	}
	return types.StringValue(apiEndpoint(vip.ValueString(), p))
}

// modelFromImport builds the whole resource model from what ImportCluster reconstructed. Values equal to a
// schema default or the provider's defaults are written the way a configuration that leaves them out would
// be planned, so that importing a cluster whose configuration matches yields an empty plan.
func modelFromImport(ctx context.Context, spec engine.ClusterSpec, st engine.ClusterState, data *providerData) (clusterResourceModel, diag.Diagnostics) {
	var diags diag.Diagnostics
	m := clusterResourceModel{
		Name:               types.StringValue(spec.Name),
		KubernetesVersion:  types.StringValue(spec.KubernetesVersion),
		NodeNetwork:        types.StringValue(spec.NodeNetwork),
		APIVIP:             types.StringValue(spec.APIVIP),
		APIPort:            types.Int64Value(int64(orInt(spec.APIPort, defaultAPIPort))),
		PodCIDR:            types.StringValue(orString(spec.PodCIDR, defaultPodCIDR)),
		ServiceCIDR:        types.StringValue(orString(spec.ServiceCIDR, defaultServiceCIDR)),
		UpstreamDNS:        stringList(spec.UpstreamDNS),
		MastersSchedulable: types.BoolValue(spec.MastersSchedulable),
		KubeProxyMode:      types.StringValue(orString(spec.KubeProxyMode, defaultKubeProxyMode)),
		Manifests:          stringList(spec.Manifests),
		Addons:             addonsSet(spec.Addons),
		KubeconfigPath:     nullIfEmpty(spec.KubeconfigPath),
		KubeconfigValidity: types.StringValue(defaultKubeconfigValidity),
		Timeouts:           timeouts.Value{Object: types.ObjectNull(timeoutsAttrTypes())},
	}

	defaults := engine.SSH{User: defaultSSHUser, Port: defaultSSHPort}
	if data != nil {
		defaults = data.ssh
	}
	hosts := make([]attr.Value, 0, len(spec.ControlPlane))
	for _, h := range spec.ControlPlane {
		port := types.Int64Null()
		if h.Port != 0 && h.Port != defaults.Port {
			port = types.Int64Value(int64(h.Port))
		}
		user := types.StringNull()
		if h.User != "" && h.User != defaults.User {
			user = types.StringValue(h.User)
		}
		v, d := types.ObjectValue(hostAttrTypes(), map[string]attr.Value{
			"name":            types.StringValue(h.Name),
			"address":         types.StringValue(h.Address),
			"ssh_address":     nullIfEmpty(h.SSHAddress),
			"port":            port,
			"user":            user,
			"host_public_key": nullIfEmpty(h.HostPublicKey),
		})
		diags.Append(d...)
		hosts = append(hosts, v)
	}
	hostList, d := types.ListValue(types.ObjectType{AttrTypes: hostAttrTypes()}, hosts)
	diags.Append(d...)
	m.ControlPlane, d = types.ObjectValue(controlPlaneAttrTypes(), map[string]attr.Value{
		"hosts":   hostList,
		"libvirt": types.ObjectNull(libvirtAttrTypes()),
	})
	diags.Append(d...)

	t := spec.Tuning
	m.Tuning, d = types.ObjectValue(tuningAttrTypes(), map[string]attr.Value{
		"etcd_heartbeat_ms":     types.Int64Value(int64(orInt(t.EtcdHeartbeatMS, defaultEtcdHeartbeatMS))),
		"etcd_election_ms":      types.Int64Value(int64(orInt(t.EtcdElectionMS, defaultEtcdElectionMS))),
		"leader_election_lease": types.StringValue(orDuration(t.LeaderElectionLease, defaultLeaseDuration)),
		"renew_deadline":        types.StringValue(orDuration(t.RenewDeadline, defaultRenewDeadline)),
		"retry_period":          types.StringValue(orDuration(t.RetryPeriod, defaultRetryPeriod)),
	})
	diags.Append(d...)
	diags.Append(setComputed(ctx, &m, st)...)
	return m, diags
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func orDuration(v time.Duration, def string) string {
	if v == 0 {
		return def
	}
	return formatDuration(v)
}

func nullIfEmpty(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}
