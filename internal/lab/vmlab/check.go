//go:build linux && cgo

package vmlab

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"libvirt.org/go/libvirtxml"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/machine"
)

// The self-check VM: cluster "lab", role "check", index 1 (ks-lab-check-1), at CheckAddress.
const (
	checkCluster    = "lab"
	checkClusterUID = "kubesmith-lab-self-check"
	checkRole       = "check"
)

// Check boots one VM from the base image through the libvirt machine driver on NetworkName at
// CheckAddress, logs in over SSH with the host key the driver generated (pinned, never trust on first use),
// checks the seed was applied, then deletes the VM and its volumes. On failure the error carries the tail
// of the VM's serial console.
func (l *Lab) Check(ctx context.Context, opts CheckOptions) (res *CheckResult, err error) {
	unlock, err := l.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if opts.Timeout <= 0 {
		opts.Timeout = machine.DefaultSSHTimeout
	}
	if err := l.EnsureDaemons(ctx); err != nil {
		return nil, err
	}
	diskSum, err := l.checkReady()
	if err != nil {
		return nil, err
	}
	stamp, err := checkStamp(diskSum)
	if err != nil {
		return nil, err
	}
	if !opts.Force {
		if prev, ok := l.passedBefore(stamp); ok {
			l.logf("self-check passed at %s for this image and this kslab (SSH after %.1f s); --force boots a VM again",
				prev.CheckedAt.Format(time.RFC3339), prev.CreateToSSHSeconds)
			return prev, nil
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	name := machine.Name(checkCluster, checkRole, 1)
	var bootToSSH time.Duration // the driver's measure: domain started until SSH answers
	g := machine.Group{
		Cluster: checkCluster, ClusterUID: checkClusterUID, Role: checkRole,
		Machines: []machine.Spec{{Name: name, Address: CheckAddress}},
		Network:  NetworkName, Pool: PoolName, BaseImage: BaseImage,
		VCPU: 1, MemoryMiB: 1024, DiskGiB: 8,
		Accelerator:    opts.Accelerator,
		AuthorizedKeys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " kubesmith-lab-check"},
		SSHTimeout:     opts.Timeout,
	}
	machineCache, err := kubesmithCacheRoot()
	if err != nil {
		return nil, err
	}
	drv, err := machine.NewLibvirt(machine.LibvirtOptions{
		// The provider's cache: the accelerator probe's result is shared with it.
		URI: l.cfg.URI, CacheDir: machineCache, Parallelism: 1,
		Progress: func(m, step string, took time.Duration, err error) {
			if step == "vm-ssh" && err == nil {
				bootToSSH = took
			}
			if err != nil {
				l.logf("machine driver: %s %s failed after %s: %v", m, step, took.Round(100*time.Millisecond), err)
				return
			}
			l.logf("machine driver: %s %s (%s)", m, step, took.Round(100*time.Millisecond))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("libvirt machine driver: %w", err)
	}
	// A VM left by an interrupted check is removed first, so every check boots from scratch.
	if err := drv.Delete(ctx, g, []string{name}); err != nil {
		return nil, fmt.Errorf("remove the previous check VM: %w", err)
	}
	out := &CheckResult{VM: name, Address: CheckAddress}
	defer func() {
		if opts.Keep {
			l.logf("keeping %s (remove it with `kslab vm check` again or virsh)", name)
			return
		}
		t0 := time.Now()
		// Deleting must happen even when ctx was cancelled.
		derr := drv.Delete(context.WithoutCancel(ctx), g, []string{name})
		out.DeleteSeconds = time.Since(t0).Seconds()
		if derr != nil {
			res, err = nil, errors.Join(err, fmt.Errorf("delete check VM %s: %w", name, derr))
		} else {
			l.logf("deleted %s and its volumes in %s", name, time.Since(t0).Round(100*time.Millisecond))
			if err == nil && res != nil {
				l.recordPass(stamp, res)
			}
		}
	}()

	l.logf("creating %s at %s through the libvirt machine driver (timeout %s)", name, CheckAddress, opts.Timeout)
	t0 := time.Now()
	ms, err := drv.Ensure(ctx, g)
	if err == nil && len(ms) != 1 {
		err = fmt.Errorf("the driver returned %d machines, want 1", len(ms))
	}
	if err == nil {
		out.Accelerator = string(ms[0].Accelerator)
		out.HostKey = ms[0].HostPublicKey
		out.Hostname, err = sshHostname(ctx, ms[0], signer)
	}
	if err == nil && out.Hostname != name {
		err = fmt.Errorf("the VM calls itself %q, want %q: the seed's hostname was not applied", out.Hostname, name)
	}
	if err != nil {
		return nil, fmt.Errorf("self-check VM %s: %w%s", name, err, l.serialTail(name))
	}
	out.CreateToSSHSeconds = time.Since(t0).Seconds()
	out.CheckedAt = time.Now().UTC()
	out.BootToSSHSeconds = bootToSSH.Seconds()
	l.logf("SSH as root to %s (%s) with the pinned host key %s: %.1f s after asking for the VM (boot to SSH %.1f s)",
		name, out.Accelerator, fingerprint(out.HostKey), out.CreateToSSHSeconds, out.BootToSSHSeconds)
	return out, nil
}

// checkReady verifies that Setup's objects exist, for a clear error before the driver's, and returns the
// sha256 of the base image's disk volume.
func (l *Lab) checkReady() (string, error) {
	conn, err := l.connect()
	if err != nil {
		return "", err
	}
	defer closeConn(conn)
	net, err := conn.LookupNetworkByName(NetworkName)
	if err != nil {
		return "", fmt.Errorf("network %s: %w (run `kslab vm setup`)", NetworkName, err)
	}
	active, _ := net.IsActive()
	_ = net.Free()
	if !active {
		return "", fmt.Errorf("network %s is not active (run `kslab vm setup`)", NetworkName)
	}
	pool, err := conn.LookupStoragePoolByName(PoolName)
	if err != nil {
		return "", fmt.Errorf("pool %s: %w (run `kslab vm setup`)", PoolName, err)
	}
	defer func() { _ = pool.Free() }()
	disk, kernel, initrd := VolumeNames(BaseImage)
	var diskPath string
	for _, v := range []string{disk, kernel, initrd} {
		vol, err := pool.LookupStorageVolByName(v)
		if err != nil {
			return "", fmt.Errorf("volume %s: %w (run `kslab vm setup`)", v, err)
		}
		if v == disk {
			diskPath, err = vol.GetPath()
		}
		_ = vol.Free()
		if err != nil {
			return "", fmt.Errorf("volume %s: %w", v, err)
		}
	}
	_, sum, err := hashFile(diskPath)
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", disk, err)
	}
	return sum, nil
}

// passedCheck is the record of a passed self-check (CacheDir/check-passed.json).
type passedCheck struct {
	Stamp  string       `json:"stamp"`
	Result *CheckResult `json:"result"`
}

// checkStamp identifies what a self-check tested: the base image's disk and the kslab executable (which
// contains the machine driver).
func checkStamp(diskSum string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("self-check: %w", err)
	}
	_, exeSum, err := hashFile(exe)
	if err != nil {
		return "", fmt.Errorf("self-check: %w", err)
	}
	return "disk:" + diskSum + " kslab:" + exeSum, nil
}

func (l *Lab) passedPath() string { return filepath.Join(l.cfg.CacheDir, "check-passed.json") }

// passedBefore returns the recorded result of a check that passed with the same stamp.
func (l *Lab) passedBefore(stamp string) (*CheckResult, bool) {
	b, err := os.ReadFile(l.passedPath())
	if err != nil {
		return nil, false
	}
	var p passedCheck
	if json.Unmarshal(b, &p) != nil || p.Stamp != stamp || p.Result == nil {
		return nil, false
	}
	p.Result.Cached = true
	return p.Result, true
}

// recordPass writes the record of a passed check; a failure to write only costs a VM boot next time.
func (l *Lab) recordPass(stamp string, res *CheckResult) {
	b, err := json.MarshalIndent(passedCheck{Stamp: stamp, Result: res}, "", "  ")
	if err == nil {
		err = os.WriteFile(l.passedPath(), append(b, '\n'), 0o644)
	}
	if err != nil {
		l.logf("could not record the passed self-check: %v", err)
	}
}

// sshHostname logs in to m as root with signer, accepting only m's pinned host key, and returns the
// output of hostname.
func sshHostname(ctx context.Context, m machine.Machine, signer ssh.Signer) (string, error) {
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(m.HostPublicKey))
	if err != nil {
		return "", fmt.Errorf("host key of %s: %w", m.Name, err)
	}
	port := m.Port
	if port == 0 {
		port = 22
	}
	addr := net.JoinHostPort(m.Address, fmt.Sprint(port))
	cfg := &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey),
		Timeout:         10 * time.Second,
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("ssh %s: %w", addr, err)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		_ = conn.Close()
		return "", fmt.Errorf("ssh %s: %w", addr, err)
	}
	client := ssh.NewClient(c, chans, reqs)
	defer func() { _ = client.Close() }()
	sess, err := client.NewSession()
	if err != nil {
		return "", fmt.Errorf("ssh %s: %w", addr, err)
	}
	defer func() { _ = sess.Close() }()
	var out bytes.Buffer
	sess.Stdout = &out
	if err := sess.Run("hostname"); err != nil {
		return "", fmt.Errorf("ssh %s hostname: %w", addr, err)
	}
	return strings.TrimSpace(out.String()), nil
}

// serialTail returns the last lines of a domain's serial console log (found in its XML), formatted for an
// error message, or "" when there is none.
func (l *Lab) serialTail(name string) string {
	conn, err := l.connect()
	if err != nil {
		return ""
	}
	defer closeConn(conn)
	dom, err := conn.LookupDomainByName(name)
	if err != nil {
		return ""
	}
	defer func() { _ = dom.Free() }()
	desc, err := dom.GetXMLDesc(0)
	if err != nil {
		return ""
	}
	var d libvirtxml.Domain
	if d.Unmarshal(desc) != nil || d.Devices == nil {
		return ""
	}
	for _, s := range d.Devices.Serials {
		if s.Log == nil || s.Log.File == "" {
			continue
		}
		b, err := os.ReadFile(s.Log.File)
		if err != nil {
			return fmt.Sprintf("\n(serial log %s: %v)", s.Log.File, err)
		}
		return fmt.Sprintf("\nlast lines of the serial console (%s):\n%s", s.Log.File, tail(string(b), 30))
	}
	return ""
}

// fingerprint is the SHA256 fingerprint of an authorized_keys-format public key.
func fingerprint(authorizedKey string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		return "?"
	}
	return ssh.FingerprintSHA256(k)
}
