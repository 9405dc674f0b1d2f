package containerhosts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// hostBaseline is what the host looked like before the lab's dockerd first started (since boot: it lives in
// the run dir, a tmpfs, like the iptables rules). Teardown removes only what is not in it.
type hostBaseline struct {
	// DockerChains are the DOCKER* chains per iptables table that existed before: another Docker's.
	DockerChains map[string][]string `json:"docker_chains"`
	// Paths that dockerd or containerd create outside the lab's dirs, and whether they existed.
	Existed map[string]bool `json:"existed"`
	// IPForward is net.ipv4.ip_forward before; the lab never changes it.
	IPForward string `json:"ip_forward"`
	// Inotify holds fs.inotify limits that raiseInotify raised, with their values before, for teardown.
	Inotify map[string]string `json:"inotify,omitempty"`
}

// inotifyMinimums are the fs.inotify limits the lab needs. Every container host runs systemd, containerd and a
// kubelet, which each take inotify instances from one shared per-user budget (the containers share the
// machine's kernel and user namespace); Debian's default of 128 instances runs out at about six nodes, and
// containerd's CRI plugin then fails to load ("too many open files"). kind documents the same limits.
var inotifyMinimums = map[string]int{
	"/proc/sys/fs/inotify/max_user_instances": 1024,
	"/proc/sys/fs/inotify/max_user_watches":   524288,
}

// raiseInotify raises the machine's inotify limits to inotifyMinimums (never lowers them) and records the old
// values in the baseline, so that teardown restores them.
func (l *Lab) raiseInotify(p progress) error {
	var b hostBaseline
	data, err := os.ReadFile(l.paths.baseline)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &b); err != nil {
			return fmt.Errorf("host baseline: %w", err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("host baseline: %w", err)
	}
	changed := false
	for path, want := range inotifyMinimums {
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		have, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || have >= want {
			continue
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(want)), 0o644); err != nil {
			return fmt.Errorf("raising %s to %d: %w", path, want, err)
		}
		if b.Inotify == nil {
			b.Inotify = map[string]string{}
		}
		if _, ok := b.Inotify[path]; !ok {
			b.Inotify[path] = strconv.Itoa(have)
		}
		p.logf("raised %s from %d to %d for the container hosts (restored by destroy-all)", path, have, want)
		changed = true
	}
	if !changed {
		return nil
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("host baseline: %w", err)
	}
	return writeFileAtomic(l.paths.baseline, out, 0o644)
}

// outsidePaths are created by dockerd/containerd even with their own roots: containerd 1.6 puts shim sockets
// in /run/containerd/s, dockerd 20.10 its trust key in /etc/docker/key.json and its plugin discovery dir at
// /run/docker/plugins. Listed deepest first; only empty directories are ever removed.
func outsidePaths() []string {
	return []string{"/run/containerd/s", "/run/containerd", "/run/docker/plugins", "/run/docker", "/etc/docker/key.json", "/etc/docker"}
}

func (l *Lab) recordBaseline(ctx context.Context, t tools) error {
	if _, err := os.Stat(l.paths.baseline); err == nil {
		return nil
	}
	save, err := iptablesSave(ctx, t)
	if err != nil {
		return err
	}
	b := hostBaseline{DockerChains: map[string][]string{}, Existed: map[string]bool{}}
	for table, chains := range parseIptablesSave(save) {
		for _, c := range chains.chains {
			if strings.HasPrefix(c, "DOCKER") {
				b.DockerChains[table] = append(b.DockerChains[table], c)
			}
		}
	}
	for _, p := range outsidePaths() {
		_, err := os.Lstat(p)
		b.Existed[p] = err == nil
	}
	if v, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil {
		b.IPForward = strings.TrimSpace(string(v))
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("host baseline: %w", err)
	}
	if err := writeFileAtomic(l.paths.baseline, data, 0o644); err != nil {
		return fmt.Errorf("host baseline: %w", err)
	}
	return nil
}

// cleanHost runs after the lab's dockerd has stopped. It removes the iptables chains that dockerd created
// (DOCKER*, unless they existed before or another dockerd is running and so shares them), every rule that
// names the lab's bridge, and the paths outside the lab's dirs that did not exist before.
func (l *Lab) cleanHost(ctx context.Context, t tools) error {
	ctx, p := l.progress(ctx)
	b := hostBaseline{DockerChains: map[string][]string{}, Existed: map[string]bool{}}
	if data, err := os.ReadFile(l.paths.baseline); err == nil {
		if err := json.Unmarshal(data, &b); err != nil {
			return fmt.Errorf("host baseline: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("host baseline: %w", err)
	} else {
		for _, p := range outsidePaths() {
			b.Existed[p] = true // unknown: keep
		}
	}
	if t.iptablesSave != "" && t.iptablesRestore != "" {
		save, err := iptablesSave(ctx, t)
		if err != nil {
			return err
		}
		keepAll := false
		if others := otherDockerds(); len(others) > 0 {
			p.logf("another dockerd runs (pid %v): the DOCKER chains it shares are left alone", others)
			keepAll = true
		}
		if script := dockerChainCleanup(save, b.DockerChains, keepAll, BridgeName); script != "" {
			cmd := exec.CommandContext(ctx, t.iptablesRestore, "--noflush")
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("iptables cleanup: %w: %s\n%s", err, lastLines(string(out), 3), script)
			}
			p.logf("removed the lab dockerd's iptables rules and chains")
		}
	}
	for _, path := range outsidePaths() {
		if b.Existed[path] {
			continue
		}
		// os.Remove never removes a non-empty directory: what others put there stays.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) && !isNotEmpty(err) {
			return fmt.Errorf("remove %s: %w", path, err)
		}
	}
	if v, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil && b.IPForward != "" && strings.TrimSpace(string(v)) != b.IPForward {
		p.logf("warning: net.ipv4.ip_forward is %s, was %s before the lab started (not changed by the lab)", strings.TrimSpace(string(v)), b.IPForward)
	}
	for path, v := range b.Inotify {
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			return fmt.Errorf("restoring %s to %s: %w", path, v, err)
		}
		p.logf("restored %s to %s", path, v)
	}
	if err := os.Remove(l.paths.baseline); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("host baseline: %w", err)
	}
	return nil
}

func isNotEmpty(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "directory not empty")
}

// otherDockerds lists running dockerd processes (the lab's has stopped when this is called).
func otherDockerds() []int {
	var pids []int
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == "dockerd" && processAlive(pid, "dockerd") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func iptablesSave(ctx context.Context, t tools) (string, error) {
	if t.iptablesSave == "" {
		return "", nil
	}
	out, err := exec.CommandContext(ctx, t.iptablesSave).Output()
	if err != nil {
		return "", fmt.Errorf("iptables-save: %w", err)
	}
	return string(out), nil
}

// savedTable is one table of iptables-save output.
type savedTable struct {
	chains []string // every chain, built-in and user-defined, in order
	rules  []string // "-A CHAIN ..." lines
}

// parseIptablesSave splits iptables-save output into tables.
func parseIptablesSave(save string) map[string]*savedTable {
	tables := map[string]*savedTable{}
	var cur *savedTable
	for _, line := range strings.Split(save, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			cur = &savedTable{}
			tables[line[1:]] = cur
		case cur == nil || line == "" || strings.HasPrefix(line, "#") || line == "COMMIT":
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			cur.chains = append(cur.chains, name)
		case strings.HasPrefix(line, "-A "):
			cur.rules = append(cur.rules, line)
		}
	}
	return tables
}

// ruleTarget returns the chain a rule jumps or goes to, if any.
func ruleTarget(rule string) string {
	f := strings.Fields(rule)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-j" || f[i] == "-g" || f[i] == "--jump" || f[i] == "--goto" {
			return f[i+1]
		}
	}
	return ""
}

// ruleNamesInterface reports whether a rule matches on interface dev (-i/-o, negated or not).
func ruleNamesInterface(rule, dev string) bool {
	f := strings.Fields(rule)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-i" || f[i] == "-o" || f[i] == "--in-interface" || f[i] == "--out-interface" {
			if f[i+1] == dev {
				return true
			}
		}
	}
	return false
}

// dockerChainCleanup returns an iptables-restore --noflush script that deletes (1) every rule naming bridge
// and (2) unless keepAllDocker, every DOCKER* chain not listed in keep for its table, with the rules in other
// chains that jump to it. It returns "" when there is nothing to do.
func dockerChainCleanup(save string, keep map[string][]string, keepAllDocker bool, bridge string) string {
	tables := parseIptablesSave(save)
	names := make([]string, 0, len(tables))
	for name := range tables {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, table := range names {
		t := tables[table]
		doomed := map[string]bool{}
		if !keepAllDocker {
			for _, c := range t.chains {
				if strings.HasPrefix(c, "DOCKER") && !slices.Contains(keep[table], c) {
					doomed[c] = true
				}
			}
		}
		var lines []string
		for _, r := range t.rules {
			chain := strings.Fields(r)[1]
			if doomed[chain] {
				continue // flushed below
			}
			if doomed[ruleTarget(r)] || ruleNamesInterface(r, bridge) {
				lines = append(lines, "-D"+strings.TrimPrefix(r, "-A"))
			}
		}
		for _, c := range t.chains {
			if doomed[c] {
				lines = append(lines, "-F "+c)
			}
		}
		for _, c := range t.chains {
			if doomed[c] {
				lines = append(lines, "-X "+c)
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(&b, "*%s\n%s\nCOMMIT\n", table, strings.Join(lines, "\n"))
		}
	}
	return b.String()
}
