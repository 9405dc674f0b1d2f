package containerhosts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Setup prepares this machine for container hosts: it installs the host packages when missing
// (InstallDeps), then runs Prepare. It returns the node image tag.
func (l *Lab) Setup(ctx context.Context) (string, error) {
	ctx, p := l.progress(ctx)
	q, err := DetectQuirks()
	if err != nil {
		return "", err
	}
	p.logf("host: %s", q)
	if err := l.InstallDeps(ctx); err != nil {
		return "", err
	}
	tag, err := l.Prepare(ctx)
	if err != nil {
		return "", err
	}
	p.logf("setup done: image %s, dockerd %s", tag, l.DockerHost())
	return tag, nil
}

// Prepare starts the lab's dockerd, creates the network and makes sure the node image is there (building
// it if needed). Each step does nothing when already done, so Prepare is cheap on a prepared machine.
func (l *Lab) Prepare(ctx context.Context) (string, error) {
	if err := findTools().requireTools(false, false); err != nil {
		return "", err
	}
	if err := l.StartDaemon(ctx); err != nil {
		return "", err
	}
	if err := l.EnsureNetwork(ctx); err != nil {
		return "", err
	}
	return l.EnsureImage(ctx)
}

// Teardown removes every container, volume and the network of the lab's dockerd, stops that dockerd and
// its containerd, removes the iptables chains and rules they created (only theirs: see cleanHost), the lab
// bridge and the runtime dir. The host is left as before the lab started: ip_forward untouched, no
// MASQUERADE. (With the nf_tables backend of iptables, the emptied filter and nat tables stay: iptables
// cannot delete a table, and they hold no rules.) Kept for the next run: the state dir with the image tarballs, the .deb caches, the client key
// and the docker data root, which then holds only the node image.
func (l *Lab) Teardown(ctx context.Context) error {
	ctx, _ = l.progress(ctx)
	return l.locked(ctx, func() error { return l.teardown(ctx) })
}

func (l *Lab) teardown(ctx context.Context) error {
	ctx, p := l.progress(ctx)
	t := findTools()
	running := l.pingDocker(ctx) == nil
	if !running && hasEntries(l.paths.dataRoot+"/containers") && t.dockerd != "" {
		// Containers from a crashed run: start the daemon to remove them properly.
		if err := l.startDaemon(ctx); err != nil {
			return fmt.Errorf("teardown: %w", err)
		}
		running = true
	}
	if running {
		d := l.docker(t.docker)
		if ids, err := d.run(ctx, nil, "ps", "-a", "-q"); err != nil {
			return fmt.Errorf("teardown: %w", err)
		} else if f := strings.Fields(ids); len(f) > 0 {
			if _, err := d.run(ctx, nil, append([]string{"rm", "-f", "-v"}, f...)...); err != nil {
				return fmt.Errorf("teardown: %w", err)
			}
			p.logf("removed %d containers", len(f))
		}
		if vols, err := d.run(ctx, nil, "volume", "ls", "-q"); err != nil {
			return fmt.Errorf("teardown: %w", err)
		} else if f := strings.Fields(vols); len(f) > 0 {
			if _, err := d.run(ctx, nil, append([]string{"volume", "rm", "-f"}, f...)...); err != nil {
				return fmt.Errorf("teardown: %w", err)
			}
			p.logf("removed %d volumes", len(f))
		}
		if _, err := d.run(ctx, nil, "network", "inspect", NetworkName); err == nil {
			if _, err := d.run(ctx, nil, "network", "rm", NetworkName); err != nil {
				return fmt.Errorf("teardown: %w", err)
			}
			p.logf("removed network %s", NetworkName)
		}
		_, _ = d.run(ctx, nil, "image", "prune", "-f")
	}
	if err := l.stopDaemon(ctx); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	// Only after a crash: the bridge, and mounts under the lab's own dirs.
	if _, err := os.Stat("/sys/class/net/" + BridgeName); err == nil {
		if out, err := exec.CommandContext(ctx, "ip", "link", "delete", BridgeName).CombinedOutput(); err != nil {
			return fmt.Errorf("teardown: delete %s: %w: %s", BridgeName, err, out)
		}
		p.logf("deleted leftover bridge %s", BridgeName)
	}
	for _, dir := range []string{l.paths.run, l.paths.dataRoot, l.paths.containerdRoot} {
		mounts := mountsUnder(dir)
		slices.Reverse(mounts) // deepest first
		for _, m := range mounts {
			if err := detachMount(m); err != nil {
				return fmt.Errorf("teardown: %w", err)
			}
		}
	}
	if err := l.cleanHost(ctx, t); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	if len(mountsUnder(l.paths.run)) == 0 {
		if err := os.RemoveAll(l.paths.run); err != nil {
			return fmt.Errorf("teardown: %w", err)
		}
	}
	if err := os.Remove(l.paths.knownHosts); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("teardown: %w", err)
	}
	p.logf("lab torn down; kept %s", l.paths.state)
	return nil
}

func hasEntries(dir string) bool {
	ents, err := os.ReadDir(dir)
	return err == nil && len(ents) > 0
}
