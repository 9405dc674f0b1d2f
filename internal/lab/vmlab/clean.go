//go:build linux && cgo

package vmlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"libvirt.org/go/libvirt"
)

// Clean removes what Setup created: the pool with its volumes and directory, the network, and with
// opts.Cache the cache directory. It refuses while defined domains use the pool or the network (it never
// destroys VMs), and it leaves a network or pool of the same name that is not the lab's alone. Packages
// and the daemons stay.
func (l *Lab) Clean(ctx context.Context, opts CleanOptions) error {
	unlock, err := l.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := exec.LookPath("libvirtd"); err == nil {
		if err := l.EnsureDaemons(ctx); err != nil {
			return err
		}
		conn, err := l.connect()
		if err != nil {
			return err
		}
		err = cleanLibvirt(conn, l.logf, true)
		closeConn(conn)
		if err != nil {
			return err
		}
	} else {
		l.logf("libvirt is not installed: no network or pool to remove")
	}
	// The network and pool a recorded self-check ran on are gone: the next check boots a VM again.
	if err := os.Remove(l.passedPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the self-check record: %w", err)
	}
	if opts.Cache {
		if err := os.RemoveAll(l.cfg.CacheDir); err != nil {
			return fmt.Errorf("remove cache: %w", err)
		}
		l.logf("removed cache %s", l.cfg.CacheDir)
	}
	return nil
}

// cleanLibvirt removes the lab's pool (volumes, directory, definition) and network. With local, it also
// removes the parents of PoolPath that are left empty.
func cleanLibvirt(conn *libvirt.Connect, logf func(string, ...any), local bool) error {
	users, err := domainsUsing(conn, []string{"'" + PoolPath + "/", "<source network='" + NetworkName + "'"})
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("domains %v use the lab's pool or network: remove them first (clean never destroys VMs)", users)
	}
	if err := cleanPool(conn, logf, local); err != nil {
		return err
	}
	return cleanNetwork(conn, logf)
}

func cleanPool(conn *libvirt.Connect, logf func(string, ...any), local bool) error {
	pool, err := conn.LookupStoragePoolByName(PoolName)
	if isCode(err, libvirt.ERR_NO_STORAGE_POOL) {
		logf("pool %s: not defined", PoolName)
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up pool %s: %w", PoolName, err)
	}
	defer func() { _ = pool.Free() }()
	desc, err := pool.GetXMLDesc(0)
	if err == nil {
		err = checkPool(desc)
	}
	if err != nil {
		logf("pool %s is not the lab's, left alone: %v", PoolName, err)
		return nil
	}
	active, err := pool.IsActive()
	if err != nil {
		return fmt.Errorf("pool %s: %w", PoolName, err)
	}
	if !active {
		if err := pool.Create(0); err != nil {
			return fmt.Errorf("start pool %s to delete its volumes: %w", PoolName, err)
		}
	}
	if err := pool.Refresh(0); err != nil {
		return fmt.Errorf("refresh pool %s: %w", PoolName, err)
	}
	vols, err := pool.ListAllStorageVolumes(0)
	if err != nil {
		return fmt.Errorf("list volumes of %s: %w", PoolName, err)
	}
	var errs []error
	for i := range vols {
		name, _ := vols[i].GetName()
		if err := vols[i].Delete(libvirt.STORAGE_VOL_DELETE_NORMAL); err != nil {
			errs = append(errs, fmt.Errorf("delete volume %s: %w", name, err))
		} else {
			logf("deleted volume %s", name)
		}
		_ = vols[i].Free()
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := pool.Destroy(); err != nil {
		return fmt.Errorf("stop pool %s: %w", PoolName, err)
	}
	if err := pool.Delete(libvirt.STORAGE_POOL_DELETE_NORMAL); err != nil {
		return fmt.Errorf("delete pool directory %s: %w", PoolPath, err)
	}
	if err := pool.Undefine(); err != nil {
		return fmt.Errorf("undefine pool %s: %w", PoolName, err)
	}
	// The parents Setup created, when empty (os.Remove leaves a directory with anything else in it).
	for dir := filepath.Dir(PoolPath); local && dir != "/var/lib"; dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	logf("removed pool %s and %s", PoolName, PoolPath)
	return nil
}

func cleanNetwork(conn *libvirt.Connect, logf func(string, ...any)) error {
	net, err := conn.LookupNetworkByName(NetworkName)
	if isCode(err, libvirt.ERR_NO_NETWORK) {
		logf("network %s: not defined", NetworkName)
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up network %s: %w", NetworkName, err)
	}
	defer func() { _ = net.Free() }()
	desc, err := net.GetXMLDesc(0)
	if err == nil {
		err = checkNetwork(desc)
	}
	if err != nil {
		logf("network %s is not the lab's, left alone: %v", NetworkName, err)
		return nil
	}
	if active, err := net.IsActive(); err == nil && active {
		if err := net.Destroy(); err != nil {
			return fmt.Errorf("stop network %s: %w", NetworkName, err)
		}
	}
	if err := net.Undefine(); err != nil {
		return fmt.Errorf("undefine network %s: %w", NetworkName, err)
	}
	logf("removed network %s (bridge %s)", NetworkName, BridgeName)
	return nil
}
