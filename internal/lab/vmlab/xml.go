package vmlab

import (
	"fmt"

	"libvirt.org/go/libvirtxml"
)

// networkXML is the lab network: isolated (no <forward>), bridge BridgeName, HostAddress/NetworkPrefix,
// no DHCP (every guest has a static address), a local-only DNS domain.
func networkXML() (string, error) {
	n := libvirtxml.Network{
		Name:   NetworkName,
		Bridge: &libvirtxml.NetworkBridge{Name: BridgeName, STP: "off", Delay: "0"},
		Domain: &libvirtxml.NetworkDomain{Name: DNSDomain, LocalOnly: "yes"},
		IPs:    []libvirtxml.NetworkIP{{Address: HostAddress, Prefix: NetworkPrefix}},
	}
	s, err := n.Marshal()
	if err != nil {
		return "", fmt.Errorf("network XML: %w", err)
	}
	return s, nil
}

// checkNetwork reports why an existing network definition is not the lab network (nil when it is).
func checkNetwork(xmlDesc string) error {
	var n libvirtxml.Network
	if err := n.Unmarshal(xmlDesc); err != nil {
		return fmt.Errorf("network %s: %w", NetworkName, err)
	}
	switch {
	case n.Forward != nil && n.Forward.Mode != "":
		return fmt.Errorf("network %s forwards (mode %s); the lab network must be isolated", NetworkName, n.Forward.Mode)
	case n.Forward != nil:
		return fmt.Errorf("network %s has a <forward> element; the lab network must be isolated", NetworkName)
	case n.Bridge == nil || n.Bridge.Name != BridgeName:
		return fmt.Errorf("network %s does not use bridge %s", NetworkName, BridgeName)
	case len(n.IPs) != 1 || n.IPs[0].Address != HostAddress || !samePrefix(n.IPs[0]):
		return fmt.Errorf("network %s does not have the single address %s/%d", NetworkName, HostAddress, NetworkPrefix)
	case n.IPs[0].DHCP != nil:
		return fmt.Errorf("network %s serves DHCP; the lab network has static addresses only", NetworkName)
	}
	return nil
}

// samePrefix reports whether an <ip> has prefix NetworkPrefix, written as prefix or netmask.
func samePrefix(ip libvirtxml.NetworkIP) bool {
	return ip.Prefix == NetworkPrefix || (ip.Prefix == 0 && ip.Netmask == "255.255.255.0")
}

// poolXML is the lab pool: a directory pool at PoolPath.
func poolXML() (string, error) {
	p := libvirtxml.StoragePool{
		Type: "dir",
		Name: PoolName,
		Target: &libvirtxml.StoragePoolTarget{
			Path:        PoolPath,
			Permissions: &libvirtxml.StoragePoolTargetPermissions{Mode: "0755"},
		},
	}
	s, err := p.Marshal()
	if err != nil {
		return "", fmt.Errorf("pool XML: %w", err)
	}
	return s, nil
}

// checkPool reports why an existing pool definition is not the lab pool (nil when it is).
func checkPool(xmlDesc string) error {
	var p libvirtxml.StoragePool
	if err := p.Unmarshal(xmlDesc); err != nil {
		return fmt.Errorf("pool %s: %w", PoolName, err)
	}
	if p.Type != "dir" || p.Target == nil || p.Target.Path != PoolPath {
		return fmt.Errorf("pool %s is not a dir pool at %s", PoolName, PoolPath)
	}
	return nil
}

// volumeXML is a volume of the given format and capacity (bytes).
func volumeXML(name, format string, capacity uint64) (string, error) {
	v := libvirtxml.StorageVolume{
		Name:     name,
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: capacity},
		Target: &libvirtxml.StorageVolumeTarget{
			Format:      &libvirtxml.StorageVolumeTargetFormat{Type: format},
			Permissions: &libvirtxml.StorageVolumeTargetPermissions{Mode: "0644"},
		},
	}
	s, err := v.Marshal()
	if err != nil {
		return "", fmt.Errorf("volume XML: %w", err)
	}
	return s, nil
}
