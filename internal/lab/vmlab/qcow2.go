package vmlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// qcow2VirtualSize reads the virtual disk size from a qcow2 header (magic "QFI\xfb", size at offset 24).
func qcow2VirtualSize(r io.ReaderAt) (uint64, error) {
	var hdr [32]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return 0, fmt.Errorf("qcow2 header: %w", err)
	}
	if string(hdr[:4]) != "QFI\xfb" {
		return 0, errors.New("qcow2 header: bad magic")
	}
	return binary.BigEndian.Uint64(hdr[24:32]), nil
}
