package phase

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/render"
)

// Certificate and kubeconfig locations (the same as kubeadm's, so operators find them).
const (
	KubeletPKIDir = "/var/lib/kubelet/pki"
	KubeconfigDir = "/etc/kubernetes"
	AdminConf     = KubeconfigDir + "/admin.conf"
	KubeletConf   = KubeconfigDir + "/kubelet.conf"
	// KubeletClientCert is where a bootstrapped kubelet keeps its client certificate and key. The kubelet writes
	// KubeletConf, pointing at it, as soon as it starts, before its CSR is even approved: only this file says
	// that the TLS bootstrap finished.
	KubeletClientCert = KubeletPKIDir + "/kubelet-client-current.pem"
	KubeProxyConf     = KubeconfigDir + "/kube-proxy.conf"
	FlannelConf       = KubeconfigDir + "/flannel.conf"
	ControllerConf    = KubeconfigDir + "/controller-manager.conf"
	SchedulerConf     = KubeconfigDir + "/scheduler.conf"
	PoolManagerCert   = StateDir + "/pki/pool-manager.crt"
	PoolManagerKey    = StateDir + "/pki/pool-manager.key"
	// EncryptionKeyFile and KeepalivedPasswordFile keep the raw secrets on the masters so that a crashed first
	// run, or an import, recovers them.
	EncryptionKeyFile      = StateDir + "/pki/encryption.key"
	KeepalivedPasswordFile = StateDir + "/pki/vrrp.pass"
)

type certWant struct {
	crt, key string
	ca       pki.KeyPair
	req      pki.Request
}

type kubeconfigWant struct {
	path   string
	server string
	user   string
	req    pki.Request
}

// readMany reads several small files in one round trip; missing files are absent from the result.
func readMany(ctx context.Context, r node.Runner, paths []string) (map[string][]byte, error) {
	const sep = "----kubesmith-file----"
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "if [ -f %[1]s ]; then echo '%[2]s %[1]s'; cat %[1]s; echo; fi; ", node.Quote(p), sep)
	}
	res, err := r.Run(ctx, b.String())
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	out := map[string][]byte{}
	for _, chunk := range strings.Split(res.Stdout, sep+" ")[1:] {
		name, body, _ := strings.Cut(chunk, "\n")
		body = strings.TrimSuffix(body, "\n")
		out[strings.TrimSpace(name)] = []byte(body)
	}
	return out, nil
}

// CertFiles returns the certificate, key and kubeconfig files of t. Certificates already on the host that are
// signed by the right CA, cover the request and are not close to expiry are kept as they are, so a re-run
// rewrites nothing and no certificate of an existing cluster is regenerated without need.
func (c *Cluster) CertFiles(ctx context.Context, t *Target) ([]File, error) {
	now := c.Now()
	ip := net.ParseIP(t.Address)
	ca := c.CAs.Cluster
	local := fmt.Sprintf("https://%s:%d", t.Address, c.APIPort)
	server := c.Endpoint()
	files := []File{{Path: PKIDir + "/ca.crt", Data: ca.CertPEM, Mode: 0o644}}
	var certs []certWant
	kcs := []kubeconfigWant{
		{KubeProxyConf, server, "system:kube-proxy", pki.KubeProxyRequest()},
		{FlannelConf, server, pki.UserFlannel, pki.FlannelRequest()},
	}
	certs = append(certs, certWant{
		render.PathKubeletServingCert, render.PathKubeletServingKey, ca,
		pki.KubeletServingRequest(t.Name, []net.IP{ip}),
	})
	if t.Role == RoleMaster {
		files = append(files,
			File{Path: PKIDir + "/ca.key", Data: ca.KeyPEM, Mode: 0o600, Secret: true},
			File{Path: PKIDir + "/etcd/ca.crt", Data: c.CAs.Etcd.CertPEM, Mode: 0o644},
			File{Path: PKIDir + "/etcd/ca.key", Data: c.CAs.Etcd.KeyPEM, Mode: 0o600, Secret: true},
			File{Path: PKIDir + "/front-proxy-ca.crt", Data: c.CAs.FrontProxy.CertPEM, Mode: 0o644},
			File{Path: PKIDir + "/front-proxy-ca.key", Data: c.CAs.FrontProxy.KeyPEM, Mode: 0o600, Secret: true},
			File{Path: PKIDir + "/sa.key", Data: c.CAs.ServiceAccount.PrivatePEM, Mode: 0o600, Secret: true},
			File{Path: PKIDir + "/sa.pub", Data: c.CAs.ServiceAccount.PublicPEM, Mode: 0o644},
			File{Path: PoolManagerCert, Data: c.PoolManager.CertPEM, Mode: 0o644},
			File{Path: PoolManagerKey, Data: c.PoolManager.KeyPEM, Mode: 0o600, Secret: true},
			File{Path: EncryptionKeyFile, Data: []byte(c.EncryptionKey + "\n"), Mode: 0o600, Secret: true},
			File{Path: KeepalivedPasswordFile, Data: []byte(c.KeepalivedPassword + "\n"), Mode: 0o600, Secret: true},
		)
		var masterIPs []net.IP
		var masterNames []string
		for _, m := range c.Masters {
			masterIPs = append(masterIPs, net.ParseIP(m.Address))
			masterNames = append(masterNames, m.Name)
		}
		apiIP := net.IP(c.APIServiceIP().AsSlice())
		certs = append(certs,
			certWant{
				PKIDir + "/apiserver.crt", PKIDir + "/apiserver.key", ca,
				pki.APIServerRequest(net.IP(c.VIP.AsSlice()), masterIPs, masterNames, apiIP, nil),
			},
			certWant{PKIDir + "/apiserver-kubelet-client.crt", PKIDir + "/apiserver-kubelet-client.key", ca, pki.APIServerKubeletClientRequest()},
			certWant{PKIDir + "/front-proxy-client.crt", PKIDir + "/front-proxy-client.key", c.CAs.FrontProxy, pki.FrontProxyClientRequest()},
			certWant{PKIDir + "/apiserver-etcd-client.crt", PKIDir + "/apiserver-etcd-client.key", c.CAs.Etcd, pki.EtcdClientRequest("kube-apiserver-etcd-client")},
			certWant{PKIDir + "/etcd/server.crt", PKIDir + "/etcd/server.key", c.CAs.Etcd, pki.EtcdServerRequest(t.Name, ip)},
			certWant{PKIDir + "/etcd/peer.crt", PKIDir + "/etcd/peer.key", c.CAs.Etcd, pki.EtcdPeerRequest(t.Name, ip)},
			certWant{PKIDir + "/etcd/healthcheck-client.crt", PKIDir + "/etcd/healthcheck-client.key", c.CAs.Etcd, pki.EtcdClientRequest("kube-etcd-healthcheck-client")},
		)
		kcs = append(kcs,
			kubeconfigWant{ControllerConf, local, "system:kube-controller-manager", pki.ControllerManagerRequest()},
			kubeconfigWant{SchedulerConf, local, "system:kube-scheduler", pki.SchedulerRequest()},
			kubeconfigWant{AdminConf, local, "kubesmith-admin", pki.AdminRequest(pki.LeafValidity)},
			// Masters' kubelets talk to their own apiserver, so they come up before the VIP moves.
			kubeconfigWant{KubeletConf, local, "system:node:" + t.Name, pki.NodeClientRequest(t.Name)},
		)
	}
	var paths []string
	for _, w := range certs {
		paths = append(paths, w.crt, w.key)
	}
	for _, k := range kcs {
		paths = append(paths, k.path)
	}
	have, err := readMany(ctx, t.Runner, paths)
	if err != nil {
		return nil, err
	}
	for _, w := range certs {
		kp := pki.KeyPair{CertPEM: have[w.crt], KeyPEM: have[w.key]}
		if !validPair(w.ca, kp, w.req, now) {
			if kp, err = pki.Issue(w.ca, w.req, now); err != nil {
				return nil, fmt.Errorf("issuing %s: %w", w.crt, err)
			}
		}
		files = append(files,
			File{Path: w.crt, Data: kp.CertPEM, Mode: 0o644},
			File{Path: w.key, Data: kp.KeyPEM, Mode: 0o600, Secret: true})
	}
	for _, k := range kcs {
		if old, ok := have[k.path]; ok {
			if spec, err := pki.ParseKubeconfig(old); err == nil && spec.Server == k.server &&
				string(spec.CAPEM) == string(ca.CertPEM) && validPair(ca, spec.Client, k.req, now) {
				files = append(files, File{Path: k.path, Data: old, Mode: 0o600, Secret: true})
				continue
			}
		}
		kp, err := pki.Issue(ca, k.req, now)
		if err != nil {
			return nil, fmt.Errorf("issuing the client certificate of %s: %w", k.path, err)
		}
		data, err := pki.Kubeconfig(k.server, ca.CertPEM, k.user, kp)
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", k.path, err)
		}
		files = append(files, File{Path: k.path, Data: data, Mode: 0o600, Secret: true})
	}
	return files, nil
}

// RenewBefore is how long before expiry a certificate is reissued on apply (DESIGN §3.5).
const RenewBefore = 30 * 24 * time.Hour

// validPair reports whether kp is a usable certificate for req signed by ca, with its matching key, and not
// within RenewBefore of expiry.
func validPair(ca pki.KeyPair, kp pki.KeyPair, req pki.Request, now time.Time) bool {
	if len(kp.CertPEM) == 0 || len(kp.KeyPEM) == 0 {
		return false
	}
	cert, _, err := pki.ParseKeyPair(kp)
	if err != nil || now.Add(RenewBefore).After(cert.NotAfter) {
		return false
	}
	return pki.Covers(ca, kp.CertPEM, req, now) == nil
}
