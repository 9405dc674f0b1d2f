package vmlab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// The libvirt objects of the lab (the contract with internal/machine).
const (
	// NetworkName is the lab's isolated libvirt network.
	NetworkName = "kubesmith"
	// BridgeName is the host bridge of NetworkName.
	BridgeName = "ksvirbr0"
	// HostAddress is the host's address on NetworkName (the guests' gateway).
	HostAddress = "192.168.150.1"
	// NetworkPrefix is the prefix length of NetworkName.
	NetworkPrefix = 24
	// DNSDomain is the local-only DNS domain of NetworkName.
	DNSDomain = "kubesmith.test"
	// PoolName is the lab's dir storage pool.
	PoolName = "kubesmith"
	// PoolPath is the directory of PoolName.
	PoolPath = "/var/lib/kubesmith/libvirt/pool"
	// BaseImage is the name of the guest base image; its volumes are BaseImage + ".qcow2", ".vmlinuz" and
	// ".initrd".
	BaseImage = "kubesmith-debian12"
	// KernelCmdline is the guest kernel command line for direct kernel boot.
	KernelCmdline = "root=/dev/vda rw console=ttyS0,115200n8 net.ifnames=0 quiet"
	// CheckAddress is the address of the self-check VM on NetworkName.
	CheckAddress = "192.168.150.9"
	// DefaultURI is the libvirt connection the lab uses unless Config.URI says otherwise.
	DefaultURI = "qemu:///system"
)

// Volume name suffixes of a base image.
const (
	suffixDisk   = ".qcow2"
	suffixKernel = ".vmlinuz"
	suffixInitrd = ".initrd"
)

// ErrUnsupported is returned by every operation on systems without Linux and cgo.
var ErrUnsupported = errors.New("the libvirt lab needs Linux and a build with cgo (go build -tags libvirt_dlopen)")

// Config configures a Lab. The zero value is usable.
type Config struct {
	// URI is the libvirt connection URI; default DefaultURI. The lab builds the image and starts the daemons
	// on this machine, so only local URIs make sense.
	URI string
	// CacheDir holds the image cache, the .deb caches and the build logs; default
	// ${XDG_CACHE_HOME:-~/.cache}/kubesmith/lab/vm.
	CacheDir string
	// Mirror is the Debian mirror the image is built from; default: the host's apt sources.
	Mirror string
	// Progress receives progress lines (with elapsed times); default io.Discard.
	Progress io.Writer
}

// Lab is the libvirt lab on this machine.
type Lab struct {
	cfg   Config
	start time.Time
}

// New returns the lab described by cfg, with defaults filled in.
func New(cfg Config) (*Lab, error) {
	if cfg.URI == "" {
		cfg.URI = DefaultURI
	}
	if cfg.CacheDir == "" {
		dir, err := defaultCacheDir()
		if err != nil {
			return nil, err
		}
		cfg.CacheDir = dir
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	return &Lab{cfg: cfg, start: time.Now()}, nil
}

// kubesmithCacheRoot is ${XDG_CACHE_HOME:-~/.cache}/kubesmith, the cache kubesmith itself uses.
func kubesmithCacheRoot() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cache dir: %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "kubesmith"), nil
}

// defaultCacheDir is ${XDG_CACHE_HOME:-~/.cache}/kubesmith/lab/vm.
func defaultCacheDir() (string, error) {
	root, err := kubesmithCacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "lab", "vm"), nil
}

// logf prints one progress line with the time since the lab was created.
func (l *Lab) logf(format string, args ...any) {
	// Progress output is best effort: a broken terminal must not fail the lab.
	_, _ = fmt.Fprintf(l.cfg.Progress, "[%6.1fs] %s\n", time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
}

// VolumeNames returns the volume names of base image base: disk, kernel, initrd.
func VolumeNames(base string) (disk, kernel, initrd string) {
	return base + suffixDisk, base + suffixKernel, base + suffixInitrd
}
