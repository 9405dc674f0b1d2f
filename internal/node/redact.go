package node

import (
	"slices"
	"strings"
)

// Redacted replaces every secret in messages, errors and logs.
const Redacted = "[REDACTED]"

// Redact returns s with every non-empty string in secrets replaced by "[REDACTED]". Longer secrets are replaced
// first, so a secret that contains another is hidden whole.
func Redact(s string, secrets []string) string {
	return newRedactor(secrets).redact(s)
}

type redactor struct{ secrets []string }

func newRedactor(secrets []string) redactor {
	var out []string
	for _, s := range secrets {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return redactor{secrets: out}
}

func (r redactor) redact(s string) string {
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, Redacted)
	}
	return s
}

// maxCmdInMessage bounds how much of a command an error or log line repeats.
const maxCmdInMessage = 1024

// cmdForMessage redacts cmd and shortens it for an error or log line.
func (r redactor) cmdForMessage(cmd string) string {
	s := r.redact(cmd)
	if len(s) > maxCmdInMessage {
		s = s[:maxCmdInMessage] + "…"
	}
	return s
}

// stderrTail keeps the last lines of a command's stderr for an error message, redacted.
func (r redactor) stderrTail(stderr string) string {
	const maxLines, maxBytes = 20, 4096
	s := strings.TrimSpace(r.redact(stderr))
	lines := strings.Split(s, "\n")
	if len(lines) > maxLines {
		s = strings.Join(lines[len(lines)-maxLines:], "\n")
	}
	if len(s) > maxBytes {
		s = "…" + s[len(s)-maxBytes:]
	}
	return s
}
