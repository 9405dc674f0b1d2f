package containerhosts

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
)

// networkCreateArgs is the docker command that creates the lab network: --internal (docker adds DROP rules
// for anything leaving the subnet and never masquerades it), a fixed bridge name, and an --ip-range that
// keeps the upper half of the subnet out of docker's allocation.
func networkCreateArgs() []string {
	return []string{
		"network", "create", "--driver", "bridge", "--internal",
		"--subnet", Subnet, "--gateway", Gateway, "--ip-range", NodeRange,
		"-o", "com.docker.network.bridge.name=" + BridgeName,
		"-o", "com.docker.network.bridge.enable_ip_masquerade=false",
		"--label", labelLab + "=1",
		NetworkName,
	}
}

// networkInfo is the part of `docker network inspect` the lab checks.
type networkInfo struct {
	Name     string `json:"Name"`
	Internal bool   `json:"Internal"`
	IPAM     struct {
		Config []struct {
			Subnet  string `json:"Subnet"`
			IPRange string `json:"IPRange"`
			Gateway string `json:"Gateway"`
		} `json:"Config"`
	} `json:"IPAM"`
	Options map[string]string `json:"Options"`
}

// matches reports whether an existing network has the lab's layout.
func (n networkInfo) matches() bool {
	if !n.Internal || len(n.IPAM.Config) != 1 || n.Options["com.docker.network.bridge.name"] != BridgeName {
		return false
	}
	c := n.IPAM.Config[0]
	return c.Subnet == Subnet && c.IPRange == NodeRange && c.Gateway == Gateway
}

// EnsureNetwork creates the lab network unless it exists with the right layout. A network of that name
// with another layout is an error, and so is a host interface (other than the lab bridge) that already has
// an address in Subnet.
func (l *Lab) EnsureNetwork(ctx context.Context) error {
	ctx, p := l.progress(ctx)
	d := l.docker(findTools().docker)
	if out, err := d.run(ctx, nil, "network", "inspect", NetworkName); err == nil {
		var nets []networkInfo
		if err := json.Unmarshal([]byte(out), &nets); err != nil {
			return fmt.Errorf("inspect network %s: unexpected output: %w", NetworkName, err)
		}
		if len(nets) != 1 {
			return fmt.Errorf("inspect network %s: unexpected output: %d networks", NetworkName, len(nets))
		}
		if !nets[0].matches() {
			return fmt.Errorf("network %s exists with another layout; remove it (kslab hosts destroy-all)", NetworkName)
		}
		return nil
	}
	if err := subnetFree(); err != nil {
		return err
	}
	if _, err := d.run(ctx, nil, networkCreateArgs()...); err != nil {
		return fmt.Errorf("create lab network: %w", err)
	}
	p.logf("network %s: bridge %s, %s, nodes from %s", NetworkName, BridgeName, Subnet, NodeRange)
	return nil
}

// subnetFree checks that no host interface other than the lab bridge has an address in Subnet.
func subnetFree() error {
	subnet := netip.MustParsePrefix(Subnet)
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("host interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Name == BridgeName {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err == nil && subnet.Overlaps(pfx) {
				return fmt.Errorf("host interface %s already has %s, which overlaps the lab subnet %s", ifc.Name, pfx, Subnet)
			}
		}
	}
	return nil
}
