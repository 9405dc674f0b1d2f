package render

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
)

// Defaults for add-ons.
const (
	// DefaultCoreDNSImage is kubeadm 1.37's CoreDNS image; the bundle carries it.
	DefaultCoreDNSImage = "registry.k8s.io/coredns/coredns:v1.14.6"
	// DefaultCoreDNSReplicas spreads DNS over two nodes.
	DefaultCoreDNSReplicas = 2
	// DefaultBootstrapGroup is the extra group of every bootstrap token kubesmith creates. Only this group (not
	// all of system:bootstrappers) may create node CSRs.
	DefaultBootstrapGroup = "system:bootstrappers:kubesmith"
)

// CoreDNSAddon is the data of addons/coredns.yaml.tmpl: CoreDNS as the cluster DNS (Service kube-dns).
type CoreDNSAddon struct {
	// Image is the CoreDNS image, imported from the bundle.
	Image string
	// ImagePullPolicy is IfNotPresent or Never: nodes never pull.
	ImagePullPolicy string
	// ClusterDNSIP is the kube-dns Service IP; kubelets' clusterDNS.
	ClusterDNSIP string
	// ClusterDomain is the cluster DNS domain.
	ClusterDomain string
	// UpstreamDNS are forwarders ("ip" or "ip:port"). Empty means no forwarding at all (air gap). Loopback
	// addresses are refused: CoreDNS would forward to itself or to a resolver pods cannot reach.
	UpstreamDNS []string
	// Replicas is the Deployment's replica count.
	Replicas int
}

// Target implements File.
func (CoreDNSAddon) Target() Target {
	return Target{Template: "addons/coredns.yaml.tmpl", Path: PathCoreDNSAddon, Mode: modeConfig}
}

// Validate implements File.
func (a CoreDNSAddon) Validate() error {
	var e errs
	e.image("Image", a.Image)
	e.oneOf("ImagePullPolicy", a.ImagePullPolicy, "IfNotPresent", "Never")
	e.nonLoopbackIP("ClusterDNSIP", a.ClusterDNSIP)
	e.nodeName("ClusterDomain", a.ClusterDomain)
	for i, u := range a.UpstreamDNS {
		e.dnsServer("UpstreamDNS["+strconv.Itoa(i)+"]", u)
	}
	e.positive("Replicas", a.Replicas)
	return e.join("coredns add-on")
}

// RBACAddon is the data of addons/rbac.yaml.tmpl: the bindings kubesmith's identities need, the restricted
// pool-manager role, and the kubelet client-certificate rotation rule.
type RBACAddon struct {
	// APIServerKubeletClientUser is bound to system:kubelet-api-admin.
	APIServerKubeletClientUser string
	// FlannelUser is bound to the flannel ClusterRole.
	FlannelUser string
	// PoolManagerGroup gets the pool-manager roles.
	PoolManagerGroup string
	// BootstrapGroups are the only extra groups the pool manager may give the bootstrap tokens it creates.
	BootstrapGroups []string
}

// NewRBACAddon fills RBACAddon with the identities of internal/pki and the given bootstrap groups.
func NewRBACAddon(bootstrapGroups []string) RBACAddon {
	return RBACAddon{
		APIServerKubeletClientUser: pki.UserAPIServerKubeletClient,
		FlannelUser:                pki.UserFlannel,
		PoolManagerGroup:           pki.GroupPoolManagers,
		BootstrapGroups:            bootstrapGroups,
	}
}

// Target implements File.
func (RBACAddon) Target() Target {
	return Target{Template: "addons/rbac.yaml.tmpl", Path: PathRBACAddon, Mode: modeConfig}
}

// CELBootstrapGroups is BootstrapGroups as a CEL list literal.
func (a RBACAddon) CELBootstrapGroups() string { return celList(a.BootstrapGroups) }

// CELBootstrapGroupsBase64 is BootstrapGroups, each base64-encoded, as a CEL list literal. Admission policies see
// a Secret's data values as base64 strings (CEL has no base64 decoder in Kubernetes), so a token's
// auth-extra-groups is compared in that form: a token kubesmith creates carries exactly one group.
func (a RBACAddon) CELBootstrapGroupsBase64() string {
	enc := make([]string, 0, len(a.BootstrapGroups))
	for _, g := range a.BootstrapGroups {
		enc = append(enc, base64.StdEncoding.EncodeToString([]byte(g)))
	}
	return celList(enc)
}

func celList(items []string) string {
	quoted := make([]string, 0, len(items))
	for _, s := range items {
		quoted = append(quoted, "'"+s+"'")
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// Validate implements File.
func (a RBACAddon) Validate() error {
	var e errs
	for f, v := range map[string]string{
		"APIServerKubeletClientUser": a.APIServerKubeletClientUser,
		"FlannelUser":                a.FlannelUser, "PoolManagerGroup": a.PoolManagerGroup,
	} {
		e.word(f, v)
		if strings.HasPrefix(v, "system:") {
			e.addf("%s %q must not be a system: identity", f, v)
		}
	}
	validBootstrapGroups(&e, a.BootstrapGroups)
	return e.join("rbac add-on")
}

// BootstrapRBACAddon is the data of addons/kubelet-bootstrap-rbac.yaml.tmpl: bootstrap tokens in Groups may
// create CSRs (system:node-bootstrapper). Approval is not granted: kubesmith approves exactly the nodes it
// planned.
type BootstrapRBACAddon struct {
	// Groups are bootstrap-token groups (system:bootstrappers:...).
	Groups []string
}

// Target implements File.
func (BootstrapRBACAddon) Target() Target {
	return Target{Template: "addons/kubelet-bootstrap-rbac.yaml.tmpl", Path: PathBootstrapRBACAddon, Mode: modeConfig}
}

// Validate implements File.
func (a BootstrapRBACAddon) Validate() error {
	var e errs
	validBootstrapGroups(&e, a.Groups)
	return e.join("kubelet bootstrap rbac add-on")
}

func validBootstrapGroups(e *errs, groups []string) {
	if len(groups) == 0 {
		e.addf("no bootstrap groups")
	}
	for _, g := range groups {
		// The apiserver only accepts extra groups of this form on bootstrap tokens; the bare
		// system:bootstrappers group would include tokens that kubesmith did not create.
		rest, ok := strings.CutPrefix(g, "system:bootstrappers:")
		if !ok || rest == "" || !safeWord.MatchString(g) || strings.Contains(g, ",") {
			e.addf("bootstrap group %q must be system:bootstrappers:<name>", g)
		}
	}
}
