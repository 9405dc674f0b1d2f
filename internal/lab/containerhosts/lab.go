package containerhosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Network layout of the lab. Nodes take addresses from NodeRange; VIPRange is never given to a node.
const (
	// NetworkName is the --internal docker network all nodes are attached to.
	NetworkName = "kubesmith-hosts"
	// BridgeName is the host-side Linux bridge of NetworkName; the host reaches nodes through it.
	BridgeName = "ksbr0"
	// Subnet is the IPv4 subnet of NetworkName.
	Subnet = "172.30.0.0/24"
	// Gateway is the host's address on BridgeName.
	Gateway = "172.30.0.1"
	// NodeRange is the docker --ip-range: node addresses are .2–.127 (default ones start at FirstNodeHost).
	NodeRange = "172.30.0.0/25"
	// VIPRange (.128–.254) is never handed to nodes: use it for VIPs and LoadBalancer address pools.
	VIPRange = "172.30.0.128/25"
	// FirstNodeHost is the host part of the first default node address (172.30.0.11).
	FirstNodeHost = 11
	// ImageRepository is the repository of the node image; the tag is "bookworm-" + a hash of the assets.
	ImageRepository = "kubesmith/host"
	// SSHUser is the login user of every node.
	SSHUser = "root"
)

// Docker labels put on everything the lab creates.
const (
	labelLab     = "io.kubesmith.lab"
	labelPrefix  = "io.kubesmith.lab.prefix"
	labelNode    = "io.kubesmith.lab.node"
	labelAddress = "io.kubesmith.lab.address"
	labelHostKey = "io.kubesmith.lab.hostkey"
	labelIndex   = "io.kubesmith.lab.index"
)

// Config says where the lab keeps its files. The zero value is valid.
type Config struct {
	// StateDir holds what is kept across runs and clones: the image tarballs, the .deb caches, the docker
	// data root (holding only the node image once torn down), logs and the SSH client key.
	// Default: ${XDG_CACHE_HOME:-$HOME/.cache}/kubesmith/lab/containers.
	StateDir string
	// RunDir holds runtime state: sockets, pidfiles, the exec roots. Default: /run/kubesmith-lab.
	RunDir string
	// Mirror is the Debian mirror for the node image. Default: the host's apt mirror
	// (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list), else http://deb.debian.org/debian.
	Mirror string
	// Progress receives human-readable progress lines with the elapsed time. Nil discards them.
	Progress io.Writer
}

// Lab is a handle on the container-host lab of this machine. Its methods are safe for concurrent use.
type Lab struct {
	cfg   Config
	paths paths
}

// paths are every file and directory the lab uses.
type paths struct {
	state, run string

	images, debCache, aptCache, build, logs   string
	dataRoot, containerdRoot, cliConfig       string
	daemonJSON, capfix, clientKey, knownHosts string

	dockerSock, dockerPid, execRoot                string
	containerdState, containerdSock, containerdPid string
	containerdConfig, baseline                     string
}

func newPaths(state, run string) paths {
	return paths{
		state:          state,
		run:            run,
		images:         filepath.Join(state, "images"),
		debCache:       filepath.Join(state, "debcache"),
		aptCache:       filepath.Join(state, "aptcache"),
		build:          filepath.Join(state, "build"),
		logs:           filepath.Join(state, "logs"),
		dataRoot:       filepath.Join(state, "docker-data"),
		containerdRoot: filepath.Join(state, "containerd"),
		cliConfig:      filepath.Join(state, "docker-cli"),
		daemonJSON:     filepath.Join(state, "daemon.json"),
		capfix:         filepath.Join(state, "bin", "runc-capfix"),
		clientKey:      filepath.Join(state, "id_ed25519"),
		knownHosts:     filepath.Join(state, "known_hosts"),

		dockerSock:       filepath.Join(run, "docker.sock"),
		dockerPid:        filepath.Join(run, "dockerd.pid"),
		execRoot:         filepath.Join(run, "docker"),
		containerdState:  filepath.Join(run, "containerd"),
		containerdSock:   filepath.Join(run, "containerd", "containerd.sock"),
		containerdPid:    filepath.Join(run, "containerd.pid"),
		containerdConfig: filepath.Join(run, "containerd.toml"),
		baseline:         filepath.Join(run, "host-baseline.json"),
	}
}

// DefaultStateDir is ${XDG_CACHE_HOME:-$HOME/.cache}/kubesmith/lab/containers.
func DefaultStateDir() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cache dir: %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "kubesmith", "lab", "containers"), nil
}

// DefaultRunDir is where runtime state lives unless Config.RunDir says otherwise.
const DefaultRunDir = "/run/kubesmith-lab"

// New returns a Lab for cfg, filling in defaults. It checks that it runs as root and creates nothing yet.
func New(cfg Config) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("container hosts need root (dockerd, debootstrap, iptables)")
	}
	if cfg.StateDir == "" {
		d, err := DefaultStateDir()
		if err != nil {
			return nil, err
		}
		cfg.StateDir = d
	}
	if cfg.RunDir == "" {
		cfg.RunDir = DefaultRunDir
	}
	var err error
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if cfg.RunDir, err = filepath.Abs(cfg.RunDir); err != nil {
		return nil, fmt.Errorf("run dir: %w", err)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	return &Lab{cfg: cfg, paths: newPaths(cfg.StateDir, cfg.RunDir)}, nil
}

// StateDir is the directory of kept state (see Config.StateDir).
func (l *Lab) StateDir() string { return l.paths.state }

// ClientKeyPath is the private key (OpenSSH format, ed25519) that logs in as root on every node.
// It is created by Up when missing and kept across runs.
func (l *Lab) ClientKeyPath() string { return l.paths.clientKey }

// KnownHostsPath is an OpenSSH known_hosts file with the pinned key of every current node, rewritten by Up
// and Down.
func (l *Lab) KnownHostsPath() string { return l.paths.knownHosts }

// DockerHost is the -H address of the lab's own dockerd, for ad-hoc `docker -H ...` inspection.
func (l *Lab) DockerHost() string { return "unix://" + l.paths.dockerSock }

// progress prints lines prefixed with the time elapsed since it was made.
type progress struct {
	w  io.Writer
	t0 time.Time
}

// progressKey is the context key under which an operation's progress travels to the steps it calls.
type progressKey struct{}

// progress returns the progress of the operation ctx belongs to, or starts one: nested steps (Setup →
// StartDaemon → ...) print the time elapsed since the outermost call.
func (l *Lab) progress(ctx context.Context) (context.Context, progress) {
	if p, ok := ctx.Value(progressKey{}).(progress); ok {
		return ctx, p
	}
	p := progress{w: l.cfg.Progress, t0: time.Now()}
	return context.WithValue(ctx, progressKey{}, p), p
}

func (p progress) logf(format string, args ...any) {
	// Progress output is informational; a failing writer must not fail the lab operation.
	_, _ = fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.t0).Seconds(), fmt.Sprintf(format, args...))
}
