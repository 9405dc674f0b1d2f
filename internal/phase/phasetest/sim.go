// Package phasetest simulates kubesmith hosts for the unit tests of internal/phase and internal/engine: Sim is a
// set of hosts behind nodetest.Fake runners that answer the commands the phases run (facts, systemd, containerd,
// etcdctl, curl and kubectl) from an in-memory model of each machine, and WriteBundle writes a small fake
// artifact bundle. Nothing here touches the network or a real host.
package phasetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/nodetest"
)

// Sim is a set of simulated hosts. Files live in each host's fake (its in-memory filesystem); units,
// containerd images and what kubectl did live here. Every handler holds mu, so a handler on one host may look
// at the others (etcd quorum, the VIP, Node readiness).
type Sim struct {
	vip string

	mu       sync.Mutex
	hosts    []*Host
	applies  int // successful kubectl apply calls
	relabels int // kubectl label calls that changed a Node
	// kubectlDrops is how many of the next kubectl calls, on any host, get no answer from the apiserver.
	kubectlDrops int
}

// DropKubectl makes the next n kubectl calls, on any host, fail as when no apiserver answers (client-go's TLS
// handshake timeout).
func (s *Sim) DropKubectl(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kubectlDrops = n
}

// KubectlDropsLeft is how many of the calls DropKubectl asked for have not happened yet.
func (s *Sim) KubectlDropsLeft() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kubectlDrops
}

// Host is one simulated host. The exported fields describe the machine and are read by the facts script;
// set them before the first command runs. Name and Addr are the host's name and node address, and Fake is the
// node.Runner to hand to the code under test.
type Host struct {
	c          *Sim
	Name, Addr string
	Fake       *nodetest.Fake

	Container    string // systemd-detect-virt -c
	CapBnd       string // hex, as in /proc/self/status
	CgroupV1     bool
	Swaps        int // lines in /proc/swaps after the header
	BridgeNF     bool
	Systemd      bool
	NoTools      []string
	ClockOffset  time.Duration
	Iface        string // interface holding Addr; "" for none
	Prefix       int
	ForeignPorts []int // ports held by programs kubesmith does not manage
	DiskFreeKiB  int64

	// Guarded by c.mu.
	active     map[string]bool
	enabled    map[string]bool
	restarts   map[string]int
	failStart  map[string]bool
	loaded     map[string]string // unit file path -> sha256 at the last daemon-reload
	reloads    int
	images     map[string]bool
	labels     map[string]string // labels of the Node object
	imports    int
	prepares   int
	unexpected []string
}

// NewSim creates hosts named and addressed as given (name, address, name, address, ...), each a realistic
// container host: x86_64 Docker container with systemd, cgroup v1, no CAP_SYS_RESOURCE in the bounding set, the
// machine's swap visible in /proc/swaps, and eth0 holding the node address. vip is the cluster's API VIP. When
// the test ends, every command no handler knew and every misuse of a host is reported as a test error.
func NewSim(t testing.TB, vip string, nameAddr ...string) *Sim {
	t.Helper()
	c := &Sim{vip: vip}
	for i := 0; i+1 < len(nameAddr); i += 2 {
		h := &Host{
			c: c, Name: nameAddr[i], Addr: nameAddr[i+1], Fake: nodetest.New(nameAddr[i], nameAddr[i+1]),
			Container: "docker", CapBnd: "000001fffeffffff", CgroupV1: true, Swaps: 1, BridgeNF: true, Systemd: true,
			Iface: "eth0", Prefix: 24, DiskFreeKiB: 50 << 20,
			active: map[string]bool{}, enabled: map[string]bool{}, restarts: map[string]int{}, failStart: map[string]bool{},
			loaded: map[string]string{}, images: map[string]bool{}, labels: map[string]string{},
		}
		h.install()
		c.hosts = append(c.hosts, h)
	}
	t.Cleanup(func() {
		for _, h := range c.hosts {
			if u := h.Unexpected(); len(u) > 0 {
				t.Errorf("%s: unexpected commands or host misuse:\n%s", h.Name, strings.Join(u, "\n---\n"))
			}
		}
	})
	return c
}

// Host returns the simulated host named name; it panics if there is none.
func (c *Sim) Host(name string) *Host {
	for _, h := range c.hosts {
		if h.Name == name {
			return h
		}
	}
	panic("no simulated host " + name)
}

// HostAt returns the host with address addr, or nil.
func (c *Sim) HostAt(addr string) *Host {
	for _, h := range c.hosts {
		if h.Addr == addr {
			return h
		}
	}
	return nil
}

// Hosts returns the simulated hosts in the order NewSim was given them.
func (c *Sim) Hosts() []*Host {
	return slices.Clone(c.hosts)
}

// ResetCounters forgets recorded events and the counters of every host, keeping the hosts' state.
func (c *Sim) ResetCounters() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applies, c.relabels = 0, 0
	for _, h := range c.hosts {
		h.Fake.Reset()
		h.restarts = map[string]int{}
		h.reloads, h.imports, h.prepares = 0, 0, 0
	}
}

// Applies is the number of successful kubectl apply calls.
func (c *Sim) Applies() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applies
}

// Relabels is the number of kubectl label calls that changed a Node.
func (c *Sim) Relabels() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.relabels
}

// Labels returns the labels of h's Node object.
func (h *Host) Labels() map[string]string {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	out := map[string]string{}
	for k, v := range h.labels {
		out[k] = v
	}
	return out
}

// Restarts returns how often each unit was (re)started since the last ResetCounters.
func (h *Host) Restarts() map[string]int {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	out := map[string]int{}
	for k, v := range h.restarts {
		out[k] = v
	}
	return out
}

// Reloads is the number of systemctl daemon-reload calls.
func (h *Host) Reloads() int {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return h.reloads
}

// Imports is the number of image imports.
func (h *Host) Imports() int {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return h.imports
}

// Active reports whether unit is running.
func (h *Host) Active(unit string) bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return h.active[unit]
}

// Images lists the images in containerd's k8s.io namespace.
func (h *Host) Images() []string {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return sortedKeys(h.images)
}

// Stop stops unit, as an operator or a crash would.
func (h *Host) Stop(unit string) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	h.active[unit] = false
}

// DeleteImage removes an image from containerd.
func (h *Host) DeleteImage(ref string) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	delete(h.images, ref)
}

// FailStart makes starting unit fail (or succeed again).
func (h *Host) FailStart(unit string, fail bool) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	h.failStart[unit] = fail
}

// Wipe removes every file of h and stops every unit, as kubesmith's reset script does.
func (h *Host) Wipe() {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	for p := range h.Fake.Files() {
		h.Fake.RemoveFile(p)
	}
	for u := range h.active {
		h.active[u] = false
	}
}

// Unexpected lists commands no handler knew and rule violations (such as a module load on a container host).
func (h *Host) Unexpected() []string {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return slices.Clone(h.unexpected)
}

// simUnitPorts are the TCP ports each managed unit listens on.
func simUnitPorts() map[string][]int {
	return map[string][]int{
		"etcd": {2379, 2380, 2381}, "kube-apiserver": {6443}, "kube-controller-manager": {10257},
		"kube-scheduler": {10259}, "kubelet": {10248, 10250}, "kube-proxy": {10249, 10256},
	}
}

// simUnitNeeds lists what must be on disk for a unit to start.
func simUnitNeeds(unit string) []string {
	switch unit {
	case "keepalived":
		return []string{"/etc/keepalived/keepalived.conf", "/etc/systemd/system/keepalived.service.d/10-kubesmith.conf"}
	case "containerd":
		return []string{
			"/etc/systemd/system/containerd.service", "/usr/local/bin/containerd", "/usr/local/sbin/runc",
			"/etc/kubernetes/containerd/config.toml",
		}
	case "etcd":
		return []string{
			"/etc/systemd/system/etcd.service", "/usr/local/bin/etcd", "/etc/kubernetes/pki/etcd/server.crt",
			"/etc/kubernetes/pki/etcd/peer.crt", "/etc/kubernetes/pki/etcd/ca.crt",
		}
	default:
		return []string{"/etc/systemd/system/" + unit + ".service", "/usr/local/bin/" + unit}
	}
}

func (h *Host) install() {
	f := h.Fake
	// Lowest priority: anything not simulated below fails and is reported by the test.
	f.OnFunc(`(?s).*`, h.locked(func(cmd string) (node.Result, error) {
		h.unexpected = append(h.unexpected, cmd)
		return node.Result{Stderr: "sim: unexpected command", ExitCode: 127}, nil
	}))
	// The fake's default answer for the host lock holder, overridden by the catch-all above.
	f.On(regexp.QuoteMeta("exec flock ")+".*"+regexp.QuoteMeta(node.HostLockDir+"/kubesmith-"), node.Result{Stdout: "locked\n"}, nil)
	f.OnFunc(`(?s)^set \+e\n\. /etc/os-release`, h.locked(h.facts))
	f.OnFunc(`(?s)^set -e\nmkdir -p `, h.locked(h.prepare))
	f.OnFunc(`(?s)^echo "uid=\$\(cat `, h.locked(h.observe))
	f.OnFunc(`^for f in (.+); do \[ -f "\$f" \] && sha256sum "\$f"; done; true$`, h.locked(h.sums))
	f.OnFunc(`^(if \[ -f \S+ \]; then echo '----kubesmith-file---- \S+'; cat \S+; echo; fi; )+$`, h.locked(h.readMany))
	f.OnFunc(`^cat /var/lib/kubesmith/artifacts\.sha256 2>/dev/null; true$`, h.locked(h.catArtifacts))
	f.OnFunc(`^stat -c '%s %n' (.+) 2>/dev/null; true$`, h.locked(h.stat))
	f.OnFunc(simEnsureServiceRE, h.locked(h.ensureService))
	f.OnFunc(simMarkPendingRE, h.locked(h.markPending))
	f.OnFunc(`^systemctl daemon-reload$`, h.locked(h.daemonReload))
	f.OnFunc(`^systemctl is-active --quiet (\S+)$`, h.locked(func(cmd string) (node.Result, error) {
		if h.active[strings.Fields(cmd)[3]] {
			return node.Result{}, nil
		}
		return node.Result{ExitCode: 3}, errors.New("inactive")
	}))
	f.OnFunc(`^journalctl -u (\S+) -n 25 --no-pager 2>&1 \| tail -n 25$`, h.locked(func(cmd string) (node.Result, error) {
		return node.Result{Stdout: "-- sim journal: start failed --\n"}, nil
	}))
	f.OnFunc(`^ctr --address /run/containerd/containerd\.sock version >/dev/null && crictl --runtime-endpoint unix:///run/containerd/containerd\.sock --timeout 5s info >/dev/null$`, h.locked(h.ctrVersion))
	f.OnFunc(`^ctr -n k8s\.io images ls -q$`, h.locked(h.ctrImages))
	f.OnFunc(`^ctr -n k8s\.io images import --local (\S+) >/dev/null && ctr -n k8s\.io images label (\S+) io\.cri-containerd\.pinned=pinned >/dev/null$`, h.locked(h.ctrImport))
	f.OnFunc(`^ETCDCTL_API=3 etcdctl --endpoints=(\S+) --cacert=/etc/kubernetes/pki/etcd/ca\.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client\.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client\.key --command-timeout=5s (.+)$`, h.locked(h.etcdctl))
	f.OnFunc(`^curl -sf --max-time 5 --cacert /etc/kubernetes/pki/ca\.crt https://([0-9.]+):(\d+)/readyz >/dev/null$`, h.locked(h.curlReadyz))
	f.OnFunc(`^kubectl --kubeconfig /etc/kubernetes/admin\.conf --request-timeout=30s (.+)$`, h.locked(h.kubectl))
}

// Prepare answers the prepare-host script as the simulation does. A test that overrode that script's answer on
// h.Fake registers Prepare again to restore the simulation.
func (h *Host) Prepare(cmd string) (node.Result, error) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return h.prepare(cmd)
}

// CtrImages answers `ctr -n k8s.io images ls -q` as the simulation does. A test that overrode that command's
// answer on h.Fake registers CtrImages again to restore the simulation.
func (h *Host) CtrImages(cmd string) (node.Result, error) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return h.ctrImages(cmd)
}

// locked runs fn under the cluster's mutex.
func (h *Host) locked(fn func(cmd string) (node.Result, error)) func(string) (node.Result, error) {
	return func(cmd string) (node.Result, error) {
		h.c.mu.Lock()
		defer h.c.mu.Unlock()
		return fn(cmd)
	}
}

// File returns the content of the file at p on h and whether it exists.
func (h *Host) File(p string) ([]byte, bool) {
	f, ok := h.Fake.File(p)
	return f.Data, ok
}

// BinVersion returns the version a fake binary at p names (its last word) and whether the file exists.
func (h *Host) BinVersion(p string) (string, bool) {
	data, ok := h.File(p)
	if !ok {
		return "", false
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "", true
	}
	return f[len(f)-1], true
}

func (h *Host) facts(cmd string) (node.Result, error) {
	var b strings.Builder
	w := func(k string, v any) { fmt.Fprintf(&b, "%s=%v\n", k, v) }
	w("os_id", "debian")
	w("os_version", "12")
	w("arch", "x86_64")
	w("kernel", "6.1.0-37-amd64")
	w("container", h.Container)
	if h.CgroupV1 {
		w("cgroup", 1)
	} else {
		w("cgroup", 2)
	}
	w("capbnd", h.CapBnd)
	w("swap", h.Swaps)
	w("bridge_nf", boolInt(h.BridgeNF))
	w("ip_forward", 1)
	w("systemd", boolInt(h.Systemd))
	ports := append([]int{22}, h.ForeignPorts...)
	for u, ps := range simUnitPorts() {
		if h.active[u] {
			ports = append(ports, ps...)
		}
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	var ls strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&ls, "%d ", p) // tr '\n' ' ' leaves a trailing space
	}
	w("listening", ls.String())
	w("disk_free_kib", h.DiskFreeKiB)
	w("time", time.Now().Add(h.ClockOffset).Unix())
	if m := regexp.MustCompile(`(?m)^for t in ([a-z0-9 ]+); do$`).FindStringSubmatch(cmd); m != nil {
		for _, tool := range strings.Fields(m[1]) {
			w("tool_"+tool, boolInt(!slices.Contains(h.NoTools, tool)))
		}
	}
	uid, _ := h.File("/etc/kubesmith/cluster-uid")
	w("cluster_uid", strings.TrimRight(string(uid), "\n"))
	addr := ""
	if m := regexp.MustCompile(`(?m)^addr=(.+)$`).FindStringSubmatch(cmd); m != nil {
		if ws := shellWords(m[1]); len(ws) == 1 {
			addr = ws[0]
		}
	}
	if addr == h.Addr && h.Iface != "" {
		w("iface", h.Iface)
		w("prefix", h.Prefix)
	} else {
		w("iface", "")
		w("prefix", "")
	}
	if m := regexp.MustCompile(`(?m)^for u in ([a-z -]+); do\n  echo "active_`).FindStringSubmatch(cmd); m != nil {
		for _, u := range strings.Fields(m[1]) {
			w("active_"+u, activeWord(h.active[u]))
		}
	} else {
		h.unexpected = append(h.unexpected, "facts script without the unit loop:\n"+cmd)
	}
	if v, ok := h.BinVersion("/usr/local/bin/kubelet"); ok {
		w("version_kubelet", v)
	}
	if v, ok := h.BinVersion("/usr/local/bin/etcd"); ok {
		w("version_etcd", v)
	}
	if v, ok := h.BinVersion("/usr/local/bin/containerd"); ok {
		w("version_containerd", v)
	}
	return node.Result{Stdout: b.String()}, nil
}

func (h *Host) prepare(cmd string) (node.Result, error) {
	h.prepares++
	if h.Container != "none" && h.Container != "" {
		if strings.Contains(cmd, "modprobe") {
			h.unexpected = append(h.unexpected, "module load on a container host (DESIGN §3.10):\n"+cmd)
		}
		if m := regexp.MustCompile(`(?m)^sysctl -qw (.+)$`).FindStringSubmatch(cmd); m != nil {
			for _, kv := range strings.Fields(m[1]) {
				if !strings.HasPrefix(kv, "net.") {
					h.unexpected = append(h.unexpected, "non-namespaced sysctl on a container host: "+kv)
				}
			}
		}
	}
	return node.Result{}, nil
}

func (h *Host) observe(cmd string) (node.Result, error) {
	var b strings.Builder
	uid, _ := h.File("/etc/kubesmith/cluster-uid")
	fmt.Fprintf(&b, "uid=%s\n", strings.TrimRight(string(uid), "\n"))
	hash, _ := h.File("/etc/kubesmith/applied-hash")
	fmt.Fprintf(&b, "hash=%s\n", strings.TrimRight(string(hash), "\n"))
	if list, ok := h.File("/etc/kubesmith/files.sha256"); ok {
		b.WriteString(h.SHA256Check(string(list), "file="))
	}
	m := regexp.MustCompile(`for u in ([a-z -]+); do echo "unit=`).FindStringSubmatch(cmd)
	if m == nil {
		h.unexpected = append(h.unexpected, "observe script without the unit loop:\n"+cmd)
		return node.Result{}, nil
	}
	for _, u := range strings.Fields(m[1]) {
		fmt.Fprintf(&b, "unit=%s %s\n", u, activeWord(h.active[u]))
	}
	if v, ok := h.BinVersion("/usr/local/bin/kubelet"); ok {
		fmt.Fprintf(&b, "kubelet=%s\n", v)
	}
	return node.Result{Stdout: b.String()}, nil
}

// SHA256Check is `sha256sum -c --quiet` of a list ("sum  path" lines) against h's files, each output line
// prefixed with prefix; it is empty when every listed file exists and matches.
func (h *Host) SHA256Check(list, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(list, "\n") {
		sum, p, ok := strings.Cut(line, "  ")
		if !ok {
			continue
		}
		data, exists := h.File(p)
		switch {
		case !exists:
			fmt.Fprintf(&b, "%s%s: FAILED open or read\n", prefix, p)
		case sha256Hex(data) != sum:
			fmt.Fprintf(&b, "%s%s: FAILED\n", prefix, p)
		}
	}
	return b.String()
}

func (h *Host) sums(cmd string) (node.Result, error) {
	m := regexp.MustCompile(`^for f in (.+?); do \[ -f`).FindStringSubmatch(cmd)
	var b strings.Builder
	for _, p := range shellWords(m[1]) {
		if data, ok := h.File(p); ok {
			fmt.Fprintf(&b, "%s  %s\n", sha256Hex(data), p)
		}
	}
	return node.Result{Stdout: b.String()}, nil
}

func (h *Host) readMany(cmd string) (node.Result, error) {
	var b strings.Builder
	for _, m := range regexp.MustCompile(`if \[ -f (\S+) \]; then`).FindAllStringSubmatch(cmd, -1) {
		p := shellWords(m[1])[0]
		if data, ok := h.File(p); ok {
			fmt.Fprintf(&b, "----kubesmith-file---- %s\n%s\n", p, data)
		}
	}
	return node.Result{Stdout: b.String()}, nil
}

func (h *Host) catArtifacts(string) (node.Result, error) {
	data, _ := h.File("/var/lib/kubesmith/artifacts.sha256")
	return node.Result{Stdout: string(data)}, nil
}

func (h *Host) stat(cmd string) (node.Result, error) {
	m := regexp.MustCompile(`^stat -c '%s %n' (.+) 2>/dev/null; true$`).FindStringSubmatch(cmd)
	var b strings.Builder
	for _, p := range shellWords(m[1]) {
		if data, ok := h.File(p); ok {
			fmt.Fprintf(&b, "%d %s\n", len(data), p)
		}
	}
	return node.Result{Stdout: b.String()}, nil
}

// simPendingDir holds the pending-restart markers (phase.PendingDir).
const simPendingDir = "/var/lib/kubesmith/pending-restart"

// simMarkPendingRE matches the command that records units to restart: one empty marker file per unit.
const simMarkPendingRE = `^mkdir -p ` + simPendingDir + ` && touch (.+)$`

// simEnsureServiceRE matches EnsureService: enable the unit, then restart it when forced, when its pending marker
// exists or when it is not active, and remove the marker once the restart succeeded.
const simEnsureServiceRE = `^systemctl enable (\S+) >/dev/null 2>&1; if (true|false) \|\| \[ -e (\S+) \] \|\| ! systemctl is-active --quiet (\S+); then systemctl (--no-block )?restart (\S+) && rm -f (\S+); fi$`

// markPending creates the marker files (touch keeps the content of an existing file).
func (h *Host) markPending(cmd string) (node.Result, error) {
	m := regexp.MustCompile(simMarkPendingRE).FindStringSubmatch(cmd)
	for _, p := range shellWords(m[1]) {
		if !strings.HasPrefix(p, simPendingDir+"/") {
			h.unexpected = append(h.unexpected, "pending-restart marker outside "+simPendingDir+": "+cmd)
			continue
		}
		if _, ok := h.File(p); !ok {
			h.Fake.SetFile(p, nil, 0o644)
		}
	}
	return node.Result{}, nil
}

// Pending lists the units whose pending-restart marker exists.
func (h *Host) Pending() []string {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	var out []string
	for p := range h.Fake.Files() {
		if u, ok := strings.CutPrefix(p, simPendingDir+"/"); ok {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

func (h *Host) ensureService(cmd string) (node.Result, error) {
	// A --no-block start is only queued; the simulation starts the unit at once all the same.
	m := regexp.MustCompile(simEnsureServiceRE).FindStringSubmatch(cmd)
	unit := m[1]
	if m[4] != unit || m[6] != unit {
		h.unexpected = append(h.unexpected, "EnsureService names different units: "+cmd)
	}
	marker := shellWords(m[3])[0]
	rm := shellWords(m[7])[0]
	if rm != marker || marker != simPendingDir+"/"+unit {
		h.unexpected = append(h.unexpected, "EnsureService checks or removes the wrong pending marker: "+cmd)
	}
	h.enabled[unit] = true
	_, pending := h.File(marker)
	if m[2] == "false" && !pending && h.active[unit] {
		return node.Result{}, nil
	}
	for _, p := range simUnitNeeds(unit) {
		data, ok := h.File(p)
		if !ok {
			h.active[unit] = false
			return node.Result{Stderr: fmt.Sprintf("Job for %s.service failed: %s is missing", unit, p), ExitCode: 1}, nil
		}
		if strings.HasPrefix(p, "/etc/systemd/") && h.loaded[p] != sha256Hex(data) {
			h.unexpected = append(h.unexpected, fmt.Sprintf("%s (re)started with %s changed on disk but no daemon-reload since", unit, p))
		}
	}
	if h.failStart[unit] {
		h.active[unit] = false
		return node.Result{Stderr: fmt.Sprintf("Job for %s.service failed because the control process exited with error code.", unit), ExitCode: 1}, nil
	}
	h.restarts[unit]++
	h.active[unit] = true
	h.Fake.RemoveFile(rm)
	return node.Result{}, nil
}

func (h *Host) daemonReload(string) (node.Result, error) {
	h.reloads++
	for p, data := range h.Fake.Files() {
		if strings.HasPrefix(p, "/etc/systemd/") {
			h.loaded[p] = sha256Hex(data)
		}
	}
	return node.Result{}, nil
}

func (h *Host) ctrVersion(string) (node.Result, error) {
	if !h.active["containerd"] {
		return node.Result{Stderr: "ctr: failed to dial \"/run/containerd/containerd.sock\": connection refused", ExitCode: 1}, nil
	}
	return node.Result{}, nil
}

func (h *Host) ctrImages(string) (node.Result, error) {
	if !h.active["containerd"] {
		return node.Result{Stderr: "ctr: connection refused", ExitCode: 1}, nil
	}
	var b strings.Builder
	for _, ref := range sortedKeys(h.images) {
		b.WriteString(ref + "\n")
	}
	return node.Result{Stdout: b.String()}, nil
}

func (h *Host) ctrImport(cmd string) (node.Result, error) {
	m := regexp.MustCompile(`^ctr -n k8s\.io images import --local (\S+) >/dev/null && ctr -n k8s\.io images label (\S+) `).FindStringSubmatch(cmd)
	archive, ref := shellWords(m[1])[0], shellWords(m[2])[0]
	if !h.active["containerd"] {
		return node.Result{Stderr: "ctr: connection refused", ExitCode: 1}, nil
	}
	if _, ok := h.File(archive); !ok {
		return node.Result{Stderr: "ctr: open " + archive + ": no such file or directory", ExitCode: 1}, nil
	}
	h.images[ref] = true
	h.imports++
	return node.Result{}, nil
}

// etcdQuorum reports whether a majority of the hosts that run etcd members is up.
func (c *Sim) etcdQuorum() bool {
	members, up := 0, 0
	for _, o := range c.hosts {
		if _, ok := o.File("/etc/systemd/system/etcd.service"); ok {
			members++
			if o.active["etcd"] {
				up++
			}
		}
	}
	return members > 0 && up*2 > members
}

func (h *Host) etcdctl(cmd string) (node.Result, error) {
	m := regexp.MustCompile(`--endpoints=(\S+) .* --command-timeout=5s (.+)$`).FindStringSubmatch(cmd)
	for _, p := range []string{"/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/etcd/healthcheck-client.crt", "/etc/kubernetes/pki/etcd/healthcheck-client.key"} {
		if _, ok := h.File(p); !ok {
			return node.Result{Stderr: "etcdctl: open " + p + ": no such file or directory", ExitCode: 1}, nil
		}
	}
	var eps []*Host
	for _, ep := range strings.Split(m[1], ",") {
		addr := strings.TrimSuffix(strings.TrimPrefix(ep, "https://"), ":2379")
		o := h.c.HostAt(addr)
		if o == nil {
			return node.Result{Stderr: "etcdctl: unknown endpoint " + ep, ExitCode: 1}, nil
		}
		eps = append(eps, o)
	}
	switch m[2] {
	case "endpoint health":
		var out, errs strings.Builder
		ok := h.c.etcdQuorum()
		for _, o := range eps {
			if ok && o.active["etcd"] {
				fmt.Fprintf(&out, "https://%s:2379 is healthy: successfully committed proposal: took = 2.1ms\n", o.Addr)
			} else {
				ok = false
				fmt.Fprintf(&errs, "https://%s:2379 is unhealthy: failed to commit proposal: context deadline exceeded\n", o.Addr)
			}
		}
		if !ok {
			return node.Result{Stdout: out.String(), Stderr: errs.String() + "Error: unhealthy cluster", ExitCode: 1}, nil
		}
		return node.Result{Stdout: out.String()}, nil
	case "member list -w simple":
		if !h.c.etcdQuorum() {
			return node.Result{Stderr: "Error: context deadline exceeded", ExitCode: 1}, nil
		}
		var out strings.Builder
		for i, o := range h.c.hosts {
			if _, ok := o.File("/etc/systemd/system/etcd.service"); ok {
				fmt.Fprintf(&out, "%016x, started, %s, https://%s:2380, https://%s:2379, false\n", uint64(0x8e9e05c52164694d)+uint64(i), o.Name, o.Addr, o.Addr)
			}
		}
		return node.Result{Stdout: out.String()}, nil
	}
	h.unexpected = append(h.unexpected, cmd)
	return node.Result{ExitCode: 1}, nil
}

func (h *Host) apiReady() bool {
	return h.active["kube-apiserver"] && h.c.etcdQuorum()
}

func (h *Host) curlReadyz(cmd string) (node.Result, error) {
	m := regexp.MustCompile(`https://([0-9.]+):(\d+)/readyz`).FindStringSubmatch(cmd)
	refused := node.Result{ExitCode: 7}
	if _, ok := h.File("/etc/kubernetes/pki/ca.crt"); !ok {
		return node.Result{ExitCode: 77}, nil
	}
	switch m[1] {
	case "127.0.0.1":
		if h.apiReady() {
			return node.Result{}, nil
		}
		return refused, nil
	case h.c.vip:
		for _, o := range h.c.hosts {
			if o.active["keepalived"] && o.apiReady() {
				return node.Result{}, nil
			}
		}
		return refused, nil
	}
	h.unexpected = append(h.unexpected, cmd)
	return refused, nil
}

func (h *Host) kubectl(cmd string) (node.Result, error) {
	args := regexp.MustCompile(`--request-timeout=30s (.+)$`).FindStringSubmatch(cmd)[1]
	if _, ok := h.File("/etc/kubernetes/admin.conf"); !ok {
		return node.Result{Stderr: "error: stat /etc/kubernetes/admin.conf: no such file or directory", ExitCode: 1}, nil
	}
	if !h.apiReady() {
		return node.Result{Stderr: "The connection to the server " + h.Addr + ":6443 was refused", ExitCode: 1}, nil
	}
	if h.c.kubectlDrops > 0 {
		h.c.kubectlDrops--
		return node.Result{Stderr: "Unable to connect to the server: net/http: TLS handshake timeout", ExitCode: 1}, nil
	}
	switch {
	case args == "apply --server-side --force-conflicts --field-manager=kubesmith -f -":
		h.c.applies++
		return node.Result{Stdout: "configured\n"}, nil
	case regexp.MustCompile(`^get (namespace|apiservice) --ignore-not-found -o name `).MatchString(args):
		// Add-on markers: the simulator keeps no API objects, so an add-on that is not wanted was never there.
		return node.Result{}, nil
	case strings.HasPrefix(args, "get nodes -o jsonpath=") && strings.Contains(args, ".spec.podCIDR"):
		// The controller-manager assigns a pod CIDR once kubelet has registered the Node.
		var b strings.Builder
		for i, o := range h.c.hosts {
			if o.active["kubelet"] {
				fmt.Fprintf(&b, "%s 10.244.%d.0/24\n", o.Name, i)
			}
		}
		return node.Result{Stdout: b.String()}, nil
	case strings.HasPrefix(args, "get nodes -o jsonpath="):
		var b strings.Builder
		for _, o := range h.c.hosts {
			if o.active["kubelet"] {
				ready := "False"
				if o.active["flanneld"] && o.active["containerd"] {
					ready = "True"
				}
				fmt.Fprintf(&b, "%s %s\n", o.Name, ready)
			}
		}
		return node.Result{Stdout: b.String()}, nil
	case strings.HasPrefix(args, "label node "):
		m := regexp.MustCompile(`^label node (\S+) ([a-z0-9./-]+)=(\S*) --overwrite$`).FindStringSubmatch(args)
		if m == nil {
			break
		}
		name := shellWords(m[1])[0]
		var o *Host
		for _, x := range h.c.hosts {
			if x.Name == name && x.active["kubelet"] {
				o = x
			}
		}
		if o == nil {
			return node.Result{Stderr: fmt.Sprintf("Error from server (NotFound): nodes %q not found", name), ExitCode: 1}, nil
		}
		if v, ok := o.labels[m[2]]; ok && v == m[3] {
			return node.Result{Stdout: "node/" + name + " not labeled\n"}, nil
		}
		o.labels[m[2]] = m[3]
		h.c.relabels++
		return node.Result{Stdout: "node/" + name + " labeled\n"}, nil
	}
	h.unexpected = append(h.unexpected, cmd)
	return node.Result{ExitCode: 1}, nil
}

// shellWords splits s into words as a POSIX shell would for the quoting node.Quote produces.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quoted:
			if ch == '\'' {
				quoted = false
			} else {
				cur.WriteByte(ch)
			}
		case ch == '\'':
			quoted, inWord = true, true
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func activeWord(b bool) string {
	if b {
		return "active"
	}
	return "inactive"
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
