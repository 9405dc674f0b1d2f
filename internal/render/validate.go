package render

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strings"
	"time"
)

var (
	// dns1123Subdomain is Kubernetes' node-name syntax (lower case, digits, '-', '.').
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// labelName is the name part of a label key or a label value's syntax (empty values are checked apart).
	labelName = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	// safeWord is a conservative token for values that end up in unit files, TOML or shell: no whitespace,
	// quotes, '%' (systemd specifiers), '$' (expansion), '\\' or shell metacharacters.
	safeWord = regexp.MustCompile(`^[A-Za-z0-9._:/@+=,~-]+$`)
	// unitName is a systemd unit name kubesmith manages.
	unitName = regexp.MustCompile(`^[A-Za-z0-9@._-]+\.(service|socket|timer|slice|mount|target)$`)
	// toolName is a command name looked up with `command -v`.
	toolName = regexp.MustCompile(`^[A-Za-z0-9._+-]+$`)
	// imageRef is a container image reference (registry/repo:tag or @digest).
	imageRef = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
)

// errs collects validation errors with a field prefix.
type errs []error

func (e *errs) addf(format string, args ...any) { *e = append(*e, fmt.Errorf(format, args...)) }

func (e errs) join(what string) error {
	if err := errors.Join(e...); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (e *errs) nodeName(field, v string) {
	if len(v) > 253 || !dns1123Subdomain.MatchString(v) {
		e.addf("%s %q is not a DNS-1123 subdomain", field, v)
	}
}

func (e *errs) ip(field, v string) netip.Addr {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		e.addf("%s %q is not an IP address", field, v)
		return netip.Addr{}
	}
	return a
}

func (e *errs) nonLoopbackIP(field, v string) {
	if a := e.ip(field, v); a.IsValid() && (a.IsLoopback() || a.IsUnspecified()) {
		e.addf("%s %q must not be a loopback or unspecified address", field, v)
	}
}

func (e *errs) cidr(field, v string) netip.Prefix {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		e.addf("%s %q is not a CIDR", field, v)
		return netip.Prefix{}
	}
	if p.Masked() != p {
		e.addf("%s %q has host bits set (want %s)", field, v, p.Masked())
	}
	return p
}

func (e *errs) word(field, v string) {
	if !safeWord.MatchString(v) {
		e.addf("%s %q is empty or contains characters that are unsafe in unit files and scripts", field, v)
	}
}

func (e *errs) absPath(field, v string) {
	if !path.IsAbs(v) || path.Clean(v) != v || v == "/" || !safeWord.MatchString(v) {
		e.addf("%s %q is not a clean absolute path (and not /)", field, v)
	}
}

func (e *errs) positive(field string, v int) {
	if v <= 0 {
		e.addf("%s %d is not positive", field, v)
	}
}

func (e *errs) duration(field string, v time.Duration) {
	if v <= 0 {
		e.addf("%s %s is not positive", field, v)
	}
}

func (e *errs) image(field, v string) {
	if len(v) > 255 || !imageRef.MatchString(v) {
		e.addf("%s %q is not a container image reference", field, v)
	}
}

func (e *errs) oneOf(field, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	e.addf("%s %q is not one of %s", field, v, strings.Join(allowed, ", "))
}

// labelKey checks a Kubernetes label key: [prefix/]name.
func (e *errs) labelKey(field, k string) {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	}
	if hasPrefix && (prefix == "" || len(prefix) > 253 || !dns1123Subdomain.MatchString(prefix)) {
		e.addf("%s %q has an invalid prefix", field, k)
	}
	if len(name) > 63 || !labelName.MatchString(name) {
		e.addf("%s %q has an invalid name", field, k)
	}
}

// labelValue checks a Kubernetes label value (empty is allowed).
func (e *errs) labelValue(field, v string) {
	if v != "" && (len(v) > 63 || !labelName.MatchString(v)) {
		e.addf("%s %q is not a valid label value", field, v)
	}
}

// dnsServer checks an upstream resolver "ip" or "ip:port": never loopback (CoreDNS's loop check, and
// docker's 127.0.0.11 is unreachable from pods) and never unspecified.
func (e *errs) dnsServer(field, v string) {
	addr, err := netip.ParseAddr(v)
	if err != nil {
		ap, perr := netip.ParseAddrPort(v)
		if perr != nil {
			e.addf("%s %q is not an IP address or IP:port", field, v)
			return
		}
		addr = ap.Addr()
	}
	if addr.IsLoopback() || addr.IsUnspecified() {
		e.addf("%s %q is a loopback or unspecified address; pods cannot reach it and CoreDNS would detect a loop", field, v)
	}
	if addr.Zone() != "" {
		e.addf("%s %q has an IPv6 zone", field, v)
	}
}
