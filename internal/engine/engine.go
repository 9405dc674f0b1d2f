package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/machine"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
)

// Options tune an Engine. The zero value is what the provider uses.
type Options struct {
	// Dial connects to a host; node.Dial by default. Tests replace it with a fake.
	Dial func(ctx context.Context, cfg node.Config) (node.Runner, error)
	// Now is the clock used for certificates; time.Now by default.
	Now func() time.Time
	// Parallelism bounds how many hosts are worked on at once; 8 by default.
	Parallelism int
	// StartGrace is phase.Cluster.StartGrace: how long a unit whose start failed may take to come up through
	// systemd's restarts; 2 minutes when zero (tests shorten it).
	StartGrace time.Duration
	// LibvirtURI is where libvirt machines are created; qemu:///system when empty.
	LibvirtURI string
	// NewLibvirt builds the driver of libvirt machines; machine.NewLibvirt by default. Tests pass a fake.
	NewLibvirt func(machine.LibvirtOptions) (machine.Driver, error)
}

// Engine implements API against real hosts.
type Engine struct {
	opts  Options
	hosts *node.HostMutex
}

var _ API = (*Engine)(nil)

// New returns an Engine.
func New(opts Options) *Engine {
	if opts.Dial == nil {
		opts.Dial = node.Dial
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = 8
	}
	if opts.NewLibvirt == nil {
		opts.NewLibvirt = machine.NewLibvirt
	}
	return &Engine{opts: opts, hosts: &node.HostMutex{}}
}

// DefaultCacheDir is ${XDG_CACHE_HOME:-~/.cache}/kubesmith.
func DefaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "kubesmith")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "kubesmith")
	}
	return filepath.Join(home, ".cache", "kubesmith")
}

// DefaultBundleDir is where `make artifacts` puts the bundle.
func DefaultBundleDir() string { return filepath.Join(DefaultCacheDir(), "bundle") }

// openBundle opens the artifact source; it reads only the manifest.
func openBundle(a Artifacts) (*artifacts.Bundle, error) {
	cache := a.CacheDir
	if cache == "" {
		cache = filepath.Join(DefaultCacheDir(), "downloads")
	}
	if a.MirrorURL != "" {
		b, err := artifacts.OpenMirror(a.MirrorURL, cache, &http.Client{Timeout: 30 * time.Minute})
		if err != nil {
			return nil, fmt.Errorf("artifact mirror %s: %w", a.MirrorURL, err)
		}
		return b, nil
	}
	dir := a.BundleDir
	if dir == "" {
		dir = DefaultBundleDir()
	}
	dir = expandHome(dir)
	b, err := artifacts.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("artifact bundle %s (build it with `make artifacts`): %w", dir, err)
	}
	return b, nil
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}

// OptionalAddons lists the optional built-in add-ons a cluster spec may name.
func OptionalAddons() []string { return phase.OptionalAddons() }

// DefaultAddons are the optional add-ons a cluster gets when the spec names none: MetalLB, so that
// kubesmith_loadbalancer's service pools work, and metrics-server, so that `kubectl top` works.
func DefaultAddons() []string { return []string{phase.AddonMetalLB, phase.AddonMetricsServer} }

// withDefaults fills the defaults the provider documents.
func withDefaults(s ClusterSpec) ClusterSpec {
	if s.APIPort == 0 {
		s.APIPort = 6443
	}
	if s.PodCIDR == "" {
		s.PodCIDR = "10.244.0.0/16"
	}
	if s.ServiceCIDR == "" {
		s.ServiceCIDR = "10.96.0.0/12"
	}
	if s.KubeProxyMode == "" {
		s.KubeProxyMode = "iptables"
	}
	if s.Addons == nil {
		s.Addons = DefaultAddons()
	} else {
		// Sorted, and still non-nil when empty: an empty list means "no optional add-ons", nil "the defaults".
		s.Addons = append(make([]string, 0, len(s.Addons)), s.Addons...)
		slices.Sort(s.Addons)
	}
	if s.Libvirt != nil {
		s.ControlPlane = expandMachines(s.ControlPlane, s.Name, masterRole, s.Libvirt)
		if SlowMachines(s.Libvirt) {
			s.Tuning = tuningOr(s.Tuning, TCGTuning())
		}
	}
	t := &s.Tuning
	if t.EtcdHeartbeatMS == 0 {
		t.EtcdHeartbeatMS = 100
	}
	if t.EtcdElectionMS == 0 {
		t.EtcdElectionMS = 1000
	}
	if t.LeaderElectionLease == 0 {
		t.LeaderElectionLease = 15 * time.Second
	}
	if t.RenewDeadline == 0 {
		t.RenewDeadline = 10 * time.Second
	}
	if t.RetryPeriod == 0 {
		t.RetryPeriod = 2 * time.Second
	}
	if t.APICheckTimeout == 0 {
		t.APICheckTimeout = 2 * time.Second
	}
	if s.SSH.ConnectTimeout == 0 {
		s.SSH.ConnectTimeout = 5 * time.Minute
	}
	return s
}

// ValidateCluster implements API.
func (e *Engine) ValidateCluster(_ context.Context, spec ClusterSpec) []FieldError {
	spec = withDefaults(spec)
	b, err := openBundle(spec.Artifacts)
	if err != nil {
		errs := ValidateClusterSpec(spec, nil)
		return append(errs, FieldError{Path: "kubernetes_version", Summary: "Artifact bundle unavailable", Detail: err.Error()})
	}
	errs := ValidateClusterSpec(spec, b.Manifest().Versions("kubernetes"))
	return append(errs, manifestImageWarnings(spec.Manifests, b.Manifest())...)
}

// nodeConfig builds the SSH settings for one host.
func nodeConfig(s SSH, h Host) node.Config {
	addr := h.Address
	if h.SSHAddress != "" {
		addr = h.SSHAddress
	}
	cfg := node.Config{
		Name: h.Name, Address: addr, Port: s.Port, User: s.User,
		HostPublicKey: h.HostPublicKey, KnownHostsPath: expandHome(s.KnownHostsPath),
		PrivateKeyPath: expandHome(s.PrivateKeyPath), UseAgent: s.UseAgent,
		RetryFor: s.ConnectTimeout,
	}
	if s.PrivateKey != "" {
		cfg.PrivateKeyPEM = []byte(s.PrivateKey)
	}
	if h.Port != 0 {
		cfg.Port = h.Port
	}
	if h.User != "" {
		cfg.User = h.User
	}
	if s.Bastion != nil {
		b := nodeConfig(SSH{
			User: s.User, Port: s.Port, PrivateKeyPath: s.PrivateKeyPath, PrivateKey: s.PrivateKey,
			UseAgent: s.UseAgent, KnownHostsPath: s.KnownHostsPath, ConnectTimeout: s.ConnectTimeout,
		}, *s.Bastion)
		cfg.Bastion = &b
	}
	return cfg
}

// session is a set of connected, locked hosts.
type session struct {
	targets []*phase.Target
	release []func()
}

func (s *session) close() {
	for i := len(s.release) - 1; i >= 0; i-- {
		s.release[i]()
	}
}

// connect dials every host in parallel (bounded) and takes the in-process per-host mutex. The caller must
// call close.
func (e *Engine) connect(ctx context.Context, s SSH, hosts []Host, role phase.Role) (*session, error) {
	ses := &session{targets: make([]*phase.Target, len(hosts))}
	// Take the process-wide host mutexes in a stable order so that concurrent resources cannot deadlock.
	order := make([]int, len(hosts))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return hosts[order[a]].Address < hosts[order[b]].Address })
	for _, i := range order {
		unlock, err := e.hosts.LockContext(ctx, hosts[i].Address)
		if err != nil {
			ses.close()
			return nil, fmt.Errorf("waiting for another operation on %s: %w", hosts[i].Name, err)
		}
		ses.release = append(ses.release, unlock)
	}
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, e.opts.Parallelism)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := e.opts.Dial(ctx, nodeConfig(s, h))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("connecting to %s (%s): %w", h.Name, h.Address, err))
				return
			}
			ses.targets[i] = &phase.Target{Name: h.Name, Address: h.Address, Role: role, Runner: r}
			ses.release = append(ses.release, func() { _ = r.Close() })
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		ses.close()
		return nil, errors.Join(errs...)
	}
	return ses, nil
}

// forEach runs fn on every target in parallel (bounded) and joins the errors.
func (e *Engine) forEach(ctx context.Context, targets []*phase.Target, fn func(ctx context.Context, t *phase.Target) error) error {
	return phase.Parallel(ctx, e.opts.Parallelism, targets, fn)
}

// withHostLocks holds the on-host lock file of every target (in a stable order) while fn runs.
func withHostLocks(ctx context.Context, targets []*phase.Target, fn func() error) error {
	sorted := append([]*phase.Target(nil), targets...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Address < sorted[j].Address })
	var lock func(i int) error
	lock = func(i int) error {
		if i == len(sorted) {
			return fn()
		}
		return node.WithHostLock(ctx, sorted[i].Runner, phase.LockName, func() error { return lock(i + 1) })
	}
	return lock(0)
}

func newUID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating the cluster UID: %w", err)
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func progressAdapter(p Progress) phase.Progress {
	return func(name, host, msg string, d time.Duration, err error) {
		if p != nil {
			p(Event{Phase: name, Host: host, Message: msg, Duration: d, Done: true, Err: err})
		}
	}
}
