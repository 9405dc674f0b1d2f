package render

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
)

// smokeIP stands in for the master's node IP. It is a loopback address, so nothing leaves the machine; the units
// are rendered with Render (which skips the loopback check) and only paths and the bind address are rewritten.
const smokeIP = "127.0.0.2"

// TestControlPlaneSmoke runs etcd, kube-apiserver, kube-controller-manager and kube-scheduler from the rendered
// units, with kubesmith's PKI and rendered configuration files, on loopback addresses. It checks:
// anonymous access is limited to the health endpoints; Secrets are encrypted in etcd with secretbox; the add-on
// manifests apply; the pool manager can do what it needs (bootstrap tokens, node CSR approval for client and
// serving certificates) and nothing more (no Secret reads, no other Secret types or groups, no other signers);
// bootstrap-token CSRs are not auto-approved; flannel's and the apiserver's kubelet-client identities hold their
// roles.
//
// It needs the v1.37 binaries: KUBESMITH_K8S_BIN (kube-apiserver, kube-controller-manager, kube-scheduler,
// kubectl) and KUBESMITH_ETCD_BIN (etcd, etcdctl), and free ports 2379-2381, 6443, 10257 and 10259.
func TestControlPlaneSmoke(t *testing.T) {
	k8sBin, etcdBin := os.Getenv("KUBESMITH_K8S_BIN"), os.Getenv("KUBESMITH_ETCD_BIN")
	if k8sBin == "" || etcdBin == "" {
		t.Skip("set KUBESMITH_K8S_BIN and KUBESMITH_ETCD_BIN to directories with the v1.37 binaries and etcd v3.7")
	}
	for _, addr := range []string{
		"127.0.0.1:2379", smokeIP + ":2379", smokeIP + ":2380", "127.0.0.1:2381",
		smokeIP + ":6443", "127.0.0.1:10257", "127.0.0.1:10259",
	} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("port %s is busy: %v", addr, err)
		}
		_ = l.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := &smoke{t: t, ctx: ctx, dir: t.TempDir(), k8sBin: k8sBin, etcdBin: etcdBin, now: time.Now()}
	s.writePKI()
	s.start()
	s.checkAnonymous()
	s.applyAddons()
	s.checkEncryptionAtRest()
	s.checkPermissions()
	s.checkBootstrapTokenPolicy()
	s.checkCSRs()
}

type smoke struct {
	t               *testing.T
	ctx             context.Context
	dir             string
	k8sBin, etcdBin string
	now             time.Time
	cas             pki.ClusterCAs
	server          string
	admin, pool     string // kubeconfig paths
	flannel, kubcli string
	etcdClient      pki.KeyPair
}

func (s *smoke) path(p string) string { return filepath.Join(s.dir, p) }

func (s *smoke) write(p string, data []byte, mode os.FileMode) {
	s.t.Helper()
	full := s.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(full, data, mode); err != nil {
		s.t.Fatal(err)
	}
}

func (s *smoke) pair(certPath, keyPath string, kp pki.KeyPair, err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
	s.write(certPath, kp.CertPEM, 0o644)
	s.write(keyPath, kp.KeyPEM, 0o600)
}

func (s *smoke) kubeconfig(name, user string, kp pki.KeyPair, err error) string {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
	data, err := pki.Kubeconfig(s.server, s.cas.Cluster.CertPEM, user, kp)
	if err != nil {
		s.t.Fatal(err)
	}
	p := s.path(name)
	s.write(name, data, 0o600)
	return p
}

func (s *smoke) writePKI() {
	t := s.t
	var err error
	if s.cas, err = pki.NewClusterCAs(s.now); err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP(smokeIP)
	s.server = "https://" + smokeIP + ":6443"
	svc, err := pki.KubernetesServiceIP("10.96.0.0/12")
	if err != nil {
		t.Fatal(err)
	}
	c, n := s.cas, s.now
	s.write(PathCACert, c.Cluster.CertPEM, 0o644)
	s.write(PathCAKey, c.Cluster.KeyPEM, 0o600)
	s.write(PathFrontProxyCACert, c.FrontProxy.CertPEM, 0o644)
	s.write(PathEtcdCACert, c.Etcd.CertPEM, 0o644)
	s.write(PathSAKey, c.ServiceAccount.PrivatePEM, 0o600)
	s.write(PathSAPub, c.ServiceAccount.PublicPEM, 0o644)
	kp, err := pki.APIServerCert(c.Cluster, net.ParseIP("127.0.0.3"), []net.IP{ip}, []string{"m1"}, svc, nil, n)
	s.pair(PathAPIServerCert, PathAPIServerKey, kp, err)
	kp, err = pki.APIServerKubeletClientCert(c.Cluster, n)
	s.pair(PathAPIServerKubeletClientCert, PathAPIServerKubeletClientKey, kp, err)
	kp, err = pki.EtcdClientCert(c.Etcd, pki.UserAPIServerEtcdClient, n)
	s.pair(PathAPIServerEtcdClientCert, PathAPIServerEtcdClientKey, kp, err)
	kp, err = pki.FrontProxyClientCert(c.FrontProxy, n)
	s.pair(PathFrontProxyClientCert, PathFrontProxyClientKey, kp, err)
	kp, err = pki.EtcdServerCert(c.Etcd, "m1", ip, n)
	s.pair(PathEtcdServerCert, PathEtcdServerKey, kp, err)
	kp, err = pki.EtcdPeerCert(c.Etcd, "m1", ip, n)
	s.pair(PathEtcdPeerCert, PathEtcdPeerKey, kp, err)
	if s.etcdClient, err = pki.EtcdClientCert(c.Etcd, pki.UserEtcdHealthcheck, n); err != nil {
		t.Fatal(err)
	}
	s.pair(PathEtcdHealthcheckCert, PathEtcdHealthcheckKey, s.etcdClient, nil)

	kp, err = pki.ControllerManagerCert(c.Cluster, n)
	s.kubeconfig(PathControllerManagerKubeconfig, pki.UserControllerManager, kp, err)
	kp, err = pki.SchedulerCert(c.Cluster, n)
	s.kubeconfig(PathSchedulerKubeconfig, pki.UserScheduler, kp, err)
	kp, err = pki.AdminCert(c.Cluster, time.Hour, n)
	s.admin = s.kubeconfig("admin.conf", pki.UserAdmin, kp, err)
	kp, err = pki.PoolManagerCert(c.Cluster, "demo", n)
	s.pool = s.kubeconfig("pool-manager.conf", pki.PoolManagerUserPrefix+"demo", kp, err)
	kp, err = pki.FlannelCert(c.Cluster, n)
	s.flannel = s.kubeconfig("flannel.conf", pki.UserFlannel, kp, err)
	kp, err = pki.APIServerKubeletClientCert(c.Cluster, n)
	s.kubcli = s.kubeconfig("apiserver-kubelet-client.conf", pki.UserAPIServerKubeletClient, kp, err)

	for _, f := range []File{
		AuthenticationConfig{AnonymousPaths: DefaultAnonymousPaths()},
		EncryptionConfig{Keys: []EncryptionKey{{Name: "key1", Secret: pki.NewEncryptionKey()}}},
		SchedulerConfig{LeaderElection: DefaultLeaderElection()},
	} {
		r, err := RenderFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Paths inside the files move under the test directory too (the scheduler's kubeconfig).
		s.write(r.Path, []byte(strings.ReplaceAll(string(r.Data), KubernetesDir, s.path(KubernetesDir))), r.Mode)
	}
}

// execStart renders a unit and returns its ExecStart command with host paths moved under the test directory.
func (s *smoke) execStart(name string, data any, binDir string, rewrite ...string) []string {
	s.t.Helper()
	unit, err := Render(name, data)
	if err != nil {
		s.t.Fatal(err)
	}
	var cmd []string
	in := false
	for _, line := range strings.Split(string(unit), "\n") {
		if rest, ok := strings.CutPrefix(line, "ExecStart="); ok {
			line, in = rest, true
		}
		if !in {
			continue
		}
		cont := strings.HasSuffix(line, `\`)
		cmd = append(cmd, strings.Fields(strings.TrimSuffix(line, `\`))...)
		if !cont {
			break
		}
	}
	repl := strings.NewReplacer(append([]string{KubernetesDir, s.path(KubernetesDir), EtcdDataDir, s.path(EtcdDataDir)}, rewrite...)...)
	for i := range cmd {
		cmd[i] = repl.Replace(cmd[i])
	}
	cmd[0] = filepath.Join(binDir, filepath.Base(cmd[0]))
	return cmd
}

func (s *smoke) run(name string, argv []string) {
	s.t.Helper()
	logf, err := os.Create(s.path(name + ".log"))
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.CommandContext(s.ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	s.t.Cleanup(func() {
		_ = cmd.Process.Kill() // the test started it; it is stopped by its PID
		_ = cmd.Wait()
		_ = logf.Close()
		if s.t.Failed() {
			tail, _ := exec.Command("tail", "-n", "30", logf.Name()).Output()
			s.t.Logf("last lines of %s:\n%s", name, tail)
		}
	})
}

func (s *smoke) start() {
	etcdUnit := EtcdUnit{
		Name: "m1", IP: smokeIP, InitialCluster: []EtcdMember{{"m1", smokeIP}}, InitialClusterState: "new",
		Token: "smoke-test-uid", DataDir: EtcdDataDir, HeartbeatMS: DefaultEtcdHeartbeatMS, ElectionMS: DefaultEtcdElectionMS,
		QuotaBackendBytes: DefaultEtcdQuotaBackendBytes, AutoCompactionRetention: DefaultEtcdAutoCompactionRetention,
	}
	s.run("etcd", s.execStart(etcdUnit.Target().Template, etcdUnit, s.etcdBin))
	api := APIServerUnit{
		AdvertiseAddress: smokeIP, SecurePort: DefaultAPIServerPort, EtcdIPs: []string{smokeIP},
		ServiceCIDR: "10.96.0.0/12", ServiceNodePortRange: DefaultServiceNodePortRange, ServiceAccountIssuer: DefaultServiceAccountIssuer,
	}
	// A loopback advertise address is refused by the lease endpoint reconciler (it would publish a loopback
	// endpoint), so this one flag is changed too.
	s.run("kube-apiserver", s.execStart(api.Target().Template, api, s.k8sBin, "--bind-address=0.0.0.0", "--bind-address="+smokeIP,
		"--endpoint-reconciler-type=lease", "--endpoint-reconciler-type=none"))
	s.waitReady()
	kcm := ControllerManagerUnit{
		ClusterName: "demo", ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12",
		NodeCIDRMaskSize: DefaultNodeCIDRMaskSize, LeaderElection: DefaultLeaderElection(),
	}
	s.run("kube-controller-manager", s.execStart(kcm.Target().Template, kcm, s.k8sBin))
	s.run("kube-scheduler", s.execStart(SchedulerUnit{}.Target().Template, SchedulerUnit{}, s.k8sBin))
	// Both serve /healthz anonymously on 127.0.0.1 with a self-signed certificate, and both take their lease.
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
	}} //nolint:gosec // loopback health probe of a self-signed endpoint
	for _, hp := range []string{"127.0.0.1:10257", "127.0.0.1:10259"} {
		s.eventually(hp+" /healthz", time.Minute, func() error {
			req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, "https://"+hp+"/healthz", nil)
			if err != nil {
				return err
			}
			resp, err := insecure.Do(req)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}
	for _, lease := range []string{"kube-controller-manager", "kube-scheduler"} {
		s.eventually("lease "+lease, time.Minute, func() error {
			out, err := s.kubectl(s.admin, "", "-n", "kube-system", "get", "lease", lease, "-o", "jsonpath={.spec.leaseDurationSeconds}")
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			if out != "15" {
				return fmt.Errorf("lease duration %q, want 15", out)
			}
			return nil
		})
	}
}

func (s *smoke) httpClient(cert *tls.Certificate) *http.Client {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(s.cas.Cluster.CertPEM)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func (s *smoke) get(c *http.Client, path string) (int, string) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.server+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// eventually polls f every second until it returns nil or the test context ends.
func (s *smoke) eventually(what string, timeout time.Duration, f func() error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s: %v", what, err)
		case <-tick.C:
		}
	}
}

func (s *smoke) waitReady() {
	start := time.Now()
	c := s.httpClient(nil)
	s.eventually("apiserver /readyz", 2*time.Minute, func() error {
		if code, body := s.get(c, "/readyz"); code != http.StatusOK {
			return fmt.Errorf("status %d: %s", code, body)
		}
		return nil
	})
	s.t.Logf("etcd + kube-apiserver ready %s after start", time.Since(start).Round(100*time.Millisecond))
}

func (s *smoke) checkAnonymous() {
	c := s.httpClient(nil)
	for _, p := range []string{"/readyz", "/livez", "/healthz"} {
		if code, _ := s.get(c, p); code != http.StatusOK {
			s.t.Errorf("anonymous GET %s = %d, want 200", p, code)
		}
	}
	for _, p := range []string{"/version", "/api", "/api/v1/namespaces", "/metrics"} {
		if code, _ := s.get(c, p); code != http.StatusUnauthorized {
			s.t.Errorf("anonymous GET %s = %d, want 401", p, code)
		}
	}
	// The keepalived check script does the same: curl against 127.0.0.1 with the cluster CA.
	r, err := RenderFile(KeepalivedCheck{APIServerPort: DefaultAPIServerPort, TimeoutSeconds: 2})
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := exec.LookPath("curl"); err == nil {
		script := strings.NewReplacer("/etc/kubernetes", s.path(KubernetesDir), "127.0.0.1", smokeIP).Replace(string(r.Data))
		if out, err := exec.CommandContext(s.ctx, "sh", "-c", script).CombinedOutput(); err != nil {
			s.t.Errorf("keepalived check script failed against a ready apiserver: %v %s", err, out)
		}
	}
}

// kubectl runs kubectl as kubeconfig's user. It returns stdout, or stdout and stderr when the command fails.
func (s *smoke) kubectl(kubeconfig string, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(s.ctx, filepath.Join(s.k8sBin, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return strings.TrimSpace(string(out) + " " + stderr.String()), err
	}
	return strings.TrimSpace(string(out)), nil
}

func (s *smoke) applyAddons() {
	for _, f := range []File{
		NewRBACAddon([]string{DefaultBootstrapGroup}),
		BootstrapRBACAddon{Groups: []string{DefaultBootstrapGroup}},
		CoreDNSAddon{
			Image: DefaultCoreDNSImage, ImagePullPolicy: "IfNotPresent", ClusterDNSIP: "10.96.0.10",
			ClusterDomain: DefaultClusterDomain, UpstreamDNS: []string{"192.0.2.53"}, Replicas: DefaultCoreDNSReplicas,
		},
	} {
		r, err := RenderFile(f)
		if err != nil {
			s.t.Fatal(err)
		}
		s.eventually("apply "+r.Template, time.Minute, func() error {
			out, err := s.kubectl(s.admin, string(r.Data), "apply", "-f", "-")
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		})
	}
	// The admission policy is type-checked asynchronously; no warning may be reported.
	s.eventually("policy type check", time.Minute, func() error {
		out, err := s.kubectl(s.admin, "", "get", "validatingadmissionpolicy", "kubesmith-pool-manager-bootstrap-tokens",
			"-o", "jsonpath={.status.observedGeneration} {.status.typeChecking}")
		if err != nil || !strings.HasPrefix(out, "1 ") {
			return fmt.Errorf("not type-checked yet: %q %v", out, err)
		}
		if strings.Contains(out, "warning") {
			s.t.Errorf("policy type-check warnings: %s", out)
		}
		return nil
	})
}

func (s *smoke) checkEncryptionAtRest() {
	if out, err := s.kubectl(s.admin, "", "-n", "default", "create", "secret", "generic", "smoke", "--from-literal=k=plaintext-value"); err != nil {
		s.t.Fatalf("create secret: %v %s", err, out)
	}
	cmd := exec.CommandContext(s.ctx, filepath.Join(s.etcdBin, "etcdctl"), "--endpoints=https://127.0.0.1:2379",
		"--cacert="+s.path(PathEtcdCACert), "--cert="+s.path(PathEtcdHealthcheckCert), "--key="+s.path(PathEtcdHealthcheckKey),
		"get", "/registry/secrets/default/smoke", "--print-value-only")
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("etcdctl get: %v", err)
	}
	if !bytes.HasPrefix(out, []byte("k8s:enc:secretbox:v1:key1:")) || bytes.Contains(out, []byte("plaintext-value")) {
		s.t.Errorf("secret is not secretbox-encrypted in etcd: %q", out[:min(len(out), 60)])
	}
}

// can asks the apiserver, as kubeconfig's user, whether verb on group/resource[/sub] (in ns, named name) is allowed.
func (s *smoke) can(kubeconfig string, want bool, verb, group, resource, sub, ns, name string) {
	s.t.Helper()
	review, _ := json.Marshal(map[string]any{
		"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
		"spec": map[string]any{"resourceAttributes": map[string]string{
			"verb": verb, "group": group, "resource": resource,
			"subresource": sub, "namespace": ns, "name": name,
		}},
	})
	out, err := s.kubectl(kubeconfig, string(review), "create", "--validate=false", "-f", "-", "-o", "jsonpath={.status.allowed}")
	if err != nil {
		s.t.Fatalf("access review: %v %s", err, out)
	}
	if got := out == "true"; got != want {
		s.t.Errorf("%s: %s %s/%s/%s ns=%q name=%q allowed=%v, want %v", filepath.Base(kubeconfig), verb, group, resource, sub,
			ns, name, got, want)
	}
}

func (s *smoke) checkPermissions() {
	p := s.pool
	const cert = "certificates.k8s.io"
	for _, a := range [][6]string{
		{"create", "", "secrets", "", "kube-system", ""},
		{"delete", "", "secrets", "", "kube-system", "bootstrap-token-abcdef"},
		{"patch", "", "nodes", "", "", "w1"},
		{"delete", "", "nodes", "", "", "w1"},
		{"list", "", "pods", "", "", ""},
		{"create", "", "pods", "eviction", "default", "web-1"},
		{"get", "apps", "daemonsets", "", "kube-system", "x"},
		{"list", "policy", "poddisruptionbudgets", "", "", ""},
		{"create", cert, "certificatesigningrequests", "", "", ""},
		{"update", cert, "certificatesigningrequests", "approval", "", "csr-1"},
		{"approve", cert, "signers", "", "", "kubernetes.io/kube-apiserver-client-kubelet"},
		{"approve", cert, "signers", "", "", "kubernetes.io/kubelet-serving"},
	} {
		s.can(p, true, a[0], a[1], a[2], a[3], a[4], a[5])
	}
	for _, a := range [][6]string{
		{"get", "", "secrets", "", "kube-system", "bootstrap-token-abcdef"},
		{"list", "", "secrets", "", "kube-system", ""},
		{"watch", "", "secrets", "", "kube-system", ""},
		{"create", "", "secrets", "", "default", ""},
		{"create", "", "pods", "", "default", ""},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", ""},
		{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", ""},
		{"impersonate", "", "users", "", "", "x"},
		{"create", "", "serviceaccounts", "token", "kube-system", "default"},
		{"approve", cert, "signers", "", "", "kubernetes.io/kube-apiserver-client"},
		{"get", "", "nodes", "proxy", "", "w1"},
		{"create", "", "pods", "exec", "default", "web-1"},
	} {
		s.can(p, false, a[0], a[1], a[2], a[3], a[4], a[5])
	}
	s.can(s.flannel, true, "patch", "", "nodes", "status", "", "w1")
	s.can(s.flannel, true, "watch", "", "nodes", "", "", "")
	s.can(s.flannel, false, "list", "", "pods", "", "", "")
	s.can(s.flannel, false, "patch", "", "nodes", "", "", "w1")
	s.can(s.kubcli, true, "get", "", "nodes", "proxy", "", "w1")
	s.can(s.kubcli, true, "create", "", "nodes", "proxy", "", "w1") // exec, attach and port-forward go through nodes/proxy
	s.can(s.kubcli, false, "list", "", "secrets", "", "", "")
}

func bootstrapSecret(name, typ, groups string, exp time.Time) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: %s
  namespace: kube-system
type: %s
stringData:
  token-id: %s
  token-secret: 0123456789abcdef
  usage-bootstrap-authentication: "true"
  usage-bootstrap-signing: "true"
  auth-extra-groups: %s
  expiration: %s
`, name, typ, strings.TrimPrefix(name, "bootstrap-token-"), groups, exp.UTC().Format(time.RFC3339))
}

func (s *smoke) checkBootstrapTokenPolicy() {
	exp := time.Now().Add(time.Hour)
	// The policy starts enforcing shortly after it is created: wait for the first denial.
	s.eventually("admission policy enforced", time.Minute, func() error {
		out, err := s.kubectl(s.pool, bootstrapSecret("bootstrap-token-zzzzzz", "Opaque", DefaultBootstrapGroup, exp), "create", "--validate=false", "-f", "-")
		if err == nil {
			_, _ = s.kubectl(s.admin, "", "-n", "kube-system", "delete", "secret", "bootstrap-token-zzzzzz")
			return fmt.Errorf("Opaque secret admitted: %s", out)
		}
		if !strings.Contains(out, "kubesmith-pool-manager-bootstrap-tokens") {
			return fmt.Errorf("not denied by the policy: %s", out)
		}
		return nil
	})
	denied := map[string]string{
		"service-account token": bootstrapSecret("bootstrap-token-aaaaaa", "kubernetes.io/service-account-token", DefaultBootstrapGroup, exp),
		"foreign group":         bootstrapSecret("bootstrap-token-bbbbbb", "bootstrap.kubernetes.io/token", "system:bootstrappers:kubeadm:default-node-token", exp),
		"extra foreign group":   bootstrapSecret("bootstrap-token-cccccc", "bootstrap.kubernetes.io/token", DefaultBootstrapGroup+",system:bootstrappers:evil", exp),
	}
	for what, y := range denied {
		if out, err := s.kubectl(s.pool, y, "create", "--validate=false", "-f", "-"); err == nil {
			s.t.Errorf("pool manager created a %s secret: %s", what, out)
		}
	}
	if out, err := s.kubectl(s.pool, bootstrapSecret("bootstrap-token-abcdef", "bootstrap.kubernetes.io/token", DefaultBootstrapGroup, exp), "create", "--validate=false", "-f", "-"); err != nil {
		s.t.Fatalf("pool manager cannot create a bootstrap token: %v %s", err, out)
	}
	if out, err := s.kubectl(s.pool, "", "-n", "kube-system", "get", "secret", "bootstrap-token-abcdef"); err == nil {
		s.t.Errorf("pool manager read a secret: %s", out)
	}
	// Deleting: bootstrap tokens yes, any other Secret in kube-system no.
	if out, err := s.kubectl(s.admin, "", "-n", "kube-system", "create", "secret", "generic", "not-a-token", "--from-literal=k=v"); err != nil {
		s.t.Fatalf("create secret: %v %s", err, out)
	}
	if out, err := s.kubectl(s.pool, "", "-n", "kube-system", "delete", "secret", "not-a-token"); err == nil {
		s.t.Errorf("pool manager deleted a Secret that is not a bootstrap token: %s", out)
	}
}

// csr creates a CSR as kubeconfig and returns its name.
func (s *smoke) csr(kubeconfig, name, signer string, tmpl *x509.CertificateRequest, usages []string) string {
	s.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		s.t.Fatal(err)
	}
	reqPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	obj := map[string]any{
		"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"request": base64.StdEncoding.EncodeToString(reqPEM), "signerName": signer,
			"usages": usages, "expirationSeconds": 3600,
		},
	}
	y, _ := json.Marshal(obj)
	if out, err := s.kubectl(kubeconfig, string(y), "create", "--validate=false", "-f", "-"); err != nil {
		s.t.Fatalf("create CSR %s: %v %s", name, err, out)
	}
	return name
}

func (s *smoke) issued(name string) *x509.Certificate {
	s.t.Helper()
	var cert *x509.Certificate
	s.eventually("CSR "+name+" signed", time.Minute, func() error {
		out, err := s.kubectl(s.admin, "", "get", "csr", name, "-o", "jsonpath={.status.certificate}")
		if err != nil || out == "" {
			return fmt.Errorf("no certificate yet (%v)", err)
		}
		certPEM, err := base64.StdEncoding.DecodeString(out)
		if err != nil {
			return err
		}
		if err := pki.Verify(s.cas.Cluster, certPEM, x509.ExtKeyUsageAny, time.Now()); err != nil {
			return err
		}
		cert, err = pki.ParseCertificate(certPEM)
		return err
	})
	return cert
}

func (s *smoke) checkCSRs() {
	// A node joining with kubesmith's bootstrap token asks for its client certificate.
	tok, err := pki.TokenKubeconfig(s.server, s.cas.Cluster.CertPEM, "tls-bootstrap-token-user", "abcdef.0123456789abcdef")
	if err != nil {
		s.t.Fatal(err)
	}
	s.write("bootstrap.conf", tok, 0o600)
	boot := s.path("bootstrap.conf")
	if out, err := s.kubectl(boot, "", "auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"); err != nil ||
		!strings.Contains(out, DefaultBootstrapGroup) {
		s.t.Fatalf("bootstrap token identity: %v %s", err, out)
	}
	client := s.csr(boot, "node-csr-w1", "kubernetes.io/kube-apiserver-client-kubelet",
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:w1", Organization: []string{"system:nodes"}}},
		[]string{"digital signature", "client auth"})
	// Not auto-approved: bootstrap groups have no nodeclient rule. Give the approver controller time to act.
	select {
	case <-s.ctx.Done():
		s.t.Fatal(s.ctx.Err())
	case <-time.After(5 * time.Second):
	}
	if out, _ := s.kubectl(s.admin, "", "get", "csr", client, "-o", "jsonpath={.status.conditions[*].type}"); out != "" {
		s.t.Errorf("bootstrap CSR got conditions %q without kubesmith approving it", out)
	}
	if out, err := s.kubectl(s.pool, "", "certificate", "approve", client); err != nil {
		s.t.Fatalf("pool manager cannot approve a node client CSR: %v %s", err, out)
	}
	if c := s.issued(client); c.Subject.CommonName != "system:node:w1" {
		s.t.Errorf("client certificate CN %q", c.Subject.CommonName)
	}

	// kubesmith issues the kubelet serving certificate through the pool manager (it holds no CA key).
	serving := s.csr(s.pool, "kubelet-serving-w1", "kubernetes.io/kubelet-serving",
		&x509.CertificateRequest{
			Subject:  pkix.Name{CommonName: "system:node:w1", Organization: []string{"system:nodes"}},
			DNSNames: []string{"w1"}, IPAddresses: []net.IP{net.ParseIP("172.30.0.21")},
		},
		[]string{"digital signature", "server auth"})
	if out, err := s.kubectl(s.pool, "", "certificate", "approve", serving); err != nil {
		s.t.Fatalf("pool manager cannot approve a kubelet serving CSR: %v %s", err, out)
	}
	c := s.issued(serving)
	if err := c.VerifyHostname("172.30.0.21"); err != nil {
		s.t.Errorf("serving certificate: %v", err)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		s.t.Errorf("serving certificate usages %v", c.ExtKeyUsage)
	}

	// Another signer is out of reach: a generic client certificate would be any user.
	other := s.csr(s.pool, "pool-manager-escalation", "kubernetes.io/kube-apiserver-client",
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: "kubesmith-admin-2"}}, []string{"digital signature", "client auth"})
	if out, err := s.kubectl(s.pool, "", "certificate", "approve", other); err == nil {
		s.t.Errorf("pool manager approved a kube-apiserver-client CSR: %s", out)
	}
	if out, err := s.kubectl(s.pool, "", "-n", "kube-system", "delete", "secret", "bootstrap-token-abcdef"); err != nil {
		s.t.Errorf("pool manager cannot delete its bootstrap token: %v %s", err, out)
	}
	s.t.Logf("control-plane smoke done in %s", time.Since(s.now).Round(100*time.Millisecond))
}
