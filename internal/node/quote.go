package node

import (
	"fmt"
	"io/fs"
	"strings"
)

// Quote returns s quoted for a POSIX shell, so that the shell passes it on as exactly one word. Words made only
// of characters that need no quoting (letters, digits and @%+=:,./-_) are returned unchanged, as Python's
// shlex.quote does. Anything else is put in single quotes, where each single quote of s becomes a closing
// quote, a backslash-escaped quote and an opening quote:
//
//	Quote("it's") == `'it'\''s'`
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isShellSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isShellSafe(s string) bool {
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("@%+=:,./-_", c):
		default:
			return false
		}
	}
	return true
}

// asRoot wraps cmd so that it runs as root under /bin/sh: through `sudo -n` for a non-root login, directly for
// root. The login shell of the SSH user only ever sees this fixed, quoted form.
func asRoot(user, cmd string) string {
	if user == "root" {
		return "/bin/sh -c " + Quote(cmd)
	}
	return "sudo -n /bin/sh -c " + Quote(cmd)
}

// octalMode renders the permission bits of mode (with setuid, setgid and sticky) for chmod and install -m.
func octalMode(mode fs.FileMode) string {
	m := uint32(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return fmt.Sprintf("%04o", m)
}
