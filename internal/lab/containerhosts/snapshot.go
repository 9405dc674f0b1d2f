package containerhosts

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Snapshot is a normalised picture of a node's host-level state, for "destroy leaves the host identical"
// checks: take one before the provider installs, one after it destroys, and Diff them.
//
// Sections (each a sorted list of lines):
//   - unit-files: `systemctl list-unit-files` (name, state, preset).
//   - units: `systemctl list-units --all` as "name load active sub", without units that are inactive/dead
//     (whether systemd still has them loaded depends on its garbage collection), login sessions
//     (session-*.scope, user@*.service, user-runtime-dir@*.service, user*.slice, run-user-*.mount), the
//     mounts of systemd's per-boot service credentials (run-credentials-*.mount) and the
//     D-Bus-activated daemons that exit when idle (systemd-hostnamed, -timedated, -localed).
//   - files: type, mode, owner and path (and link target) of everything under /etc, /usr/local, /opt,
//     /var/lib and /run, except volatile runtime state: /run/systemd, /run/user, /run/log (the journal),
//     /run/udev, /run/sudo, /run/credentials (systemd's per-boot service credentials),
//     /var/lib/systemd/timers (timer stamps) and /var/lib/sudo (lecture stamps).
//     /var/log is not listed at all. Sizes and times are not recorded.
//   - hashes: sha256 of every regular file under /etc, /usr/local and /opt (configuration and installed
//     binaries; /var/lib and /run hold data whose content legitimately changes).
//   - mounts: /proc/self/mountinfo as "mountpoint fstype source root options propagation", without mount ids,
//     peer-group numbers and superblock options, and without /run/user/* and /run/credentials/*.
//   - links, addrs, routes: `ip -o link`, `ip -o addr`, `ip route show table all` (v4 and v6) without interface
//     indexes, peer indexes and address lifetimes.
//   - iptables, ip6tables: `iptables-save` / `ip6tables-save` as "table line", without comments and counters.
//   - nft: `nft list ruleset` flattened to "table … / chain … / rule", without counter values and set-element
//     expiry times.
//
// In iptables, ip6tables and nft, the ports of docker's embedded-DNS rules (DOCKER_OUTPUT and
// DOCKER_POSTROUTING for 127.0.0.11, new random ports at every container start) read "<port>"; and a table
// with nothing in it (only built-in chains with policy ACCEPT, no
// rules, no user chains or sets) is left out: iptables-nft creates such tables on first use, even for a
// read-only `iptables -L`, and they filter nothing.
type Snapshot struct {
	// Node is the node's name.
	Node string `json:"node"`
	// Sections maps a section name to its normalised, sorted lines.
	Sections map[string][]string `json:"sections"`
}

// snapshotScript prints every section's raw output after a "@@@ <section>" line.
const snapshotScript = `export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo "@@@ unit-files"; systemctl list-unit-files --no-legend --no-pager 2>&1
echo "@@@ units"; systemctl list-units --all --no-legend --no-pager --plain 2>&1
echo "@@@ files"
find /etc /usr/local /opt /var/lib /run \( -path /run/systemd -o -path /run/user -o -path /run/log -o -path /run/udev \
  -o -path /run/sudo -o -path /run/credentials -o -path /var/lib/systemd/timers -o -path /var/lib/sudo \) -prune -o -printf '%y %#m %U:%G %p -> %l\n' 2>/dev/null
echo "@@@ hashes"; find /etc /usr/local /opt -type f -exec sha256sum {} + 2>/dev/null
echo "@@@ mounts"; cat /proc/self/mountinfo
echo "@@@ links"; ip -o link show 2>&1
echo "@@@ addrs"; ip -o addr show 2>&1
echo "@@@ routes"; ip route show table all 2>&1; ip -6 route show table all 2>&1
echo "@@@ iptables"; iptables-save 2>&1
echo "@@@ ip6tables"; ip6tables-save 2>&1
echo "@@@ nft"; nft list ruleset 2>&1
exit 0
`

// Snapshot captures a node's state through `docker exec` (so it works whatever the provider did to SSH).
func (l *Lab) Snapshot(ctx context.Context, name string) (Snapshot, error) {
	n, err := l.Node(ctx, name)
	if err != nil {
		return Snapshot{}, err
	}
	res, err := l.execIn(ctx, n, snapshotScript)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", n.Name, err)
	}
	return parseSnapshot(n.Name, res.Stdout), nil
}

// parseSnapshot splits the script's output into sections and normalises each.
func parseSnapshot(node, raw string) Snapshot {
	rawSections := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(raw, "\n") {
		if name, ok := strings.CutPrefix(line, "@@@ "); ok {
			cur = name
			rawSections[cur] = []string{}
			continue
		}
		if cur != "" {
			rawSections[cur] = append(rawSections[cur], line)
		}
	}
	s := Snapshot{Node: node, Sections: map[string][]string{}}
	for name, lines := range rawSections {
		var out []string
		switch name {
		case "unit-files":
			out = normUnitFiles(lines)
		case "units":
			out = normUnits(lines)
		case "files":
			out = normFiles(lines)
		case "mounts":
			out = normMounts(lines)
		case "links", "addrs":
			out = normIPOneline(lines)
		case "iptables", "ip6tables":
			out = normDockerDNSPorts(normIptablesSave(lines))
		case "nft":
			out = normDockerDNSPorts(normNft(lines))
		default:
			out = trimmedNonEmpty(lines)
		}
		slices.Sort(out)
		s.Sections[name] = out
	}
	return s
}

func trimmedNonEmpty(lines []string) []string {
	var out []string
	for _, l := range lines {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func normUnitFiles(lines []string) []string {
	var out []string
	for _, l := range trimmedNonEmpty(lines) {
		if strings.Contains(l, "unit files listed") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// volatileUnit reports units whose presence depends on logins or idle timeouts, not on what is installed.
func volatileUnit(name string) bool {
	for _, p := range []string{"session-", "user@", "user-runtime-dir@", "user-", "run-user-", "run-credentials-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	switch name {
	case "user.slice", "systemd-hostnamed.service", "systemd-timedated.service", "systemd-localed.service":
		return true
	}
	return false
}

func normUnits(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 4 || volatileUnit(f[0]) {
			continue
		}
		if f[2] == "inactive" && f[3] == "dead" {
			continue
		}
		out = append(out, strings.Join(f[:4], " "))
	}
	return out
}

func normFiles(lines []string) []string {
	var out []string
	for _, l := range lines {
		l = strings.TrimSuffix(l, " -> ")
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// normMounts keeps "mountpoint fstype source root options propagation" from mountinfo lines.
func normMounts(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		sep := slices.Index(f, "-")
		if len(f) < 7 || sep < 6 || sep+2 >= len(f) {
			continue
		}
		root, mp, opts := unescapeMountinfo(f[3]), unescapeMountinfo(f[4]), f[5]
		if strings.HasPrefix(mp, "/run/user/") || strings.HasPrefix(mp, "/run/credentials/") {
			continue
		}
		prop := "private"
		for _, o := range f[6:sep] {
			switch {
			case strings.HasPrefix(o, "shared:"):
				prop = "shared"
			case strings.HasPrefix(o, "master:") && prop == "private":
				prop = "slave"
			case strings.HasPrefix(o, "master:"):
				prop += ",slave"
			case o == "unbindable":
				prop = "unbindable"
			}
		}
		out = append(out, strings.Join([]string{mp, f[sep+1], unescapeMountinfo(f[sep+2]), root, opts, prop}, " "))
	}
	return out
}

// normIPOneline drops `ip -o` interface indexes, veth peer indexes, netns ids and address lifetimes.
func normIPOneline(lines []string) []string {
	index := regexp.MustCompile(`^\d+:\s+`)
	peer := regexp.MustCompile(`@if\d+`)
	netnsid := regexp.MustCompile(`\s+link-netns(id)?\s+\S+`)
	var out []string
	for _, l := range lines {
		l, _, _ = strings.Cut(l, `\    valid_lft`)
		l, _, _ = strings.Cut(l, `\       valid_lft`)
		l = index.ReplaceAllString(l, "")
		l = peer.ReplaceAllString(l, "@if")
		l = netnsid.ReplaceAllString(l, "")
		l = strings.ReplaceAll(l, `\`, " ")
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// normIptablesSave turns iptables-save output into "table line" entries without comments and counters,
// leaving out empty tables.
func normIptablesSave(lines []string) []string {
	counters := regexp.MustCompile(`\s*\[\d+:\d+\]`)
	var out, cur []string
	table := ""
	empty := true
	flush := func() {
		if table != "" && !empty {
			out = append(out, cur...)
		}
		cur, table, empty = nil, "", true
	}
	for _, l := range lines {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "*"):
			flush()
			table = l[1:]
		case l == "COMMIT":
			flush()
		case table == "":
			out = append(out, l) // an error message: keep it visible
		default:
			l = counters.ReplaceAllString(l, "")
			if strings.HasPrefix(l, "-") || (strings.HasPrefix(l, ":") && !strings.HasSuffix(l, " ACCEPT")) {
				empty = false // a rule, a user chain ("-" policy) or a DROP policy
			}
			cur = append(cur, table+" "+l)
		}
	}
	flush()
	return out
}

// normDockerDNSPorts replaces the random ports in the NAT rules docker sets up in every container for its
// embedded DNS server at 127.0.0.11.
func normDockerDNSPorts(lines []string) []string {
	port := regexp.MustCompile(`(127\.0\.0\.11:|sport )\d+\b`)
	for i, l := range lines {
		if strings.Contains(l, "127.0.0.11") {
			lines[i] = port.ReplaceAllString(l, "${1}<port>")
		}
	}
	return lines
}

// normNft flattens `nft list ruleset` into "block / block / line" entries without counter values and
// expiry times, leaving out tables that hold nothing but empty accept-policy base chains.
func normNft(lines []string) []string {
	counter := regexp.MustCompile(`counter packets \d+ bytes \d+`)
	expires := regexp.MustCompile(`\s+expires \S+`)
	baseChain := regexp.MustCompile(`^type \S+ hook \S+ (device \S+ )?priority \S+; policy accept;$`)
	var out, tableLines []string
	var stack []string
	tableEmpty := true
	for _, raw := range lines {
		l := strings.TrimSpace(raw)
		l = counter.ReplaceAllString(l, "counter")
		l = expires.ReplaceAllString(l, "")
		switch {
		case l == "":
		case strings.HasSuffix(l, "{"):
			hdr := strings.TrimSpace(strings.TrimSuffix(l, "{"))
			if len(stack) == 0 {
				tableLines, tableEmpty = nil, true
			} else if !strings.HasPrefix(hdr, "chain ") {
				tableEmpty = false // a set, map, flowtable, ...
			}
			stack = append(stack, hdr)
			tableLines = append(tableLines, strings.Join(stack, " / "))
		case l == "}":
			if len(stack) == 0 {
				continue
			}
			if len(stack) == 2 && strings.HasPrefix(stack[1], "chain ") && !chainHasHook(tableLines, strings.Join(stack, " / ")) {
				tableEmpty = false // a user chain
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 && !tableEmpty {
				out = append(out, tableLines...)
			}
		default:
			if len(stack) == 0 {
				out = append(out, l) // an error message
				continue
			}
			if !baseChain.MatchString(l) {
				tableEmpty = false
			}
			tableLines = append(tableLines, strings.Join(stack, " / ")+" / "+l)
		}
	}
	return out
}

// chainHasHook reports whether the chain block at path has a "type … hook …" line.
func chainHasHook(tableLines []string, path string) bool {
	for _, l := range tableLines {
		if rest, ok := strings.CutPrefix(l, path+" / "); ok && strings.HasPrefix(rest, "type ") && strings.Contains(rest, " hook ") {
			return true
		}
	}
	return false
}

// Diff lists the differences from a to b, section by section: "section: - line" for a line only in a,
// "section: + line" for a line only in b (counted as multisets). Equal snapshots give nil.
func Diff(a, b Snapshot) []string {
	names := make([]string, 0, len(a.Sections)+len(b.Sections))
	for n := range a.Sections {
		names = append(names, n)
	}
	for n := range b.Sections {
		if _, ok := a.Sections[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []string
	for _, name := range names {
		count := map[string]int{}
		for _, l := range a.Sections[name] {
			count[l]++
		}
		for _, l := range b.Sections[name] {
			count[l]--
		}
		var minus, plus []string
		for l, c := range count {
			for ; c > 0; c-- {
				minus = append(minus, name+": - "+l)
			}
			for ; c < 0; c++ {
				plus = append(plus, name+": + "+l)
			}
		}
		slices.Sort(minus)
		slices.Sort(plus)
		out = append(out, minus...)
		out = append(out, plus...)
	}
	return out
}
