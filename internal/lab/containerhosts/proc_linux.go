//go:build linux

package containerhosts

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

func detectCgroupMode() (CgroupMode, error) {
	var root, unified syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &root); err != nil {
		return "", fmt.Errorf("cgroup layout: %w", err)
	}
	var unifiedMagic int64
	if err := syscall.Statfs("/sys/fs/cgroup/unified", &unified); err == nil {
		unifiedMagic = int64(unified.Type)
	}
	return cgroupModeOf(int64(root.Type), unifiedMagic), nil
}

func kernelRelease() (string, error) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String(), nil
}

// startDetached starts a daemon in a session of its own (what setsid(1) does: no controlling terminal,
// not in our process group, so it outlives us and our terminal), stdin from /dev/null, stdout and stderr
// appended to logPath. A goroutine reaps it if it exits while we still run.
func startDetached(bin string, args []string, env []string, logPath string) (int, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("daemon log: %w", err)
	}
	// The daemon holds its own descriptor of the log; ours was only passed on, never written to.
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = cmd.Wait() }()
	return cmd.Process.Pid, nil
}

// isolateBuild makes cmd run in a new mount namespace with every mount private, so whatever it mounts (a
// chroot's /proc, /dev, bind mounts) is never seen by the host and vanishes when the last process in it
// exits, even if it is killed. It also runs in a process group of its own, which is killed as a whole when
// the command's context ends (debootstrap and apt in the chroot included).
func isolateBuild(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Unshareflags |= syscall.CLONE_NEWNS
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return nil
}

// signalProcess sends sig to pid.
func signalProcess(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	return nil
}

// detachMount lazily unmounts path (umount -l).
func detachMount(path string) error {
	if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	return nil
}

// tryLock takes an exclusive flock on f without blocking; false means another holder has it.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == syscall.EWOULDBLOCK {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("flock %s: %w", f.Name(), err)
	}
	return true, nil
}
