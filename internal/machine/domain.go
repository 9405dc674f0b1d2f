package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// MetadataNS is the XML namespace of kubesmith's <metadata> element in a libvirt domain.
const MetadataNS = "https://kubesmith.dev/xmlns/machine/1"

// KernelCmdline is the guest kernel command line of a VM booted from the base image (the lab contract).
const KernelCmdline = "root=/dev/vda rw console=ttyS0,115200n8 net.ifnames=0 quiet"

// Metadata is what kubesmith records in a VM's domain: enough to adopt it after a crash and to refuse a VM of
// another cluster.
type Metadata struct {
	XMLName       xml.Name `xml:"machine"`
	Cluster       string   `xml:"cluster"`
	ClusterUID    string   `xml:"cluster-uid"`
	Role          string   `xml:"role"`
	Address       string   `xml:"address"`
	HostPublicKey string   `xml:"host-public-key"`
	// SpecHash covers everything that needs a new VM when it changes (shape, image, network, address).
	SpecHash    string `xml:"spec-hash"`
	Accelerator string `xml:"accelerator"`
}

// marshalMetadata renders m namespaced, as DomainMetadata's inner XML.
func (m Metadata) marshal() (string, error) {
	type nsMetadata struct {
		XMLName       xml.Name `xml:"kubesmith:machine"`
		NS            string   `xml:"xmlns:kubesmith,attr"`
		Cluster       string   `xml:"kubesmith:cluster"`
		ClusterUID    string   `xml:"kubesmith:cluster-uid"`
		Role          string   `xml:"kubesmith:role"`
		Address       string   `xml:"kubesmith:address"`
		HostPublicKey string   `xml:"kubesmith:host-public-key"`
		SpecHash      string   `xml:"kubesmith:spec-hash"`
		Accelerator   string   `xml:"kubesmith:accelerator"`
	}
	b, err := xml.MarshalIndent(nsMetadata{
		NS: MetadataNS, Cluster: m.Cluster, ClusterUID: m.ClusterUID, Role: m.Role, Address: m.Address,
		HostPublicKey: m.HostPublicKey, SpecHash: m.SpecHash, Accelerator: m.Accelerator,
	}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding the domain metadata: %w", err)
	}
	return string(b), nil
}

// ParseMetadata reads kubesmith's metadata element as libvirt returns it (any namespace prefix).
func ParseMetadata(s string) (Metadata, error) {
	var m Metadata
	if err := xml.Unmarshal([]byte(s), &m); err != nil {
		return Metadata{}, fmt.Errorf("parsing kubesmith metadata: %w", err)
	}
	return m, nil
}

// specHash covers what a running VM cannot change: a mismatch means the VM is replaced.
func specHash(g Group, s Spec) string {
	b, _ := json.Marshal(struct {
		Network, Base, Address string
		VCPU, Mem, Disk        int
		Accel                  Accelerator
	}{g.Network, g.BaseImage, s.Address, g.VCPU, g.MemoryMiB, g.DiskGiB, g.Accelerator})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// domainParams is everything a VM's domain XML is made of.
type domainParams struct {
	Name        string
	Accelerator Accelerator // kvm or tcg, resolved
	VCPU        int
	MemoryMiB   int
	Kernel      string // path on the libvirt host
	Initrd      string
	Cmdline     string
	Overlay     string // overlay volume path
	Seed        string // seed ISO volume path
	Network     string
	MAC         net.HardwareAddr
	SerialLog   string
	Meta        Metadata
}

// serialLogPath is where virtlogd writes a VM's serial console on the libvirt host.
func serialLogPath(name string) string { return "/var/log/libvirt/qemu/" + name + "-serial.log" }

// domainXML renders a VM's domain.
func domainXML(p domainParams) (string, error) {
	meta, err := p.Meta.marshal()
	if err != nil {
		return "", err
	}
	d := &libvirtxml.Domain{
		Type:     "qemu",
		Name:     p.Name,
		Metadata: &libvirtxml.DomainMetadata{XML: meta},
		Memory:   &libvirtxml.DomainMemory{Value: uint(p.MemoryMiB), Unit: "MiB"},
		VCPU:     &libvirtxml.DomainVCPU{Value: uint(p.VCPU)},
		OS: &libvirtxml.DomainOS{
			Type:    &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "pc", Type: "hvm"},
			Kernel:  p.Kernel,
			Initrd:  p.Initrd,
			Cmdline: p.Cmdline,
		},
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}},
		Clock:      &libvirtxml.DomainClock{Offset: "utc"},
		OnPoweroff: "destroy", OnReboot: "restart", OnCrash: "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Disks: []libvirtxml.DomainDisk{
				{
					Device: "disk",
					Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2", Discard: "unmap"},
					Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: p.Overlay}},
					Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
				},
				{
					Device:   "cdrom",
					Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
					Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: p.Seed}},
					Target:   &libvirtxml.DomainDiskTarget{Dev: "hdc", Bus: "ide"},
					ReadOnly: &libvirtxml.DomainDiskReadOnly{},
				},
			},
			Interfaces: []libvirtxml.DomainInterface{{
				Source: &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: p.Network}},
				MAC:    &libvirtxml.DomainInterfaceMAC{Address: p.MAC.String()},
				Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
			}},
			Serials: []libvirtxml.DomainSerial{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Log:    &libvirtxml.DomainChardevLog{File: p.SerialLog, Append: "off"},
				Target: &libvirtxml.DomainSerialTarget{Port: new(uint)},
			}},
			Consoles: []libvirtxml.DomainConsole{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: new(uint)},
			}},
			RNGs: []libvirtxml.DomainRNG{{
				Model:   "virtio",
				Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
			}},
		},
	}
	setAccelerator(d, p.Accelerator)
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("encoding the domain of %s: %w", p.Name, err)
	}
	return out, nil
}

// setAccelerator sets the domain type and CPU. TCG: type='qemu', the qemu64 model (x86-64-v1; named models
// cannot be checked against an emulated host) and a 256 MiB translation-block cache instead of QEMU 7's
// 1 GiB default. KVM: the host CPU, unchecked, because hosts such as PVM report CPUID the named models fail.
func setAccelerator(d *libvirtxml.Domain, a Accelerator) {
	switch a {
	case AccelKVM:
		d.Type = "kvm"
		d.CPU = &libvirtxml.DomainCPU{Mode: "host-passthrough", Check: "none", Migratable: "off"}
	default:
		d.Type = "qemu"
		d.CPU = &libvirtxml.DomainCPU{
			Mode: "custom", Match: "exact", Check: "none",
			Model: &libvirtxml.DomainCPUModel{Fallback: "allow", Value: "qemu64"},
		}
		d.Features.TCG = &libvirtxml.DomainFeatureTCG{TBCache: &libvirtxml.DomainFeatureTCGTBCache{Unit: "MiB", Size: 256}}
	}
}

// volumeXML renders a storage volume; backing is the backing volume's path for a qcow2 overlay.
func volumeXML(name, format string, capacityBytes uint64, backing string) (string, error) {
	v := &libvirtxml.StorageVolume{
		Name:     name,
		Capacity: &libvirtxml.StorageVolumeSize{Value: capacityBytes, Unit: "bytes"},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: format}},
	}
	if backing != "" {
		v.BackingStore = &libvirtxml.StorageVolumeBackingStore{
			Path: backing, Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"},
		}
	}
	out, err := v.Marshal()
	if err != nil {
		return "", fmt.Errorf("encoding volume %s: %w", name, err)
	}
	return out, nil
}

// overlayName and seedName are the volumes of VM name.
func overlayName(name string) string { return name + ".qcow2" }
func seedName(name string) string    { return name + "-seed.iso" }

// baseVolumes are the base image's volume names.
func baseVolumes(base string) (disk, kernel, initrd string) {
	base = strings.TrimSuffix(base, ".qcow2")
	return base + ".qcow2", base + ".vmlinuz", base + ".initrd"
}
