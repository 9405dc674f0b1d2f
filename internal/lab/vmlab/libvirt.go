//go:build linux && cgo

package vmlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"libvirt.org/go/libvirt"
)

// connect opens the libvirt connection of the lab.
func (l *Lab) connect() (*libvirt.Connect, error) {
	conn, err := libvirt.NewConnect(l.cfg.URI)
	if err != nil {
		return nil, fmt.Errorf("connect to libvirt %s: %w", l.cfg.URI, err)
	}
	return conn, nil
}

// closeConn closes a connection; a leaked reference is not worth failing the lab for.
func closeConn(conn *libvirt.Connect) { _, _ = conn.Close() }

// isCode reports whether err is a libvirt error with the given code.
func isCode(err error, code libvirt.ErrorNumber) bool {
	var lerr libvirt.Error
	return errors.As(err, &lerr) && lerr.Code == code
}

// ensureNetwork defines, starts and autostarts the lab network; an existing network named NetworkName must
// match the lab's definition (it is never changed, and no other network is touched).
func ensureNetwork(conn *libvirt.Connect, logf func(string, ...any)) error {
	net, err := conn.LookupNetworkByName(NetworkName)
	switch {
	case isCode(err, libvirt.ERR_NO_NETWORK):
		x, err := networkXML()
		if err != nil {
			return err
		}
		if net, err = conn.NetworkDefineXML(x); err != nil {
			return fmt.Errorf("define network %s: %w", NetworkName, err)
		}
		logf("defined network %s (isolated, bridge %s, %s/%d, no DHCP)", NetworkName, BridgeName, HostAddress, NetworkPrefix)
	case err != nil:
		return fmt.Errorf("look up network %s: %w", NetworkName, err)
	default:
		desc, err := net.GetXMLDesc(0)
		if err != nil {
			_ = net.Free()
			return fmt.Errorf("network %s: %w", NetworkName, err)
		}
		if err := checkNetwork(desc); err != nil {
			_ = net.Free()
			return fmt.Errorf("%w (remove it with `kslab vm clean` or virsh net-undefine, then run setup again)", err)
		}
	}
	defer func() { _ = net.Free() }()
	active, err := net.IsActive()
	if err != nil {
		return fmt.Errorf("network %s: %w", NetworkName, err)
	}
	if !active {
		if err := net.Create(); err != nil {
			return fmt.Errorf("start network %s: %w", NetworkName, err)
		}
		logf("started network %s", NetworkName)
	}
	if auto, err := net.GetAutostart(); err != nil || !auto {
		if err := net.SetAutostart(true); err != nil {
			return fmt.Errorf("autostart network %s: %w", NetworkName, err)
		}
	}
	return nil
}

// ensurePool defines, builds, starts and autostarts the lab pool; an existing pool named PoolName must be
// a dir pool at PoolPath. With local, it creates the parents of PoolPath first (libvirt's build does not).
func ensurePool(conn *libvirt.Connect, logf func(string, ...any), local bool) (*libvirt.StoragePool, error) {
	pool, err := conn.LookupStoragePoolByName(PoolName)
	switch {
	case isCode(err, libvirt.ERR_NO_STORAGE_POOL):
		x, err := poolXML()
		if err != nil {
			return nil, err
		}
		if pool, err = conn.StoragePoolDefineXML(x, 0); err != nil {
			return nil, fmt.Errorf("define pool %s: %w", PoolName, err)
		}
		logf("defined pool %s (dir %s)", PoolName, PoolPath)
	case err != nil:
		return nil, fmt.Errorf("look up pool %s: %w", PoolName, err)
	default:
		desc, err := pool.GetXMLDesc(0)
		if err == nil {
			err = checkPool(desc)
		}
		if err != nil {
			_ = pool.Free()
			return nil, fmt.Errorf("pool %s: %w (remove it with `kslab vm clean` or virsh pool-undefine)", PoolName, err)
		}
	}
	active, err := pool.IsActive()
	if err == nil && !active {
		if local {
			err = os.MkdirAll(filepath.Dir(PoolPath), 0o755)
		}
		if err == nil {
			if err = pool.Build(libvirt.STORAGE_POOL_BUILD_NEW); err != nil && isCode(err, libvirt.ERR_OPERATION_INVALID) {
				err = nil // already built
			}
		}
		if err == nil {
			err = pool.Create(0)
		}
		if err == nil {
			logf("started pool %s", PoolName)
		}
	}
	if err == nil {
		if auto, aerr := pool.GetAutostart(); aerr != nil || !auto {
			err = pool.SetAutostart(true)
		}
	}
	if err != nil {
		_ = pool.Free()
		return nil, fmt.Errorf("pool %s: %w", PoolName, err)
	}
	return pool, nil
}

// domainsUsing returns the names of the defined domains whose XML contains any of needles.
func domainsUsing(conn *libvirt.Connect, needles []string) ([]string, error) {
	doms, err := conn.ListAllDomains(0)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	var users []string
	for i := range doms {
		d := &doms[i]
		desc, derr := d.GetXMLDesc(0)
		name, nerr := d.GetName()
		_ = d.Free()
		if derr != nil || nerr != nil {
			continue // undefined meanwhile
		}
		for _, n := range needles {
			if strings.Contains(desc, n) {
				users = append(users, name)
				break
			}
		}
	}
	return users, nil
}
