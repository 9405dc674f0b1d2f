package machine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// Accelerator selects how libvirt runs a VM.
type Accelerator string

// Accelerators.
const (
	// AccelAuto probes whether KVM really runs a guest kernel on the libvirt host and falls back to TCG.
	AccelAuto Accelerator = "auto"
	// AccelKVM is hardware virtualisation (<domain type='kvm'>).
	AccelKVM Accelerator = "kvm"
	// AccelTCG is QEMU's emulator (<domain type='qemu'>), 7-17x slower for ordinary code but available everywhere.
	AccelTCG Accelerator = "tcg"
)

// ParseAccelerator accepts "", "auto", "kvm" and "tcg" ("" means auto).
func ParseAccelerator(s string) (Accelerator, error) {
	switch a := Accelerator(strings.ToLower(strings.TrimSpace(s))); a {
	case "", AccelAuto:
		return AccelAuto, nil
	case AccelKVM, AccelTCG:
		return a, nil
	default:
		return "", fmt.Errorf("accelerator %q is not one of auto, kvm, tcg", s)
	}
}

// Defaults of a VM's shape.
const (
	DefaultVCPU      = 2
	DefaultMemoryMiB = 2048
	DefaultDiskGiB   = 20
	DefaultBaseImage = "kubesmith-debian12"
	// DefaultSSHTimeout bounds the wait for a new VM to answer SSH. Under TCG five VMs booting together need
	// about 90 s on a quiet 2-core host, but on a saturated one (load 30) a single guest took 6 minutes just to
	// reach its first-boot unit; the caller's context (Terraform's create timeout) bounds the wait as well.
	DefaultSSHTimeout = 25 * time.Minute
)

// Spec is one machine of a Group.
type Spec struct {
	// Name is the machine's name: the libvirt domain name and hostname of a VM, the node name of a host.
	Name string
	// Address is the machine's static IPv4 address.
	Address string
	// Port is the SSH port; 22 when zero.
	Port int
	// HostPublicKey is the expected SSH host key of a static host ("ssh-ed25519 AAAA..."). VMs get theirs from
	// the driver.
	HostPublicKey string
}

// Group is the machines of one role (the masters, or one node pool) of one cluster.
type Group struct {
	// Cluster is the cluster name and ClusterUID its UID; a VM records the UID and is never touched by another
	// cluster.
	Cluster    string
	ClusterUID string
	// Role is "m" for masters or the node pool's name; it is part of the VM names.
	Role     string
	Machines []Spec

	// Network is the libvirt network the VMs attach to; their addresses must be inside its range.
	Network string
	// Pool is the libvirt storage pool holding the base image; the overlays and seeds are created there too.
	// "kubesmith" when empty.
	Pool      string
	VCPU      int
	MemoryMiB int
	DiskGiB   int
	// BaseImage names the base image volumes <base>.qcow2, <base>.vmlinuz and <base>.initrd in Pool.
	BaseImage   string
	Accelerator Accelerator
	// AuthorizedKeys are the authorized_keys lines for root on a new VM.
	AuthorizedKeys []string
	// SSHTimeout bounds the wait for SSH; DefaultSSHTimeout when zero.
	SSHTimeout time.Duration
}

// Machine is a machine that exists.
type Machine struct {
	Name    string
	Address string
	Port    int
	// ID identifies the machine: the libvirt domain UUID of a VM, "host:<address>" for a static host.
	ID string
	// HostPublicKey is the machine's SSH host key, to be pinned ("ssh-ed25519 AAAA...").
	HostPublicKey string
	// Accelerator is how a VM runs (kvm or tcg); empty for static hosts.
	Accelerator Accelerator
}

// Driver provides machines.
type Driver interface {
	// Ensure makes every machine of g exist and answer SSH with its pinned host key. It adopts machines left by
	// an earlier run that match, and replaces mismatches. It returns the machines that exist, also on error,
	// so that nothing leaks.
	Ensure(ctx context.Context, g Group) ([]Machine, error)
	// Lookup reports which machines of g exist, without creating or waiting for anything. Absent machines are
	// not in the result.
	Lookup(ctx context.Context, g Group) ([]Machine, error)
	// Owners reports the cluster UID recorded in each existing machine of the given names ("" for a machine
	// that kubesmith did not create). Absent machines are not in the result. A create that lost its state
	// adopts the UID it finds.
	Owners(ctx context.Context, names []string) (map[string]string, error)
	// Delete removes the named machines of g. Machines that are already gone are fine; a machine that belongs
	// to another cluster is refused.
	Delete(ctx context.Context, g Group, names []string) error
}

var nameRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Name is the deterministic name of machine index (1-based) of role in cluster: ks-<cluster>-<role>-<index>.
func Name(cluster, role string, index int) string {
	return fmt.Sprintf("ks-%s-%s-%d", cluster, role, index)
}

// ValidName reports whether name can be a VM, host and Node name (a DNS-1123 label).
func ValidName(name string) bool { return nameRe.MatchString(name) }

// MAC is the deterministic MAC address of a VM: 52:54:00 (QEMU's prefix) and 3 bytes of
// sha256(cluster UID + "/" + name).
func MAC(clusterUID, name string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(clusterUID + "/" + name))
	return net.HardwareAddr{0x52, 0x54, 0x00, sum[0], sum[1], sum[2]}
}

func (g Group) withDefaults() Group {
	if g.Pool == "" {
		g.Pool = "kubesmith"
	}
	if g.VCPU <= 0 {
		g.VCPU = DefaultVCPU
	}
	if g.MemoryMiB <= 0 {
		g.MemoryMiB = DefaultMemoryMiB
	}
	if g.DiskGiB <= 0 {
		g.DiskGiB = DefaultDiskGiB
	}
	if g.BaseImage == "" {
		g.BaseImage = DefaultBaseImage
	}
	g.BaseImage = strings.TrimSuffix(g.BaseImage, ".qcow2")
	if g.Accelerator == "" {
		g.Accelerator = AccelAuto
	}
	if g.SSHTimeout <= 0 {
		g.SSHTimeout = DefaultSSHTimeout
	}
	return g
}

func sshPort(p int) int {
	if p == 0 {
		return 22
	}
	return p
}
