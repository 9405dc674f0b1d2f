package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// LibvirtOptions configure the libvirt driver.
type LibvirtOptions struct {
	// URI is the libvirt connection URI; qemu:///system when empty. qemu+ssh:// works too: nothing is read
	// from or written to the libvirt host's filesystem except through libvirt.
	URI string
	// CacheDir keeps the accelerator probe's result per libvirt host (${XDG_CACHE_HOME:-~/.cache}/kubesmith).
	CacheDir string
	// Parallelism bounds how many VMs are created at once; 4 when zero.
	Parallelism int
	// Progress, when set, receives one call per VM step ("vm-create", "vm-ssh") with its duration.
	Progress func(machine, step string, took time.Duration, err error)
}

// accelCacheTTL is how long a probe result is trusted; hosts rarely change, but a fixed host must not keep TCG
// forever.
const accelCacheTTL = 7 * 24 * time.Hour

// accelRecord is the cached result of an accelerator probe on one libvirt host.
type accelRecord struct {
	URI         string      `json:"uri"`
	Hostname    string      `json:"hostname"`
	Accelerator Accelerator `json:"accelerator"`
	Reason      string      `json:"reason"`
	ProbedAt    time.Time   `json:"probed_at"`
}

// accelCachePath is the cache file of the libvirt host at uri that calls itself hostname.
func accelCachePath(dir, uri, hostname string) string {
	sum := sha256.Sum256([]byte(uri + "\n" + hostname))
	return filepath.Join(dir, "accelerator", hex.EncodeToString(sum[:12])+".json")
}

// loadAccel returns the cached probe result, or ok=false when there is none or it is stale.
func loadAccel(dir, uri, hostname string, now time.Time) (accelRecord, bool) {
	if dir == "" {
		return accelRecord{}, false
	}
	b, err := os.ReadFile(accelCachePath(dir, uri, hostname))
	if err != nil {
		return accelRecord{}, false
	}
	var r accelRecord
	if json.Unmarshal(b, &r) != nil || r.URI != uri || r.Hostname != hostname || now.Sub(r.ProbedAt) > accelCacheTTL {
		return accelRecord{}, false
	}
	if r.Accelerator != AccelKVM && r.Accelerator != AccelTCG {
		return accelRecord{}, false
	}
	return r, true
}

// storeAccel writes a probe result atomically.
func storeAccel(dir string, r accelRecord) error {
	if dir == "" {
		return nil
	}
	p := accelCachePath(dir, r.URI, r.Hostname)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("accelerator cache: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("accelerator cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".accel-*")
	if err != nil {
		return fmt.Errorf("accelerator cache: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("accelerator cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil && !errors.Is(err, fs.ErrExist) {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("accelerator cache: %w", err)
	}
	return nil
}
