package vmlab

import (
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/machine"
)

// ImageFile is one file of a built base image.
type ImageFile struct {
	// Path is the file in the image cache.
	Path string `json:"path"`
	// Volume is the name of the storage volume it is uploaded as.
	Volume string `json:"volume"`
	// Format is the volume format: qcow2 or raw.
	Format string `json:"format"`
	// Size is the file size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the hex sha256 of the file.
	SHA256 string `json:"sha256"`
}

// Image is a built base image in the cache.
type Image struct {
	// Key is the cache key (hash of the build inputs).
	Key string `json:"key"`
	// Name is the base image name (BaseImage).
	Name string `json:"name"`
	// Kernel is the guest kernel version.
	Kernel string `json:"kernel"`
	// Files are the disk, the kernel and the initrd, in that order.
	Files []ImageFile `json:"files"`
	// BuildSeconds is how long the build took.
	BuildSeconds float64 `json:"build_seconds"`
	// Built is true when this call built the image (false: taken from the cache).
	Built bool `json:"-"`
}

// SetupResult is what Setup did and where the lab's objects are.
type SetupResult struct {
	// URI is the libvirt connection URI.
	URI string `json:"uri"`
	// Network and Pool are the lab's libvirt objects.
	Network string `json:"network"`
	Pool    string `json:"pool"`
	// PoolPath is the pool's directory.
	PoolPath string `json:"pool_path"`
	// Image is the base image (cache key, files, kernel).
	Image *Image `json:"image"`
	// ImageBuilt is true when this run built the image.
	ImageBuilt bool `json:"image_built"`
	// OutdatedVolumes are the base image volumes that still hold an older image because VMs use them.
	OutdatedVolumes []string `json:"outdated_volumes,omitempty"`
	// Seconds is how long Setup took.
	Seconds float64 `json:"seconds"`
}

// CleanOptions says what Clean removes besides the libvirt objects.
type CleanOptions struct {
	// Cache also removes the image and .deb caches (Config.CacheDir).
	Cache bool
}

// CheckOptions tune Check.
type CheckOptions struct {
	// Timeout bounds the wait for SSH; machine.DefaultSSHTimeout when zero.
	Timeout time.Duration
	// Accelerator is passed to the machine driver; auto (probe, cached) when empty.
	Accelerator machine.Accelerator
	// Keep leaves the VM running (for debugging) instead of deleting it.
	Keep bool
	// Force boots the VM even when a check already passed for the same base image volume and the same
	// kslab executable.
	Force bool
}

// CheckResult is what the self-check measured.
type CheckResult struct {
	// VM and Address are the check VM's name and address.
	VM      string `json:"vm"`
	Address string `json:"address"`
	// Accelerator is how the VM ran (kvm or tcg).
	Accelerator string `json:"accelerator"`
	// HostKey is the pinned SSH host key the VM presented.
	HostKey string `json:"host_key"`
	// Hostname is what the VM reported over SSH.
	Hostname string `json:"hostname"`
	// CreateToSSHSeconds is the time from asking the driver for the VM to the first SSH session with the
	// pinned key.
	CreateToSSHSeconds float64 `json:"create_to_ssh_seconds"`
	// BootToSSHSeconds is the machine driver's measure: from starting the domain until SSH answered.
	BootToSSHSeconds float64 `json:"boot_to_ssh_seconds"`
	// DeleteSeconds is how long deleting the VM and its volumes took.
	DeleteSeconds float64 `json:"delete_seconds"`
	// CheckedAt is when the VM answered.
	CheckedAt time.Time `json:"checked_at"`
	// Cached is true when this result is an earlier run's, for the same base image volume and kslab
	// executable (nothing was booted this time).
	Cached bool `json:"cached"`
}
