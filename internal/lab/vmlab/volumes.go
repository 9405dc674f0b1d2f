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

// ensureVolumes uploads the image's files as volumes of pool unless volumes of those names already have
// the same content (sha256 of their files). Outdated volumes are replaced together, unless a defined domain
// uses any of them (its overlay and kernel belong to the old image): then all three stay, and their names
// are returned with a warning, so that a running cluster keeps working and the next Setup after it is
// gone installs the new image.
func (l *Lab) ensureVolumes(conn *libvirt.Connect, pool *libvirt.StoragePool, img *Image) ([]string, error) {
	if err := pool.Refresh(0); err != nil {
		return nil, fmt.Errorf("refresh pool %s: %w", PoolName, err)
	}
	var missing, outdated []ImageFile
	var needles []string
	for _, f := range img.Files {
		vol, err := pool.LookupStorageVolByName(f.Volume)
		if isCode(err, libvirt.ERR_NO_STORAGE_VOL) {
			missing = append(missing, f)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up volume %s: %w", f.Volume, err)
		}
		same, path, err := volumeHasContent(vol, f)
		_ = vol.Free()
		if err != nil {
			return nil, err
		}
		if same {
			l.logf("volume %s up to date", f.Volume)
			continue
		}
		outdated = append(outdated, f)
		needles = append(needles, "'"+path+"'")
	}
	if len(outdated) > 0 {
		users, err := domainsUsing(conn, needles)
		if err != nil {
			return nil, err
		}
		if len(users) > 0 {
			var names []string
			for _, f := range img.Files {
				names = append(names, f.Volume)
			}
			l.logf("WARNING: the base image changed but domains %v use its volumes: keeping the old volumes; "+
				"run setup again once those VMs are gone", users)
			return names, nil
		}
	}
	for _, f := range outdated {
		vol, err := pool.LookupStorageVolByName(f.Volume)
		if err == nil {
			err = vol.Delete(libvirt.STORAGE_VOL_DELETE_NORMAL)
			_ = vol.Free()
		}
		if err != nil {
			return nil, fmt.Errorf("delete outdated volume %s: %w", f.Volume, err)
		}
		l.logf("volume %s outdated: replacing it", f.Volume)
	}
	for _, f := range append(missing, outdated...) {
		if err := l.uploadVolume(conn, pool, f); err != nil {
			return nil, err
		}
	}
	return nil, nil
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
