//go:build linux && cgo

package vmlab

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Setup makes the lab ready, idempotently: apt packages, virtlogd and libvirtd, the network, the pool, the
// base image (from the cache when its inputs did not change) and its volumes.
func (l *Lab) Setup(ctx context.Context) (*SetupResult, error) {
	t0 := time.Now()
	unlock, err := l.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := l.EnsurePackages(ctx); err != nil {
		return nil, err
	}
	if err := l.EnsureDaemons(ctx); err != nil {
		return nil, err
	}
	conn, err := l.connect()
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	if err := ensureNetwork(conn, l.logf); err != nil {
		return nil, err
	}
	pool, err := ensurePool(conn, l.logf, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = pool.Free() }()
	l.logf("network %s and pool %s ready", NetworkName, PoolName)
	img, err := l.EnsureImage(ctx)
	if err != nil {
		return nil, err
	}
	kept, err := l.ensureVolumes(conn, pool, img)
	if err != nil {
		return nil, err
	}
	res := &SetupResult{
		URI: l.cfg.URI, Network: NetworkName, Pool: PoolName, PoolPath: PoolPath,
		Image: img, ImageBuilt: img.Built, OutdatedVolumes: kept, Seconds: time.Since(t0).Seconds(),
	}
	l.logf("lab ready in %s", time.Since(t0).Round(100*time.Millisecond))
	return res, nil
}

// machineLock is the lab's lock file when /run/lock is writable: the network, the pool and the volumes
// belong to the machine, whatever cache directory a run uses.
const machineLock = "/run/lock/kubesmith-vmlab.lock"

// lock takes the lab's lock file (one Setup, Check or Clean at a time), waiting for another holder.
func (l *Lab) lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(machineLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		// Not root: only this user's runs can change anything here anyway.
		if err := os.MkdirAll(l.cfg.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("lab lock: %w", err)
		}
		f, err = os.OpenFile(l.paths().lock, os.O_CREATE|os.O_RDWR, 0o644)
	}
	if err != nil {
		return nil, fmt.Errorf("lab lock: %w", err)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	waiting := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if err != syscall.EWOULDBLOCK {
			_ = f.Close()
			return nil, fmt.Errorf("lab lock %s: %w", f.Name(), err)
		}
		if !waiting {
			l.logf("waiting for another kslab vm run (lock %s)", f.Name())
			waiting = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("lab lock: %w", ctx.Err())
		case <-tick.C:
		}
	}
}
