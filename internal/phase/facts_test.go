package phase_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/nodetest"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase/phasetest"
)

// containerHostFacts is what the facts script prints on a privileged Docker "node" container of this machine
// (lab/container-hosts.md): cgroup v1, CAP_SYS_RESOURCE missing from the bounding set, the machine's swap visible.
// The second "none"-like line checks that lines without '=' are ignored.
const containerHostFacts = `os_id=debian
os_version=12
arch=x86_64
kernel=6.1.0-37-amd64
container=docker
cgroup=1
capbnd=000001fffeffffff
swap=1
bridge_nf=1
ip_forward=1
systemd=1
listening=22 2379 2380 6443 
disk_free_kib=52428800
time=1767225600
tool_iptables=1
tool_nft=1
tool_conntrack=1
tool_socat=1
tool_ip=1
tool_mount=1
tool_nsenter=1
tool_sha256sum=1
tool_gzip=1
tool_flock=1
tool_systemctl=1
tool_journalctl=1
tool_curl=1
tool_keepalived=1
tool_haproxy=0
tool_ss=1
cluster_uid=3f1c2a9e-6b7d-4e21-9c55-0d8e4b7a1f20
iface=eth0
prefix=24
active_containerd=active
active_etcd=active
active_kube-apiserver=inactive
active_kube-controller-manager=failed
active_kube-scheduler=
active_kubelet=active
active_kube-proxy=active
active_flanneld=active
active_keepalived=active
active_haproxy=inactive
version_kubelet=v1.37.2
version_etcd=3.6.4
version_containerd=v2.1.4
none
`

func TestParseFactsContainerHost(t *testing.T) {
	f, err := phase.ParseFacts(containerHostFacts)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("OSID", f.OSID, "debian")
	check("OSVersion", f.OSVersion, "12")
	check("Arch", f.Arch, "amd64")
	check("Kernel", f.Kernel, "6.1.0-37-amd64")
	check("Container", f.Container, "docker")
	check("IsContainer", f.IsContainer(), true)
	check("CgroupV1", f.CgroupV1, true)
	check("NoSysResource", f.NoSysResource, true)
	check("SwapOn", f.SwapOn, true)
	check("BridgeNF", f.BridgeNF, true)
	check("IPForward", f.IPForward, true)
	check("Systemd", f.Systemd, true)
	check("BusyPorts", f.BusyPorts, []int{22, 2379, 2380, 6443})
	check("DiskFreeMiB", f.DiskFreeMiB, 51200)
	check("Clock", f.Clock.UTC(), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	check("Tools[curl]", f.Tools["curl"], true)
	check("Tools[haproxy]", f.Tools["haproxy"], false)
	check("ClusterUID", f.ClusterUID, "3f1c2a9e-6b7d-4e21-9c55-0d8e4b7a1f20")
	check("Iface", f.Iface, "eth0")
	check("Prefix", f.Prefix, 24)
	check("Active", f.Active, map[string]bool{
		"containerd": true, "etcd": true, "kube-apiserver": false,
		"kube-controller-manager": false, "kube-scheduler": false, "kubelet": true, "kube-proxy": true,
		"flanneld": true, "keepalived": true, "haproxy": false,
	})
	check("Versions", f.Versions, map[string]string{"kubelet": "v1.37.2", "etcd": "3.6.4", "containerd": "v2.1.4"})
}

func TestParseFactsMachine(t *testing.T) {
	// A VM: `systemd-detect-virt -c` prints "none" and fails, so the script's fallback prints a second "none";
	// cgroup v2, a full bounding set, no swap, an arm64 kernel, a fresh host without marker.
	out := "arch=aarch64\ncontainer=none\nnone\ncgroup=2\ncapbnd=000001ffffffffff\nswap=0\nbridge_nf=0\ntime=1767225600\ncluster_uid=\niface=\nprefix=\nlistening=\n"
	f, err := phase.ParseFacts(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Arch != "arm64" || f.IsContainer() || f.CgroupV1 || f.NoSysResource || f.SwapOn || f.BridgeNF ||
		f.ClusterUID != "" || f.Iface != "" || f.Prefix != 0 || len(f.BusyPorts) != 0 {
		t.Errorf("machine facts parsed as %+v", f)
	}
}

func TestParseFactsErrors(t *testing.T) {
	if _, err := phase.ParseFacts("os_id=debian\n"); err == nil || !strings.Contains(err.Error(), "no arch") {
		t.Errorf("output without arch: %v", err)
	}
	if _, err := phase.ParseFacts("arch=x86_64\ntime=soon\n"); err == nil || !strings.Contains(err.Error(), `bad time "soon"`) {
		t.Errorf("bad time: %v", err)
	}
}

func TestGatherFacts(t *testing.T) {
	sim := phasetest.NewSim(t, testVIP, "m1", "172.30.0.11")
	h := sim.Host("m1")
	h.ClockOffset = 2 * time.Minute
	tg := &phase.Target{Name: "m1", Address: "172.30.0.11", Role: phase.RoleMaster, Runner: h.Fake}
	f, err := phase.GatherFacts(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if f.Iface != "eth0" || f.Prefix != 24 || !f.NoSysResource || !f.CgroupV1 || f.Container != "docker" {
		t.Errorf("facts %+v", f)
	}
	if f.ClockSkew < 118*time.Second || f.ClockSkew > 122*time.Second {
		t.Errorf("clock skew %s, want about 2m", f.ClockSkew)
	}
	cmds := h.Fake.Commands()
	if len(cmds) != 1 || !strings.Contains(cmds[0], "\naddr=172.30.0.11\n") {
		t.Errorf("facts script does not carry the node address: %q", cmds)
	}

	// A failing script and an incomplete output are errors.
	h.Fake.On(`(?s)^set \+e`, node.Result{Stderr: "sudo: a password is required", ExitCode: 1}, nil)
	if _, err := phase.GatherFacts(context.Background(), tg); err == nil || !strings.Contains(err.Error(), "gathering facts") {
		t.Errorf("failing facts script: %v", err)
	}
	h.Fake.On(`(?s)^set \+e`, node.Result{Stdout: "os_id=debian\n"}, nil)
	if _, err := phase.GatherFacts(context.Background(), tg); err == nil {
		t.Error("incomplete facts accepted")
	}
}

// goodFacts are the facts of a healthy VM master.
func goodFacts() phase.Facts {
	tools := map[string]bool{"keepalived": true}
	for _, t := range phase.RequiredTools {
		tools[t] = true
	}
	return phase.Facts{
		Arch: "amd64", Container: "none", Systemd: true, BridgeNF: true, IPForward: true,
		Tools: tools, Iface: "eth0", Prefix: 24, DiskFreeMiB: 20000, BusyPorts: []int{22},
	}
}

func TestPreflight(t *testing.T) {
	addr := netip.MustParseAddr("172.30.0.12")
	run := func(role phase.Role, own map[int]string, mutate func(*phase.Facts)) []error {
		f := goodFacts()
		mutate(&f)
		return phase.Preflight(&phase.Target{Name: "m2", Address: "172.30.0.12", Role: role, Facts: f}, own, addr)
	}
	if errs := run(phase.RoleMaster, nil, func(*phase.Facts) {}); len(errs) != 0 {
		t.Fatalf("healthy host refused: %v", errs)
	}
	cases := []struct {
		name   string
		role   phase.Role
		mutate func(*phase.Facts)
		fix    string
	}{
		{"swap on a machine", phase.RoleMaster, func(f *phase.Facts) { f.SwapOn = true }, "swapoff -a"},
		{"missing tool", phase.RoleMaster, func(f *phase.Facts) { f.Tools["conntrack"] = false }, `"conntrack" is missing: install it (Debian: apt-get install conntrack`},
		{"missing tool package name", phase.RoleWorker, func(f *phase.Facts) { delete(f.Tools, "nsenter") }, "apt-get install util-linux"},
		{"missing keepalived on a master", phase.RoleMaster, func(f *phase.Facts) { f.Tools["keepalived"] = false }, "apt-get install keepalived"},
		{"busy apiserver port", phase.RoleMaster, func(f *phase.Facts) { f.BusyPorts = []int{22, 6443} }, "port 6443 (kube-apiserver) is already in use by another program; stop it"},
		{"busy kubelet port on a worker", phase.RoleWorker, func(f *phase.Facts) { f.BusyPorts = []int{10250} }, "port 10250 (kubelet)"},
		{"missing br_netfilter", phase.RoleMaster, func(f *phase.Facts) { f.BridgeNF = false }, "modprobe br_netfilter"},
		{"clock ahead", phase.RoleMaster, func(f *phase.Facts) { f.ClockSkew = 3 * time.Minute }, "clock differs from this machine's by 3m0s"},
		{"clock behind", phase.RoleMaster, func(f *phase.Facts) { f.ClockSkew = -45 * time.Second }, "sync it with NTP"},
		{"no interface", phase.RoleMaster, func(f *phase.Facts) { f.Iface = "" }, "no interface holds address 172.30.0.12"},
		{"no systemd", phase.RoleMaster, func(f *phase.Facts) { f.Systemd = false }, "boot the host with systemd"},
		{"small disk", phase.RoleMaster, func(f *phase.Facts) { f.DiskFreeMiB = 1000 }, "at least 2 GiB"},
		{"other architecture", phase.RoleMaster, func(f *phase.Facts) { f.Arch = "riscv64" }, `unsupported architecture "riscv64"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := run(c.role, nil, c.mutate)
			if len(errs) != 1 {
				t.Fatalf("want one problem, got %d: %v", len(errs), errs)
			}
			msg := errs[0].Error()
			if !strings.HasPrefix(msg, "m2 (172.30.0.12): ") {
				t.Errorf("problem does not name the host first: %q", msg)
			}
			if !strings.Contains(msg, c.fix) {
				t.Errorf("problem %q does not contain %q", msg, c.fix)
			}
		})
	}

	t.Run("container host ignores swap", func(t *testing.T) {
		errs := run(phase.RoleMaster, nil, func(f *phase.Facts) { f.SwapOn, f.Container = true, "docker" })
		if len(errs) != 0 {
			t.Errorf("container host with the machine's swap refused: %v", errs)
		}
	})
	t.Run("own ports on a re-run", func(t *testing.T) {
		own := map[int]string{2379: "kubesmith", 6443: "kubesmith"}
		if errs := run(phase.RoleMaster, own, func(f *phase.Facts) { f.BusyPorts = []int{22, 2379, 6443} }); len(errs) != 0 {
			t.Errorf("our own etcd and apiserver refused: %v", errs)
		}
	})
	t.Run("ports only masters need", func(t *testing.T) {
		if errs := run(phase.RoleWorker, nil, func(f *phase.Facts) { f.BusyPorts = []int{2379, 6443, 8080} }); len(errs) != 0 {
			t.Errorf("worker refused for ports it does not use: %v", errs)
		}
	})
	t.Run("keepalived not needed on workers", func(t *testing.T) {
		if errs := run(phase.RoleWorker, nil, func(f *phase.Facts) { f.Tools["keepalived"] = false }); len(errs) != 0 {
			t.Errorf("worker refused without keepalived: %v", errs)
		}
	})
	t.Run("every problem at once", func(t *testing.T) {
		errs := run(phase.RoleMaster, nil, func(f *phase.Facts) {
			f.SwapOn, f.BridgeNF, f.Iface, f.ClockSkew = true, false, "", time.Hour
			f.Tools["curl"] = false
			f.BusyPorts = []int{2380}
		})
		if len(errs) != 6 {
			t.Errorf("want 6 problems, got %d: %v", len(errs), errs)
		}
	})
}

func TestKeepalivedRouterID(t *testing.T) {
	seen := map[int]bool{}
	for i := range 2000 {
		uid := fmt.Sprintf("%08x-6b7d-4e21-9c55-0d8e4b7a1f20", i*7919)
		id := phase.KeepalivedRouterID(uid)
		if id < 1 || id > 255 {
			t.Fatalf("router ID %d of %s is outside 1-255", id, uid)
		}
		if again := phase.KeepalivedRouterID(uid); again != id {
			t.Fatalf("router ID of %s is not stable: %d then %d", uid, id, again)
		}
		seen[id] = true
	}
	if len(seen) < 200 {
		t.Errorf("2000 UIDs give only %d distinct router IDs; clusters would collide", len(seen))
	}
	if id := phase.KeepalivedRouterID(""); id < 1 || id > 255 {
		t.Errorf("router ID of the empty UID is %d", id)
	}
}

func TestObserve(t *testing.T) {
	f := nodetest.New("m2", "172.30.0.12")
	f.On(`(?s)^echo "uid=`, node.Result{Stdout: strings.Join([]string{
		"uid=3f1c2a9e-6b7d-4e21-9c55-0d8e4b7a1f20",
		"hash=0123456789abcdef",
		"file=/etc/kubernetes/kubelet/config.yaml: FAILED",
		"file=/etc/kubernetes/pki/apiserver.crt: FAILED open or read",
		"unit=containerd active",
		"unit=etcd inactive",
		"unit=kube-apiserver failed",
		"unit=kubelet active",
		"kubelet=v1.37.2",
	}, "\n") + "\n"}, nil)
	o, err := phase.Observe(context.Background(), &phase.Target{Name: "m2", Address: "172.30.0.12", Role: phase.RoleMaster, Runner: f})
	if err != nil {
		t.Fatal(err)
	}
	if o.UID != "3f1c2a9e-6b7d-4e21-9c55-0d8e4b7a1f20" || o.AppliedHash != "0123456789abcdef" || o.KubeletVersion != "v1.37.2" {
		t.Errorf("observation %+v", o)
	}
	wantDrift := []string{
		"file /etc/kubernetes/kubelet/config.yaml: FAILED",
		"file /etc/kubernetes/pki/apiserver.crt: FAILED open or read",
		"service etcd is inactive",
		"service kube-apiserver is failed",
	}
	if !slices.Equal(o.Drift, wantDrift) {
		t.Errorf("drift\n got %q\nwant %q", o.Drift, wantDrift)
	}
	if !o.Active["containerd"] || o.Active["etcd"] || o.Active["kube-apiserver"] || !o.Active["kubelet"] {
		t.Errorf("active %v", o.Active)
	}
	cmd := f.Commands()[0]
	for _, want := range []string{
		phase.MarkerFile, phase.AppliedHash, "sha256sum -c --quiet " + phase.FilesManifest,
		"for u in containerd etcd flanneld keepalived kube-apiserver kube-controller-manager kube-proxy kube-scheduler kubelet;",
	} {
		if !strings.Contains(cmd, want) {
			t.Errorf("observe script lacks %q:\n%s", want, cmd)
		}
	}

	// A clean host reports no drift; an unreachable one an error naming it.
	f.On(`(?s)^echo "uid=`, node.Result{Stdout: "uid=x\nhash=h\nunit=containerd active\nunit=kubelet active\nunit=kube-proxy active\nunit=flanneld active\n"}, nil)
	o, err = phase.Observe(context.Background(), &phase.Target{Name: "w1", Role: phase.RoleWorker, Runner: f})
	if err != nil || len(o.Drift) != 0 {
		t.Errorf("clean worker: %+v, %v", o, err)
	}
	if !strings.Contains(f.Commands()[1], "for u in containerd flanneld kube-proxy kubelet;") {
		t.Errorf("worker observe script checks other units: %s", f.Commands()[1])
	}
	f.On(`(?s)^echo "uid=`, node.Result{}, fmt.Errorf("connection lost"))
	if _, err := phase.Observe(context.Background(), &phase.Target{Name: "w1", Role: phase.RoleWorker, Runner: f}); err == nil || !strings.Contains(err.Error(), "observing w1") {
		t.Errorf("failed observe: %v", err)
	}
}

func TestObserveSeesDriftOnSimulatedHost(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	if err := phase.Install(ctx, fx.c); err != nil {
		t.Fatal(err)
	}
	m1 := fx.sim.Host("m1")
	o, err := phase.Observe(ctx, fx.c.Masters[0])
	if err != nil {
		t.Fatal(err)
	}
	if o.UID != "" || o.AppliedHash != fx.c.AppliedHash || len(o.Drift) != 0 || o.KubeletVersion != "v1.37.2" {
		t.Errorf("after install (phase.Install writes no marker; the engine does): %+v", o)
	}
	m1.Fake.SetFile("/etc/kubernetes/kube-scheduler/config.yaml", []byte("changed"), 0o644)
	m1.Stop("etcd")
	o, err = phase.Observe(ctx, fx.c.Masters[0])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"file /etc/kubernetes/kube-scheduler/config.yaml: FAILED", "service etcd is inactive"}
	if !slices.Equal(o.Drift, want) {
		t.Errorf("drift %q, want %q", o.Drift, want)
	}
}

func TestSelection(t *testing.T) {
	m := phasetest.WriteBundle(t, t.TempDir(), phasetest.BundleEntries())
	s := phase.Selection{Manifest: m, KubernetesVersion: "v1.37.2", Arch: "amd64"}
	master, err := s.Binaries(phase.RoleMaster)
	if err != nil {
		t.Fatal(err)
	}
	worker, err := s.Binaries(phase.RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	if len(master) != 23 || len(worker) != 17 {
		t.Errorf("%d master and %d worker binaries, want 23 and 17", len(master), len(worker))
	}
	for _, a := range master {
		if a.File.Component == "kubernetes" && a.File.Version != "v1.37.2" {
			t.Errorf("%s: Kubernetes %s picked, want the cluster's v1.37.2", a.Dest, a.File.Version)
		}
		if a.File.Component == "etcd" && a.File.Version != "3.6.4" {
			t.Errorf("%s: etcd %s picked, want the newest", a.Dest, a.File.Version)
		}
		if a.Mode != 0o755 || a.File.Arch != "amd64" {
			t.Errorf("%s: %+v", a.Dest, a)
		}
	}
	imgs := s.Images()
	if len(imgs) != 5 || imgs[0].Dest != phase.ImagesDir+"/coredns-v1.12.3.oci.tar" || imgs[4].Dest != phase.ImagesDir+"/pause-3.10.2.oci.tar" {
		t.Errorf("images %+v", imgs)
	}
	if ref, err := s.ImageRef("pause"); err != nil || ref != "registry.k8s.io/pause:3.10.2" {
		t.Errorf("pause: %q, %v", ref, err)
	}
	if _, err := s.ImageRef("metallb"); err == nil || !strings.Contains(err.Error(), "make artifacts") {
		t.Errorf("missing image: %v", err)
	}
	s.KubernetesVersion = "v1.35.0"
	if _, err := s.Binaries(phase.RoleWorker); err == nil || !strings.Contains(err.Error(), "kubernetes kubelet v1.35.0 for amd64") {
		t.Errorf("missing Kubernetes version: %v", err)
	}
}

// TestSelectionNewestForArch checks that pick takes the newest version that exists for the hosts' architecture
// (and for the file asked for), so that an etcd that exists for arm64 only does not stop amd64 hosts.
func TestSelectionNewestForArch(t *testing.T) {
	es := append(phasetest.BundleEntries(), phasetest.BundleEntry{Component: "etcd", Name: "etcd", Version: "3.7.0", Arch: "arm64", Kind: artifacts.KindBinary})
	m := phasetest.WriteBundle(t, t.TempDir(), es)
	s := phase.Selection{Manifest: m, KubernetesVersion: "v1.37.2", Arch: "amd64"}
	if _, err := s.Binaries(phase.RoleMaster); err != nil {
		t.Errorf("amd64 masters cannot be installed because of an arm64-only etcd: %v", err)
	}
}
