package phase_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/nodetest"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase/phasetest"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/render"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current phases")

const (
	testUID = "3f1c2a9e-6b7d-4e21-9c55-0d8e4b7a1f20"
	testVIP = "172.30.0.250"
)

// installFixture is a three-master cluster on simulated container hosts with a small bundle.
type installFixture struct {
	c         *phase.Cluster
	sim       *phasetest.Sim
	bundleDir string
	manifest  *artifacts.Manifest
	now       time.Time
}

func newInstallFixture(t *testing.T) *installFixture {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	dir := t.TempDir()
	m := phasetest.WriteBundle(t, dir, phasetest.BundleEntries())
	bundle, err := artifacts.Open(dir, artifacts.WithCacheDir(""))
	if err != nil {
		t.Fatal(err)
	}
	cas, err := pki.NewClusterCAs(now)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.PoolManagerCert(cas.Cluster, "demo", now)
	if err != nil {
		t.Fatal(err)
	}
	sim := phasetest.NewSim(t, testVIP, "m1", "172.30.0.11", "m2", "172.30.0.12", "m3", "172.30.0.13")
	var masters []*phase.Target
	for _, h := range sim.Hosts() {
		tg := &phase.Target{Name: h.Name, Address: h.Addr, Role: phase.RoleMaster, Runner: h.Fake}
		if tg.Facts, err = phase.GatherFacts(ctx, tg); err != nil {
			t.Fatal(err)
		}
		if errs := phase.Preflight(tg, nil, netip.MustParseAddr(h.Addr)); len(errs) > 0 {
			t.Fatalf("preflight of the simulated container host: %v", errs)
		}
		masters = append(masters, tg)
	}
	sim.ResetCounters()
	c := &phase.Cluster{
		Name: "demo", UID: testUID, Version: "v1.37.2",
		NodeNetwork: netip.MustParsePrefix("172.30.0.0/24"), VIP: netip.MustParseAddr(testVIP), APIPort: 6443,
		PodCIDR: netip.MustParsePrefix("10.244.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12"),
		ProxyMode: "iptables", Addons: []string{phase.AddonMetalLB, phase.AddonMetricsServer}, Manifests: []string{"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n"},
		EtcdHeartbeatMS: 100, EtcdElectionMS: 1000,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		CAs: cas, EncryptionKey: pki.NewEncryptionKey(), KeepalivedPassword: "k8sVRRP1", PoolManager: pool,
		Masters: masters, AppliedHash: "0123456789abcdef0123456789abcdef", Record: []byte(`{"name":"demo"}`),
		Bundle: bundle, Select: phase.Selection{Manifest: m, KubernetesVersion: "v1.37.2", Arch: "amd64"},
		Now: func() time.Time { return now }, Parallel: 8, StartGrace: 2 * time.Second,
	}
	return &installFixture{c: c, sim: sim, bundleDir: dir, manifest: m, now: now}
}

// transcript renders a host's recorded operations, without file contents or stdin, for a golden file.
func transcript(f *nodetest.Fake, bundleDir string) string {
	var b strings.Builder
	for _, e := range f.Events() {
		switch e.Kind {
		case nodetest.KindCommand:
			cmd := strings.ReplaceAll(e.Cmd, "\n", "\n  ")
			if e.Stdin != nil {
				fmt.Fprintf(&b, "$ %s <<< [stdin]\n", cmd)
			} else {
				fmt.Fprintf(&b, "$ %s\n", cmd)
			}
		case nodetest.KindWrite:
			fmt.Fprintf(&b, "write %s %04o\n", e.Path, e.Mode)
		case nodetest.KindUpload:
			rel, err := filepath.Rel(bundleDir, e.LocalPath)
			if err != nil {
				rel = e.LocalPath
			}
			fmt.Fprintf(&b, "upload %s %04o <- %s\n", e.Path, e.Mode, filepath.ToSlash(rel))
		case nodetest.KindRead:
			fmt.Fprintf(&b, "read %s\n", e.Path)
		}
	}
	return b.String()
}

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run `go test ./internal/phase -run %s -update` to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (run `go test ./internal/phase -update` and review the diff):\n%s", p, lineDiff(string(want), got))
	}
}

// lineDiff is a line diff of want and got ("-" only in want, "+" only in got), at most 40 lines.
func lineDiff(want, got string) string {
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	// lcs[i][j] is the length of the longest common subsequence of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for (i < len(a) || j < len(b)) && len(out) < 40 {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, fmt.Sprintf("-%d: %s", i+1, a[i]))
			i++
		default:
			out = append(out, fmt.Sprintf("+%d: %s", j+1, b[j]))
			j++
		}
	}
	return strings.Join(out, "\n")
}

func TestInstallFirstRunThenNoOp(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	var phases []string
	fx.c.Progress = func(name, host, _ string, _ time.Duration, err error) {
		if err != nil {
			t.Errorf("phase %s on %q: %v", name, host, err)
		}
		if host == "" || host == "m1" {
			phases = append(phases, name)
		}
	}
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatalf("first install: %v", err)
	}
	wantPhases := []string{
		"prepare-host", "upload-artifacts", "write-config", "containerd", "etcd", "etcd-healthy",
		"control-plane", "keepalived", "api-vip", "rbac", "node-agents", "pod-cidrs", "pod-network", "addons", "nodes-ready", "node-roles", "record",
	}
	if !slices.Equal(phases, wantPhases) {
		t.Errorf("phases on m1:\n got %v\nwant %v", phases, wantPhases)
	}
	m1 := fx.sim.Host("m1")
	checkGolden(t, "install-first-run.golden", transcript(m1.Fake, fx.bundleDir))

	// (b) what the first run left on every host.
	for _, h := range fx.sim.Hosts() {
		checkInstalledHost(t, fx, h)
	}
	if got, want := fx.sim.Applies(), 6; got != want { // rbac, bootstrap rbac, coredns, metallb, metrics-server, one user manifest
		t.Errorf("kubectl apply ran %d times, want %d", got, want)
	}
	if got := fx.sim.Relabels(); got != 3 {
		t.Errorf("%d Nodes labelled, want 3", got)
	}
	for _, h := range fx.sim.Hosts() {
		if p := h.Pending(); len(p) != 0 {
			t.Errorf("%s: pending-restart markers left after a successful run: %v", h.Name, p)
		}
	}

	// (c) a second run on the same hosts changes nothing.
	fx.sim.ResetCounters()
	phases = nil
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatalf("second install: %v", err)
	}
	checkGolden(t, "install-second-run.golden", transcript(m1.Fake, fx.bundleDir))
	for _, h := range fx.sim.Hosts() {
		for _, e := range h.Fake.Events() {
			switch {
			case e.Kind == nodetest.KindWrite || e.Kind == nodetest.KindUpload:
				t.Errorf("%s: second run %s %s", h.Name, e.Kind, e.Path)
			case e.Kind == nodetest.KindCommand && strings.HasPrefix(e.Cmd, "systemctl enable ") && !strings.Contains(e.Cmd, "; if false || "):
				t.Errorf("%s: second run forces a restart: %s", h.Name, e.Cmd)
			case e.Kind == nodetest.KindCommand && (strings.Contains(e.Cmd, "images import") || e.Cmd == "systemctl daemon-reload"):
				t.Errorf("%s: second run ran %q", h.Name, e.Cmd)
			}
		}
		if r := h.Restarts(); len(r) > 0 {
			t.Errorf("%s: second run restarted %v", h.Name, r)
		}
		if n := h.Reloads(); n != 0 {
			t.Errorf("%s: second run reloaded systemd %d times", h.Name, n)
		}
		if n := h.Imports(); n != 0 {
			t.Errorf("%s: second run imported %d images", h.Name, n)
		}
		if slices.ContainsFunc(h.Fake.Commands(), func(c string) bool { return strings.Contains(c, "touch ") }) {
			t.Errorf("%s: second run recorded pending restarts", h.Name)
		}
	}
	if n := fx.sim.Relabels(); n != 0 {
		t.Errorf("second run changed the labels of %d Nodes", n)
	}
}

// checkInstalledHost checks the files, units and images that the first run left on h.
func checkInstalledHost(t *testing.T, fx *installFixture, h *phasetest.Host) {
	t.Helper()
	files := h.Fake.Files()
	mode := func(p string) os.FileMode {
		f, _ := h.Fake.File(p)
		return f.Mode
	}
	secret := []string{
		render.PathCAKey, render.PKIDir + "/etcd/ca.key", render.PKIDir + "/front-proxy-ca.key", render.PathSAKey,
		phase.PoolManagerKey, phase.EncryptionKeyFile, phase.KeepalivedPasswordFile,
		render.PathKubeletServingKey, render.PathAPIServerKey, render.PathAPIServerKubeletClientKey, render.PathFrontProxyClientKey,
		render.PathAPIServerEtcdClientKey, render.PathEtcdServerKey, render.PathEtcdPeerKey, render.PathEtcdHealthcheckKey,
		phase.KubeProxyConf, phase.FlannelConf, phase.ControllerConf, phase.SchedulerConf, phase.AdminConf, phase.KubeletConf,
		render.PathEncryptionConfig, render.PathKeepalivedConfig, phase.RecordFile,
	}
	public := []string{
		render.PathCACert, render.PathEtcdCACert, render.PathFrontProxyCACert, render.PathSAPub, phase.PoolManagerCert,
		render.PathKubeletServingCert, render.PathAPIServerCert, render.PathAPIServerKubeletClientCert, render.PathFrontProxyClientCert,
		render.PathAPIServerEtcdClientCert, render.PathEtcdServerCert, render.PathEtcdPeerCert, render.PathEtcdHealthcheckCert,
		render.PathContainerdUnit, render.PathKubeletUnit, render.PathKubeProxyUnit, render.PathFlanneldUnit, render.PathEtcdUnit,
		render.PathAPIServerUnit, render.PathControllerManagerUnit, render.PathSchedulerUnit, render.PathKeepalivedDropIn,
		render.PathContainerdConfig, render.PathCrictlConfig, render.PathKubeletConfig, render.PathResolvConf, render.PathKubeProxyConfig,
		render.PathFlannelNetConf, render.PathFlannelCNIConf, render.PathAuthenticationConfig, render.PathSchedulerConfig,
		phase.SysctlFile, phase.FilesManifest, phase.AppliedHash, phase.ArtifactsList,
	}
	for _, p := range secret {
		if _, ok := files[p]; !ok {
			t.Errorf("%s: %s was not written", h.Name, p)
		} else if m := mode(p); m != 0o600 {
			t.Errorf("%s: %s has mode %04o, want 0600", h.Name, p, m)
		}
	}
	for _, p := range public {
		if _, ok := files[p]; !ok {
			t.Errorf("%s: %s was not written", h.Name, p)
		} else if m := mode(p); m != 0o644 {
			t.Errorf("%s: %s has mode %04o, want 0644", h.Name, p, m)
		}
	}
	if _, ok := files[phase.ModulesFile]; ok {
		t.Errorf("%s: %s written on a container host, which must not load kernel modules", h.Name, phase.ModulesFile)
	}
	if sysctl := string(files[phase.SysctlFile]); !strings.Contains(sysctl, "net.ipv4.ip_forward = 1") {
		t.Errorf("%s: %s lacks net.ipv4.ip_forward:\n%s", h.Name, phase.SysctlFile, sysctl)
	} else {
		for _, line := range strings.Split(sysctl, "\n") {
			if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "net.") {
				t.Errorf("%s: %s sets a non-namespaced sysctl: %s", h.Name, phase.SysctlFile, line)
			}
		}
	}
	if m := mode(render.PathKeepalivedCheck); m != 0o755 {
		t.Errorf("%s: %s has mode %04o, want 0755", h.Name, render.PathKeepalivedCheck, m)
	}

	// Binaries and images: the right versions, byte for byte from the bundle, executable.
	binaries, err := fx.c.Select.Binaries(phase.RoleMaster)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range append(binaries, fx.c.Select.Images()...) {
		want, err := os.ReadFile(filepath.Join(fx.bundleDir, filepath.FromSlash(a.File.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := files[a.Dest]; !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: %s does not hold %s", h.Name, a.Dest, a.File.Path)
		}
		if m := mode(a.Dest); m != a.Mode {
			t.Errorf("%s: %s has mode %04o, want %04o", h.Name, a.Dest, m, a.Mode)
		}
	}
	if v, _ := h.BinVersion("/usr/local/bin/etcd"); v != "3.6.4" {
		t.Errorf("%s: etcd %s installed, want the newest in the bundle, 3.6.4", h.Name, v)
	}
	if v, _ := h.BinVersion("/usr/local/bin/kube-apiserver"); v != "v1.37.2" {
		t.Errorf("%s: kube-apiserver %s installed, want v1.37.2", h.Name, v)
	}
	if _, ok := files[phase.ImagesDir+"/pause-3.10.2.oci.tar"]; !ok {
		t.Errorf("%s: pause image archive not uploaded", h.Name)
	}
	if got, want := h.Images(), []string{"quay.io/metallb/controller:v0.15.2", "quay.io/metallb/speaker:v0.15.2", "registry.k8s.io/coredns/coredns:v1.12.3", "registry.k8s.io/metrics-server/metrics-server:v0.9.0", "registry.k8s.io/pause:3.10.2"}; !slices.Equal(got, want) {
		t.Errorf("%s: containerd images %v, want %v", h.Name, got, want)
	}
	for _, u := range phase.UnitsFor(phase.RoleMaster) {
		if !h.Active(u) {
			t.Errorf("%s: %s is not running", h.Name, u)
		}
	}
	if n := h.Reloads(); n != 1 {
		t.Errorf("%s: systemctl daemon-reload ran %d times, want 1", h.Name, n)
	}
	if l := h.Labels(); l["node-role.kubernetes.io/control-plane"] != "" || len(l) != 1 {
		t.Errorf("%s: Node labels %v, want the control-plane role", h.Name, l)
	}

	// Secrets and CAs are the cluster's.
	cas := fx.c.CAs
	for p, want := range map[string][]byte{
		render.PathCACert: cas.Cluster.CertPEM, render.PathCAKey: cas.Cluster.KeyPEM,
		render.PathEtcdCACert: cas.Etcd.CertPEM, render.PKIDir + "/etcd/ca.key": cas.Etcd.KeyPEM,
		render.PathFrontProxyCACert: cas.FrontProxy.CertPEM, render.PathSAKey: cas.ServiceAccount.PrivatePEM,
		render.PathSAPub: cas.ServiceAccount.PublicPEM, phase.EncryptionKeyFile: []byte(fx.c.EncryptionKey + "\n"),
		phase.KeepalivedPasswordFile: []byte("k8sVRRP1\n"), phase.PoolManagerCert: fx.c.PoolManager.CertPEM,
		phase.AppliedHash: []byte(fx.c.AppliedHash + "\n"), phase.RecordFile: fx.c.Record,
	} {
		if !bytes.Equal(files[p], want) {
			t.Errorf("%s: %s does not hold what the cluster gave", h.Name, p)
		}
	}
	if !strings.Contains(string(files[render.PathEncryptionConfig]), fx.c.EncryptionKey) {
		t.Errorf("%s: encryption config does not carry the cluster's key", h.Name)
	}

	// Certificates: signed by the right CA, with the right names and usages.
	ip := net.ParseIP(h.Addr)
	masterIPs := []net.IP{net.ParseIP("172.30.0.11"), net.ParseIP("172.30.0.12"), net.ParseIP("172.30.0.13")}
	certs := []struct {
		crt, key string
		ca       pki.KeyPair
		req      pki.Request
	}{
		{
			render.PathAPIServerCert, render.PathAPIServerKey, cas.Cluster,
			pki.APIServerRequest(net.ParseIP(testVIP), masterIPs, []string{"m1", "m2", "m3"}, net.ParseIP("10.96.0.1"), nil),
		},
		{render.PathKubeletServingCert, render.PathKubeletServingKey, cas.Cluster, pki.KubeletServingRequest(h.Name, []net.IP{ip})},
		{render.PathAPIServerKubeletClientCert, render.PathAPIServerKubeletClientKey, cas.Cluster, pki.APIServerKubeletClientRequest()},
		{render.PathFrontProxyClientCert, render.PathFrontProxyClientKey, cas.FrontProxy, pki.FrontProxyClientRequest()},
		{render.PathAPIServerEtcdClientCert, render.PathAPIServerEtcdClientKey, cas.Etcd, pki.EtcdClientRequest(pki.UserAPIServerEtcdClient)},
		{render.PathEtcdServerCert, render.PathEtcdServerKey, cas.Etcd, pki.EtcdServerRequest(h.Name, ip)},
		{render.PathEtcdPeerCert, render.PathEtcdPeerKey, cas.Etcd, pki.EtcdPeerRequest(h.Name, ip)},
		{render.PathEtcdHealthcheckCert, render.PathEtcdHealthcheckKey, cas.Etcd, pki.EtcdClientRequest(pki.UserEtcdHealthcheck)},
	}
	for _, c := range certs {
		kp := pki.KeyPair{CertPEM: files[c.crt], KeyPEM: files[c.key]}
		if _, _, err := pki.ParseKeyPair(kp); err != nil {
			t.Errorf("%s: %s and %s: %v", h.Name, c.crt, c.key, err)
			continue
		}
		if err := pki.Covers(c.ca, kp.CertPEM, c.req, fx.now); err != nil {
			t.Errorf("%s: %s: %v", h.Name, c.crt, err)
		}
	}
	api, err := pki.ParseCertificate(files[render.PathAPIServerCert])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{testVIP, "172.30.0.11", "172.30.0.12", "172.30.0.13", "10.96.0.1", "127.0.0.1"} {
		if !slices.ContainsFunc(api.IPAddresses, net.ParseIP(want).Equal) {
			t.Errorf("%s: apiserver certificate lacks IP SAN %s (has %v)", h.Name, want, api.IPAddresses)
		}
	}
	for _, want := range []string{"kubernetes.default.svc.cluster.local", "m1", "m2", "m3", "localhost"} {
		if !slices.Contains(api.DNSNames, want) {
			t.Errorf("%s: apiserver certificate lacks DNS SAN %s (has %v)", h.Name, want, api.DNSNames)
		}
	}
	if err := pki.Verify(cas.Etcd, files[render.PathEtcdServerCert], x509.ExtKeyUsageServerAuth, fx.now); err != nil {
		t.Errorf("%s: etcd server certificate: %v", h.Name, err)
	}
	if err := pki.Verify(cas.Cluster, files[render.PathEtcdServerCert], x509.ExtKeyUsageServerAuth, fx.now); err == nil {
		t.Errorf("%s: etcd server certificate verifies against the cluster CA; it must be signed by the etcd CA only", h.Name)
	}

	// Kubeconfigs: server, CA and the identity of each component.
	local := "https://" + h.Addr + ":6443"
	vip := "https://" + testVIP + ":6443"
	for _, k := range []struct {
		path, server, cn string
		org              []string
	}{
		{phase.KubeProxyConf, vip, pki.UserKubeProxy, nil},
		{phase.FlannelConf, vip, pki.UserFlannel, nil},
		{phase.ControllerConf, local, pki.UserControllerManager, nil},
		{phase.SchedulerConf, local, pki.UserScheduler, nil},
		{phase.AdminConf, local, pki.UserAdmin, []string{pki.GroupMasters}},
		{phase.KubeletConf, local, "system:node:" + h.Name, []string{pki.GroupNodes}},
	} {
		spec, err := pki.ParseKubeconfig(files[k.path])
		if err != nil {
			t.Errorf("%s: %s: %v", h.Name, k.path, err)
			continue
		}
		if spec.Server != k.server {
			t.Errorf("%s: %s points at %s, want %s", h.Name, k.path, spec.Server, k.server)
		}
		if !bytes.Equal(spec.CAPEM, cas.Cluster.CertPEM) {
			t.Errorf("%s: %s does not trust the cluster CA", h.Name, k.path)
		}
		req := pki.Request{CommonName: k.cn, Organization: k.org, Client: true, Validity: time.Hour}
		if err := pki.Covers(cas.Cluster, spec.Client.CertPEM, req, fx.now); err != nil {
			t.Errorf("%s: %s: %v", h.Name, k.path, err)
		}
	}

	// The container-host facts reached the configuration.
	for p, want := range map[string][]string{
		render.PathContainerdConfig: {"restrict_oom_score_adj = true", "registry.k8s.io/pause:3.10.2"},
		render.PathKubeletConfig:    {"failSwapOn: false", "failCgroupV1: false", "node-role.kubernetes.io/control-plane"},
		render.PathKubeProxyConfig:  {"maxPerCore: 0"},
		render.PathKeepalivedConfig: {
			"interface eth0", testVIP + "/24 dev eth0", "unicast_src_ip " + h.Addr, "auth_pass k8sVRRP1",
			fmt.Sprintf("virtual_router_id %d", phase.KeepalivedRouterID(testUID)),
		},
		render.PathFlanneldUnit: {"--iface=eth0"},
		render.PathEtcdUnit:     {"--initial-cluster-token=" + testUID, "m1=https://172.30.0.11:2380,m2=https://172.30.0.12:2380,m3=https://172.30.0.13:2380"},
	} {
		for _, w := range want {
			if !strings.Contains(string(files[p]), w) {
				t.Errorf("%s: %s lacks %q", h.Name, p, w)
			}
		}
	}

	// The drift record lists every managed file with its hash.
	list := string(files[phase.FilesManifest])
	for _, p := range append(secret[:len(secret)-1], public[:len(public)-3]...) {
		if !strings.Contains(list, "  "+p+"\n") {
			t.Errorf("%s: %s does not list %s", h.Name, phase.FilesManifest, p)
		}
	}
	if drift := h.SHA256Check(list, ""); drift != "" {
		t.Errorf("%s: %s does not match the files: %s", h.Name, phase.FilesManifest, drift)
	}
}

func TestInstallRepairsDrift(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatalf("first install: %v", err)
	}
	m1, m2, m3 := fx.sim.Host("m1"), fx.sim.Host("m2"), fx.sim.Host("m3")
	m1.Stop("flanneld")
	m1.DeleteImage("registry.k8s.io/coredns/coredns:v1.12.3")
	m2.Fake.SetFile(render.PathKubeletConfig, []byte("edited by hand\n"), 0o644)
	m3.Fake.RemoveFile("/usr/local/bin/kube-scheduler")
	fx.sim.ResetCounters()

	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatalf("repair: %v", err)
	}
	changes := func(h *phasetest.Host) []string {
		var out []string
		for _, e := range h.Fake.Events() {
			if e.Kind == nodetest.KindWrite || e.Kind == nodetest.KindUpload {
				out = append(out, string(e.Kind)+" "+e.Path)
			}
		}
		return out
	}
	for _, c := range []struct {
		h        *phasetest.Host
		changes  []string
		restarts map[string]int
		imports  int
	}{
		{m1, nil, map[string]int{"flanneld": 1}, 1},
		{m2, []string{"write " + render.PathKubeletConfig}, map[string]int{"kubelet": 1}, 0},
		{m3, []string{"upload /usr/local/bin/kube-scheduler", "write " + phase.ArtifactsList}, map[string]int{"kube-scheduler": 1}, 0},
	} {
		if got := changes(c.h); !slices.Equal(got, c.changes) {
			t.Errorf("%s: changed %q, want %q", c.h.Name, got, c.changes)
		}
		if got := c.h.Restarts(); fmt.Sprint(got) != fmt.Sprint(c.restarts) {
			t.Errorf("%s: restarted %v, want %v", c.h.Name, got, c.restarts)
		}
		if got := c.h.Imports(); got != c.imports {
			t.Errorf("%s: imported %d images, want %d", c.h.Name, got, c.imports)
		}
		if n := c.h.Reloads(); n != 0 {
			t.Errorf("%s: reloaded systemd %d times, no unit changed", c.h.Name, n)
		}
	}
	if got := m1.Images(); len(got) != 5 {
		t.Errorf("m1: images after repair %v", got)
	}
}

// TestInstallUpgradeOfEtcdctlKeepsEtcdRunning checks that a unit's trigger paths match exactly unless marked as
// a prefix, so that a new etcdctl (or etcdutl) does not restart etcd.
func TestInstallUpgradeOfEtcdctlKeepsEtcdRunning(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatalf("first install: %v", err)
	}
	m3 := fx.sim.Host("m3")
	m3.Fake.RemoveFile("/usr/local/bin/etcdctl")
	fx.sim.ResetCounters()
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(m3.Fake.Events(), func(e nodetest.Event) bool {
		return e.Kind == nodetest.KindUpload && e.Path == "/usr/local/bin/etcdctl"
	}) {
		t.Fatal("m3: etcdctl was not uploaded again")
	}
	if p := m3.Pending(); len(p) != 0 {
		t.Errorf("m3: re-uploading etcdctl left pending restarts %v", p)
	}
	if r := m3.Restarts(); len(r) != 0 {
		t.Errorf("m3: re-uploading etcdctl restarted %v", r)
	}
}

func TestInstallFailureNamesHostAndUnit(t *testing.T) {
	fx := newInstallFixture(t)
	fx.sim.Host("m2").FailStart("kube-proxy", true)
	err := phase.Install(context.Background(), fx.c)
	if err == nil {
		t.Fatal("install succeeded although kube-proxy cannot start on m2")
	}
	for _, want := range []string{"node-agents on m2 (172.30.0.12)", "starting kube-proxy", "sim journal"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// The hosts that worked are not held back, and nothing was recorded as applied.
	if !fx.sim.Host("m1").Active("kube-proxy") {
		t.Error("m1: kube-proxy not started")
	}
	for _, h := range fx.sim.Hosts() {
		if _, ok := h.Fake.File(phase.AppliedHash); ok {
			t.Errorf("%s: applied hash recorded although the run failed", h.Name)
		}
	}
}

// TestInstallWaitsForAUnitThatRestartsAfterAFailedStart: when a unit's start fails but systemd's own restart
// brings it up (flanneld once could not reach a busy TCG apiserver in time), the install goes on.
func TestInstallWaitsForAUnitThatRestartsAfterAFailedStart(t *testing.T) {
	fx := newInstallFixture(t)
	h := fx.sim.Host("m2")
	h.FailStart("kube-proxy", true)
	checks := 0
	h.Fake.OnFunc(`^systemctl is-active --quiet kube-proxy$`, func(string) (node.Result, error) {
		checks++
		if checks < 2 {
			return node.Result{ExitCode: 3}, errors.New("inactive")
		}
		return node.Result{}, nil // systemd restarted it
	})
	if err := phase.Install(context.Background(), fx.c); err != nil {
		t.Fatalf("install failed although kube-proxy came up through its restart: %v", err)
	}
	if checks < 2 {
		t.Errorf("kube-proxy's state was checked %d times, want a wait until it is active", checks)
	}
}

// TestKubectlOutlastsAnUnreachableAPIServer: kubectl calls that get no answer from any apiserver (client-go's
// TLS handshake timeout against a busy TCG master) are tried again, so neither a single call (an add-on lookup)
// nor the install fails on them.
func TestKubectlOutlastsAnUnreachableAPIServer(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	// Three masters: each kubectl call tries all three, so 7 drops fail two whole calls and one master of a third.
	fx.sim.DropKubectl(7)
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatalf("install failed on an apiserver that did not answer for a while: %v", err)
	}
	if left := fx.sim.KubectlDropsLeft(); left != 0 {
		t.Errorf("%d dropped kubectl calls never happened", left)
	}
	fx.sim.DropKubectl(7)
	if _, err := fx.c.Kubectl(ctx, "get apiservice --ignore-not-found -o name v1beta1.metrics.k8s.io", nil); err != nil {
		t.Fatalf("the add-on lookup failed on an apiserver that did not answer for a while: %v", err)
	}
	if left := fx.sim.KubectlDropsLeft(); left != 0 {
		t.Errorf("%d dropped kubectl calls never happened", left)
	}
}

// An answer from the apiserver is not retried: Kubectl returns it at once.
func TestKubectlReturnsAnAnswerAtOnce(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, h := range fx.sim.Hosts() {
		h.Fake.OnFunc(`kubectl .* get widgets$`, func(string) (node.Result, error) {
			calls++
			return node.Result{Stderr: `error: the server doesn't have a resource type "widgets"`, ExitCode: 1}, nil
		})
	}
	if _, err := fx.c.Kubectl(ctx, "get widgets", nil); err == nil || !strings.Contains(err.Error(), "widgets") {
		t.Fatalf("got %v, want the server's answer", err)
	}
	if calls != len(fx.sim.Hosts()) {
		t.Errorf("%d kubectl calls, want one per master (%d)", calls, len(fx.sim.Hosts()))
	}
}

// TestInstallRestartsAfterFailedRun checks that a restart owed by one run survives its failure: the run that
// writes new configuration leaves a pending-restart marker for each affected unit, and the next run, which finds
// the files up to date, restarts those units once because of the markers, and removes them.
func TestInstallRestartsAfterFailedRun(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatalf("first install: %v", err)
	}
	// The user changes the leader-election timing; the run fails in the containerd phase on m1, after the new
	// configuration was written everywhere.
	fx.c.RetryPeriod = 3 * time.Second
	m1 := fx.sim.Host("m1")
	m1.Fake.On(`^ctr -n k8s\.io images ls -q$`, node.Result{Stderr: "ctr: context deadline exceeded", ExitCode: 1}, nil)
	fx.sim.ResetCounters()
	if err := phase.Install(ctx, fx.c); err == nil {
		t.Fatal("second install succeeded although ctr fails on m1")
	}
	for _, h := range fx.sim.Hosts() {
		if r := h.Restarts(); len(r) != 0 {
			t.Errorf("%s: the failed run restarted %v", h.Name, r)
		}
		if p := h.Pending(); !slices.Contains(p, "kube-scheduler") || !slices.Contains(p, "kube-controller-manager") {
			t.Errorf("%s: pending restarts after the failed run %v, want kube-scheduler and kube-controller-manager", h.Name, p)
		}
	}
	m1.Fake.OnFunc(`^ctr -n k8s\.io images ls -q$`, m1.CtrImages)
	fx.sim.ResetCounters()
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatalf("third install: %v", err)
	}
	for _, h := range fx.sim.Hosts() {
		for _, e := range h.Fake.Events() {
			// Only the record of what was applied, which the failed run did not reach, may be written.
			if (e.Kind == nodetest.KindWrite || e.Kind == nodetest.KindUpload) && !slices.Contains([]string{phase.FilesManifest, phase.AppliedHash, phase.RecordFile}, e.Path) {
				t.Errorf("%s: third run %s %s; the failed run had written the configuration", h.Name, e.Kind, e.Path)
			}
		}
		if r := h.Restarts(); r["kube-scheduler"] != 1 || r["kube-controller-manager"] != 1 || len(r) != 2 {
			t.Errorf("%s: restarts after the change %v, want kube-scheduler and kube-controller-manager once each", h.Name, r)
		}
		if p := h.Pending(); len(p) != 0 {
			t.Errorf("%s: pending restarts left after the third run: %v", h.Name, p)
		}
	}
}

// TestInstallKeepsPendingRestartWhenStartFails checks that a marker is removed only by a restart that succeeded.
func TestInstallKeepsPendingRestartWhenStartFails(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	m2 := fx.sim.Host("m2")
	m2.FailStart("kube-proxy", true)
	if err := phase.Install(ctx, fx.c); err == nil {
		t.Fatal("install succeeded although kube-proxy cannot start on m2")
	}
	if p := m2.Pending(); !slices.Contains(p, "kube-proxy") {
		t.Errorf("m2: pending restarts after the failed start %v, want kube-proxy", p)
	}
	if p := fx.sim.Host("m1").Pending(); slices.Contains(p, "kube-proxy") {
		t.Errorf("m1: kube-proxy restart still pending although it started: %v", p)
	}
	m2.FailStart("kube-proxy", false)
	fx.sim.ResetCounters()
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatalf("second install: %v", err)
	}
	if r := m2.Restarts(); r["kube-proxy"] != 1 {
		t.Errorf("m2: restarts %v, want kube-proxy once", r)
	}
	for _, h := range fx.sim.Hosts() {
		if p := h.Pending(); len(p) != 0 {
			t.Errorf("%s: pending restarts left: %v", h.Name, p)
		}
	}
}

// TestNodeFilesKernelModules checks that the modules to load at boot are persisted on machines only: a container
// host shares the machine's kernel and must not change it.
func TestNodeFilesKernelModules(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	for _, c := range []struct {
		container string
		want      bool
	}{{"docker", false}, {"none", true}, {"", true}} {
		tg := fx.c.Masters[0] // the cluster's own target: peers are the other targets
		tg.Facts.Container = c.container
		files, err := fx.c.NodeFiles(ctx, tg)
		if err != nil {
			t.Fatalf("container %q: %v", c.container, err)
		}
		var modules, sysctl []byte
		for _, f := range files {
			switch f.Path {
			case phase.ModulesFile:
				modules = f.Data
			case phase.SysctlFile:
				sysctl = f.Data
			}
		}
		if sysctl == nil {
			t.Errorf("container %q: %s not among the node files", c.container, phase.SysctlFile)
		}
		switch {
		case c.want && (!bytes.Contains(modules, []byte("\noverlay\n")) || !bytes.Contains(modules, []byte("\nbr_netfilter\n"))):
			t.Errorf("container %q: %s = %q, want overlay and br_netfilter", c.container, phase.ModulesFile, modules)
		case !c.want && modules != nil:
			t.Errorf("container %q: %s written on a container host", c.container, phase.ModulesFile)
		}
	}
}

// TestLeaderElectionOnlyWithThreeMasters checks that a single master's controller manager and scheduler run
// without leader election (nobody to compete with; with it on, a busy apiserver makes them exit on a missed
// renewal), and that three masters elect.
func TestLeaderElectionOnlyWithThreeMasters(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	check := func(wantElect bool) {
		t.Helper()
		files, err := fx.c.NodeFiles(ctx, fx.c.Masters[0])
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range files {
			got[f.Path] = string(f.Data)
		}
		kcm, sched := got[render.PathControllerManagerUnit], got[render.PathSchedulerConfig]
		if kcm == "" || sched == "" {
			t.Fatalf("no controller-manager unit or scheduler config among the node files")
		}
		if !strings.Contains(kcm, fmt.Sprintf("--leader-elect=%t ", wantElect)) ||
			!strings.Contains(sched, fmt.Sprintf("leaderElect: %t\n", wantElect)) ||
			strings.Contains(kcm, "--leader-elect-lease-duration=") != wantElect {
			t.Errorf("%d master(s): want leader election %t:\n%s\n%s", len(fx.c.Masters), wantElect, kcm, sched)
		}
	}
	check(true)
	fx.c.Masters = fx.c.Masters[:1]
	check(false)
}
