package containerhosts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// tools are the host binaries the lab runs.
type tools struct {
	docker, dockerd, containerd, runc, iptables, iptablesSave, iptablesRestore string
	debootstrap, jq, bash                                                      string
}

// lookTool finds a binary in PATH and in the sbin directories, which a non-login root shell may lack.
func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range [...]string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// findTools locates the binaries. The docker client is /usr/bin/docker (the one that comes with dockerd from
// docker.io) when present, else the first docker in PATH; both negotiate the API version with the daemon.
func findTools() tools {
	t := tools{
		dockerd: lookTool("dockerd"), containerd: lookTool("containerd"), runc: lookTool("runc"),
		iptables: lookTool("iptables"), iptablesSave: lookTool("iptables-save"), iptablesRestore: lookTool("iptables-restore"),
		debootstrap: lookTool("debootstrap"), jq: lookTool("jq"), bash: lookTool("bash"),
	}
	if st, err := os.Stat("/usr/bin/docker"); err == nil && !st.IsDir() {
		t.docker = "/usr/bin/docker"
	} else {
		t.docker = lookTool("docker")
	}
	return t
}

// missingPackages lists the Debian packages that provide the binaries still missing. jq is only needed by
// the capfix wrapper, debootstrap only to build the image.
func (t tools) missingPackages(needCapfix, needBuild bool) []string {
	var pkgs []string
	add := func(p string) {
		if !slices.Contains(pkgs, p) {
			pkgs = append(pkgs, p)
		}
	}
	shim := lookTool("containerd-shim-runc-v2")
	if t.docker == "" || t.dockerd == "" || t.containerd == "" || t.runc == "" || shim == "" {
		add("docker.io")
	}
	if t.iptables == "" || t.iptablesSave == "" || t.iptablesRestore == "" {
		add("iptables")
	}
	if t.bash == "" {
		add("bash")
	}
	if needBuild && t.debootstrap == "" {
		add("debootstrap")
	}
	if needCapfix && t.jq == "" {
		add("jq")
	}
	return pkgs
}

// requireTools returns an error naming what to install when a binary is missing.
func (t tools) requireTools(needCapfix, needBuild bool) error {
	if pkgs := t.missingPackages(needCapfix, needBuild); len(pkgs) > 0 {
		return fmt.Errorf("missing host packages %s: run `kslab hosts setup` (or apt-get install them)", strings.Join(pkgs, " "))
	}
	return nil
}

// InstallDeps installs the Debian packages the lab needs (docker.io, iptables, debootstrap and, where the
// capfix wrapper is needed, jq) with apt-get, unless they are present. apt-get waits for a dpkg lock held by
// another apt run. When systemd is PID 1, installing docker.io would start and enable the distribution's
// dockerd (docker0, MASQUERADE, ip_forward=1); a temporary policy-rc.d stops the start, and the units are
// disabled again, so only the lab's own dockerd ever runs.
func (l *Lab) InstallDeps(ctx context.Context) (retErr error) {
	ctx, p := l.progress(ctx)
	q, err := DetectQuirks()
	if err != nil {
		return err
	}
	pkgs := findTools().missingPackages(q.NeedsCapfix(), true)
	if len(pkgs) == 0 {
		p.logf("host packages present")
		return nil
	}
	p.logf("apt-get install %s", strings.Join(pkgs, " "))
	if q.SystemdPID1 {
		const policy = "/usr/sbin/policy-rc.d"
		if _, err := os.Lstat(policy); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(policy, []byte("#!/bin/sh\n# kubesmith lab: no service starts during its apt-get\nexit 101\n"), 0o755); err != nil {
				return fmt.Errorf("policy-rc.d: %w", err)
			}
			defer func() {
				// A policy-rc.d left behind would stop every service start on this host: report it.
				if err := os.Remove(policy); err != nil {
					retErr = errors.Join(retErr, fmt.Errorf("remove the temporary %s: %w", policy, err))
				}
			}()
		}
	}
	if err := aptInstall(ctx, pkgs); err != nil {
		return err
	}
	if q.SystemdPID1 && slices.Contains(pkgs, "docker.io") {
		out, err := exec.CommandContext(ctx, "systemctl", "disable", "--now", "docker.service", "docker.socket").CombinedOutput()
		if err != nil {
			return fmt.Errorf("disable the distribution's docker.service: %w: %s", err, lastLines(string(out), 3))
		}
	}
	p.logf("installed %s", strings.Join(pkgs, " "))
	return findTools().requireTools(q.NeedsCapfix(), true)
}

// aptInstall runs apt-get install, and apt-get update first when the package lists do not know a package.
func aptInstall(ctx context.Context, pkgs []string) error {
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	install := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if _, err := run(install...); err == nil {
		return nil
	}
	if out, err := run("update", "-q"); err != nil {
		return fmt.Errorf("apt-get update: %w: %s", err, lastLines(string(out), 5))
	}
	if out, err := run(install...); err != nil {
		return fmt.Errorf("apt-get install %s: %w: %s", strings.Join(pkgs, " "), err, lastLines(string(out), 8))
	}
	return nil
}
