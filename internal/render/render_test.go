package render

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"sigs.k8s.io/yaml"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
)

func TestRenderErrors(t *testing.T) {
	if _, err := Render("systemd/nope.tmpl", nil); err == nil {
		t.Error("missing template rendered")
	}
	if _, err := Render("../render.go", nil); err == nil {
		t.Error("path outside templates/files accepted")
	}
	// missingkey=error: a map without the key fails instead of printing "<no value>".
	if _, err := Render("systemd/flanneld.service.tmpl", map[string]any{"NodeName": "m1"}); err == nil ||
		!strings.Contains(err.Error(), "map has no entry for key") {
		t.Errorf("missing map key: %v", err)
	}
	// A struct of the wrong type fails too.
	if _, err := Render("systemd/flanneld.service.tmpl", EtcdUnit{}); err == nil {
		t.Error("wrong data type rendered")
	}
}

func TestFuncs(t *testing.T) {
	if got := quote(`a"b\c` + "\n"); got != `"a\"b\\c\n"` {
		t.Errorf("quote = %s", got)
	}
	if got := shquote("it's"); got != `'it'\''s'` {
		t.Errorf("shquote = %s", got)
	}
	if got := indent(2, "a\n\nb"); got != "  a\n\n  b" {
		t.Errorf("indent = %q", got)
	}
	y, err := toYAML(map[string]any{"b": 1, "a": []string{"x"}})
	if err != nil || y != "a:\n- x\nb: 1" {
		t.Errorf("toYAML = %q, %v", y, err)
	}
	j, err := toJSON(map[string]any{"b": "<&>", "a": 1})
	if err != nil || j != `{"a":1,"b":"<&>"}` {
		t.Errorf("toJSON = %q, %v", j, err)
	}
}

func TestSyntaxOfRenderedFiles(t *testing.T) {
	for name, r := range renderAll(t) {
		switch {
		case strings.HasSuffix(name, ".yaml"):
			docs := splitYAML(r.Data)
			kinds := 0
			for _, d := range docs {
				var obj map[string]any
				if err := yaml.Unmarshal(d, &obj); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				if obj == nil {
					continue
				}
				if obj["apiVersion"] == nil || obj["kind"] == nil {
					if name != "crictl.yaml" {
						t.Errorf("%s: document without apiVersion/kind: %v", name, obj)
					}
					continue
				}
				kinds++
			}
			if kinds == 0 && name != "crictl.yaml" {
				t.Errorf("%s: no Kubernetes objects", name)
			}
		case strings.HasSuffix(name, ".json"), strings.HasSuffix(name, ".conflist"):
			var v map[string]any
			if err := json.Unmarshal(r.Data, &v); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case strings.HasSuffix(name, ".toml"):
			var cfg map[string]any
			if _, err := toml.Decode(string(r.Data), &cfg); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}

func TestContainerdConfigValues(t *testing.T) {
	r, err := RenderFile(ContainerdConfig{SandboxImage: DefaultPauseImage, RestrictOOMScoreAdj: true})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Version int `toml:"version"`
		Plugins struct {
			Images struct {
				Pinned map[string]string `toml:"pinned_images"`
			} `toml:"io.containerd.cri.v1.images"`
			Runtime struct {
				RestrictOOM bool `toml:"restrict_oom_score_adj"`
				Containerd  struct {
					Runtimes map[string]struct {
						Type    string `toml:"runtime_type"`
						Options struct {
							BinaryName    string
							SystemdCgroup bool
						} `toml:"options"`
					} `toml:"runtimes"`
				} `toml:"containerd"`
				CNI struct {
					BinDirs []string `toml:"bin_dirs"`
					ConfDir string   `toml:"conf_dir"`
				} `toml:"cni"`
			} `toml:"io.containerd.cri.v1.runtime"`
		} `toml:"plugins"`
	}
	if _, err := toml.Decode(string(r.Data), &cfg); err != nil {
		t.Fatal(err)
	}
	runc := cfg.Plugins.Runtime.Containerd.Runtimes["runc"]
	if cfg.Version != 3 || cfg.Plugins.Images.Pinned["sandbox"] != DefaultPauseImage || !cfg.Plugins.Runtime.RestrictOOM ||
		runc.Type != "io.containerd.runc.v2" || runc.Options.BinaryName != RuncPath || !runc.Options.SystemdCgroup ||
		!slices.Equal(cfg.Plugins.Runtime.CNI.BinDirs, []string{CNIBinDir}) || cfg.Plugins.Runtime.CNI.ConfDir != CNIConfDir {
		t.Errorf("decoded containerd config = %+v", cfg)
	}
}

// TestUnitFiles checks the structure systemd relies on: known sections, ExecStart continuation lines, and no
// unexpanded template output.
func TestUnitFiles(t *testing.T) {
	for name, r := range renderAll(t) {
		if !strings.HasSuffix(name, ".service") && !strings.HasSuffix(name, "dropin.conf") {
			continue
		}
		text := string(r.Data)
		if strings.Contains(text, "<no value>") || strings.Contains(text, "{{") {
			t.Errorf("%s: unexpanded template output", name)
		}
		lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
		inExec := false
		for i, l := range lines {
			if inExec {
				if !strings.HasPrefix(l, "  --") {
					t.Errorf("%s:%d: continuation line %q is not an indented flag", name, i+1, l)
				}
			}
			if strings.HasPrefix(l, "[") && !slices.Contains([]string{"[Unit]", "[Service]", "[Install]"}, l) {
				t.Errorf("%s:%d: unexpected section %s", name, i+1, l)
			}
			// $MAINPID is the one expansion the units use on purpose (ExecReload signals the main process).
			if strings.ContainsAny(strings.ReplaceAll(l, "$MAINPID", ""), "%$") && !strings.HasPrefix(l, "#") {
				t.Errorf("%s:%d: %% or $ would be expanded by systemd: %q", name, i+1, l)
			}
			inExec = strings.HasSuffix(l, ` \`)
		}
		if inExec {
			t.Errorf("%s: ends with a continuation line", name)
		}
		if strings.HasSuffix(name, ".service") && !strings.Contains(text, "\n[Install]\nWantedBy=multi-user.target\n") {
			t.Errorf("%s: no [Install] WantedBy=multi-user.target", name)
		}
	}
}

// TestPathsReferenced keeps the exported path constants and the hard-coded template paths in step.
func TestPathsReferenced(t *testing.T) {
	var all strings.Builder
	for _, r := range renderAll(t) {
		all.Write(r.Data)
	}
	text := all.String()
	for _, p := range []string{
		PathCACert, PathCAKey, PathAPIServerCert, PathAPIServerKey, PathAPIServerKubeletClientCert,
		PathAPIServerKubeletClientKey, PathAPIServerEtcdClientCert, PathAPIServerEtcdClientKey, PathFrontProxyCACert,
		PathFrontProxyClientCert, PathFrontProxyClientKey, PathSAKey, PathSAPub, PathKubeletServingCert, PathKubeletServingKey,
		PathEtcdCACert, PathEtcdServerCert, PathEtcdServerKey, PathEtcdPeerCert, PathEtcdPeerKey,
		PathControllerManagerKubeconfig, PathSchedulerKubeconfig, PathKubeletKubeconfig, PathKubeletBootstrapKubeconfig,
		PathKubeProxyKubeconfig, PathFlannelKubeconfig, PathAuthenticationConfig, PathEncryptionConfig, PathContainerdConfig,
		PathKubeletConfig, PathResolvConf, PathKubeProxyConfig, PathSchedulerConfig, PathFlannelNetConf, PathKeepalivedCheck,
		PathKeepalivedConfig, PathCrictlConfig, ClusterUIDMarker, ContainerdSocket, FlannelSubnetFile, RuncPath, CNIBinDir,
		CNIConfDir, EtcdDataDir, KubeletCertDir,
	} {
		if !strings.Contains(text, p) {
			t.Errorf("path %s is not referenced by any rendered file", p)
		}
	}
	// Every rendered file that is installed has a distinct path.
	seen := map[string]string{}
	for _, c := range goldenCases() {
		tgt := c.file.Target()
		if prev, ok := seen[tgt.Path]; ok && tgt.Path != "" && prev != tgt.Template {
			t.Errorf("%s and %s both install to %s", prev, tgt.Template, tgt.Path)
		}
		seen[tgt.Path] = tgt.Template
	}
}

func TestIdentitiesMatchPKI(t *testing.T) {
	a := NewRBACAddon([]string{DefaultBootstrapGroup})
	if a.APIServerKubeletClientUser != pki.UserAPIServerKubeletClient || a.FlannelUser != pki.UserFlannel ||
		a.PoolManagerGroup != pki.GroupPoolManagers {
		t.Errorf("RBAC identities %+v do not match internal/pki", a)
	}
	r, err := RenderFile(a)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(string(r.Data), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			kept = append(kept, l)
		}
	}
	text := strings.Join(kept, "\n")
	// Only kubesmith's bootstrap group may get node-client auto-approval: none at all.
	if strings.Contains(text, "certificatesigningrequests:nodeclient") {
		t.Error("rbac.yaml grants nodeclient auto-approval")
	}
	if strings.Contains(text, "system:masters") || strings.Contains(text, "cluster-admin") {
		t.Error("rbac.yaml mentions system:masters or cluster-admin")
	}
	// The pool manager may not read Secrets.
	for _, doc := range splitYAML(r.Data) {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Rules []struct {
				Resources []string `json:"resources"`
				Verbs     []string `json:"verbs"`
			} `json:"rules"`
		}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(obj.Metadata.Name, "pool-manager") {
			continue
		}
		for _, rule := range obj.Rules {
			if slices.Contains(rule.Resources, "secrets") {
				for _, v := range rule.Verbs {
					if v != "create" && v != "delete" {
						t.Errorf("%s %s grants %q on secrets", obj.Kind, obj.Metadata.Name, v)
					}
				}
			}
		}
	}
}

func TestValidationRejects(t *testing.T) {
	etcd := goldenCases()[0].file.(EtcdUnit)
	kubeletCfg := KubeletConfig{ClusterDNS: []string{"10.96.0.10"}, ClusterDomain: "cluster.local", ResolvConf: PathResolvConf, MaxPods: 110}
	keepalived := KeepalivedConfig{
		RouterID: "m1", Interface: "eth0", VIP: "172.30.0.250", VIPPrefixLen: 24,
		VirtualRouterID: 51, Priority: 150, AuthPass: "secret", UnicastSrcIP: "172.30.0.11", UnicastPeers: []string{"172.30.0.12"},
		CheckTimeoutSeconds: 2,
	}
	coredns := CoreDNSAddon{
		Image: DefaultCoreDNSImage, ImagePullPolicy: "IfNotPresent", ClusterDNSIP: "10.96.0.10",
		ClusterDomain: "cluster.local", Replicas: 2,
	}
	cases := map[string]File{
		"etcd without itself": func() File {
			u := etcd
			u.InitialCluster = sampleMembers[1:]
			return u
		}(),
		"etcd election too short": func() File { u := etcd; u.ElectionMS = 400; return u }(),
		"etcd bad state":          func() File { u := etcd; u.InitialClusterState = "join"; return u }(),
		"etcd token with space":   func() File { u := etcd; u.Token = "a b"; return u }(),
		"etcd duplicate member": func() File {
			u := etcd
			u.InitialCluster = append(slices.Clone(sampleMembers), sampleMembers[0])
			return u
		}(),
		"apiserver loopback advertise": APIServerUnit{
			AdvertiseAddress: "127.0.0.1", SecurePort: 6443, EtcdIPs: []string{"172.30.0.11"},
			ServiceCIDR: "10.96.0.0/12", ServiceNodePortRange: DefaultServiceNodePortRange, ServiceAccountIssuer: DefaultServiceAccountIssuer,
		},
		"apiserver host bits in CIDR": APIServerUnit{
			AdvertiseAddress: "172.30.0.11", SecurePort: 6443, EtcdIPs: []string{"172.30.0.11"},
			ServiceCIDR: "10.96.0.1/12", ServiceNodePortRange: DefaultServiceNodePortRange, ServiceAccountIssuer: DefaultServiceAccountIssuer,
		},
		"encryption short key": EncryptionConfig{Keys: []EncryptionKey{{Name: "k", Secret: "c2hvcnQ="}}},
		"controller-manager mask": ControllerManagerUnit{
			ClusterName: "demo", ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12",
			NodeCIDRMaskSize: 16, LeaderElection: DefaultLeaderElection(),
		},
		"controller-manager overlap": ControllerManagerUnit{
			ClusterName: "demo", ClusterCIDR: "10.96.0.0/16", ServiceCIDR: "10.96.0.0/12",
			NodeCIDRMaskSize: 24, LeaderElection: DefaultLeaderElection(),
		},
		"leader election order": SchedulerConfig{LeaderElection: LeaderElection{
			LeaseDuration: 10 * time.Second,
			RenewDeadline: 15 * time.Second, RetryPeriod: 2 * time.Second,
		}},
		"containerd bad image": ContainerdConfig{SandboxImage: "pause 3.10"},
		"kubelet reserved label": KubeletUnit{
			NodeName: "w1", NodeIP: "172.30.0.21",
			NodeLabels: map[string]string{"node-role.kubernetes.io/control-plane": ""},
		},
		"kubelet bad node name":   KubeletUnit{NodeName: "W_1", NodeIP: "172.30.0.21"},
		"kubelet host resolv":     func() File { c := kubeletCfg; c.ResolvConf = "/etc/resolv.conf"; return c }(),
		"kubelet bad taint":       func() File { c := kubeletCfg; c.RegisterWithTaints = []Taint{{Key: "a", Effect: "Never"}}; return c }(),
		"resolv loopback":         ResolvConf{Nameservers: []string{"127.0.0.53"}},
		"resolv docker dns":       ResolvConf{Nameservers: []string{"127.0.0.11"}},
		"kube-proxy ipvs":         KubeProxyConfig{NodeName: "w1", ClusterCIDR: "10.244.0.0/16", Mode: "ipvs"},
		"flannel bad iface":       FlanneldUnit{NodeName: "m1", Interface: "eth0; rm -rf /", IPTablesResync: DefaultFlannelIPTablesResync},
		"flannel no resync":       FlanneldUnit{NodeName: "m1", Interface: "eth0"},
		"flannel v6 network":      FlannelNetConf{Network: "fd00::/64", VNI: 1, Port: 8472},
		"keepalived long pass":    func() File { k := keepalived; k.AuthPass = "ninechars"; return k }(),
		"keepalived self as peer": func() File { k := keepalived; k.UnicastPeers = []string{"172.30.0.11"}; return k }(),
		"keepalived bad vrid":     func() File { k := keepalived; k.VirtualRouterID = 0; return k }(),
		"coredns loopback forwarder": func() File {
			c := coredns
			c.UpstreamDNS = []string{"127.0.0.53"}
			return c
		}(),
		"coredns docker forwarder": func() File { c := coredns; c.UpstreamDNS = []string{"127.0.0.11:53"}; return c }(),
		"coredns always pull":      func() File { c := coredns; c.ImagePullPolicy = "Always"; return c }(),
		"rbac bare bootstrappers":  NewRBACAddon([]string{"system:bootstrappers"}),
		"rbac system user": func() File {
			a := NewRBACAddon([]string{DefaultBootstrapGroup})
			a.FlannelUser = "system:kube-proxy"
			return a
		}(),
		"metrics-server no image": MetricsServerAddon{ImagePullPolicy: "IfNotPresent", MetricResolution: DefaultMetricResolution},
		"metrics-server fast scrape": MetricsServerAddon{
			Image: "registry.k8s.io/metrics-server/metrics-server:v0.9.0", ImagePullPolicy: "Never", MetricResolution: 5 * time.Second,
		},
		"bootstrap rbac empty":    BootstrapRBACAddon{},
		"reset protected path":    ResetScript{Units: KubesmithUnits(), Files: []string{"/etc"}},
		"reset relative path":     ResetScript{Files: []string{"etc/kubernetes"}},
		"reset odd unit":          ResetScript{Units: []string{"kubelet; reboot"}},
		"preflight tool with sep": PreflightScript{Tools: []string{"ip;id"}},
	}
	for name, f := range cases {
		if _, err := RenderFile(f); err == nil {
			t.Errorf("%s: rendered", name)
		} else if !strings.Contains(err.Error(), "invalid input") {
			t.Errorf("%s: error %v is not a validation error", name, err)
		}
	}
}

func TestKubeletMaySetLabel(t *testing.T) {
	allowed := []string{
		"tier", "example.com/x", "kubernetes.io/hostname", "node.kubernetes.io/pool",
		"foo.kubelet.kubernetes.io/bar", "topology.kubernetes.io/zone",
	}
	refused := []string{"node-role.kubernetes.io/control-plane", "kubernetes.io/role", "x.k8s.io/y", "k8s.io/z"}
	for _, k := range allowed {
		if !KubeletMaySetLabel(k) {
			t.Errorf("%s refused", k)
		}
	}
	for _, k := range refused {
		if KubeletMaySetLabel(k) {
			t.Errorf("%s allowed", k)
		}
	}
}

func TestHash(t *testing.T) {
	files := map[string][]byte{"/etc/b.conf": []byte("bee\n"), "/etc/a.conf": []byte("a\n"), "/etc/c": nil}
	h := Hash(files)
	if len(h) != 64 {
		t.Fatalf("hash %q", h)
	}
	for range 5 {
		if Hash(map[string][]byte{"/etc/c": nil, "/etc/a.conf": []byte("a\n"), "/etc/b.conf": []byte("bee\n")}) != h {
			t.Fatal("hash depends on map order")
		}
	}
	changed := map[string][]byte{"/etc/b.conf": []byte("bee\n"), "/etc/a.conf": []byte("A\n"), "/etc/c": nil}
	if Hash(changed) == h {
		t.Error("content change not detected")
	}
	renamed := map[string][]byte{"/etc/b.conf": []byte("bee\n"), "/etc/a2.conf": []byte("a\n"), "/etc/c": nil}
	if Hash(renamed) == h {
		t.Error("path change not detected")
	}
	// Moving bytes between files must change the hash (no plain concatenation).
	if Hash(map[string][]byte{"/x": []byte("ab"), "/y": []byte("c")}) == Hash(map[string][]byte{"/x": []byte("a"), "/y": []byte("bc")}) {
		t.Error("hash is ambiguous")
	}
	rs := []Rendered{
		{Target: Target{Path: "/etc/a.conf"}, Data: []byte("a\n")},
		{Target: Target{Path: "/etc/b.conf"}, Data: []byte("bee\n")},
		{Target: Target{Path: "/etc/c"}},
		{Target: Target{Path: ""}, Data: []byte("script")},
	}
	if HashRendered(rs) != h {
		t.Error("HashRendered differs from Hash")
	}
}

// TestHashMatchesSha256sum proves that a host computes the same config hash with coreutils.
func TestHashMatchesSha256sum(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("no sha256sum")
	}
	dir := t.TempDir()
	files := map[string][]byte{}
	for name, content := range map[string]string{"kubelet.service": "unit\n", "config.yaml": "a: 1\n", "Z-upper": "z"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		files[p] = []byte(content)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	script := "LC_ALL=C sha256sum " + strings.Join(paths, " ") + " | sha256sum | cut -d ' ' -f 1"
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(out)), Hash(files); got != want {
		t.Errorf("sha256sum pipeline = %s, Hash = %s", got, want)
	}
}

func TestParseFacts(t *testing.T) {
	out := "# comment\npreflight.version=1\nos.id=debian\nversion:/usr/local/bin/kubelet=Kubernetes v1.37.2\n" +
		"sha256:/etc/a=abc\nsha256:/etc/b=absent\nempty=\nkey=with=equals\r\n\n"
	f, err := ParseFacts(out)
	if err != nil {
		t.Fatal(err)
	}
	want := Facts{
		"preflight.version": "1", "os.id": "debian", "version:/usr/local/bin/kubelet": "Kubernetes v1.37.2",
		"sha256:/etc/a": "abc", "sha256:/etc/b": "absent", "empty": "", "key": "with=equals",
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("facts = %v", f)
	}
	if got := f.FileDigests(); !reflect.DeepEqual(got, map[string]string{"/etc/a": "abc", "/etc/b": "absent"}) {
		t.Errorf("FileDigests = %v", got)
	}
	for _, bad := range []string{
		"preflight.version=1\nnoequals\n", "preflight.version=1\na=1\na=2\n", "os.id=x\n",
		"preflight.version=1\nBad Key=1\n", "preflight.version=2\n",
	} {
		if _, err := ParseFacts(bad); err == nil {
			t.Errorf("ParseFacts(%q) succeeded", bad)
		}
	}
}

// TestPreflightRuns executes the rendered preflight script on this machine (it only reads) and parses it.
func TestPreflightRuns(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "kubelet")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"Kubernetes v1.37.2\"\necho second line\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	managed := filepath.Join(dir, "managed.conf")
	if err := os.WriteFile(managed, []byte("x=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.conf")
	r, err := RenderFile(PreflightScript{
		TCPPorts: DefaultPreflightTCPPorts(), UDPPorts: DefaultPreflightUDPPorts(),
		Tools: []string{"sh", "definitely-not-a-tool"}, Binaries: []string{fake, filepath.Join(dir, "etcd")},
		ManagedFiles: []string{managed, missing}, Units: []string{"kubelet.service"}, NodeIP: "192.0.2.99",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sh, "-s")
	cmd.Stdin = bytes.NewReader(r.Data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("preflight: %v\n%s", err, stderr.String())
	}
	t.Logf("preflight took %s, %d facts", time.Since(start).Round(time.Millisecond), strings.Count(string(out), "\n"))
	if stderr.Len() > 0 {
		t.Errorf("preflight wrote to stderr:\n%s", stderr.String())
	}
	f, err := ParseFacts(string(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, k := range []string{
		"os.id", "kernel.release", "arch", "cgroup.version", "cap.bnd", "cap.sys_resource", "swap.total_kib",
		"net.bridge", "sysctl.net.ipv4.ip_forward", "port.tcp.6443", "port.udp.8472", "disk.var.avail_kib", "time.epoch",
		"virt.container", "iptables.mode", "marker.present", "node_ip.iface", "unit.kubelet.service",
	} {
		if _, ok := f[k]; !ok {
			t.Errorf("fact %s missing", k)
		}
	}
	checks := map[string]string{
		"version:" + fake:                       "Kubernetes v1.37.2",
		"version:" + filepath.Join(dir, "etcd"): "missing",
		"sha256:" + managed:                     Digest([]byte("x=1\n")),
		"sha256:" + missing:                     "absent",
		"tool.definitely-not-a-tool":            "missing",
		"node_ip.iface":                         "",
		"preflight.version":                     "1",
	}
	for k, want := range checks {
		if f[k] != want {
			t.Errorf("%s = %q, want %q", k, f[k], want)
		}
	}
	if !strings.HasPrefix(f["tool.sh"], "/") {
		t.Errorf("tool.sh = %q", f["tool.sh"])
	}
	if f["cgroup.version"] != "1" && f["cgroup.version"] != "2" {
		t.Errorf("cgroup.version = %q", f["cgroup.version"])
	}
	if got := HashDigests(f.FileDigests()); got != HashDigests(map[string]string{managed: Digest([]byte("x=1\n")), missing: "absent"}) {
		t.Errorf("config hash from facts = %s", got)
	}
}
