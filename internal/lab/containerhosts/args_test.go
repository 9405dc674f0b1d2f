package containerhosts

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCreateArgs(t *testing.T) {
	plan := nodePlan{
		name: "ks-2", container: "kslab-ks-2", volume: "kslab-ks-2-containerd", prefix: "ks", index: 2,
		addr: netip.MustParseAddr("172.30.0.12"), key: hostKey{public: "ssh-ed25519 AAAAtest"},
	}
	got := createArgs(plan, "kubesmith/host:bookworm-abc", false)
	want := []string{
		"create", "--name", "kslab-ks-2", "--hostname", "ks-2",
		"--label", "io.kubesmith.lab=1",
		"--label", "io.kubesmith.lab.prefix=ks",
		"--label", "io.kubesmith.lab.node=ks-2",
		"--label", "io.kubesmith.lab.index=2",
		"--label", "io.kubesmith.lab.address=172.30.0.12",
		"--label", "io.kubesmith.lab.hostkey=ssh-ed25519 AAAAtest",
		"--privileged", "--cgroupns=private",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--tmpfs", "/run:rw,exec,nosuid,nodev,mode=755",
		"--tmpfs", "/run/lock:rw,nosuid,nodev,noexec",
		"--tmpfs", "/tmp:rw,exec,nosuid,nodev,mode=1777",
		"--volume", "kslab-ks-2-containerd:/var/lib/containerd",
		"--network", "kubesmith-hosts", "--ip", "172.30.0.12", "--network-alias", "ks-2",
		"--stop-signal", "SIGRTMIN+3", "--env", "container=docker",
		"--restart", "no",
		"kubesmith/host:bookworm-abc", "/sbin/init",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("createArgs:\n got %q\nwant %q", got, want)
	}
	withModules := createArgs(plan, "img", true)
	i := slices.Index(withModules, "/lib/modules:/lib/modules:ro")
	if i < 1 || withModules[i-1] != "--volume" {
		t.Fatalf("host /lib/modules not mounted read-only: %q", withModules)
	}
}

func TestDockerdArgs(t *testing.T) {
	p := newPaths("/s", "/r")
	got := strings.Join(dockerdArgs(p, ""), " ")
	want := "-H unix:///r/docker.sock --data-root /s/docker-data --exec-root /r/docker --pidfile /r/dockerd.pid " +
		"--config-file /s/daemon.json --containerd /r/containerd/containerd.sock " +
		"--bridge=none --ip-masq=false --ip-forward=false --iptables=true"
	if got != want {
		t.Fatalf("dockerdArgs:\n got %s\nwant %s", got, want)
	}
	capfix := dockerdArgs(p, "/s/bin/runc-capfix")
	if !slices.Equal(capfix[len(capfix)-4:], []string{"--add-runtime", "capfix=/s/bin/runc-capfix", "--default-runtime", "capfix"}) {
		t.Fatalf("capfix runtime not registered: %q", capfix)
	}
	var dj map[string]string
	if err := json.Unmarshal(daemonJSON(p), &dj); err != nil || dj["deprecated-key-path"] != "/s/docker-key.json" {
		t.Errorf("daemon.json = %s (%v)", daemonJSON(p), err)
	}
	cfg := containerdConfig(p)
	for _, s := range []string{
		`root = "/s/containerd"`, `state = "/r/containerd"`, `address = "/r/containerd/containerd.sock"`,
		`"io.containerd.grpc.v1.cri"`, `path = "/s/containerd/opt"`,
	} {
		if !strings.Contains(cfg, s) {
			t.Errorf("containerd config lacks %s:\n%s", s, cfg)
		}
	}
}

func TestNetworkCreateArgs(t *testing.T) {
	got := strings.Join(networkCreateArgs(), " ")
	for _, s := range []string{
		"--internal", "--subnet 172.30.0.0/24", "--gateway 172.30.0.1", "--ip-range 172.30.0.0/25",
		"com.docker.network.bridge.name=ksbr0", "enable_ip_masquerade=false",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("network create lacks %q: %s", s, got)
		}
	}
	if !strings.HasSuffix(got, " kubesmith-hosts") {
		t.Errorf("network name: %s", got)
	}
	var n networkInfo
	n.Internal = true
	n.Options = map[string]string{"com.docker.network.bridge.name": BridgeName}
	n.IPAM.Config = append(n.IPAM.Config, struct {
		Subnet  string `json:"Subnet"`
		IPRange string `json:"IPRange"`
		Gateway string `json:"Gateway"`
	}{Subnet, NodeRange, Gateway})
	if !n.matches() {
		t.Error("lab layout does not match itself")
	}
	n.Internal = false
	if n.matches() {
		t.Error("a non-internal network matches")
	}
}

func TestAllocate(t *testing.T) {
	used := map[netip.Addr]bool{netip.MustParseAddr("172.30.0.12"): true}
	got, err := allocate(3, nil, used)
	if err != nil {
		t.Fatal(err)
	}
	if s := addrs(got); s != "172.30.0.11 172.30.0.13 172.30.0.14" {
		t.Fatalf("allocate = %s", s)
	}
	got, err = allocate(2, []string{"172.30.0.2", "172.30.0.127"}, used)
	if err != nil || addrs(got) != "172.30.0.2 172.30.0.127" {
		t.Fatalf("explicit = %v %v", got, err)
	}
	for _, bad := range [][]string{
		{"172.30.0.128"}, // VIP range
		{"172.30.0.1"},   // gateway
		{"172.30.0.0"},   // network
		{"10.0.0.5"},     // elsewhere
		{"172.30.0.12"},  // taken
		{"nope"},
	} {
		if _, err := allocate(1, bad, used); err == nil {
			t.Errorf("allocate(%v): want an error", bad)
		}
	}
	if _, err := allocate(2, []string{"172.30.0.20", "172.30.0.20"}, nil); err == nil {
		t.Error("duplicate explicit address: want an error")
	}
	if _, err := allocate(1, []string{"172.30.0.20", "172.30.0.21"}, nil); err == nil {
		t.Error("count mismatch: want an error")
	}
	if _, err := allocate(118, nil, nil); err == nil { // .11–.127 is 117 addresses
		t.Error("too many nodes: want an error")
	}
}

func addrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

func TestValidPrefix(t *testing.T) {
	for _, ok := range []string{"ks", "e2e-ha", "a1"} {
		if err := validPrefix(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "KS", "ks_1", "-ks", "ks-", "a/b", strings.Repeat("a", 51)} {
		if err := validPrefix(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestCleanDockerEnv(t *testing.T) {
	got := cleanDockerEnv([]string{"PATH=/bin", "DOCKER_HOST=tcp://x:2375", "DOCKER_CONTEXT=remote", "DOCKER_CONFIG=/home/u/.docker", "HOME=/root"}, "/s/cli")
	want := []string{"PATH=/bin", "HOME=/root", "DOCKER_CONFIG=/s/cli"}
	if !slices.Equal(got, want) {
		t.Fatalf("cleanDockerEnv = %q", got)
	}
}

func TestHostMirror(t *testing.T) {
	deb822 := "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
	if m := hostMirror("ID=debian\n", deb822, ""); m != "http://mirror.example/debian" {
		t.Errorf("deb822: %s", m)
	}
	list := "deb http://security.debian.org/debian-security bookworm-security main\ndeb [arch=amd64] http://m.example/debian bookworm main\n"
	if m := hostMirror("ID=debian\n", "", list); m != "http://m.example/debian" {
		t.Errorf("sources.list: %s", m)
	}
	if m := hostMirror("ID=ubuntu\n", deb822, list); m != "http://deb.debian.org/debian" {
		t.Errorf("non-Debian host: %s", m)
	}
}

func TestImageTagFollowsScripts(t *testing.T) {
	tag, err := ImageTag()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tag, "kubesmith/host:bookworm-") || len(tag) != len("kubesmith/host:bookworm-")+12 {
		t.Fatalf("ImageTag = %s", tag)
	}
	// The capfix wrapper is not part of the image: changing it must not rebuild.
	a, _ := assetsHash(assetFS, []string{minbaseAsset, buildAsset})
	b, _ := assetsHash(assetFS, []string{minbaseAsset, buildAsset, "assets/runc-capfix.sh"})
	if !strings.HasSuffix(tag, a) || a == b {
		t.Fatalf("hash inputs: tag %s, a %s, b %s", tag, a, b)
	}
	m1, _ := assetsHash(assetFS, []string{minbaseAsset}, "bookworm", "http://a/debian")
	m2, _ := assetsHash(assetFS, []string{minbaseAsset}, "bookworm", "http://b/debian")
	if m1 == m2 {
		t.Fatal("minbase hash ignores the mirror")
	}
}

func TestMountPointsUnder(t *testing.T) {
	mi := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
600 22 0:80 / /s/build/rootfs/dev rw - tmpfs ksdev rw
601 22 0:81 / /s/build\040x/proc rw - proc proc rw
602 22 0:82 / /s/buildings rw - tmpfs x rw
`
	got := mountPointsUnder(mi, "/s/build")
	if !slices.Equal(got, []string{"/s/build/rootfs/dev"}) {
		t.Fatalf("mountPointsUnder = %q", got)
	}
	if got := mountPointsUnder(mi, "/s/build x"); !slices.Equal(got, []string{"/s/build x/proc"}) {
		t.Fatalf("escaped: %q", got)
	}
}
