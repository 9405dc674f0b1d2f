package phase

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/render"
)

// Worker-specific names.
const (
	// JoiningTaintKey is the NoSchedule taint a worker registers with. The engine removes it once the pool's
	// labels and taints are on the Node, so that no pod lands on a node before its taints are in place.
	JoiningTaintKey = "kubesmith.io/joining"
	// BootstrapKubeconfig holds the kubelet's bootstrap token while it joins; it is removed afterwards.
	BootstrapKubeconfig = render.PathKubeletBootstrapKubeconfig
	// PoolRecordFile is the non-secret description of the node pool kept on each worker, for import.
	PoolRecordFile = StateDir + "/nodepool.json"
	// AgentKubeProxy and AgentFlanneld name the node agents that authenticate with service-account tokens.
	AgentKubeProxy = "kube-proxy"
	AgentFlanneld  = "flanneld"
)

// WorkerAuthority is what joining a worker needs from the Kubernetes API. The engine implements it with the
// node pool's restricted credentials, which hold no CA key: every credential a worker gets is issued by the
// cluster itself.
type WorkerAuthority interface {
	// ServingCertificate obtains a kubelet serving certificate for the node (names and address as SANs),
	// signed by the cluster CA.
	ServingCertificate(ctx context.Context, nodeName string, ip net.IP) (pki.KeyPair, error)
	// BootstrapToken creates a short-lived bootstrap token with which only nodeName's kubelet may join.
	BootstrapToken(ctx context.Context, nodeName string) (string, error)
	// ApproveNodeClient approves the pending kubelet client CSRs of nodeName made with its bootstrap token,
	// and nothing else. It returns how many it approved.
	ApproveNodeClient(ctx context.Context, nodeName string) (int, error)
	// NodeUID returns the UID of the registered Node, or "" if it is not registered (yet).
	NodeUID(ctx context.Context, nodeName string) (string, error)
	// AgentToken returns a service-account token for agent (AgentKubeProxy or AgentFlanneld) bound to the
	// Node object, so that deleting the Node revokes it.
	AgentToken(ctx context.Context, agent, nodeName string) (string, error)
}

// JoinWorker installs one worker and joins it to the cluster: prepare the host, upload binaries and images,
// write the configuration and a kubelet serving certificate, start containerd and kubelet (TLS bootstrap with a
// one-node token whose client CSR the authority approves), then write the node agents' token kubeconfigs and
// start kube-proxy and flanneld. Every step skips what is done; a joined worker is left as it is.
func (c *Cluster) JoinWorker(ctx context.Context, t *Target, auth WorkerAuthority, record []byte) error {
	if err := c.prepareHost(ctx, t); err != nil {
		return err
	}
	items, err := c.Select.Binaries(RoleWorker)
	if err != nil {
		return err
	}
	items = append(items, c.Select.Images()...)
	var changed []string
	ch, err := UploadArtifacts(ctx, c.Bundle, t, items)
	changed = append(changed, ch...)
	if perr := markPending(ctx, t, ch); err != nil || perr != nil {
		return errors.Join(err, perr)
	}
	files, err := c.WorkerFiles(ctx, t, auth)
	if err != nil {
		return err
	}
	ch, err = SyncFiles(ctx, t.Runner, files)
	changed = append(changed, ch...)
	if perr := markPending(ctx, t, ch); err != nil || perr != nil {
		return errors.Join(err, perr)
	}
	if err := DaemonReload(ctx, t.Runner, ch); err != nil {
		return err
	}
	if err := c.startContainerd(ctx, t, changed); err != nil {
		return err
	}
	if err := c.startKubelet(ctx, t, auth, changed); err != nil {
		return err
	}
	agents, err := c.AgentFiles(ctx, t, auth)
	if err != nil {
		return err
	}
	ch, err = SyncFiles(ctx, t.Runner, agents)
	changed = append(changed, ch...)
	if perr := markPending(ctx, t, ch); err != nil || perr != nil {
		return errors.Join(err, perr)
	}
	for _, u := range []string{"kube-proxy", "flanneld"} {
		if err := c.startUnit(ctx, t, u, changed); err != nil {
			return err
		}
	}
	t.Planned = append(files, agents...)
	if err := c.recordApplied(ctx, t); err != nil {
		return err
	}
	if len(record) > 0 {
		if _, err := SyncFiles(ctx, t.Runner, []File{{Path: PoolRecordFile, Data: record, Mode: 0o644}}); err != nil {
			return err
		}
	}
	return nil
}

// WorkerFiles returns the files of a worker that need no registered Node: the CA certificate, the kubelet
// serving certificate (kept while valid, otherwise issued through the authority) and the rendered
// configuration. The kubelet registers with the JoiningTaintKey taint; labels go through the API.
func (c *Cluster) WorkerFiles(ctx context.Context, t *Target, auth WorkerAuthority) ([]File, error) {
	ca := c.CAs.Cluster
	ip := net.ParseIP(t.Address)
	if ip == nil {
		return nil, fmt.Errorf("%s: %q is not an IP address", t.Name, t.Address)
	}
	files := []File{{Path: PKIDir + "/ca.crt", Data: ca.CertPEM, Mode: 0o644}}
	have, err := readMany(ctx, t.Runner, []string{render.PathKubeletServingCert, render.PathKubeletServingKey})
	if err != nil {
		return nil, err
	}
	serving := pki.KeyPair{CertPEM: have[render.PathKubeletServingCert], KeyPEM: have[render.PathKubeletServingKey]}
	req := pki.KubeletServingRequest(t.Name, []net.IP{ip})
	if !validPair(ca, serving, req, c.Now()) {
		if serving, err = auth.ServingCertificate(ctx, t.Name, ip); err != nil {
			return nil, fmt.Errorf("kubelet serving certificate: %w", err)
		}
		if err := pki.Covers(ca, serving.CertPEM, req, c.Now()); err != nil {
			return nil, fmt.Errorf("the cluster issued an unusable kubelet serving certificate: %w", err)
		}
	}
	files = append(files,
		File{Path: render.PathKubeletServingCert, Data: serving.CertPEM, Mode: 0o644},
		File{Path: render.PathKubeletServingKey, Data: serving.KeyPEM, Mode: 0o600, Secret: true})
	rf, err := c.renderedFiles(t)
	if err != nil {
		return nil, err
	}
	files = append(files, File{Path: SysctlFile, Mode: 0o644, Data: []byte("# kubesmith: Kubernetes networking\n" +
		"net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n")})
	if !t.Facts.IsContainer() {
		files = append(files, File{Path: ModulesFile, Mode: 0o644, Data: []byte("# kubesmith\noverlay\nbr_netfilter\n")})
	}
	for _, f := range rf {
		if kc, ok := f.(render.KubeletConfig); ok {
			kc.RegisterWithTaints = append(kc.RegisterWithTaints, render.Taint{Key: JoiningTaintKey, Effect: "NoSchedule"})
			f = kc
		}
		r, err := render.RenderFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		files = append(files, File{Path: r.Path, Data: r.Data, Mode: r.Mode, Secret: r.Mode == 0o600})
	}
	return files, nil
}

// startKubelet starts the kubelet. A worker without a kubelet client certificate joins through TLS bootstrap: a
// one-node bootstrap token is written, the kubelet's client CSR is approved by the authority, and the token
// file is removed once the kubelet holds its certificate. (Its kubeconfig alone proves nothing: the kubelet
// writes it before it even sends the CSR.)
func (c *Cluster) startKubelet(ctx context.Context, t *Target, auth WorkerAuthority, changed []string) error {
	joined := "test -s " + KubeletConf + " && test -s " + KubeletClientCert
	res, err := t.Runner.Run(ctx, joined+" && echo joined || echo new")
	if err != nil {
		return fmt.Errorf("checking the kubelet kubeconfig: %w", err)
	}
	if strings.TrimSpace(res.Stdout) == "joined" {
		return c.startUnit(ctx, t, "kubelet", changed)
	}
	token, err := auth.BootstrapToken(ctx, t.Name)
	if err != nil {
		return fmt.Errorf("bootstrap token: %w", err)
	}
	kc, err := pki.TokenKubeconfig(c.Endpoint(), c.CAs.Cluster.CertPEM, "kubelet-bootstrap", token)
	if err != nil {
		return fmt.Errorf("rendering the bootstrap kubeconfig: %w", err)
	}
	if err := t.Runner.WriteFile(ctx, BootstrapKubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", BootstrapKubeconfig, err)
	}
	if err := EnsureService(ctx, t.Runner, "kubelet", true, false, PendingDir+"/kubelet"); err != nil {
		return err
	}
	if err := Poll(ctx, time.Second, 3*time.Minute, "the kubelet of "+t.Name+" to obtain its client certificate", func(ctx context.Context) (bool, error) {
		if _, err := auth.ApproveNodeClient(ctx, t.Name); err != nil {
			return false, err
		}
		res, err := t.Runner.Run(ctx, joined+" && echo joined || echo waiting")
		if err != nil {
			return false, err
		}
		return strings.TrimSpace(res.Stdout) == "joined", nil
	}); err != nil {
		return fmt.Errorf("%w\n%s", err, unitLog(ctx, t, "kubelet"))
	}
	if _, err := t.Runner.Run(ctx, "rm -f "+node.Quote(BootstrapKubeconfig)); err != nil {
		return fmt.Errorf("removing %s: %w", BootstrapKubeconfig, err)
	}
	return nil
}

// unitLog is the tail of a unit's journal on t, for error messages.
func unitLog(ctx context.Context, t *Target, unit string) string {
	res, err := t.Runner.Run(ctx, "journalctl -u "+node.Quote(unit)+" -n 25 --no-pager 2>&1 | tail -n 25")
	if err != nil {
		return "(no journal of " + unit + " on " + t.Name + ": " + err.Error() + ")"
	}
	return "last lines of " + unit + " on " + t.Name + ":\n" + res.Stdout
}

// AgentFiles returns kube-proxy's and flanneld's kubeconfigs. Each authenticates with a service-account
// token bound to the Node; a token found on the host is kept while it is bound to the current Node object,
// points at the cluster's endpoint and CA, and is not within RenewBefore of expiry.
func (c *Cluster) AgentFiles(ctx context.Context, t *Target, auth WorkerAuthority) ([]File, error) {
	var uid string
	if err := Poll(ctx, time.Second, 3*time.Minute, "Node "+t.Name+" to register", func(ctx context.Context) (bool, error) {
		var err error
		uid, err = auth.NodeUID(ctx, t.Name)
		return uid != "", err
	}); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, unitLog(ctx, t, "kubelet"))
	}
	want := []struct{ agent, path string }{{AgentKubeProxy, KubeProxyConf}, {AgentFlanneld, FlannelConf}}
	have, err := readMany(ctx, t.Runner, []string{KubeProxyConf, FlannelConf})
	if err != nil {
		return nil, err
	}
	var out []File
	for _, w := range want {
		if old, ok := have[w.path]; ok {
			if spec, err := pki.ParseKubeconfig(old); err == nil && spec.Server == c.Endpoint() &&
				string(spec.CAPEM) == string(c.CAs.Cluster.CertPEM) && TokenUsable(spec.Token, uid, c.Now()) {
				out = append(out, File{Path: w.path, Data: old, Mode: 0o600, Secret: true})
				continue
			}
		}
		token, err := auth.AgentToken(ctx, w.agent, t.Name)
		if err != nil {
			return nil, fmt.Errorf("%s token: %w", w.agent, err)
		}
		data, err := pki.TokenKubeconfig(c.Endpoint(), c.CAs.Cluster.CertPEM, w.agent, token)
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", w.path, err)
		}
		out = append(out, File{Path: w.path, Data: data, Mode: 0o600, Secret: true})
	}
	return out, nil
}

// TokenClaims are the parts of a service-account token kubesmith checks. The signature is not verified:
// the token came from the cluster, and the apiserver verifies it on every use.
type TokenClaims struct {
	Expiry     int64 `json:"exp"`
	Kubernetes struct {
		Node struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"node"`
	} `json:"kubernetes.io"`
}

// ParseTokenClaims decodes the payload of a JWT.
func ParseTokenClaims(token string) (TokenClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return TokenClaims{}, errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return TokenClaims{}, fmt.Errorf("token payload: %w", err)
	}
	var c TokenClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return TokenClaims{}, fmt.Errorf("token payload: %w", err)
	}
	return c, nil
}

// TokenUsable reports whether a token is bound to the Node with nodeUID and lasts beyond RenewBefore.
func TokenUsable(token, nodeUID string, now time.Time) bool {
	c, err := ParseTokenClaims(token)
	if err != nil || c.Kubernetes.Node.UID != nodeUID {
		return false
	}
	return time.Unix(c.Expiry, 0).After(now.Add(RenewBefore))
}
