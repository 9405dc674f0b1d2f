//go:build linux && cgo

package vmlab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"libvirt.org/go/libvirt"
)

// ensureVolumes uploads the image's files as volumes of pool unless a volume of that name already has the
// same content (sha256 of its file). A volume with other content is replaced, unless a defined domain
// uses it (its overlays would break): then ensureVolumes fails and names the domains.
func (l *Lab) ensureVolumes(conn *libvirt.Connect, pool *libvirt.StoragePool, img *Image) error {
	if err := pool.Refresh(0); err != nil {
		return fmt.Errorf("refresh pool %s: %w", PoolName, err)
	}
	for _, f := range img.Files {
		vol, err := pool.LookupStorageVolByName(f.Volume)
		switch {
		case isCode(err, libvirt.ERR_NO_STORAGE_VOL):
		case err != nil:
			return fmt.Errorf("look up volume %s: %w", f.Volume, err)
		default:
			same, path, err := volumeHasContent(vol, f)
			if err != nil {
				_ = vol.Free()
				return err
			}
			if same {
				_ = vol.Free()
				l.logf("volume %s up to date", f.Volume)
				continue
			}
			users, err := domainsUsing(conn, []string{"'" + path + "'"})
			if err != nil {
				_ = vol.Free()
				return err
			}
			if len(users) > 0 {
				_ = vol.Free()
				return fmt.Errorf("volume %s differs from the new image but domains %v use it: remove them first", f.Volume, users)
			}
			err = vol.Delete(libvirt.STORAGE_VOL_DELETE_NORMAL)
			_ = vol.Free()
			if err != nil {
				return fmt.Errorf("delete outdated volume %s: %w", f.Volume, err)
			}
			l.logf("volume %s outdated: replacing it", f.Volume)
		}
		if err := l.uploadVolume(conn, pool, f); err != nil {
			return err
		}
	}
	return nil
}

// volumeHasContent reports whether a volume's file has the size and sha256 of f, and returns its path.
func volumeHasContent(vol *libvirt.StorageVol, f ImageFile) (bool, string, error) {
	path, err := vol.GetPath()
	if err != nil {
		return false, "", fmt.Errorf("volume %s: %w", f.Volume, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() != f.Size {
		return false, path, nil //nolint:nilerr // an unreadable or different-size file is simply outdated
	}
	_, sum, err := hashFile(path)
	if err != nil {
		return false, path, nil //nolint:nilerr // unreadable: replace it
	}
	return sum == f.SHA256, path, nil
}

// uploadVolume creates a volume for f and streams the file into it.
func (l *Lab) uploadVolume(conn *libvirt.Connect, pool *libvirt.StoragePool, f ImageFile) (err error) {
	t0 := time.Now()
	src, err := os.Open(f.Path)
	if err != nil {
		return fmt.Errorf("upload %s: %w", f.Volume, err)
	}
	defer func() { _ = src.Close() }() // read only
	capacity := uint64(f.Size)
	if f.Format == "qcow2" {
		if capacity, err = qcow2VirtualSize(src); err != nil {
			return fmt.Errorf("upload %s: %w", f.Volume, err)
		}
	}
	x, err := volumeXML(f.Volume, f.Format, capacity)
	if err != nil {
		return err
	}
	vol, err := pool.StorageVolCreateXML(x, 0)
	if err != nil {
		return fmt.Errorf("create volume %s: %w", f.Volume, err)
	}
	defer func() {
		if err != nil {
			_ = vol.Delete(libvirt.STORAGE_VOL_DELETE_NORMAL) // no half-written base image
		}
		_ = vol.Free()
	}()
	stream, err := conn.NewStream(0)
	if err != nil {
		return fmt.Errorf("upload %s: %w", f.Volume, err)
	}
	defer func() { _ = stream.Free() }()
	if err := vol.Upload(stream, 0, uint64(f.Size), 0); err != nil {
		return fmt.Errorf("upload %s: %w", f.Volume, err)
	}
	if err := sendAll(stream, src); err != nil {
		_ = stream.Abort()
		return fmt.Errorf("upload %s: %w", f.Volume, err)
	}
	if err := stream.Finish(); err != nil {
		return fmt.Errorf("upload %s: %w", f.Volume, err)
	}
	l.logf("uploaded volume %s (%s) in %s", f.Volume, mib(f.Size), time.Since(t0).Round(100*time.Millisecond))
	return nil
}

// sendAll copies r into a libvirt stream.
func sendAll(stream *libvirt.Stream, r io.Reader) error {
	buf := make([]byte, 4<<20)
	for {
		n, rerr := r.Read(buf)
		for off := 0; off < n; {
			sent, err := stream.Send(buf[off:n])
			if err != nil {
				return fmt.Errorf("stream: %w", err)
			}
			off += sent
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read: %w", rerr)
		}
	}
}
