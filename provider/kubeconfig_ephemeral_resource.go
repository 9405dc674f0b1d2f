package provider

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"sigs.k8s.io/yaml"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// Ensure kubeconfigEphemeralResource satisfies the framework interfaces.
var (
	_ ephemeral.EphemeralResource              = (*kubeconfigEphemeralResource)(nil)
	_ ephemeral.EphemeralResourceWithConfigure = (*kubeconfigEphemeralResource)(nil)
)

// defaultEphemeralValidity is how long an ephemeral admin certificate lasts when validity is unset.
const defaultEphemeralValidity = time.Hour

// kubeconfigEphemeralResource is kubesmith_kubeconfig: an admin kubeconfig minted in memory, never stored.
type kubeconfigEphemeralResource struct {
	data *providerData
}

// kubeconfigModel is kubesmith_kubeconfig.
type kubeconfigModel struct {
	Cluster              types.Object `tfsdk:"cluster"`
	PKI                  types.Object `tfsdk:"pki"`
	Validity             types.String `tfsdk:"validity"`
	KubeconfigRaw        types.String `tfsdk:"kubeconfig_raw"`
	Host                 types.String `tfsdk:"host"`
	ClusterCACertificate types.String `tfsdk:"cluster_ca_certificate"`
	ClientCertificate    types.String `tfsdk:"client_certificate"`
	ClientKey            types.String `tfsdk:"client_key"`
	ExpiresAt            types.String `tfsdk:"expires_at"`
}

// NewKubeconfigEphemeralResource returns the kubesmith_kubeconfig ephemeral resource.
func NewKubeconfigEphemeralResource() ephemeral.EphemeralResource {
	return &kubeconfigEphemeralResource{}
}

// Metadata sets the type name.
func (e *kubeconfigEphemeralResource) Metadata(_ context.Context, req ephemeral.MetadataRequest, resp *ephemeral.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_kubeconfig"
}

// Schema describes kubesmith_kubeconfig.
func (e *kubeconfigEphemeralResource) Schema(_ context.Context, _ ephemeral.SchemaRequest, resp *ephemeral.SchemaResponse) {
	in := func(d string) schema.Attribute {
		return schema.StringAttribute{Required: true, Description: d, MarkdownDescription: d}
	}
	secret := func(d string) schema.Attribute {
		return schema.StringAttribute{Required: true, Sensitive: true, Description: d, MarkdownDescription: d}
	}
	out := func(d string, sensitive bool) schema.Attribute {
		return schema.StringAttribute{Computed: true, Sensitive: sensitive, Description: d, MarkdownDescription: d}
	}
	resp.Schema = schema.Schema{
		Description: "A short-lived cluster-admin kubeconfig, minted in memory from the cluster CA. It is never " +
			"written to state or plan (Terraform 1.10 or later).",
		MarkdownDescription: "A short-lived cluster-admin kubeconfig, minted in memory from the cluster CA. It is " +
			"never written to state or plan (requires Terraform 1.10 or later). Use it to configure the " +
			"`kubernetes` or `helm` provider, or to write a file with an ephemeral-aware resource.",
		Attributes: map[string]schema.Attribute{
			"cluster": schema.SingleNestedAttribute{
				Required:            true,
				Description:         "The cluster's join object: kubesmith_cluster.NAME.join.",
				MarkdownDescription: "The cluster's join object: `kubesmith_cluster.NAME.join`.",
				Attributes: map[string]schema.Attribute{
					"cluster_name":       in("Cluster name."),
					"cluster_uid":        in("Cluster UID."),
					"endpoint":           in("Kubernetes API URL."),
					"ca_certificate":     in("PEM certificate of the cluster CA."),
					"kubernetes_version": in("Kubernetes version."),
					"node_network":       in("CIDR of the node network."),
					"pod_cidr":           in("Pod network."),
					"service_cidr":       in("Service network."),
					"cluster_dns":        in("Address of the cluster DNS Service."),
					"masters": schema.ListAttribute{
						ElementType: types.StringType, Required: true,
						Description: "Master addresses.", MarkdownDescription: "Master addresses.",
					},
				},
			},
			"pki": schema.SingleNestedAttribute{
				Required:            true,
				Sensitive:           true,
				Description:         "The cluster's PKI: kubesmith_cluster.NAME.pki. Only the cluster CA is used.",
				MarkdownDescription: "The cluster's PKI: `kubesmith_cluster.NAME.pki`. Only the cluster CA signs the certificate.",
				Attributes: map[string]schema.Attribute{
					"ca_cert":             secret("Cluster CA certificate (PEM)."),
					"ca_key":              secret("Cluster CA private key (PEM)."),
					"etcd_ca_cert":        secret("etcd CA certificate (PEM)."),
					"etcd_ca_key":         secret("etcd CA private key (PEM)."),
					"front_proxy_ca_cert": secret("Front proxy CA certificate (PEM)."),
					"front_proxy_ca_key":  secret("Front proxy CA private key (PEM)."),
					"service_account_key": secret("Service account signing key (PEM)."),
					"service_account_pub": secret("Service account public key (PEM)."),
					"encryption_key":      secret("Secrets encryption key."),
					"keepalived_password": secret("VRRP password."),
				},
			},
			"validity": schema.StringAttribute{
				Optional:            true,
				Description:         "Lifetime of the client certificate, as a Go duration. Defaults to 1h.",
				MarkdownDescription: "Lifetime of the client certificate, as a Go duration. Defaults to `1h`.",
				Validators:          []validator.String{durationValidator{}},
			},
			"kubeconfig_raw":         out("The kubeconfig YAML.", true),
			"host":                   out("The Kubernetes API URL.", false),
			"cluster_ca_certificate": out("PEM certificate of the cluster CA.", false),
			"client_certificate":     out("PEM client certificate (group system:masters).", false),
			"client_key":             out("PEM client private key.", true),
			"expires_at":             out("When the client certificate expires, RFC 3339.", false),
		},
	}
}

// Configure receives the engine.
func (e *kubeconfigEphemeralResource) Configure(_ context.Context, req ephemeral.ConfigureRequest, resp *ephemeral.ConfigureResponse) {
	d, err := providerDataFrom(req.ProviderData)
	if err != nil {
		resp.Diagnostics.AddError("Unexpected Ephemeral Resource Configure Type", err.Error())
		return
	}
	e.data = d
}

// Open mints the kubeconfig.
func (e *kubeconfigEphemeralResource) Open(ctx context.Context, req ephemeral.OpenRequest, resp *ephemeral.OpenResponse) {
	var m kubeconfigModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if e.data == nil || e.data.engine == nil {
		resp.Diagnostics.AddError("Provider Not Configured", "The kubesmith provider was not configured before this ephemeral resource was opened.")
		return
	}
	validity := defaultEphemeralValidity
	if v := m.Validity.ValueString(); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("validity"), "Invalid Duration", err.Error())
			return
		}
		validity = d
	}

	r := &specReader{ctx: ctx}
	join := r.join(m.Cluster)
	st := engine.ClusterState{UID: join.ClusterUID, Join: join}
	var pk pkiModel
	if r.object(m.PKI, "pki", &pk) {
		st.PKI = engine.PKI{
			CACert: pk.CACert.ValueString(), CAKey: pk.CAKey.ValueString(),
			EtcdCACert: pk.EtcdCACert.ValueString(), EtcdCAKey: pk.EtcdCAKey.ValueString(),
			FrontProxyCACert: pk.FrontProxyCACert.ValueString(), FrontProxyCAKey: pk.FrontProxyCAKey.ValueString(),
			ServiceAccountKey: pk.ServiceAccountKey.ValueString(), ServiceAccountPub: pk.ServiceAccountPub.ValueString(),
			EncryptionKey: pk.EncryptionKey.ValueString(), KeepalivedPassword: pk.KeepalivedPwd.ValueString(),
		}
	}
	resp.Diagnostics.Append(r.diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec, err := specFromJoin(join)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("cluster").AtName("endpoint"), "Invalid Cluster Endpoint", err.Error())
		return
	}
	spec.SSH, spec.Artifacts = e.data.ssh, e.data.artifacts

	raw, err := e.data.engine.AdminKubeconfig(spec, st, validity)
	if err != nil {
		resp.Diagnostics.AddError("Unable to Issue Kubeconfig", engineErrorDetail(
			fmt.Sprintf("Signing an admin certificate for cluster %q with its CA failed.", join.ClusterName),
			"Check that pki is kubesmith_cluster.NAME.pki of the same cluster as cluster.", err))
		return
	}
	kc, err := parseKubeconfig(raw)
	if err != nil {
		resp.Diagnostics.AddError("Unable to Read the Issued Kubeconfig", engineErrorDetail(
			"The engine returned a kubeconfig this provider cannot read.", "Please report this issue.", err))
		return
	}
	m.KubeconfigRaw = types.StringValue(string(raw))
	m.Host = types.StringValue(kc.server)
	m.ClusterCACertificate = types.StringValue(kc.ca)
	m.ClientCertificate = types.StringValue(kc.cert)
	m.ClientKey = types.StringValue(kc.key)
	m.ExpiresAt = types.StringValue(kc.notAfter.UTC().Format(time.RFC3339))
	resp.Diagnostics.Append(resp.Result.Set(ctx, &m)...)
}

// specFromJoin rebuilds the parts of a spec a kubeconfig depends on from the join object.
func specFromJoin(j engine.Join) (engine.ClusterSpec, error) {
	u, err := url.Parse(j.Endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return engine.ClusterSpec{}, fmt.Errorf("%q is not an https:// URL", j.Endpoint)
	}
	host, portStr, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, portStr = u.Hostname(), strconv.Itoa(defaultAPIPort)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return engine.ClusterSpec{}, fmt.Errorf("%q has an invalid port: %w", j.Endpoint, err)
	}
	spec := engine.ClusterSpec{
		Name: j.ClusterName, KubernetesVersion: j.KubernetesVersion, NodeNetwork: j.NodeNetwork,
		APIVIP: host, APIPort: port, PodCIDR: j.PodCIDR, ServiceCIDR: j.ServiceCIDR,
	}
	for _, a := range j.Masters {
		spec.ControlPlane = append(spec.ControlPlane, engine.Host{Address: a})
	}
	return spec, nil
}

// kubeconfigFile is the part of a kubeconfig this provider reads.
type kubeconfigFile struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server string `json:"server"`
			CAData string `json:"certificate-authority-data"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			CertData string `json:"client-certificate-data"`
			KeyData  string `json:"client-key-data"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
}

type kubeconfigParts struct {
	server, ca, cert, key string
	notAfter              time.Time
}

// parseKubeconfig extracts the current context's server, CA and client credentials (PEM).
func parseKubeconfig(raw []byte) (kubeconfigParts, error) {
	var f kubeconfigFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		return kubeconfigParts{}, fmt.Errorf("parse kubeconfig: %w", err)
	}
	if len(f.Clusters) == 0 || len(f.Users) == 0 {
		return kubeconfigParts{}, errors.New("kubeconfig has no cluster or no user")
	}
	clusterName, userName := f.Clusters[0].Name, f.Users[0].Name
	for _, c := range f.Contexts {
		if c.Name == f.CurrentContext {
			clusterName, userName = c.Context.Cluster, c.Context.User
		}
	}
	var out kubeconfigParts
	found := 0
	for _, c := range f.Clusters {
		if c.Name == clusterName {
			out.server = c.Cluster.Server
			ca, err := base64.StdEncoding.DecodeString(c.Cluster.CAData)
			if err != nil {
				return out, fmt.Errorf("certificate-authority-data: %w", err)
			}
			out.ca = string(ca)
			found++
		}
	}
	for _, u := range f.Users {
		if u.Name == userName {
			cert, err := base64.StdEncoding.DecodeString(u.User.CertData)
			if err != nil {
				return out, fmt.Errorf("client-certificate-data: %w", err)
			}
			key, err := base64.StdEncoding.DecodeString(u.User.KeyData)
			if err != nil {
				return out, fmt.Errorf("client-key-data: %w", err)
			}
			out.cert, out.key = string(cert), string(key)
			found++
		}
	}
	if found != 2 {
		return out, fmt.Errorf("current context %q does not name a cluster and a user of the file", f.CurrentContext)
	}
	block, _ := pem.Decode([]byte(out.cert))
	if block == nil {
		return out, errors.New("client certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return out, fmt.Errorf("client certificate: %w", err)
	}
	out.notAfter = cert.NotAfter
	return out, nil
}
