package render

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current templates")

// Sample topology used by every golden file: 3 masters 172.30.0.11-13 (m1-m3), API VIP 172.30.0.250 on eth0,
// pod CIDR 10.244.0.0/16, service CIDR 10.96.0.0/12, a worker w1 at 172.30.0.21.
const (
	sampleUID         = "3f1c2a9e-6b7d-4e21-9c55-0d8e4b7a1f20"
	sampleVIP         = "172.30.0.250"
	samplePodCIDR     = "10.244.0.0/16"
	sampleServiceCIDR = "10.96.0.0/12"
	sampleClusterDNS  = "10.96.0.10"
)

var sampleMembers = []EtcdMember{{"m1", "172.30.0.11"}, {"m2", "172.30.0.12"}, {"m3", "172.30.0.13"}}

// sampleKey is a fixed, obviously fake 32-byte key, so that the golden file is stable.
var sampleKey = base64.StdEncoding.EncodeToString([]byte("kubesmith-golden-test-key-32byte"))

func sampleManagedFiles() []string {
	return []string{
		PathContainerdUnit, PathContainerdConfig, PathKubeletUnit, PathKubeletConfig, PathKubeProxyUnit,
		PathKubeProxyConfig, PathFlanneldUnit, PathFlannelNetConf, PathFlannelCNIConf, PathEtcdUnit, PathAPIServerUnit,
		PathControllerManagerUnit, PathSchedulerUnit, PathSchedulerConfig, PathKeepalivedConfig,
	}
}

type goldenCase struct {
	golden string
	file   File
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{"etcd-m1.service", EtcdUnit{
			Name: "m1", IP: "172.30.0.11", InitialCluster: sampleMembers, InitialClusterState: "new",
			Token: sampleUID, DataDir: EtcdDataDir, HeartbeatMS: DefaultEtcdHeartbeatMS, ElectionMS: DefaultEtcdElectionMS,
			QuotaBackendBytes: DefaultEtcdQuotaBackendBytes, AutoCompactionRetention: DefaultEtcdAutoCompactionRetention,
		}},
		{"etcd-m4-join-tcg.service", EtcdUnit{
			Name: "m4", IP: "172.30.0.14",
			InitialCluster:      append(slices.Clone(sampleMembers), EtcdMember{"m4", "172.30.0.14"}),
			InitialClusterState: "existing", Token: sampleUID, DataDir: EtcdDataDir, HeartbeatMS: 500, ElectionMS: 5000,
			QuotaBackendBytes: DefaultEtcdQuotaBackendBytes, AutoCompactionRetention: DefaultEtcdAutoCompactionRetention,
		}},
		{"kube-apiserver-m1.service", APIServerUnit{
			AdvertiseAddress: "172.30.0.11", SecurePort: DefaultAPIServerPort,
			EtcdIPs: []string{"172.30.0.11", "172.30.0.12", "172.30.0.13"}, ServiceCIDR: sampleServiceCIDR,
			ServiceNodePortRange: DefaultServiceNodePortRange, ServiceAccountIssuer: DefaultServiceAccountIssuer,
		}},
		{"authentication-config.yaml", AuthenticationConfig{AnonymousPaths: DefaultAnonymousPaths()}},
		{"encryption-config.yaml", EncryptionConfig{Keys: []EncryptionKey{{Name: "key1", Secret: sampleKey}}}},
		{"kube-controller-manager.service", ControllerManagerUnit{
			ClusterName: "demo", ClusterCIDR: samplePodCIDR,
			ServiceCIDR: sampleServiceCIDR, NodeCIDRMaskSize: DefaultNodeCIDRMaskSize, LeaderElection: DefaultLeaderElection(),
		}},
		{"kube-controller-manager-single-master.service", ControllerManagerUnit{
			ClusterName: "demo", ClusterCIDR: samplePodCIDR, ServiceCIDR: sampleServiceCIDR,
			NodeCIDRMaskSize: DefaultNodeCIDRMaskSize, LeaderElection: LeaderElection{Off: true, LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second},
		}},
		{"kube-scheduler-config-single-master.yaml", SchedulerConfig{LeaderElection: LeaderElection{
			Off: true, LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		}}},
		{"kube-scheduler.service", SchedulerUnit{}},
		{"kube-scheduler-config-tcg.yaml", SchedulerConfig{LeaderElection: LeaderElection{
			LeaseDuration: 60 * time.Second, RenewDeadline: 40 * time.Second, RetryPeriod: 5 * time.Second,
		}}},
		{"containerd.service", ContainerdUnit{}},
		{"containerd-config-vm.toml", ContainerdConfig{SandboxImage: DefaultPauseImage}},
		{"containerd-config-container-host.toml", ContainerdConfig{SandboxImage: DefaultPauseImage, RestrictOOMScoreAdj: true}},
		{"crictl.yaml", CrictlConfig{}},
		{"kubelet-m1.service", KubeletUnit{NodeName: "m1", NodeIP: "172.30.0.11"}},
		{"kubelet-w1-bootstrap.service", KubeletUnit{
			NodeName: "w1", NodeIP: "172.30.0.21", Bootstrap: true,
			NodeLabels: map[string]string{"tier": "general", "node.kubernetes.io/pool": "general", "kubesmith.io/cluster": "demo"},
		}},
		{"kubelet-config-master-vm.yaml", KubeletConfig{
			ClusterDNS: []string{sampleClusterDNS}, ClusterDomain: DefaultClusterDomain,
			ResolvConf: PathResolvConf, FailSwapOn: true, FailCgroupV1: true, RegisterWithTaints: []Taint{ControlPlaneTaint()},
			MaxPods: DefaultMaxPods,
		}},
		{"kubelet-config-worker-container-host.yaml", KubeletConfig{
			ClusterDNS:    []string{sampleClusterDNS},
			ClusterDomain: DefaultClusterDomain, ResolvConf: PathResolvConf, MaxPods: DefaultMaxPods, SharedDisk: true,
			RegisterWithTaints: []Taint{{Key: "dedicated", Value: "ingress", Effect: "NoSchedule"}},
		}},
		{"resolv-upstream.conf", ResolvConf{Nameservers: []string{"172.30.0.1", "192.0.2.53"}, Search: []string{"lab.example"}}},
		{"resolv-airgap.conf", ResolvConf{}},
		{"kube-proxy.service", KubeProxyUnit{}},
		{"kube-proxy-config-iptables-vm.yaml", KubeProxyConfig{
			NodeName: "m1", ClusterCIDR: samplePodCIDR, Mode: "iptables",
			ConntrackMaxPerCore: DefaultConntrackMaxPerCore, NodePortAddresses: []string{"primary"},
		}},
		{"kube-proxy-config-nftables-container-host.yaml", KubeProxyConfig{
			NodeName: "w1", ClusterCIDR: samplePodCIDR,
			Mode: "nftables", ConntrackMaxPerCore: 0,
		}},
		{"flanneld-m1.service", FlanneldUnit{NodeName: "m1", Interface: "eth0", IPMasq: true, IPTablesResync: DefaultFlannelIPTablesResync}},
		{"flannel-net-conf.json", FlannelNetConf{Network: samplePodCIDR, VNI: DefaultFlannelVNI, Port: DefaultFlannelPort}},
		{"10-flannel.conflist", FlannelCNIConf{CNIVersion: DefaultCNIVersion, NetworkName: DefaultCNINetworkName}},
		{"keepalived-m1.conf", KeepalivedConfig{
			RouterID: "m1", Interface: "eth0", VIP: sampleVIP, VIPPrefixLen: 24,
			VirtualRouterID: 51, Priority: 150, AuthPass: "k8sVRRP1", UnicastSrcIP: "172.30.0.11",
			UnicastPeers: []string{"172.30.0.12", "172.30.0.13"}, CheckTimeoutSeconds: 2,
		}},
		{"keepalived-single-master.conf", KeepalivedConfig{
			RouterID: "m1", Interface: "enp1s0", VIP: "192.168.150.10",
			VIPPrefixLen: 24, VirtualRouterID: 10, Priority: 100, AuthPass: "pw", UnicastSrcIP: "192.168.150.11",
			CheckTimeoutSeconds: 8,
		}},
		{"check-apiserver.sh", KeepalivedCheck{APIServerPort: DefaultAPIServerPort, TimeoutSeconds: 2}},
		{"keepalived-dropin.conf", KeepalivedDropIn{}},
		{"coredns-upstream.yaml", CoreDNSAddon{
			Image: DefaultCoreDNSImage, ImagePullPolicy: "IfNotPresent",
			ClusterDNSIP: sampleClusterDNS, ClusterDomain: DefaultClusterDomain, UpstreamDNS: []string{"192.0.2.53", "192.0.2.54:5353"},
			Replicas: DefaultCoreDNSReplicas,
		}},
		{"coredns-airgap.yaml", CoreDNSAddon{
			Image: DefaultCoreDNSImage, ImagePullPolicy: "Never",
			ClusterDNSIP: sampleClusterDNS, ClusterDomain: DefaultClusterDomain, Replicas: DefaultCoreDNSReplicas,
		}},
		{"rbac.yaml", NewRBACAddon([]string{DefaultBootstrapGroup})},
		{"kubelet-bootstrap-rbac.yaml", BootstrapRBACAddon{Groups: []string{DefaultBootstrapGroup}}},
		{"metallb.yaml", MetalLBAddon{
			Version: "v0.15.2", ControllerImage: "quay.io/metallb/controller:v0.15.2", SpeakerImage: "quay.io/metallb/speaker:v0.15.2",
			ImagePullPolicy: "IfNotPresent", PoolManagerGroup: "kubesmith:pool-managers",
		}},
		{"metrics-server.yaml", MetricsServerAddon{
			Image: "registry.k8s.io/metrics-server/metrics-server:v0.9.0", ImagePullPolicy: "IfNotPresent",
			MetricResolution: DefaultMetricResolution,
		}},
		{"lb-haproxy.cfg", LBHAProxyConfig{VIP: "172.30.0.249", Frontends: []LBFrontend{
			{Port: 80, Backends: []LBBackend{{"172.30.0.21", 30080}, {"172.30.0.22", 30080}}},
			{Port: 443, Backends: []LBBackend{{"172.30.0.21", 30443}}},
		}}},
		{"lb-keepalived.conf", LBKeepalivedConfig{
			Instance: "edge", RouterID: "lb1", Interface: "eth0", VIP: "172.30.0.249", VIPPrefixLen: 24,
			VirtualRouterID: 77, Priority: 150, AuthPass: "lbVRRP12", UnicastSrcIP: "172.30.0.26",
			UnicastPeers: []string{"172.30.0.27"},
		}},
		{"lb-check-haproxy.sh", LBCheck{}},
		{"kubesmith-lb-haproxy.service", LBHAProxyUnitFile{}},
		{"kubesmith-lb-keepalived.service", LBKeepalivedUnitFile{}},
		{"reset.sh", ResetScript{
			Units: KubesmithUnits(), PackageUnits: PackageUnits(), Binaries: InstalledBinaries(),
			Files: []string{"/etc/sysctl.d/99-kubesmith.conf", "/etc/modules-load.d/kubesmith.conf"},
		}},
		{"preflight.sh", PreflightScript{
			TCPPorts: DefaultPreflightTCPPorts(), UDPPorts: DefaultPreflightUDPPorts(),
			Tools: DefaultPreflightTools(), Binaries: InstalledBinaries(), ManagedFiles: sampleManagedFiles(),
			Units: append(KubesmithUnits(), PackageUnits()...), NodeIP: "172.30.0.11",
		}},
	}
}

// renderAll renders every golden case and returns the outputs by golden name.
func renderAll(t *testing.T) map[string]Rendered {
	t.Helper()
	out := map[string]Rendered{}
	for _, c := range goldenCases() {
		r, err := RenderFile(c.file)
		if err != nil {
			t.Fatalf("%s: %v", c.golden, err)
		}
		out[c.golden] = r
	}
	return out
}

func TestGolden(t *testing.T) {
	dir := filepath.Join("testdata", "golden")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rendered := renderAll(t)
	for _, c := range goldenCases() {
		t.Run(c.golden, func(t *testing.T) {
			got := rendered[c.golden].Data
			path := filepath.Join(dir, c.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./internal/render -update` to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file (run `go test ./internal/render -update` and review the diff):\n%s",
					c.golden, lineDiff(string(want), string(got)))
			}
		})
	}
	if *update {
		// Remove golden files that no case produces any more.
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if _, ok := rendered[e.Name()]; !ok {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// lineDiff is a small line-based diff: it prints the first differing lines with some context.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n- " + wl + "\n+ " + gl + "\n")
			if shown++; shown >= 10 {
				b.WriteString("...\n")
				break
			}
		}
	}
	return b.String()
}

func TestEveryTemplateHasAGoldenCase(t *testing.T) {
	names, err := Templates()
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, c := range goldenCases() {
		covered[c.file.Target().Template] = true
	}
	for _, n := range names {
		if !covered[n] {
			t.Errorf("template %s has no golden case", n)
		}
	}
	for n := range covered {
		if !slices.Contains(names, n) {
			t.Errorf("golden case names template %s, which does not exist", n)
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, b := renderAll(t), renderAll(t)
	for name := range a {
		if !bytes.Equal(a[name].Data, b[name].Data) {
			t.Errorf("%s renders differently on a second run", name)
		}
	}
	// Map iteration order must not leak: labels come out sorted.
	u := KubeletUnit{NodeName: "w1", NodeIP: "172.30.0.21", NodeLabels: map[string]string{"z": "1", "a": "2", "m": "3"}}
	if got := u.NodeLabelsFlag(); got != "a=2,m=3,z=1" {
		t.Errorf("NodeLabelsFlag = %q", got)
	}
}

func TestScriptsParse(t *testing.T) {
	shells := []string{}
	for _, sh := range []string{"dash", "bash"} {
		if p, err := exec.LookPath(sh); err == nil {
			shells = append(shells, p)
		}
	}
	if len(shells) == 0 {
		t.Skip("no dash or bash to syntax-check the scripts")
	}
	for name, r := range renderAll(t) {
		if !strings.HasSuffix(name, ".sh") {
			continue
		}
		if !bytes.HasPrefix(r.Data, []byte("#!/bin/sh\n")) {
			t.Errorf("%s does not start with #!/bin/sh", name)
		}
		for _, sh := range shells {
			cmd := exec.Command(sh, "-n")
			cmd.Stdin = bytes.NewReader(r.Data)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s -n %s: %v\n%s", sh, name, err, out)
			}
		}
		if sc, err := exec.LookPath("shellcheck"); err == nil {
			cmd := exec.Command(sc, "--shell=sh", "-")
			cmd.Stdin = bytes.NewReader(r.Data)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("shellcheck %s: %v\n%s", name, err, out)
			}
		} else {
			t.Logf("shellcheck not installed; %s only syntax-checked", name)
		}
	}
}

// TestUnitsVerifyWithSystemd runs `systemd-analyze verify` on the rendered units and the keepalived drop-in, in
// a scratch root that holds this machine's system units and stand-ins for the binaries.
func TestUnitsVerifyWithSystemd(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze")
	}
	if _, err := os.Stat("/lib/systemd/system/sysinit.target"); err != nil {
		t.Skip("no system units to verify against")
	}
	root := t.TempDir()
	if out, err := exec.Command("cp", "-a", "/lib/systemd/system", filepath.Join(root, "lib-systemd-system")).CombinedOutput(); err != nil {
		t.Fatalf("copy system units: %v %s", err, out)
	}
	mustWrite := func(p string, data []byte, mode os.FileMode) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "lib-systemd-system"), filepath.Join(root, "lib/systemd/system")); err != nil {
		t.Fatal(err)
	}
	for _, b := range append(InstalledBinaries(), "/sbin/modprobe") {
		mustWrite(b, []byte("#!/bin/sh\n"), 0o755)
	}
	// A stand-in for Debian's keepalived.service, which the drop-in extends.
	mustWrite("/lib/systemd/system/keepalived.service", []byte("[Unit]\nDescription=keepalived\n[Service]\nExecStart=/usr/local/bin/etcd\n"), 0o644)
	rendered := renderAll(t)
	var units []string
	for _, name := range []string{
		"etcd-m1.service", "kube-apiserver-m1.service", "kube-controller-manager.service",
		"kube-scheduler.service", "containerd.service", "kubelet-w1-bootstrap.service", "kube-proxy.service",
		"flanneld-m1.service", "keepalived-dropin.conf",
	} {
		r := rendered[name]
		mustWrite(r.Path, r.Data, r.Mode)
		if strings.HasSuffix(r.Path, ".service") {
			units = append(units, r.Path)
		}
	}
	units = append(units, "/lib/systemd/system/keepalived.service")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, append([]string{"verify", "--man=no", "--root=" + root}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
