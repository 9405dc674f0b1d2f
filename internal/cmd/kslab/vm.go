package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/lab/vmlab"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/machine"
)

const vmUsage = `usage: kslab vm <command> [flags]

commands:
  setup            idempotent: install the apt packages, start virtlogd and libvirtd (by hand when systemd
                   is not PID 1), create the isolated network "kubesmith" (192.168.150.0/24, bridge ksvirbr0,
                   no forwarding, no DHCP) and the dir pool "kubesmith" (/var/lib/kubesmith/libvirt/pool),
                   build the Debian 12 guest image (cached by its inputs) and upload it as the volumes
                   kubesmith-debian12.{qcow2,vmlinuz,initrd}; prints JSON
  check            the self-check: boot one VM (ks-lab-check-1, 192.168.150.9) from the image through the
     [--timeout 10m] [--accelerator auto|kvm|tcg] [--keep] [--force]
                   libvirt machine driver, log in over SSH with its pinned host key, print the time to SSH,
                   delete the VM and its volumes; prints JSON; on failure exits 1 with the serial console's tail.
                   A check that passed for the same image volume and the same kslab build is not repeated
                   unless --force is given
  clean [--cache]  remove the pool with its volumes and the network (refused while VMs use them);
                   --cache also removes the image and .deb caches

flags of every command:
  --uri URI          libvirt connection (default qemu:///system)
  --cache-dir DIR    image cache (default ${XDG_CACHE_HOME:-~/.cache}/kubesmith/lab/vm)
  --mirror URL       Debian mirror for the image (default: the host's apt sources)
`

// vmFlags are accepted by every vm command.
type vmFlags struct {
	uri, cacheDir, mirror string
}

func newVMFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *vmFlags) {
	fs := flag.NewFlagSet("kslab vm "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &vmFlags{}
	fs.StringVar(&c.uri, "uri", "", "libvirt connection URI")
	fs.StringVar(&c.cacheDir, "cache-dir", "", "image cache directory")
	fs.StringVar(&c.mirror, "mirror", "", "Debian mirror for the image")
	return fs, c
}

func (c *vmFlags) lab(stderr io.Writer) (*vmlab.Lab, error) {
	lab, err := vmlab.New(vmlab.Config{URI: c.uri, CacheDir: c.cacheDir, Mirror: c.mirror, Progress: stderr})
	if err != nil {
		return nil, fmt.Errorf("vm lab: %w", err)
	}
	return lab, nil
}

// vmCmd runs `kslab vm <command>`.
func vmCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, vmUsage) // best effort: the usage error is returned anyway
		return usageError("no vm command given")
	}
	cmd, args := args[0], args[1:]
	fs, common := newVMFlagSet(cmd, stderr)
	switch cmd {
	case "help", "-h", "--help":
		if _, err := fmt.Fprint(stdout, vmUsage); err != nil {
			return fmt.Errorf("write usage: %w", err)
		}
		return nil

	case "setup":
		if _, err := parse(fs, args, 0, "no arguments"); err != nil {
			return err
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		res, err := lab.Setup(ctx)
		if err != nil {
			return fmt.Errorf("vm setup: %w", err)
		}
		return printJSON(stdout, res)

	case "check":
		timeout := fs.Duration("timeout", 10*time.Minute, "wait for SSH at most this long")
		accel := fs.String("accelerator", "auto", "auto (probe KVM, cached), kvm or tcg")
		keep := fs.Bool("keep", false, "leave the VM running for debugging")
		force := fs.Bool("force", false, "boot a VM even if a check passed for this image and kslab build")
		if _, err := parse(fs, args, 0, "no arguments"); err != nil {
			return err
		}
		a, err := machine.ParseAccelerator(*accel)
		if err != nil {
			return usageError("check: %v", err)
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		res, err := lab.Check(ctx, vmlab.CheckOptions{Timeout: *timeout, Accelerator: a, Keep: *keep, Force: *force})
		if err != nil {
			return fmt.Errorf("vm check: %w", err)
		}
		return printJSON(stdout, res)

	case "clean":
		cache := fs.Bool("cache", false, "also remove the image and .deb caches")
		if _, err := parse(fs, args, 0, "no arguments"); err != nil {
			return err
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		if err := lab.Clean(ctx, vmlab.CleanOptions{Cache: *cache}); err != nil {
			return fmt.Errorf("vm clean: %w", err)
		}
		return nil

	default:
		_, _ = fmt.Fprint(stderr, vmUsage) // best effort: the usage error is returned anyway
		return usageError("unknown vm command %q", cmd)
	}
}
