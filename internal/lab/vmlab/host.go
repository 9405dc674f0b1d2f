//go:build linux && cgo

package vmlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hostPackages are the Debian packages the lab needs on this machine: QEMU and libvirt (the daemon with
// its network driver, which needs dnsmasq and iptables), libvirt's headers for the cgo bindings, and the
// tools of the image build.
var hostPackages = []string{
	"qemu-system-x86", "qemu-utils", "libvirt-daemon-system", "libvirt-clients", "libvirt-dev",
	"dnsmasq-base", "iptables", "debootstrap", "e2fsprogs", "zstd", "tar",
}

// Sockets and pidfiles of the daemons when they are started by hand.
const (
	libvirtdSock  = "/run/libvirt/libvirt-sock"
	virtlogdSock  = "/run/libvirt/virtlogd-sock"
	libvirtdPid   = "/run/libvirtd.pid"
	virtlogdPid   = "/run/virtlogd.pid"
	daemonTimeout = 30 * time.Second
)

// EnsurePackages installs the missing hostPackages with apt-get (no recommends).
func (l *Lab) EnsurePackages(ctx context.Context) error {
	missing, err := missingPackages(ctx, hostPackages)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		l.logf("apt packages present (%s)", strings.Join(hostPackages, " "))
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing apt packages %s: run as root to install them", strings.Join(missing, " "))
	}
	l.logf("apt-get install %s", strings.Join(missing, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"update", "-qq"},
		append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...),
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", args[0], err, tail(string(out), 20))
		}
	}
	l.logf("apt packages installed")
	return nil
}

// missingPackages returns the packages of pkgs that dpkg does not list as installed.
func missingPackages(ctx context.Context, pkgs []string) ([]string, error) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		return nil, errors.New("dpkg-query not found: the lab needs Debian 12 (or a derivative with apt)")
	}
	args := append([]string{"-W", "-f", "${Package} ${db:Status-Status}\n"}, pkgs...)
	// dpkg-query exits 1 when a package is unknown; its output still lists the known ones.
	out, _ := exec.CommandContext(ctx, "dpkg-query", args...).Output()
	installed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "installed" {
			installed[strings.SplitN(f[0], ":", 2)[0]] = true
		}
	}
	var missing []string
	for _, p := range pkgs {
		if !installed[p] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kvmDevice is the KVM device node.
const kvmDevice = "/dev/kvm"

// ensureKVMDevice gives /dev/kvm the owner and mode udev gives it on a standard Debian system (group kvm,
// 0660), when it exists without them (no udev, as in some microVMs). Otherwise libvirt's QEMU capabilities
// say "KVM available" (probed as root) while the qemu user cannot open the device, so libvirtd discards
// its capability cache and probes QEMU again on every domain call: about 4 s each.
func (l *Lab) ensureKVMDevice() error {
	st, err := os.Stat(kvmDevice)
	if err != nil {
		return nil //nolint:nilerr // no KVM device: nothing to do, TCG works without it
	}
	grp, err := user.LookupGroup("kvm")
	if err != nil {
		return nil //nolint:nilerr // no kvm group: libvirt runs QEMU in another way here
	}
	gid, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return fmt.Errorf("group kvm: gid %q: %w", grp.Gid, err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || (int(sys.Gid) == gid && st.Mode().Perm()&0o060 == 0o060) {
		return nil
	}
	if err := os.Chown(kvmDevice, -1, gid); err != nil {
		return fmt.Errorf("chgrp kvm %s: %w", kvmDevice, err)
	}
	if err := os.Chmod(kvmDevice, st.Mode().Perm()|0o660); err != nil {
		return fmt.Errorf("chmod g+rw %s: %w", kvmDevice, err)
	}
	l.logf("%s: group kvm, mode 0660 (as udev sets it on Debian; libvirt re-probes QEMU on every call otherwise)", kvmDevice)
	return nil
}

// EnsureDaemons starts virtlogd and libvirtd when their sockets do not answer: through systemctl when
// systemd is PID 1, otherwise by hand (daemonized, pidfiles under /run), then waits for the sockets. It
// first makes /dev/kvm usable by the kvm group (see ensureKVMDevice).
func (l *Lab) EnsureDaemons(ctx context.Context) error {
	if os.Geteuid() == 0 {
		if err := l.ensureKVMDevice(); err != nil {
			return err
		}
	}
	if socketAnswers(virtlogdSock) && socketAnswers(libvirtdSock) {
		l.logf("virtlogd and libvirtd running")
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("virtlogd/libvirtd are not running: run as root to start them")
	}
	if st, err := os.Stat("/run/systemd/system"); err == nil && st.IsDir() {
		l.logf("systemctl start virtlogd libvirtd")
		if out, err := exec.CommandContext(ctx, "systemctl", "start", "virtlogd.socket", "virtlogd.service",
			"libvirtd.socket", "libvirtd.service").CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl start libvirtd: %w: %s", err, strings.TrimSpace(string(out)))
		}
	} else {
		for _, d := range []struct{ bin, pidfile, sock string }{
			{"virtlogd", virtlogdPid, virtlogdSock},
			{"libvirtd", libvirtdPid, libvirtdSock},
		} {
			if socketAnswers(d.sock) {
				continue
			}
			if pid, ok := pidAlive(d.pidfile); ok {
				return fmt.Errorf("%s (pid %d from %s) runs but %s does not answer", d.bin, pid, d.pidfile, d.sock)
			}
			l.logf("start %s -d -p %s (no systemd)", d.bin, d.pidfile)
			cmd := exec.CommandContext(ctx, d.bin, "-d", "-p", d.pidfile)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // not in our session: outlives a Ctrl-C
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("start %s: %w: %s", d.bin, err, strings.TrimSpace(string(out)))
			}
		}
	}
	for _, sock := range []string{virtlogdSock, libvirtdSock} {
		if err := waitSocket(ctx, sock, daemonTimeout); err != nil {
			return err
		}
	}
	l.logf("virtlogd and libvirtd started")
	return nil
}

// socketAnswers reports whether a unix socket accepts a connection.
func socketAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close() // only probing
	return true
}

// waitSocket waits until a unix socket accepts connections.
func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !socketAnswers(path) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not answer: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// pidAlive reads a pidfile and reports whether that process exists.
func pidAlive(pidfile string) (int, bool) {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}
