package artifacts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ELF identification, see elf(5).
const (
	elfClass32 = 1
	elfClass64 = 2
	elfDataLE  = 1
	elfDataBE  = 2
)

// errNotELF is returned by elfArch for files without the ELF magic.
var errNotELF = errors.New("not an ELF executable")

// elfArch reads the ELF header of r and returns the Go architecture name of its machine ("amd64", "arm64", ...).
// Unknown machines come back as "elf-machine-<n>", which matches no Go architecture.
func elfArch(r io.ReaderAt) (string, error) {
	var h [20]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return "", errNotELF
		}
		return "", fmt.Errorf("read ELF header: %w", err)
	}
	if string(h[:4]) != "\x7fELF" {
		return "", errNotELF
	}
	class, data := h[4], h[5]
	var bo binary.ByteOrder
	switch data {
	case elfDataLE:
		bo = binary.LittleEndian
	case elfDataBE:
		bo = binary.BigEndian
	default:
		return "", fmt.Errorf("ELF header: unknown data encoding %d", data)
	}
	if class != elfClass32 && class != elfClass64 {
		return "", fmt.Errorf("ELF header: unknown class %d", class)
	}
	is64 := class == elfClass64
	le := data == elfDataLE
	machine := bo.Uint16(h[18:20])
	switch machine {
	case 3: // EM_386
		return "386", nil
	case 62: // EM_X86_64
		return "amd64", nil
	case 40: // EM_ARM
		return "arm", nil
	case 183: // EM_AARCH64
		return "arm64", nil
	case 21: // EM_PPC64
		if le {
			return "ppc64le", nil
		}
		return "ppc64", nil
	case 22: // EM_S390
		return "s390x", nil
	case 243: // EM_RISCV
		if is64 {
			return "riscv64", nil
		}
		return "riscv", nil
	case 258: // EM_LOONGARCH
		return "loong64", nil
	case 8: // EM_MIPS
		switch {
		case is64 && le:
			return "mips64le", nil
		case is64:
			return "mips64", nil
		case le:
			return "mipsle", nil
		}
		return "mips", nil
	}
	return fmt.Sprintf("elf-machine-%d", machine), nil
}
