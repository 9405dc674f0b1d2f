package artifacts

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Component names used in the manifest.
const (
	ComponentKubernetes    = "kubernetes"
	ComponentEtcd          = "etcd"
	ComponentContainerd    = "containerd"
	ComponentRunc          = "runc"
	ComponentCNIPlugins    = "cni-plugins"
	ComponentCNIFlannel    = "cni-flannel"
	ComponentCrictl        = "crictl"
	ComponentFlannel       = "flannel"
	ComponentCoreDNS       = "coredns"
	ComponentMetalLB       = "metallb"
	ComponentTraefik       = "traefik"
	ComponentMetricsServer = "metrics-server"
	ComponentPause         = "pause"
	ComponentEcho          = "echo"
	ComponentDeb           = "deb"
	ComponentOpenTofu      = "opentofu"
	ComponentGolangciLint  = "golangci-lint"
)

// OptionalComponents are built only on request (Builder.With, `ksartifacts build --with`, `make
// artifacts-ingress`) or when the bundle already carries them: no cluster needs them, only examples do. Traefik
// alone costs about 9 of the 61 CPU-minutes of a cold build, the difference between a cold `make artifacts` under
// and over 30 minutes on two cores.
var OptionalComponents = []string{ComponentTraefik}

// IsOptional reports whether component is one of OptionalComponents.
func IsOptional(component string) bool { return slices.Contains(OptionalComponents, component) }

// builderRevision is part of every build key: bump it when a change here must rebuild outputs.
const builderRevision = "1"

// Versions are the versions of everything a bundle carries.
type Versions struct {
	// Kubernetes lists the Kubernetes versions to build (a bundle may carry several, for upgrades).
	Kubernetes []string
	Etcd       string
	Containerd string
	Runc       string
	CNIPlugins string
	// CNIFlannel is the containernetworking/plugins version that still has plugins/meta/flannel (removed in 1.0).
	CNIFlannel string
	Crictl     string
	// Flannel is flanneld (github.com/flannel-io/flannel).
	Flannel string
	CoreDNS string
	MetalLB string
	// MetalLBFRRK8s replaces MetalLB's github.com/metallb/frr-k8s requirement, because the module proxy refuses
	// the versions MetalLB v0.15/v0.16 require; "" keeps MetalLB's own.
	MetalLBFRRK8s string
	Traefik       string
	MetricsServer string
	// Pause is the registry.k8s.io/pause tag the pause image is named after.
	Pause string
	// Echo is the version of kubesmith's echo test server.
	Echo         string
	OpenTofu     string
	GolangciLint string
}

// DefaultVersions are the versions `make artifacts` builds: Kubernetes v1.37.2 with what kubeadm v1.37 expects.
func DefaultVersions() Versions {
	return Versions{
		Kubernetes:    []string{"v1.37.2"},
		Etcd:          "v3.7.3",
		Containerd:    "v2.4.2",
		Runc:          "v1.5.2",
		CNIPlugins:    "v1.9.1",
		CNIFlannel:    "v0.9.1",
		Crictl:        "v1.37.0",
		Flannel:       "v0.28.10",
		CoreDNS:       "v1.14.6",
		MetalLB:       "v0.15.2",
		MetalLBFRRK8s: "v0.0.21",
		Traefik:       "v3.6.12",
		MetricsServer: "v0.9.0",
		Pause:         "3.10.2",
		Echo:          "v1.0.0",
		OpenTofu:      "v1.12.6",
		GolangciLint:  "v2.15.0",
	}
}

// Set changes one version by component name ("etcd", "metallb", "metallb-frr-k8s", ...). For "kubernetes" the
// value is a comma-separated list.
func (v *Versions) Set(component, version string) error {
	if version == "" && component != "metallb-frr-k8s" {
		return fmt.Errorf("artifacts: empty version for %s", component)
	}
	fields := map[string]*string{
		ComponentEtcd: &v.Etcd, ComponentContainerd: &v.Containerd, ComponentRunc: &v.Runc,
		ComponentCNIPlugins: &v.CNIPlugins, ComponentCNIFlannel: &v.CNIFlannel, ComponentCrictl: &v.Crictl,
		ComponentFlannel: &v.Flannel, ComponentCoreDNS: &v.CoreDNS, ComponentMetalLB: &v.MetalLB,
		"metallb-frr-k8s": &v.MetalLBFRRK8s, ComponentTraefik: &v.Traefik, ComponentMetricsServer: &v.MetricsServer,
		ComponentPause: &v.Pause, ComponentEcho: &v.Echo, ComponentOpenTofu: &v.OpenTofu,
		ComponentGolangciLint: &v.GolangciLint,
	}
	if component == ComponentKubernetes {
		v.Kubernetes = nil
		for _, k := range strings.Split(version, ",") {
			k = strings.TrimSpace(k)
			if !strings.HasPrefix(k, "v") {
				k = "v" + k
			}
			if _, err := kubernetesStagingVersion(k); err != nil {
				return err
			}
			v.Kubernetes = append(v.Kubernetes, k)
		}
		return nil
	}
	p, ok := fields[component]
	if !ok {
		return fmt.Errorf("artifacts: unknown component %q", component)
	}
	*p = version
	return nil
}

// DefaultDebs are the Debian packages (with their dependencies) a bundle carries for air-gapped hosts.
func DefaultDebs() []string {
	return []string{"haproxy", "keepalived", "conntrack", "socat", "iptables", "nftables"}
}

// Builder builds a bundle from the Go module proxy and Debian's apt mirror. Every component is built in its own
// directory under CacheDir/build, keyed by its versions and build inputs; a component whose outputs exist with the
// same key is not rebuilt, so a second Build with nothing changed only re-checks and finishes in seconds. Go
// builds use the default GOMODCACHE and GOCACHE.
type Builder struct {
	// CacheDir holds build/ (per component and version) and the hash cache; DefaultCacheDir() when empty.
	CacheDir string
	// BundleDir is where the bundle is assembled; CacheDir/bundle when empty.
	BundleDir string
	// Versions to build; DefaultVersions() when zero.
	Versions Versions
	// Tools adds the host tools (OpenTofu, golangci-lint) to the bundle as kind "tool".
	Tools bool
	// Skip leaves components out ("traefik", "deb", ...), also optional ones the bundle carries.
	Skip []string
	// With adds optional components (OptionalComponents). One the bundle already carries is kept without
	// being asked for again, so that a plain `make artifacts` after `make artifacts-ingress` does not drop it.
	With []string
	// Debs are the top-level Debian packages; DefaultDebs() when nil.
	Debs []string
	// CABundle is the CA certificate file copied into images; /etc/ssl/certs/ca-certificates.crt when empty.
	CABundle string
	// Progress receives "[mm:ss] component version: ..." lines; nothing is printed when nil.
	Progress io.Writer
	// Heartbeat is how often a long build prints that it is still running; 30s when zero.
	Heartbeat time.Duration
	// Jobs is how many components build at once; 2 when zero. Each `go build` already compiles packages in
	// parallel, but its links, `go mod tidy` and module downloads leave cores idle that a second build fills.
	Jobs int
}

// run is the state of one Build or Tool call.
type run struct {
	b         *Builder
	cacheDir  string
	bundleDir string
	versions  Versions
	arch      string
	out       *progress
	hashes    *hashCache
	heartbeat time.Duration

	goVersionOnce sync.Once
	goVersion     string
	goVersionErr  error

	modMu   sync.Mutex
	modInfo map[string]moduleInfo
}

func (b *Builder) newRun() (*run, error) {
	cache := b.CacheDir
	if cache == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		cache = d
	}
	cache, err := filepath.Abs(cache)
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	bundle := b.BundleDir
	if bundle == "" {
		bundle = filepath.Join(cache, "bundle")
	}
	if bundle, err = filepath.Abs(bundle); err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	v := b.Versions
	if len(v.Kubernetes) == 0 && v.Etcd == "" {
		v = DefaultVersions()
	}
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("artifacts: bundles are built on Linux (this is %s)", runtime.GOOS)
	}
	hb := b.Heartbeat
	if hb == 0 {
		hb = 30 * time.Second
	}
	w := b.Progress
	if w == nil {
		w = io.Discard
	}
	if err := os.MkdirAll(cache, 0o755); err != nil { // the working directory of the go, gcc and apt commands
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	return &run{
		b: b, cacheDir: cache, bundleDir: bundle, versions: v, arch: runtime.GOARCH, heartbeat: hb,
		out: &progress{w: w, start: time.Now()}, hashes: newHashCache(filepath.Join(cache, HashCacheName), nil),
		modInfo: map[string]moduleInfo{},
	}, nil
}

// BundleDirPath returns the directory Build assembles the bundle in.
func (b *Builder) BundleDirPath() (string, error) {
	r, err := b.newRun()
	if err != nil {
		return "", err
	}
	return r.bundleDir, nil
}

// Build builds every component that is not up to date, assembles the bundle (hard links to the build outputs
// where possible) and writes manifest.json last, atomically, only if it changed. Files of earlier builds that the
// new manifest does not list are removed from the bundle's bin/, images/ and debs/. If any component fails, the
// others are still built, the manifest is left as it was, and the error names every failure.
func (b *Builder) Build(ctx context.Context) (*Manifest, error) {
	r, err := b.newRun()
	if err != nil {
		return nil, err
	}
	if err := checkWith(b.With); err != nil {
		return nil, err
	}
	units := r.selectUnits(r.units(b.Tools), r.bundledComponents())
	r.out.line("bundle", "", "%d steps, build directories in %s, bundle in %s", len(units), filepath.Join(r.cacheDir, "build"), r.bundleDir)

	var debs *unit
	var lane []*unit
	for _, u := range units {
		if u.concurrent {
			debs = u
		} else {
			lane = append(lane, u)
		}
	}
	var wg sync.WaitGroup
	if debs != nil {
		wg.Go(func() { r.runUnit(ctx, debs) })
	}
	r.runLane(ctx, lane, cmp.Or(b.Jobs, 2))
	wg.Wait()

	var errs []error
	for _, u := range units {
		if u.err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", u.name(), u.version, u.err))
		}
	}
	if len(errs) > 0 {
		r.out.line("bundle", "", "not updated: %d component(s) failed", len(errs))
		return nil, fmt.Errorf("artifacts: build failed:\n%w", errors.Join(errs...))
	}
	return r.assemble(ctx, units)
}

// runLane builds units, at most jobs at a time, each once its dependencies in units have finished. Units
// start in list order, so the longest builds (Kubernetes first) should come first.
func (r *run) runLane(ctx context.Context, units []*unit, jobs int) {
	pending := slices.Clone(units)
	finished := make(map[*unit]bool, len(units))
	ready := func(u *unit) bool {
		for _, d := range u.deps {
			if slices.Contains(units, d) && !finished[d] {
				return false
			}
		}
		return true
	}
	done := make(chan *unit)
	running := 0
	for len(pending) > 0 || running > 0 {
		for running < jobs {
			i := slices.IndexFunc(pending, ready)
			if i < 0 {
				break
			}
			u := pending[i]
			pending = slices.Delete(pending, i, i+1)
			running++
			go func() {
				r.runUnit(ctx, u)
				done <- u
			}()
		}
		if running == 0 { // only units whose dependencies can never finish are left (a dependency cycle)
			for _, u := range pending {
				u.err = errors.New("dependency cycle")
			}
			return
		}
		finished[<-done] = true
		running--
	}
}

// Tool builds (or finds cached) a host tool, "tofu" or "golangci-lint", and returns the path of its binary.
func (b *Builder) Tool(ctx context.Context, name string) (string, error) {
	r, err := b.newRun()
	if err != nil {
		return "", err
	}
	for _, u := range r.toolUnits() {
		for _, o := range u.names {
			if o == name {
				r.runUnit(ctx, u)
				if u.err != nil {
					return "", fmt.Errorf("artifacts: %s %s: %w", u.component, u.version, u.err)
				}
				return filepath.Join(u.dir, "out", name), nil
			}
		}
	}
	return "", fmt.Errorf("artifacts: unknown tool %q (known: tofu, golangci-lint)", name)
}

// checkWith rejects a --with that names no optional component.
func checkWith(with []string) error {
	for _, c := range with {
		if !IsOptional(c) {
			return fmt.Errorf("artifacts: --with %s: not an optional component (optional: %s; the others are always built)",
				c, strings.Join(OptionalComponents, ", "))
		}
	}
	return nil
}

// bundledComponents are the components the bundle's current manifest lists; none when it has no readable
// manifest yet.
func (r *run) bundledComponents() []string {
	data, err := os.ReadFile(filepath.Join(r.bundleDir, ManifestName))
	if err != nil {
		return nil
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil
	}
	var out []string
	for _, f := range m.Files {
		if !slices.Contains(out, f.Component) {
			out = append(out, f.Component)
		}
	}
	return out
}

// selectUnits drops the skipped units, and the optional ones that were neither asked for nor are in the bundle
// (bundled), and says which optional components it left out and how to add them.
func (r *run) selectUnits(units []*unit, bundled []string) []*unit {
	var left []string
	kept := slices.DeleteFunc(units, func(u *unit) bool {
		if r.skipped(u.component) {
			return true
		}
		if !IsOptional(u.component) || slices.Contains(r.b.With, u.component) || slices.Contains(bundled, u.component) {
			return false
		}
		if !slices.Contains(left, u.component) {
			left = append(left, u.component)
		}
		return true
	})
	for _, c := range left {
		r.out.line(c, "", "not built: optional, only examples use it; %s", HowToAdd(c))
	}
	return kept
}

// makeTargets are the make targets of this repository that build an optional component into the bundle.
var makeTargets = map[string]string{ComponentTraefik: "artifacts-ingress"}

// HowToAdd tells how to build a component into the bundle, for messages about a missing one: for Traefik, "build
// it with `make artifacts-ingress` (or `ksartifacts build --with traefik`)".
func HowToAdd(component string) string {
	if !IsOptional(component) {
		return "build it with `make artifacts`"
	}
	if t, ok := makeTargets[component]; ok {
		return "build it with `make " + t + "` (or `ksartifacts build --with " + component + "`)"
	}
	return "build it with `ksartifacts build --with " + component + "`"
}

func (r *run) skipped(component string) bool {
	for _, s := range r.b.Skip {
		if s == component || (s == "debs" && component == ComponentDeb) {
			return true
		}
	}
	return false
}

// unit is one buildable thing with its own build directory and stamp.
type unit struct {
	component, version string
	label              string // progress name; the component when empty
	dir                string
	concurrent         bool     // runs beside the sequential lane (downloads)
	names              []string // expected outputs in dir/out ("" when only known after the build)
	deps               []*unit
	key                func(ctx context.Context) (string, error)
	build              func(ctx context.Context, log io.Writer) ([]string, error)
	entry              func(output string) (File, bool) // bundle entry of an output; false: not in the bundle

	outputs []string // after a successful run
	err     error
}

// name is how progress lines call the unit.
func (u *unit) name() string {
	if u.label != "" {
		return u.label
	}
	return u.component
}

// stamp records the key a build directory was built with and its outputs.
type stamp struct {
	Key     string      `json:"key"`
	Outputs []stampFile `json:"outputs"`
}

type stampFile struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
}

const stampName = "stamp.json"

// cachedOutputs returns the outputs recorded in the stamp when the key matches and every output is unchanged.
func cachedOutputs(dir, key string) ([]string, bool) {
	data, err := os.ReadFile(filepath.Join(dir, stampName))
	if err != nil {
		return nil, false
	}
	var s stamp
	if json.Unmarshal(data, &s) != nil || s.Key != key || len(s.Outputs) == 0 {
		return nil, false
	}
	var names []string
	for _, o := range s.Outputs {
		st, err := os.Stat(filepath.Join(dir, "out", o.Name))
		if err != nil || !st.Mode().IsRegular() || st.Size() != o.Size || st.ModTime().UnixNano() != o.MtimeNS {
			return nil, false
		}
		names = append(names, o.Name)
	}
	return names, true
}

func writeStamp(dir, key string, outputs []string) error {
	s := stamp{Key: key}
	for _, o := range outputs {
		st, err := os.Stat(filepath.Join(dir, "out", o))
		if err != nil {
			return fmt.Errorf("output %s: %w", o, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("output %s is not a regular file", o)
		}
		s.Outputs = append(s.Outputs, stampFile{Name: o, Size: st.Size(), MtimeNS: st.ModTime().UnixNano()})
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode stamp: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, stampName), append(data, '\n'), 0o644)
}

// runUnit builds u unless its stamp matches, printing progress. The outcome is left in u.
func (r *run) runUnit(ctx context.Context, u *unit) {
	for _, d := range u.deps {
		if d.err != nil || d.outputs == nil {
			u.err = fmt.Errorf("not built: %s %s failed", d.name(), d.version)
			r.out.line(u.name(), u.version, "skipped, %s %s failed", d.name(), d.version)
			return
		}
	}
	unlock, err := lockDir(ctx, u.dir, time.Second, func() {
		r.out.line(u.name(), u.version, "waiting for another ksartifacts that builds it")
	})
	if err != nil {
		u.err = err
		return
	}
	defer unlock()
	key, err := u.key(ctx)
	if err != nil {
		u.err = err
		r.out.line(u.name(), u.version, "FAILED: %v", err)
		return
	}
	if outs, ok := cachedOutputs(u.dir, key); ok {
		u.outputs = outs
		r.out.line(u.name(), u.version, "cached")
		return
	}
	r.out.line(u.name(), u.version, "building")
	started := time.Now()
	outs, err := r.buildUnit(ctx, u, key)
	if err != nil {
		u.err = err
		r.out.line(u.name(), u.version, "FAILED after %s: %v", since(started), firstLine(err))
		return
	}
	u.outputs = outs
	r.out.line(u.name(), u.version, "done in %s", since(started))
}

func (r *run) buildUnit(ctx context.Context, u *unit, key string) ([]string, error) {
	if err := os.MkdirAll(filepath.Join(u.dir, "out"), 0o755); err != nil {
		return nil, fmt.Errorf("build dir: %w", err)
	}
	if err := os.Remove(filepath.Join(u.dir, stampName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("build dir: %w", err)
	}
	logPath := filepath.Join(u.dir, "build.log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("build log: %w", err)
	}
	defer func() { _ = log.Close() }()
	stop := r.heartbeatFor(ctx, u)
	outs, err := u.build(ctx, log)
	stop()
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, logTail(logPath, 25))
	}
	for _, n := range u.names {
		if n != "" && !slices.Contains(outs, n) {
			return nil, fmt.Errorf("build did not produce %s (log: %s)", n, logPath)
		}
	}
	if err := writeStamp(u.dir, key, outs); err != nil {
		return nil, err
	}
	return outs, nil
}

// heartbeatFor prints "still building" lines until the returned function is called.
func (r *run) heartbeatFor(ctx context.Context, u *unit) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	started := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(r.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				r.out.line(u.name(), u.version, "still building (%s)", since(started))
			}
		}
	}()
	return func() { close(done); <-finished }
}

func since(t time.Time) string {
	d := time.Since(t)
	if d < 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// logTail returns the last n lines of a log file, indented, with its path.
func logTail(p string, n int) string {
	data, err := os.ReadFile(p)
	if err != nil {
		return "(no build log)"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("last lines of %s:\n    %s", p, strings.Join(lines, "\n    "))
}

// progress prints "[mm:ss] component version: message" lines; safe for concurrent use.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *progress) line(component, version, format string, args ...any) {
	el := time.Since(p.start)
	p.mu.Lock()
	defer p.mu.Unlock()
	name := component
	if version != "" {
		name += " " + version
	}
	_, _ = fmt.Fprintf(p.w, "[%02d:%02d] %s: %s\n", int(el.Minutes()), int(el.Seconds())%60, name, fmt.Sprintf(format, args...))
}

// keyOf hashes build inputs.
func keyOf(v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("build key: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// ---------------------------------------------------------------- commands

// env is the environment of every build command: GOMODCACHE and GOCACHE are left at their defaults (shared with
// other builds on the machine), the toolchain is the local one, VCS stamping is off.
func (r *run) env(cgo bool, extra ...string) []string {
	drop := []string{"GOFLAGS", "CGO_ENABLED", "GOAMD64", "GOOS", "GOARCH", "GOBIN", "GOTOOLCHAIN", "GOWORK"}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, k) {
			env = append(env, kv)
		}
	}
	c := "0"
	if cgo {
		c = "1"
	}
	env = append(env, "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "CGO_ENABLED="+c, "GOOS=linux",
		"GOARCH="+r.arch, "GOWORK=off")
	if r.arch == "amd64" {
		env = append(env, "GOAMD64=v1")
	}
	return append(env, extra...)
}

// command runs a command with its output going to log.
func command(ctx context.Context, log io.Writer, dir string, env []string, name string, args ...string) error {
	_, _ = fmt.Fprintf(log, "$ cd %s && %s %s\n", dir, name, strings.Join(args, " "))
	c := exec.CommandContext(ctx, name, args...)
	c.Dir, c.Env, c.Stdout, c.Stderr = dir, env, log, log
	killGroupOnCancel(c)
	c.WaitDelay = 10 * time.Second
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, firstArg(args), err)
	}
	return nil
}

// output runs a command and returns its standard output; standard error is part of the error.
func output(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, name, args...)
	c.Dir, c.Env, c.Stdout, c.Stderr = dir, env, &stdout, &stderr
	killGroupOnCancel(c)
	c.WaitDelay = 10 * time.Second
	if err := c.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// goVersionOf returns `go env GOVERSION`, once per run.
func (r *run) goVersionOf(ctx context.Context) (string, error) {
	r.goVersionOnce.Do(func() {
		out, err := output(ctx, r.cacheDir, r.env(false), "go", "env", "GOVERSION")
		r.goVersion, r.goVersionErr = strings.TrimSpace(string(out)), err
	})
	return r.goVersion, r.goVersionErr
}

// moduleInfo is what `go mod download -json` reports, plus the version's publication time.
type moduleInfo struct {
	Path    string
	Version string
	Info    string
	GoMod   string
	Dir     string
	Error   string
	Time    string `json:"-"`
}

// module downloads module@version through the module proxy (a no-op when it is in GOMODCACHE) and returns where
// its files are.
func (r *run) module(ctx context.Context, mod, version string) (moduleInfo, error) {
	id := mod + "@" + version
	r.modMu.Lock()
	mi, ok := r.modInfo[id]
	r.modMu.Unlock()
	if ok {
		return mi, nil
	}
	if err := os.MkdirAll(r.cacheDir, 0o755); err != nil {
		return mi, fmt.Errorf("artifacts: %w", err)
	}
	out, err := output(ctx, r.cacheDir, r.env(false), "go", "mod", "download", "-json", id)
	if jerr := json.Unmarshal(out, &mi); jerr != nil {
		if err != nil {
			return mi, fmt.Errorf("download %s: %w", id, err)
		}
		return mi, fmt.Errorf("download %s: %w", id, jerr)
	}
	if mi.Error != "" {
		return mi, fmt.Errorf("download %s: %s", id, mi.Error)
	}
	if err != nil {
		return mi, fmt.Errorf("download %s: %w", id, err)
	}
	info, err := os.ReadFile(mi.Info)
	if err != nil {
		return mi, fmt.Errorf("download %s: %w", id, err)
	}
	var t struct{ Time time.Time }
	if err := json.Unmarshal(info, &t); err != nil {
		return mi, fmt.Errorf("download %s: info: %w", id, err)
	}
	mi.Time = t.Time.UTC().Format(time.RFC3339Nano)
	r.modMu.Lock()
	r.modInfo[id] = mi
	r.modMu.Unlock()
	return mi, nil
}

// ---------------------------------------------------------------- bundle assembly

// assemble links every output into the bundle, hashes them (through the (size, mtime) cache), writes the manifest
// if it changed and prunes files of earlier builds.
func (r *run) assemble(ctx context.Context, units []*unit) (*Manifest, error) {
	unlock, err := lockDir(ctx, r.bundleDir, time.Second, func() {
		r.out.line("bundle", "", "waiting for another ksartifacts that assembles %s", r.bundleDir)
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	defer unlock()
	m := &Manifest{Schema: SchemaVersion, Files: []File{}}
	for _, u := range units {
		for _, o := range u.outputs {
			f, ok := u.entry(o)
			if !ok {
				continue
			}
			src := filepath.Join(u.dir, "out", o)
			dst := filepath.Join(r.bundleDir, filepath.FromSlash(f.Path))
			if err := linkOrCopy(src, dst); err != nil {
				return nil, fmt.Errorf("artifacts: bundle %s: %w", f.Path, err)
			}
			sum, size, err := r.hashes.sum(ctx, dst)
			if err != nil {
				return nil, err
			}
			f.Size, f.SHA256 = size, sum
			m.Files = append(m.Files, f)
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	mpath := filepath.Join(r.bundleDir, ManifestName)
	var total int64
	for _, f := range m.Files {
		total += f.Size
	}
	if old, err := os.ReadFile(mpath); err == nil && bytes.Equal(old, data) {
		r.out.line("bundle", "", "%d files, %d MB, manifest unchanged: %s", len(m.Files), total>>20, r.bundleDir)
	} else {
		if err := writeFileAtomic(mpath, data, 0o644); err != nil {
			return nil, err
		}
		r.out.line("bundle", "", "%d files, %d MB, manifest written: %s", len(m.Files), total>>20, mpath)
	}
	removed, err := pruneBundle(r.bundleDir, m)
	if err != nil {
		return nil, err
	}
	if removed > 0 {
		r.out.line("bundle", "", "removed %d file(s) the manifest no longer lists", removed)
	}
	return m, nil
}

// linkOrCopy makes dst the same file as src: a hard link, or a copy with the same mtime across file systems.
// Nothing is written when dst already is that file.
func linkOrCopy(src, dst string) error {
	si, err := os.Stat(src)
	if err != nil {
		return err
	}
	if di, err := os.Lstat(dst); err == nil {
		if os.SameFile(si, di) || (di.Mode().IsRegular() && di.Size() == si.Size() && di.ModTime().Equal(si.ModTime())) {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".tmp-link"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Link(src, tmp); err != nil {
		if err := copyFile(src, tmp, si); err != nil {
			_ = os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

func copyFile(src, dst string, si fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, si.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, si.ModTime(), si.ModTime())
}

// pruneBundle removes regular files under bin/, images/ and debs/ that the manifest does not list, and then empty
// directories there.
func pruneBundle(dir string, m *Manifest) (int, error) {
	keep := map[string]bool{}
	for _, f := range m.Files {
		keep[f.Path] = true
	}
	removed := 0
	for _, top := range []string{"bin", "images", "debs"} {
		root := filepath.Join(dir, top)
		var dirs []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			rel, rerr := filepath.Rel(dir, p)
			if rerr != nil {
				return rerr
			}
			switch {
			case d.IsDir():
				dirs = append(dirs, p)
			case d.Type().IsRegular() && !keep[filepath.ToSlash(rel)]:
				if err := os.Remove(p); err != nil {
					return err
				}
				removed++
			}
			return nil
		})
		if err != nil {
			return removed, fmt.Errorf("artifacts: prune bundle: %w", err)
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i]) // fails, harmlessly, unless empty
		}
	}
	return removed, nil
}

// binaryEntry maps an output name to its manifest entry as a binary or tool.
func binaryEntry(component, version, goarch, kind string) func(string) (File, bool) {
	return func(name string) (File, bool) {
		return File{
			Path: BinaryPath("linux", goarch, component, version, name), Component: component, Name: name,
			Version: version, OS: "linux", Arch: goarch, Kind: kind,
		}, true
	}
}

func noEntry(string) (File, bool) { return File{}, false }

// unitDir is the build directory of a component version.
func (r *run) unitDir(name string) string {
	return filepath.Join(r.cacheDir, "build", name)
}
