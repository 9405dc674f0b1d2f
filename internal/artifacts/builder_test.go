package artifacts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the heartbeat goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestRun(t *testing.T) (*run, *syncBuffer) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("bundles are built on Linux")
	}
	out := &syncBuffer{}
	b := &Builder{CacheDir: t.TempDir(), BundleDir: filepath.Join(t.TempDir(), "bundle"), Progress: out}
	r, err := b.newRun()
	if err != nil {
		t.Fatal(err)
	}
	return r, out
}

// fakeUnit "builds" a fake ELF binary for the run's architecture and counts its builds.
type fakeUnit struct {
	key     string
	builds  int
	payload string
	fail    error
}

func (f *fakeUnit) unit(t *testing.T, r *run, name string) *unit {
	u := &unit{
		component: name, version: "v1", dir: r.unitDir(name + "-v1"), names: []string{name},
		entry: binaryEntry(name, "v1", r.arch, KindBinary),
	}
	u.key = func(context.Context) (string, error) { return f.key, nil }
	u.build = func(ctx context.Context, log io.Writer) ([]string, error) {
		f.builds++
		_, _ = io.WriteString(log, "compiling "+name+"\n")
		if f.fail != nil {
			return nil, f.fail
		}
		return []string{name}, os.WriteFile(filepath.Join(u.dir, "out", name), fakeELF(t, r.arch, f.payload), 0o755)
	}
	return u
}

func TestRunUnitCachesByKeyAndOutputs(t *testing.T) {
	r, out := newTestRun(t)
	ctx := context.Background()
	f := &fakeUnit{key: "k1", payload: "one"}
	u := f.unit(t, r, "tool")
	r.runUnit(ctx, u)
	if u.err != nil || f.builds != 1 || len(u.outputs) != 1 {
		t.Fatalf("first run: err %v, builds %d, outputs %v", u.err, f.builds, u.outputs)
	}
	bin := filepath.Join(u.dir, "out", "tool")
	st1, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}

	u2 := f.unit(t, r, "tool")
	r.runUnit(ctx, u2)
	if f.builds != 1 || u2.err != nil || len(u2.outputs) != 1 {
		t.Fatalf("second run rebuilt: builds %d, err %v", f.builds, u2.err)
	}
	if st2, _ := os.Stat(bin); !st2.ModTime().Equal(st1.ModTime()) {
		t.Fatal("a cached unit's output was rewritten")
	}

	f.key = "k2" // new inputs
	r.runUnit(ctx, f.unit(t, r, "tool"))
	if f.builds != 2 {
		t.Fatalf("a new key did not rebuild: builds %d", f.builds)
	}

	later := time.Now().Add(time.Hour) // output touched: not trusted any more
	if err := os.Chtimes(bin, later, later); err != nil {
		t.Fatal(err)
	}
	r.runUnit(ctx, f.unit(t, r, "tool"))
	if f.builds != 3 {
		t.Fatalf("a changed output did not rebuild: builds %d", f.builds)
	}

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	re := regexp.MustCompile(`^\[\d\d:\d\d\] tool v1: (building|done in [0-9.]+m?s|cached)$`)
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("progress line %q", l)
		}
	}
	if !strings.Contains(out.String(), "tool v1: cached") || !strings.Contains(out.String(), "tool v1: done in ") {
		t.Fatalf("progress:\n%s", out)
	}
}

func TestRunUnitFailure(t *testing.T) {
	r, out := newTestRun(t)
	ctx := context.Background()
	bad := &fakeUnit{key: "k", fail: errors.New("exit status 1")}
	a := bad.unit(t, r, "broken")
	r.runUnit(ctx, a)
	if a.err == nil || !strings.Contains(a.err.Error(), "compiling broken") {
		t.Fatalf("error should carry the log tail: %v", a.err)
	}
	if _, err := os.Stat(filepath.Join(a.dir, stampName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed build left a stamp: %v", err)
	}
	dep := (&fakeUnit{key: "k"}).unit(t, r, "image")
	dep.deps = []*unit{a}
	r.runUnit(ctx, dep)
	if dep.err == nil || !strings.Contains(out.String(), "image v1: skipped, broken v1 failed") || !strings.Contains(dep.err.Error(), "broken v1 failed") {
		t.Fatalf("dependent unit: %v\n%s", dep.err, out)
	}
}

func TestHeartbeat(t *testing.T) {
	r, out := newTestRun(t)
	r.heartbeat = 5 * time.Millisecond
	u := (&fakeUnit{key: "k"}).unit(t, r, "slow")
	inner := u.build
	u.build = func(ctx context.Context, log io.Writer) ([]string, error) {
		timer := time.NewTimer(60 * time.Millisecond)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return inner(ctx, log)
	}
	r.runUnit(context.Background(), u)
	if u.err != nil || !strings.Contains(out.String(), "slow v1: still building (") {
		t.Fatalf("no heartbeat: %v\n%s", u.err, out)
	}
}

func TestAssembleLinksWritesManifestOnceAndPrunes(t *testing.T) {
	r, out := newTestRun(t)
	ctx := context.Background()
	a := (&fakeUnit{key: "a", payload: "a"}).unit(t, r, "alpha")
	b := (&fakeUnit{key: "b", payload: "b"}).unit(t, r, "beta")
	hidden := (&fakeUnit{key: "h", payload: "h"}).unit(t, r, "hidden")
	hidden.entry = noEntry // image sources are not in the bundle
	units := []*unit{a, b, hidden}
	for _, u := range units {
		r.runUnit(ctx, u)
	}
	stale := filepath.Join(r.bundleDir, "bin", "linux-"+r.arch, "alpha-v0", "alpha")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := r.assemble(ctx, units)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 || m.Files[0].Name != "alpha" || m.Files[0].SHA256 != sha(fakeELF(t, r.arch, "a")) {
		t.Fatalf("manifest = %+v", m.Files)
	}
	if _, err := os.Stat(filepath.Dir(stale)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("stale file (and its directory) not pruned")
	}
	src, _ := os.Stat(filepath.Join(a.dir, "out", "alpha"))
	dst, _ := os.Stat(filepath.Join(r.bundleDir, filepath.FromSlash(m.Files[0].Path)))
	if !os.SameFile(src, dst) {
		t.Fatal("bundle file is not a hard link to the build output")
	}
	mpath := filepath.Join(r.bundleDir, ManifestName)
	st1, err := os.Stat(mpath)
	if err != nil {
		t.Fatal(err)
	}

	// Nothing changed: the manifest is not rewritten.
	if _, err := r.assemble(ctx, units); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(mpath)
	if !st2.ModTime().Equal(st1.ModTime()) || !strings.Contains(out.String(), "manifest unchanged") {
		t.Fatalf("manifest rewritten although nothing changed\n%s", out)
	}

	bundle, err := Open(r.bundleDir, WithCacheDir(r.cacheDir))
	if err != nil {
		t.Fatal(err)
	}
	if ps := bundle.Verify(ctx); len(ps) != 0 {
		t.Fatalf("assembled bundle has problems: %v", ps)
	}
}

func TestBuildWithEverythingSkipped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("bundles are built on Linux")
	}
	skip := []string{
		ComponentKubernetes, ComponentEtcd, ComponentContainerd, ComponentRunc, ComponentCNIPlugins,
		ComponentCNIFlannel, ComponentCrictl, ComponentFlannel, ComponentCoreDNS, ComponentMetalLB, ComponentTraefik,
		ComponentMetricsServer, ComponentPause, ComponentEcho, "debs",
	}
	var out bytes.Buffer
	b := &Builder{CacheDir: t.TempDir(), Skip: skip, Progress: &out}
	m, err := b.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir, err := b.BundleDirPath()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 0 || filepath.Base(dir) != "bundle" {
		t.Fatalf("manifest %+v in %s", m, dir)
	}
	if _, err := Open(dir, WithCacheDir("")); err != nil {
		t.Fatalf("empty bundle does not open: %v", err)
	}
	if _, err := b.Tool(context.Background(), "terraform"); err == nil {
		t.Fatal("Tool accepted an unknown tool")
	}
}

func TestUnitsCoverTheBundle(t *testing.T) {
	r, _ := newTestRun(t)
	seen := map[string]bool{}
	for _, u := range r.units(true) {
		if seen[u.dir] {
			t.Errorf("two units share %s", u.dir)
		}
		seen[u.dir] = true
		if u.key == nil || u.build == nil || u.entry == nil {
			t.Errorf("%s %s is incomplete", u.component, u.version)
		}
	}
	for _, dir := range []string{
		"kubernetes-v1.37.2", "etcd-v3.7.3", "containerd-v2.4.2", "runc-v1.5.2", "cni-plugins-v1.9.1",
		"cni-flannel-v0.9.1", "crictl-v1.37.0", "flannel-v0.28.10", "image-coredns-v1.14.6", "image-pause-3.10.2",
		"image-echo-v1.0.0", "image-metallb-controller-v0.15.2", "image-metallb-speaker-v0.15.2",
		"image-metrics-server-v0.9.0", "image-traefik-v3.6.12", "opentofu-v1.12.6", "golangci-lint-v2.15.0", "debs-bookworm-" + DebianArch(r.arch),
	} {
		if !seen[r.unitDir(dir)] {
			t.Errorf("no unit builds %s", dir)
		}
	}
}

func TestVersionsSet(t *testing.T) {
	v := DefaultVersions()
	if err := v.Set("kubernetes", "1.36.3, v1.37.2"); err != nil {
		t.Fatal(err)
	}
	if len(v.Kubernetes) != 2 || v.Kubernetes[0] != "v1.36.3" {
		t.Fatalf("Kubernetes = %v", v.Kubernetes)
	}
	if err := v.Set("traefik", "v3.7.13"); err != nil || v.Traefik != "v3.7.13" {
		t.Fatalf("traefik: %v %s", err, v.Traefik)
	}
	if err := v.Set("metallb-frr-k8s", ""); err != nil || v.MetalLBFRRK8s != "" {
		t.Fatalf("metallb-frr-k8s: %v", err)
	}
	for _, bad := range [][2]string{{"kubernetes", "v2.0.0"}, {"nginx", "v1"}, {"etcd", ""}} {
		if err := v.Set(bad[0], bad[1]); err == nil {
			t.Errorf("Set(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestCapNetBindService(t *testing.T) {
	want := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if got := []byte(capNetBindService()); !bytes.Equal(got, want) {
		t.Fatalf("capability = % x, want % x", got, want)
	}
}

func TestLockDirExcludesASecondBuilder(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("flock is used on Linux")
	}
	dir := t.TempDir()
	unlock, err := lockDir(context.Background(), dir, time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := lockDir(ctx, dir, time.Millisecond, func() { waited = true }); !errors.Is(err, context.DeadlineExceeded) || !waited {
		t.Fatalf("second lock: %v, waited %v", err, waited)
	}
	unlock()
	unlock2, err := lockDir(context.Background(), dir, time.Millisecond, nil)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

// TestRunLaneBoundsJobsAndWaitsForDependencies: with 2 jobs, two independent units build at the same time, a
// third never runs beside them, and a dependent unit starts only after its dependency finished.
func TestRunLaneBoundsJobsAndWaitsForDependencies(t *testing.T) {
	r, _ := newTestRun(t)
	var mu sync.Mutex
	running, most := 0, 0
	var order []string
	bothStarted := make(chan struct{})
	var started sync.WaitGroup
	started.Add(2)
	go func() { started.Wait(); close(bothStarted) }()
	mk := func(name string, deps []*unit, wait bool) *unit {
		f := &fakeUnit{key: name}
		u := f.unit(t, r, name)
		u.deps = deps
		inner := u.build
		u.build = func(ctx context.Context, log io.Writer) ([]string, error) {
			mu.Lock()
			running++
			most = max(most, running)
			order = append(order, "start "+name)
			mu.Unlock()
			if wait {
				started.Done()
				select { // both first units must be running at once
				case <-bothStarted:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			outs, err := inner(ctx, log)
			mu.Lock()
			running--
			order = append(order, "end "+name)
			mu.Unlock()
			return outs, err
		}
		return u
	}
	a := mk("a", nil, true)
	c := mk("c", nil, true)
	b := mk("b", []*unit{a}, false)
	d := mk("d", nil, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r.runLane(ctx, []*unit{a, b, c, d}, 2)
	for _, u := range []*unit{a, b, c, d} {
		if u.err != nil {
			t.Fatalf("%s: %v", u.component, u.err)
		}
	}
	if most != 2 {
		t.Errorf("at most %d units ran at once, want 2; order %v", most, order)
	}
	idx := func(ev string) int { return slices.Index(order, ev) }
	if idx("start b") < idx("end a") {
		t.Errorf("b started before its dependency a finished: %v", order)
	}
}

func TestOptionalComponentsOnlyOnRequestOrWhenBundled(t *testing.T) {
	r, out := newTestRun(t)
	names := func(us []*unit) []string {
		var s []string
		for _, u := range us {
			s = append(s, u.component)
		}
		return s
	}
	fresh := func() []*unit {
		return []*unit{
			(&fakeUnit{key: "k"}).unit(t, r, ComponentEtcd),
			(&fakeUnit{key: "k"}).unit(t, r, ComponentTraefik),
		}
	}

	if got := names(r.selectUnits(fresh(), nil)); !slices.Equal(got, []string{ComponentEtcd}) {
		t.Fatalf("default build selected %v; Traefik is optional", got)
	}
	if !strings.Contains(out.String(), "traefik: not built: optional, only examples use it; build it with `make artifacts-ingress` (or `ksartifacts build --with traefik`)") {
		t.Fatalf("the progress does not say how to add Traefik:\n%s", out)
	}
	if got := names(r.selectUnits(fresh(), []string{ComponentEtcd, ComponentTraefik})); !slices.Equal(got, []string{ComponentEtcd, ComponentTraefik}) {
		t.Fatalf("a bundle that carries Traefik lost it: %v", got)
	}
	r.b.With = []string{ComponentTraefik}
	if got := names(r.selectUnits(fresh(), nil)); !slices.Equal(got, []string{ComponentEtcd, ComponentTraefik}) {
		t.Fatalf("--with traefik selected %v", got)
	}
	r.b.With, r.b.Skip = nil, []string{ComponentTraefik}
	if got := names(r.selectUnits(fresh(), []string{ComponentTraefik})); !slices.Equal(got, []string{ComponentEtcd}) {
		t.Fatalf("--skip traefik kept it: %v", got)
	}

	if err := checkWith([]string{ComponentEtcd}); err == nil || !strings.Contains(err.Error(), "--with etcd: not an optional component (optional: traefik") {
		t.Fatalf("--with etcd: %v", err)
	}
	if err := checkWith([]string{ComponentTraefik}); err != nil {
		t.Fatal(err)
	}
	if got := HowToAdd(ComponentEtcd); got != "build it with `make artifacts`" {
		t.Fatalf("HowToAdd(etcd) = %q", got)
	}
}

func TestBundledComponentsFromTheManifest(t *testing.T) {
	r, _ := newTestRun(t)
	if got := r.bundledComponents(); got != nil {
		t.Fatalf("no bundle yet, got %v", got)
	}
	m := &Manifest{Schema: SchemaVersion, Files: []File{
		{
			Path: ImagePath("linux", r.arch, "traefik", "v3.6.12"), Kind: KindImage, Component: ComponentTraefik, Name: "traefik",
			Version: "v3.6.12", OS: "linux", Arch: r.arch, Size: 1, SHA256: strings.Repeat("a", 64), Image: "docker.io/library/traefik:v3.6.12",
		},
		{
			Path: ImagePath("linux", r.arch, "pause", "3.10.2"), Kind: KindImage, Component: ComponentPause, Name: "pause",
			Version: "3.10.2", OS: "linux", Arch: r.arch, Size: 1, SHA256: strings.Repeat("b", 64), Image: "registry.k8s.io/pause:3.10.2",
		},
	}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(r.bundleDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.bundleDir, ManifestName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := r.bundledComponents(); !slices.Equal(got, []string{ComponentPause, ComponentTraefik}) {
		t.Fatalf("bundled = %v", got)
	}
}
