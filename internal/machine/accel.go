//go:build linux && cgo

package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// Accelerator probe: KVM counts as usable only when a real guest kernel reaches the end of its boot quickly.
// /dev/kvm existing, or a type='kvm' domain starting, proves nothing: on PVM hosts (nested, no VMX/SVM) a stock
// kernel takes minutes to decompress itself.
const (
	// probeTimeout is how long the probe kernel may take to print probeMarkers. Under real KVM it needs about
	// 1-3 s; a kernel that has not finished its early boot by then is not worth running a cluster on.
	probeTimeout = 20 * time.Second
	// probeCmdline makes the kernel print its boot on the serial console (no "quiet").
	probeCmdline = "console=ttyS0,115200n8 earlyprintk=serial,ttyS0,115200 loglevel=7 panic=-1 rdinit=/kubesmith-probe-no-init"
)

// probeMarkers are printed by the kernel once it has finished booting and goes to run init.
var probeMarkers = []string{"Run /init as init process", "Freeing unused kernel", "Kernel panic", "VFS: Cannot open root device", "No working init found"}

// resolveAccelerator turns auto into kvm or tcg: from the cache, or by probing and caching the result.
func (l *Libvirt) resolveAccelerator(ctx context.Context, conn *libvirt.Connect, env *hostEnv) (Accelerator, error) {
	host, err := conn.GetHostname()
	if err != nil {
		host = "unknown"
	}
	if r, ok := loadAccel(l.opts.CacheDir, l.opts.URI, host, l.now()); ok {
		return r.Accelerator, nil
	}
	start := l.now()
	usable, reason, err := l.probeKVM(ctx, conn, env)
	if err != nil {
		return "", fmt.Errorf("probing KVM on %s: %w (set accelerator = \"tcg\" or \"kvm\" to skip the probe)", l.opts.URI, err)
	}
	a := AccelTCG
	if usable {
		a = AccelKVM
	}
	l.report("", "accelerator-probe: "+string(a)+": "+reason, l.now().Sub(start), nil)
	if err := storeAccel(l.opts.CacheDir, accelRecord{URI: l.opts.URI, Hostname: host, Accelerator: a, Reason: reason, ProbedAt: l.now()}); err != nil {
		l.report("", "accelerator-cache", 0, err)
	}
	return a, nil
}

// probeKVMBoot boots the base image's kernel and initrd in a transient type='kvm' domain without disks and
// watches its serial console (through a libvirt stream, so remote URIs work) for probeMarkers.
func (l *Libvirt) probeKVMBoot(ctx context.Context, conn *libvirt.Connect, env *hostEnv) (bool, string, error) {
	if _, err := conn.GetDomainCapabilities("", "x86_64", "", "kvm", 0); err != nil {
		return false, "libvirt offers no KVM domains here: " + lvMessage(err), nil
	}
	return probeBoot(ctx, conn, env, "kvm", probeTimeout)
}

// probeBoot boots the base kernel in a transient domain of domType and reports whether it printed a
// probeMarker within timeout. (The driver tests also run it with type qemu, to prove the console path.)
func probeBoot(ctx context.Context, conn *libvirt.Connect, env *hostEnv, domType string, timeout time.Duration) (bool, string, error) {
	name := fmt.Sprintf("kubesmith-%s-probe-%d", domType, time.Now().UnixNano())
	d := &libvirtxml.Domain{
		Type:   domType,
		Name:   name,
		Memory: &libvirtxml.DomainMemory{Value: 256, Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: 1},
		OS: &libvirtxml.DomainOS{
			Type:   &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "pc", Type: "hvm"},
			Kernel: env.kernel, Initrd: env.initrd, Cmdline: probeCmdline,
		},
		Features: &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}},
		// The host CPU, unchecked, with the MSR that PVM cannot set switched off: the one CPU definition that
		// starts on every KVM flavour measured here.
		CPU: &libvirtxml.DomainCPU{
			Mode: "host-passthrough", Check: "none", Migratable: "off",
			Features: []libvirtxml.DomainCPUFeature{{Policy: "disable", Name: "arch-capabilities"}},
		},
		OnPoweroff: "destroy", OnReboot: "destroy", OnCrash: "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Serials: []libvirtxml.DomainSerial{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Target: &libvirtxml.DomainSerialTarget{Port: new(uint)},
			}},
			Consoles: []libvirtxml.DomainConsole{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: new(uint)},
			}},
		},
	}
	if domType != "kvm" {
		d.CPU = &libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Check: "none", Model: &libvirtxml.DomainCPUModel{Fallback: "allow", Value: "qemu64"}}
	}
	x, err := d.Marshal()
	if err != nil {
		return false, "", fmt.Errorf("encoding the probe domain: %w", err)
	}
	// Start paused, attach the console, then resume, so that no early output is lost. AUTODESTROY removes
	// the domain if this process dies.
	dom, err := conn.DomainCreateXML(x, libvirt.DOMAIN_START_PAUSED|libvirt.DOMAIN_START_AUTODESTROY)
	if err != nil {
		return false, "a type='" + domType + "' domain does not start: " + lvMessage(err), nil
	}
	defer func() {
		_ = dom.Destroy()
		_ = dom.Free()
	}()
	st, err := conn.NewStream(0)
	if err != nil {
		return false, "", fmt.Errorf("opening a stream: %s", lvMessage(err))
	}
	if err := dom.OpenConsole("", st, libvirt.DOMAIN_CONSOLE_FORCE); err != nil {
		_ = st.Free()
		return false, "", fmt.Errorf("opening the probe's console: %s", lvMessage(err))
	}
	readerDone := make(chan struct{})
	// On every exit: abort the stream, stop the guest (which ends the console), wait for the reader to leave
	// Recv, and only then free the stream.
	defer func() {
		_ = st.Abort()
		_ = dom.Destroy()
		select {
		case <-readerDone:
		case <-time.After(10 * time.Second):
		}
		_ = st.Free()
	}()
	start := time.Now()
	if err := dom.Resume(); err != nil {
		return false, "a type='" + domType + "' domain does not run: " + lvMessage(err), nil
	}
	found := make(chan string, 1)
	go func() {
		defer close(readerDone)
		var out bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := st.Recv(buf)
			if n > 0 {
				out.Write(buf[:n])
				for _, m := range probeMarkers {
					if strings.Contains(out.String(), m) {
						found <- m
						return
					}
				}
				if out.Len() > 1<<20 {
					out.Next(out.Len() - 4096)
				}
			}
			if err != nil || n == 0 {
				close(found)
				return
			}
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m, ok := <-found:
		if ok {
			return true, fmt.Sprintf("a %s guest kernel printed %q after %s", domType, m, time.Since(start).Round(100*time.Millisecond)), nil
		}
		return false, "the " + domType + " guest stopped before finishing its boot", nil
	case <-timer.C:
		return false, fmt.Sprintf("a %s guest kernel did not finish booting within %s (KVM is there but emulates slowly, e.g. PVM)", domType, timeout), nil
	case <-ctx.Done():
		return false, "", errors.Join(errors.New("probe cancelled"), ctx.Err())
	}
}
