package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// goPkg is a main package and the name of its binary.
type goPkg struct {
	Path string
	Name string
}

// Go build modes.
const (
	// modeInstall is `go install pkg@version`: the module's own go.mod decides, as with the lab script.
	modeInstall = "install"
	// modeScratch builds in a generated main module in the build directory.
	modeScratch = "scratch"
)

// goSpec is everything that decides a Go build's output; its JSON is part of the build key.
type goSpec struct {
	Mode     string
	Module   string
	Version  string
	Packages []goPkg
	// Files are written into the build directory before a scratch build (go.mod, sources).
	Files   map[string]string
	Tidy    bool
	LDFlags string
	Tags    string
	CGO     bool
}

// defaultExecName is the binary name go build/install chooses for a package: its last path element, or the one
// before a major-version suffix (".../server/v3" → "server").
func defaultExecName(importPath string) string {
	elems := strings.Split(importPath, "/")
	last := elems[len(elems)-1]
	if len(elems) > 1 && len(last) > 1 && last[0] == 'v' && strings.Trim(last[1:], "0123456789") == "" && last != "v0" && last != "v1" {
		return elems[len(elems)-2]
	}
	return last
}

// goUnit is a unit built by the go command.
func (r *run) goUnit(component, version string, names []string, entry func(string) (File, bool),
	spec func(ctx context.Context) (goSpec, error),
) *unit {
	u := &unit{component: component, version: version, dir: r.unitDir(component + "-" + version), names: names, entry: entry}
	var s goSpec
	u.key = func(ctx context.Context) (string, error) {
		var err error
		if s, err = spec(ctx); err != nil {
			return "", err
		}
		gov, err := r.goVersionOf(ctx)
		if err != nil {
			return "", err
		}
		return keyOf(struct {
			Rev, Go, Arch string
			Spec          goSpec
		}{builderRevision, gov, r.arch, s})
	}
	u.build = func(ctx context.Context, log io.Writer) ([]string, error) { return r.goBuild(ctx, u.dir, log, s) }
	return u
}

// goBuild runs the build described by s in dir; binaries go to dir/out.
func (r *run) goBuild(ctx context.Context, dir string, log io.Writer, s goSpec) ([]string, error) {
	out := filepath.Join(dir, "out")
	env := r.env(s.CGO)
	common := []string{"-trimpath"}
	if s.Tags != "" {
		common = append(common, "-tags", s.Tags)
	}
	common = append(common, "-ldflags", s.LDFlags)
	var names []string
	for _, p := range s.Packages {
		names = append(names, p.Name)
	}
	switch s.Mode {
	case modeInstall:
		args := append([]string{"install"}, common...)
		for _, p := range s.Packages {
			if p.Name != defaultExecName(p.Path) {
				return nil, fmt.Errorf("go install cannot name %s %q", p.Path, p.Name)
			}
			args = append(args, p.Path+"@"+s.Version)
		}
		if err := command(ctx, log, dir, append(env, "GOBIN="+out), "go", args...); err != nil {
			return nil, err
		}
	case modeScratch:
		files := make([]string, 0, len(s.Files))
		for name := range s.Files {
			files = append(files, name)
		}
		slices.Sort(files)
		for _, name := range files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(p, []byte(s.Files[name]), 0o644); err != nil {
				return nil, err
			}
		}
		if s.Tidy {
			if err := command(ctx, log, dir, env, "go", "mod", "tidy"); err != nil {
				return nil, err
			}
		}
		// Packages with their default name are built together (one go build links them in parallel), like the
		// lab script does for Kubernetes; renamed ones one by one.
		var together []string
		for _, p := range s.Packages {
			if p.Path != "." && p.Name == defaultExecName(p.Path) {
				together = append(together, p.Path)
				continue
			}
			args := append(append([]string{"build"}, common...), "-o", filepath.Join(out, p.Name), p.Path)
			if err := command(ctx, log, dir, env, "go", args...); err != nil {
				return nil, err
			}
		}
		if len(together) > 0 {
			args := append(append(append([]string{"build"}, common...), "-o", out+"/"), together...)
			if err := command(ctx, log, dir, env, "go", args...); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("unknown build mode %q", s.Mode)
	}
	return names, nil
}

// autoSpec builds with `go install pkg@version` when the module allows it (no replace directives in its go.mod),
// and otherwise in a scratch module that copies the module's replace and exclude directives (the lab's build_tofu
// recipe), plus extra replaces.
func (r *run) autoSpec(ctx context.Context, scratchName, module, version string, pkgs []goPkg,
	ldflags func(moduleInfo) string, tags string, cgo bool, extraReplaces []string,
) (goSpec, error) {
	mi, err := r.module(ctx, module, version)
	if err != nil {
		return goSpec{}, err
	}
	gm, err := os.ReadFile(mi.GoMod)
	if err != nil {
		return goSpec{}, fmt.Errorf("go.mod of %s@%s: %w", module, version, err)
	}
	s := goSpec{Mode: modeInstall, Module: module, Version: version, Packages: pkgs, LDFlags: ldflags(mi), Tags: tags, CGO: cgo}
	defaultNames := true
	for _, p := range pkgs {
		defaultNames = defaultNames && p.Name == defaultExecName(p.Path)
	}
	if !hasReplace(gm) && len(extraReplaces) == 0 && defaultNames {
		return s, nil
	}
	var tools []string
	for _, p := range pkgs {
		tools = append(tools, p.Path)
	}
	s.Mode, s.Tidy = modeScratch, true
	s.Files = map[string]string{"go.mod": scratchGoMod(scratchName, tools, module, version, moduleDirectives(gm), extraReplaces)}
	return s, nil
}

func fixed(ld string) func(moduleInfo) string { return func(moduleInfo) string { return ld } }

func pkgsOf(module string, names ...string) []goPkg {
	var ps []goPkg
	for _, n := range names {
		p := module
		if n != "" {
			p = module + "/" + n
		}
		ps = append(ps, goPkg{Path: p, Name: defaultExecName(p)})
	}
	return ps
}

func namesOf(ps []goPkg) []string {
	var ns []string
	for _, p := range ps {
		ns = append(ns, p.Name)
	}
	return ns
}

// flannelDroppedBackends are flanneld backends left out: tencentvpc because the module proxy refuses a module it
// imports (github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc), udp because it needs cgo (its C proxy)
// and is deprecated upstream. vxlan, host-gw, ipip, ipsec, wireguard, extension and alloc stay, in a static
// CGO_ENABLED=0 binary.
func flannelDroppedBackends() []string {
	return []string{"github.com/flannel-io/flannel/pkg/backend/tencentvpc", "github.com/flannel-io/flannel/pkg/backend/udp"}
}

// dropBlankImports removes `_ "path"` import lines.
func dropBlankImports(src string, paths []string) string {
	lines := strings.SplitAfter(src, "\n")
	out := lines[:0]
	for _, l := range lines {
		t := strings.TrimSpace(l)
		drop := false
		for _, p := range paths {
			if t == `_ "`+p+`"` {
				drop = true
			}
		}
		if !drop {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// units lists everything Build makes, in build order. Images follow the binaries they package.
func (r *run) units(tools bool) []*unit {
	v := r.versions
	a := r.arch
	var us []*unit
	bin := func(component, version string) func(string) (File, bool) {
		return binaryEntry(component, version, a, KindBinary)
	}
	for _, kv := range v.Kubernetes {
		kv := kv
		pkgs := pkgsOf("k8s.io/kubernetes/cmd", KubernetesBinaries()...)
		us = append(us, r.goUnit(ComponentKubernetes, kv, namesOf(pkgs), bin(ComponentKubernetes, kv),
			func(ctx context.Context) (goSpec, error) {
				mi, err := r.module(ctx, "k8s.io/kubernetes", kv)
				if err != nil {
					return goSpec{}, err
				}
				gm, err := os.ReadFile(mi.GoMod)
				if err != nil {
					return goSpec{}, fmt.Errorf("go.mod of k8s.io/kubernetes@%s: %w", kv, err)
				}
				mod, err := kubernetesScratchGoMod(kv, gm)
				if err != nil {
					return goSpec{}, err
				}
				ld, err := kubernetesLDFlags(kv, mi.Time, "")
				if err != nil {
					return goSpec{}, err
				}
				return goSpec{
					Mode: modeScratch, Module: "k8s.io/kubernetes", Version: kv, Packages: pkgs,
					Files: map[string]string{"go.mod": mod}, Tidy: true, LDFlags: ld,
				}, nil
			}))
	}

	etcdPkgs := []goPkg{{"go.etcd.io/etcd/server/v3", "etcd"}, {"go.etcd.io/etcd/etcdctl/v3", "etcdctl"}, {"go.etcd.io/etcd/etcdutl/v3", "etcdutl"}}
	us = append(us, r.goUnit(ComponentEtcd, v.Etcd, namesOf(etcdPkgs), bin(ComponentEtcd, v.Etcd),
		func(context.Context) (goSpec, error) {
			return goSpec{
				Mode: modeScratch, Module: "go.etcd.io/etcd/server/v3", Version: v.Etcd, Packages: etcdPkgs,
				Files: map[string]string{"go.mod": etcdScratchGoMod(v.Etcd)}, Tidy: true,
				LDFlags: "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=goproxy",
			}, nil
		}))

	auto := func(component, version, scratchName, module string, pkgs []goPkg, entry func(string) (File, bool),
		ld func(moduleInfo) string, tags string, cgo bool, replaces []string,
	) *unit {
		return r.goUnit(component, version, namesOf(pkgs), entry, func(ctx context.Context) (goSpec, error) {
			return r.autoSpec(ctx, scratchName, module, version, pkgs, ld, tags, cgo, replaces)
		})
	}

	const containerd = "github.com/containerd/containerd/v2"
	us = append(us, auto(ComponentContainerd, v.Containerd, "containerdbins", containerd,
		pkgsOf(containerd+"/cmd", "containerd", "containerd-shim-runc-v2", "ctr"), bin(ComponentContainerd, v.Containerd),
		fixed("-s -w -X "+containerd+"/version.Version="+v.Containerd+" -X "+containerd+"/version.Revision=goproxy"),
		"no_btrfs no_devmapper no_zfs", false, nil))

	runc := auto(ComponentRunc, v.Runc, "runcbin", "github.com/opencontainers/runc",
		pkgsOf("github.com/opencontainers/runc", ""), bin(ComponentRunc, v.Runc),
		// Static like upstream `make static`; -static-pie fails ("read-only segment has dynamic relocations").
		fixed("-s -w -X main.version="+strings.TrimPrefix(v.Runc, "v")+" -X main.gitCommit=goproxy -linkmode external -extldflags -static"),
		"seccomp netgo osusergo urfave_cli_no_docs", true, nil)
	goRuncBuild := runc.build
	runc.build = func(ctx context.Context, log io.Writer) ([]string, error) {
		if err := ensureDebianPackage(ctx, log, "libseccomp-dev"); err != nil {
			return nil, err
		}
		return goRuncBuild(ctx, log)
	}
	us = append(us, runc)

	const cni = "github.com/containernetworking/plugins"
	cniLD := func(ver string) func(moduleInfo) string {
		return fixed("-s -w -X " + cni + "/pkg/utils/buildversion.BuildVersion=" + ver)
	}
	us = append(us, auto(ComponentCNIPlugins, v.CNIPlugins, "cnibins", cni,
		pkgsOf(cni+"/plugins", "main/bridge", "main/loopback", "main/host-device", "main/ptp", "main/macvlan",
			"ipam/host-local", "ipam/static", "meta/portmap", "meta/bandwidth", "meta/firewall", "meta/tuning"),
		bin(ComponentCNIPlugins, v.CNIPlugins), cniLD(v.CNIPlugins), "", false, nil))
	us = append(us, auto(ComponentCNIFlannel, v.CNIFlannel, "cniflannel", cni, pkgsOf(cni+"/plugins", "meta/flannel"),
		bin(ComponentCNIFlannel, v.CNIFlannel), cniLD(v.CNIFlannel), "", false, nil))

	us = append(us, auto(ComponentCrictl, v.Crictl, "crictlbin", "sigs.k8s.io/cri-tools", pkgsOf("sigs.k8s.io/cri-tools/cmd", "crictl"),
		bin(ComponentCrictl, v.Crictl), fixed("-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version="+v.Crictl), "", false, nil))

	const flannel = "github.com/flannel-io/flannel"
	us = append(us, r.goUnit(ComponentFlannel, v.Flannel, []string{"flanneld"}, bin(ComponentFlannel, v.Flannel),
		func(ctx context.Context) (goSpec, error) {
			mi, err := r.module(ctx, flannel, v.Flannel)
			if err != nil {
				return goSpec{}, err
			}
			gm, err := os.ReadFile(mi.GoMod)
			if err != nil {
				return goSpec{}, fmt.Errorf("go.mod of %s@%s: %w", flannel, v.Flannel, err)
			}
			files := map[string]string{"go.mod": scratchGoMod("flanneld", nil, flannel, v.Flannel, moduleDirectives(gm), nil)}
			// flanneld's main package is the module root; copy it with the refused backends' imports removed.
			srcs, err := filepath.Glob(filepath.Join(mi.Dir, "*.go"))
			if err != nil {
				return goSpec{}, fmt.Errorf("flannel sources: %w", err)
			}
			for _, p := range srcs {
				if strings.HasSuffix(p, "_test.go") {
					continue
				}
				src, err := os.ReadFile(p)
				if err != nil {
					return goSpec{}, fmt.Errorf("flannel sources: %w", err)
				}
				files[filepath.Base(p)] = dropBlankImports(string(src), flannelDroppedBackends())
			}
			return goSpec{
				Mode: modeScratch, Module: flannel, Version: v.Flannel, Packages: []goPkg{{".", "flanneld"}},
				Files: files, Tidy: true, LDFlags: "-s -w -X " + flannel + "/pkg/version.Version=" + v.Flannel,
			}, nil
		}))

	// Binaries that only go into images.
	coredns := auto(ComponentCoreDNS, v.CoreDNS, "corednsbin", "github.com/coredns/coredns", pkgsOf("github.com/coredns/coredns", ""),
		noEntry, fixed("-s -w -X github.com/coredns/coredns/coremain.GitCommit=goproxy"), "", false, nil)
	us = append(us, coredns, r.imageUnit(imageDef{
		component: ComponentCoreDNS, name: "coredns", version: v.CoreDNS,
		ref: "registry.k8s.io/coredns/coredns:" + v.CoreDNS, bin: coredns, binName: "coredns", dest: "/coredns",
		// Like upstream: runs as nonroot and binds :53 through a file capability (cap_net_bind_service+ep).
		user: "65532:65532", entrypoint: []string{"/coredns"}, ports: []string{"53/tcp", "53/udp", "9153/tcp"},
		xattrs: map[string]string{"security.capability": capNetBindService()},
	}))

	pause := r.pauseUnit(v.Pause)
	us = append(us, pause, r.imageUnit(imageDef{
		component: ComponentPause, name: "pause", version: v.Pause,
		ref: "registry.k8s.io/pause:" + v.Pause, bin: pause, binName: "pause", dest: "/pause",
		user: "65535:65535", entrypoint: []string{"/pause"},
	}))

	echo := r.goUnit(ComponentEcho, v.Echo, []string{"echo"}, noEntry, func(context.Context) (goSpec, error) {
		return goSpec{
			Mode: modeScratch, Module: "example.invalid/echo", Version: v.Echo, Packages: []goPkg{{".", "echo"}},
			Files: map[string]string{"go.mod": echoGoMod, "main.go": echoMainGo}, LDFlags: "-s -w -X main.version=" + v.Echo,
		}, nil
	})
	us = append(us, echo, r.imageUnit(imageDef{
		component: ComponentEcho, name: "echo", version: v.Echo,
		ref: "kubesmith.invalid/echo:" + v.Echo, bin: echo, binName: "echo", dest: "/echo",
		user: "65534:65534", entrypoint: []string{"/echo"}, ports: []string{"8080/tcp"},
	}))

	const metallb = "go.universe.tf/metallb"
	var metallbReplaces []string
	if v.MetalLBFRRK8s != "" {
		metallbReplaces = []string{"github.com/metallb/frr-k8s => github.com/metallb/frr-k8s " + v.MetalLBFRRK8s}
	}
	mlb := auto(ComponentMetalLB, v.MetalLB, "metallbbins", metallb, pkgsOf(metallb, "controller", "speaker"), noEntry,
		fixed("-s -w -X "+metallb+"/internal/version.gitCommit=goproxy -X "+metallb+"/internal/version.gitBranch="+v.MetalLB),
		"", false, metallbReplaces)
	// Upstream images are distroless/static (root); MetalLB's manifests choose the user (controller 65534).
	us = append(us, mlb,
		r.imageUnit(imageDef{
			component: ComponentMetalLB, name: "metallb-controller", version: v.MetalLB,
			ref: "quay.io/metallb/controller:" + v.MetalLB, bin: mlb, binName: "controller", dest: "/controller",
			entrypoint: []string{"/controller"},
		}),
		r.imageUnit(imageDef{
			component: ComponentMetalLB, name: "metallb-speaker", version: v.MetalLB,
			ref: "quay.io/metallb/speaker:" + v.MetalLB, bin: mlb, binName: "speaker", dest: "/speaker",
			entrypoint: []string{"/speaker"},
		}))

	const ms = "sigs.k8s.io/metrics-server"
	msu := auto(ComponentMetricsServer, v.MetricsServer, "metricsserverbin", ms, pkgsOf(ms+"/cmd", "metrics-server"), noEntry,
		func(mi moduleInfo) string {
			p := "k8s.io/client-go/pkg/version"
			return "-s -w -X " + p + ".gitVersion=" + v.MetricsServer + " -X " + p + ".gitCommit=" + strings.Repeat("0", 40) +
				" -X " + p + ".buildDate=" + mi.Time
		}, "", false, nil)
	us = append(us, msu, r.imageUnit(imageDef{
		component: ComponentMetricsServer, name: "metrics-server", version: v.MetricsServer,
		ref: "registry.k8s.io/metrics-server/metrics-server:" + v.MetricsServer, bin: msu, binName: "metrics-server",
		dest: "/metrics-server", user: "65534", entrypoint: []string{"/metrics-server"}, ports: []string{"10250/tcp"},
	}))

	const traefik = "github.com/traefik/traefik/v3"
	tu := auto(ComponentTraefik, v.Traefik, "traefikbin", traefik, pkgsOf(traefik+"/cmd", "traefik"), noEntry,
		func(mi moduleInfo) string {
			return "-s -w -X " + traefik + "/pkg/version.Version=" + v.Traefik + " -X " + traefik + "/pkg/version.BuildDate=" + mi.Time
		}, "", false, nil)
	// The official image runs as root; charts set the user (65532 exists in the image).
	us = append(us, tu, r.imageUnit(imageDef{
		component: ComponentTraefik, name: "traefik", version: v.Traefik,
		ref: "docker.io/library/traefik:" + v.Traefik, bin: tu, binName: "traefik", dest: "/traefik",
		entrypoint: []string{"/traefik"}, ports: []string{"80/tcp"},
	}))

	if tools {
		for _, t := range r.toolUnits() {
			t.entry = binaryEntry(t.component, t.version, a, KindTool)
			us = append(us, t)
		}
	}
	us = append(us, r.debUnit())
	return us
}

// toolUnits are the host tools; not in the bundle unless Build runs with Tools.
func (r *run) toolUnits() []*unit {
	v := r.versions
	const tofu = "github.com/opentofu/opentofu"
	tofuPkgs := pkgsOf(tofu+"/cmd", "tofu")
	tu := r.goUnit(ComponentOpenTofu, v.OpenTofu, namesOf(tofuPkgs), noEntry, func(ctx context.Context) (goSpec, error) {
		return r.autoSpec(ctx, "tofubin", tofu, v.OpenTofu, tofuPkgs, fixed("-s -w -X "+tofu+"/version.dev=no"), "", false, nil)
	})
	const gl = "github.com/golangci/golangci-lint/v2"
	glPkgs := pkgsOf(gl+"/cmd", "golangci-lint")
	gu := r.goUnit(ComponentGolangciLint, v.GolangciLint, namesOf(glPkgs), noEntry, func(ctx context.Context) (goSpec, error) {
		return r.autoSpec(ctx, "golangcilintbin", gl, v.GolangciLint, glPkgs, func(mi moduleInfo) string {
			return "-s -w -X main.version=" + strings.TrimPrefix(v.GolangciLint, "v") + " -X main.commit=goproxy -X main.date=" + mi.Time
		}, "", false, nil)
	})
	return []*unit{tu, gu}
}

// capNetBindService is a security.capability xattr value (struct vfs_cap_data, revision 2) granting
// cap_net_bind_service in the permitted and effective sets, what `setcap cap_net_bind_service=+ep` writes.
func capNetBindService() string {
	const capNetBindService = 10
	b := make([]byte, 20)
	b[0], b[3] = 0x01, 0x02 // magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, little endian
	b[4+capNetBindService/8] = 1 << (capNetBindService % 8)
	return string(b)
}

// pauseUnit compiles the static C pause binary.
func (r *run) pauseUnit(version string) *unit {
	u := &unit{
		component: ComponentPause, version: version, dir: r.unitDir(ComponentPause + "-" + version),
		names: []string{"pause"}, entry: noEntry,
	}
	u.key = func(ctx context.Context) (string, error) {
		cc, err := output(ctx, r.cacheDir, os.Environ(), "gcc", "--version")
		if err != nil {
			return "", fmt.Errorf("the pause image needs gcc (apt-get install gcc libc6-dev): %w", err)
		}
		first, _, _ := strings.Cut(string(cc), "\n")
		return keyOf(struct{ Rev, Arch, Source, CC string }{builderRevision, r.arch, pauseC, first})
	}
	u.build = func(ctx context.Context, log io.Writer) ([]string, error) {
		if err := os.WriteFile(filepath.Join(u.dir, "pause.c"), []byte(pauseC), 0o644); err != nil {
			return nil, err
		}
		bin := filepath.Join(u.dir, "out", "pause")
		if err := command(ctx, log, u.dir, os.Environ(), "gcc", "-Os", "-static", "-o", bin, "pause.c"); err != nil {
			return nil, err
		}
		if err := command(ctx, log, u.dir, os.Environ(), "strip", bin); err != nil {
			return nil, err
		}
		return []string{"pause"}, nil
	}
	return u
}

// imageDef describes a one-binary image on the distroless-like base.
type imageDef struct {
	component, name, version, ref string
	bin                           *unit
	binName, dest                 string
	user                          string
	entrypoint, ports             []string
	xattrs                        map[string]string
}

// imageUnit writes an OCI archive with the base file system plus one binary of another unit.
func (r *run) imageUnit(d imageDef) *unit {
	file := d.name + "-" + d.version + ".oci.tar"
	u := &unit{
		component: d.component, label: "image " + d.name, version: d.version,
		dir: r.unitDir("image-" + d.name + "-" + d.version), names: []string{file}, deps: []*unit{d.bin},
	}
	ca := r.b.CABundle
	if ca == "" {
		ca = "/etc/ssl/certs/ca-certificates.crt"
	}
	image := func() Image {
		entries := append(BaseImageEntries(ca), ImageEntry{
			Path: d.dest, Mode: 0o755,
			Source: filepath.Join(d.bin.dir, "out", d.binName), Xattrs: d.xattrs,
		})
		return Image{
			Name: d.ref, OS: "linux", Arch: r.arch, Layers: [][]ImageEntry{entries},
			Config: ImageConfig{
				Entrypoint: d.entrypoint, User: d.user, ExposedPorts: d.ports,
				Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			},
		}
	}
	u.key = func(ctx context.Context) (string, error) {
		img := image()
		// The key holds the content hashes of the sources instead of their paths.
		for i, e := range img.Layers[0] {
			if e.Source == "" {
				continue
			}
			sum, _, err := r.hashes.sum(ctx, e.Source)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) && e.Source == ca {
					return "", fmt.Errorf("images need the host CA bundle %s (apt-get install ca-certificates): %w", ca, err)
				}
				return "", err
			}
			img.Layers[0][i].Source = "sha256:" + sum
		}
		return keyOf(struct {
			Rev   string
			Gzip  int
			Image Image
		}{builderRevision, ImageGzipLevel, img})
	}
	u.build = func(ctx context.Context, log io.Writer) ([]string, error) {
		res, err := WriteImageFile(ctx, filepath.Join(u.dir, "out", file), image())
		if err != nil {
			return nil, err
		}
		_, _ = fmt.Fprintf(log, "%s: manifest %s, config %s\n", d.ref, res.ManifestDigest, res.ConfigDigest)
		return []string{file}, nil
	}
	u.entry = func(string) (File, bool) {
		return File{
			Path: ImagePath("linux", r.arch, d.name, d.version), Component: d.component, Name: d.name,
			Version: d.version, OS: "linux", Arch: r.arch, Kind: KindImage, Image: d.ref,
		}, true
	}
	return u
}
