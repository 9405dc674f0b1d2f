package containerhosts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Spec describes the nodes Up creates.
type Spec struct {
	// Prefix names the group: nodes are <Prefix>-1 … <Prefix>-<Count>. Lowercase letters, digits and '-'.
	Prefix string
	// Count is the number of nodes (1–100).
	Count int
	// Addresses optionally fixes each node's IPv4 address (len == Count, inside NodeRange). By default nodes
	// get the lowest free addresses from 172.30.0.11 up.
	Addresses []string
	// Image overrides the node image (default: ImageTag, built by Setup).
	Image string
	// ReadyTimeout bounds the wait for each node's SSH; default 3 minutes.
	ReadyTimeout time.Duration
}

// Node is one container host, reachable from the host over SSH as SSHUser with the lab's client key.
type Node struct {
	// Name is the node's hostname and its name in the lab (<prefix>-<n>); other nodes resolve it.
	Name string `json:"name"`
	// Address is the node's IPv4 address on the lab network.
	Address string `json:"address"`
	// Port is the SSH port (22).
	Port int `json:"port"`
	// User is the SSH login (root).
	User string `json:"user"`
	// HostPublicKey is the node's pinned SSH host key in authorized_keys format ("ssh-ed25519 AAAA…").
	HostPublicKey string `json:"host_public_key"`
	// Container is the docker container's name (under the lab's dockerd).
	Container string `json:"container"`
	// Prefix is the group the node belongs to.
	Prefix string `json:"prefix"`
	// Running is the container state when the Node was read.
	Running bool `json:"running"`
}

// nodePlan is everything needed to create one node.
type nodePlan struct {
	name, container, volume, prefix string
	index                           int
	addr                            netip.Addr
	key                             hostKey
}

func containerName(node string) string { return "kslab-" + node }

// validPrefix: node names must be DNS labels (they become Kubernetes node names).
func validPrefix(prefix string) error {
	if !regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`).MatchString(prefix) || len(prefix) > 50 {
		return fmt.Errorf("prefix %q: use lowercase letters, digits and '-' (at most 50)", prefix)
	}
	return nil
}

// createArgs is the `docker create` command line of a node: kind-style flags for systemd as PID 1
// (privileged, private cgroup namespace, unconfined seccomp/AppArmor, exec-able tmpfs /run and /tmp so
// remote-exec can run uploaded scripts, SIGRTMIN+3 as stop signal for a clean systemd shutdown), a volume for
// /var/lib/containerd (overlayfs snapshots cannot live on the node's own overlay root), a fixed address and
// the node name as hostname and DNS alias. hostModules mounts the host's /lib/modules read-only.
func createArgs(n nodePlan, image string, hostModules bool) []string {
	args := []string{
		"create", "--name", n.container, "--hostname", n.name,
		"--label", labelLab + "=1",
		"--label", labelPrefix + "=" + n.prefix,
		"--label", labelNode + "=" + n.name,
		"--label", labelIndex + "=" + strconv.Itoa(n.index),
		"--label", labelAddress + "=" + n.addr.String(),
		"--label", labelHostKey + "=" + n.key.public,
		"--privileged", "--cgroupns=private",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--tmpfs", "/run:rw,exec,nosuid,nodev,mode=755",
		"--tmpfs", "/run/lock:rw,nosuid,nodev,noexec",
		"--tmpfs", "/tmp:rw,exec,nosuid,nodev,mode=1777",
		"--volume", n.volume + ":/var/lib/containerd",
	}
	if hostModules {
		args = append(args, "--volume", "/lib/modules:/lib/modules:ro")
	}
	return append(args,
		"--network", NetworkName, "--ip", n.addr.String(), "--network-alias", n.name,
		"--stop-signal", "SIGRTMIN+3", "--env", "container=docker",
		"--restart", "no",
		image, "/sbin/init",
	)
}

// allocate picks count node addresses: the explicit ones (validated), or the lowest addresses from
// FirstNodeHost up that are not in used.
func allocate(count int, explicit []string, used map[netip.Addr]bool) ([]netip.Addr, error) {
	nodeRange := netip.MustParsePrefix(NodeRange)
	gw := netip.MustParseAddr(Gateway)
	var out []netip.Addr
	if len(explicit) > 0 {
		if len(explicit) != count {
			return nil, fmt.Errorf("%d addresses for %d nodes", len(explicit), count)
		}
		seen := map[netip.Addr]bool{}
		for _, s := range explicit {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("node address: %w", err)
			}
			if !nodeRange.Contains(a) || a == gw || a == nodeRange.Addr() {
				return nil, fmt.Errorf("node address %s is outside %s (.2–.127; .128–.254 are kept for VIPs)", a, NodeRange)
			}
			if used[a] || seen[a] {
				return nil, fmt.Errorf("node address %s is taken", a)
			}
			seen[a] = true
			out = append(out, a)
		}
		return out, nil
	}
	a := nodeRange.Addr()
	for range FirstNodeHost {
		a = a.Next()
	}
	for ; nodeRange.Contains(a) && len(out) < count; a = a.Next() {
		if !used[a] {
			out = append(out, a)
		}
	}
	if len(out) < count {
		return nil, fmt.Errorf("no room for %d more nodes in %s", count, NodeRange)
	}
	return out, nil
}

// Up creates spec.Count nodes in parallel and returns them once each answers SSH with its pinned host key.
// It first runs Prepare (daemon, network, image), and removes nodes left from an earlier Up with the same
// prefix. Each node gets a fresh ed25519 host key, injected with `docker cp` before its first boot together
// with the lab's client key as root's authorized_keys. If any node fails, the nodes of this Up are removed.
func (l *Lab) Up(ctx context.Context, spec Spec) ([]Node, error) {
	ctx, p := l.progress(ctx)
	if err := validPrefix(spec.Prefix); err != nil {
		return nil, err
	}
	if spec.Count < 1 || spec.Count > 100 {
		return nil, fmt.Errorf("count %d: want 1–100", spec.Count)
	}
	if spec.ReadyTimeout == 0 {
		spec.ReadyTimeout = 3 * time.Minute
	}
	image, err := l.Prepare(ctx)
	if err != nil {
		return nil, err
	}
	if spec.Image != "" {
		image = spec.Image
	}
	if err := l.Down(ctx, spec.Prefix); err != nil {
		return nil, err
	}
	if err := l.raiseInotify(p); err != nil {
		return nil, err
	}
	q, err := DetectQuirks()
	if err != nil {
		return nil, err
	}
	signer, authorized, err := l.clientKey()
	if err != nil {
		return nil, err
	}
	existing, err := l.Nodes(ctx, "")
	if err != nil {
		return nil, err
	}
	used := map[netip.Addr]bool{}
	for _, n := range existing {
		if a, err := netip.ParseAddr(n.Address); err == nil {
			used[a] = true
		}
	}
	addrs, err := allocate(spec.Count, spec.Addresses, used)
	if err != nil {
		return nil, err
	}
	plans := make([]nodePlan, spec.Count)
	for i := range plans {
		name := fmt.Sprintf("%s-%d", spec.Prefix, i+1)
		key, err := newHostKey(name)
		if err != nil {
			return nil, err
		}
		plans[i] = nodePlan{
			name: name, container: containerName(name), volume: containerName(name) + "-containerd",
			prefix: spec.Prefix, index: i + 1, addr: addrs[i], key: key,
		}
	}
	p.logf("creating %d nodes %s-1..%d", spec.Count, spec.Prefix, spec.Count)

	upCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	nodes := make([]Node, spec.Count)
	errs := make([]error, spec.Count)
	var wg sync.WaitGroup
	for i, plan := range plans {
		wg.Go(func() {
			n, err := l.upOne(upCtx, p, plan, image, q.HostModules, authorized, signer, spec.ReadyTimeout)
			if err != nil {
				errs[i] = fmt.Errorf("node %s: %w", plan.name, err)
				cancel()
				return
			}
			nodes[i] = n
		})
	}
	wg.Wait()
	// The first failure cancels the other nodes; report their "context canceled" only if nothing else failed.
	var real []error
	for _, e := range errs {
		if e != nil && (!errors.Is(e, context.Canceled) || ctx.Err() != nil) {
			real = append(real, e)
		}
	}
	if len(real) == 0 {
		real = errs
	}
	if err := errors.Join(real...); err != nil {
		cleanup, stop := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer stop()
		if derr := l.Down(cleanup, spec.Prefix); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", derr))
		}
		return nil, err
	}
	if err := l.writeKnownHosts(ctx); err != nil {
		return nil, err
	}
	p.logf("%d nodes ready over SSH", spec.Count)
	return nodes, nil
}

func (l *Lab) upOne(ctx context.Context, p progress, plan nodePlan, image string, hostModules bool,
	authorized string, signer ssh.Signer, timeout time.Duration,
) (Node, error) {
	t0 := time.Now()
	d := l.docker(findTools().docker)
	if _, err := d.run(ctx, nil, "volume", "create", "--label", labelLab+"=1", "--label", labelPrefix+"="+plan.prefix,
		"--label", labelNode+"="+plan.name, plan.volume); err != nil {
		return Node{}, err
	}
	if _, err := d.run(ctx, nil, createArgs(plan, image, hostModules)...); err != nil {
		return Node{}, err
	}
	files, err := hostFilesTar(plan.key, authorized)
	if err != nil {
		return Node{}, err
	}
	if _, err := d.run(ctx, bytes.NewReader(files), "cp", "-", plan.container+":/"); err != nil {
		return Node{}, fmt.Errorf("inject host key: %w", err)
	}
	created := time.Now()
	if _, err := d.run(ctx, nil, "start", plan.container); err != nil {
		return Node{}, err
	}
	started := time.Now()
	n := Node{
		Name: plan.name, Address: plan.addr.String(), Port: 22, User: SSHUser, HostPublicKey: plan.key.public,
		Container: plan.container, Prefix: plan.prefix, Running: true,
	}
	if err := l.waitSSH(ctx, d, n, signer, timeout); err != nil {
		return Node{}, err
	}
	p.logf("%s %s ssh ready after %.1fs (create+inject %.1fs, start %.1fs, boot to ssh %.1fs)", n.Name, n.Address,
		time.Since(t0).Seconds(), created.Sub(t0).Seconds(), started.Sub(created).Seconds(), time.Since(started).Seconds())
	return n, nil
}

// waitSSH polls the node's SSH until a command runs with the pinned host key. On timeout the error carries
// the container state and the end of its log.
func (l *Lab) waitSSH(ctx context.Context, d dockerCLI, n Node, signer ssh.Signer, timeout time.Duration) error {
	cfg, err := sshConfig(n, signer)
	if err != nil {
		return err
	}
	cfg.Timeout = 3 * time.Second
	var last error
	err = poll(ctx, 100*time.Millisecond, timeout, func() (bool, error) {
		last = sshReady(ctx, n, cfg)
		return last == nil, nil
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("wait for ssh: %w", ctx.Err())
	}
	diagCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stop()
	state, _ := d.run(diagCtx, nil, "inspect", "--format", "{{.State.Status}} exit={{.State.ExitCode}} {{.State.Error}}", n.Container)
	logs, _ := d.run(diagCtx, nil, "logs", "--tail", "15", n.Container)
	return fmt.Errorf("wait for ssh: %w (last: %w); container %s; log:\n%s", err, last, strings.TrimSpace(state), logs)
}

// containerInfo is the part of `docker inspect` the lab reads.
type containerInfo struct {
	Name   string `json:"Name"`
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
	State struct {
		Running bool `json:"Running"`
	} `json:"State"`
}

// nodesFromInspect turns `docker inspect` output into Nodes (only containers with the lab's labels),
// sorted by prefix and index.
func nodesFromInspect(out []byte) ([]Node, error) {
	var infos []containerInfo
	if err := json.Unmarshal(out, &infos); err != nil {
		return nil, fmt.Errorf("docker inspect output: %w", err)
	}
	type indexed struct {
		n   Node
		idx int
	}
	var list []indexed
	for _, c := range infos {
		lb := c.Config.Labels
		if lb[labelLab] != "1" || lb[labelNode] == "" {
			continue
		}
		idx, _ := strconv.Atoi(lb[labelIndex])
		list = append(list, indexed{n: Node{
			Name: lb[labelNode], Address: lb[labelAddress], Port: 22, User: SSHUser, HostPublicKey: lb[labelHostKey],
			Container: strings.TrimPrefix(c.Name, "/"), Prefix: lb[labelPrefix], Running: c.State.Running,
		}, idx: idx})
	}
	slices.SortFunc(list, func(a, b indexed) int {
		if c := strings.Compare(a.n.Prefix, b.n.Prefix); c != 0 {
			return c
		}
		return a.idx - b.idx
	})
	nodes := make([]Node, len(list))
	for i, x := range list {
		nodes[i] = x.n
	}
	return nodes, nil
}

// Nodes lists the lab's nodes with the given prefix ("" for all), running or not.
func (l *Lab) Nodes(ctx context.Context, prefix string) ([]Node, error) {
	d := l.docker(findTools().docker)
	filter := labelLab + "=1"
	if prefix != "" {
		filter = labelPrefix + "=" + prefix
	}
	// Another lab user (a parallel test) may remove its containers between the listing and the inspect; list
	// again then, a few times at most.
	var lastErr error
	for range 5 {
		ids, err := d.run(ctx, nil, "ps", "-a", "-q", "--filter", "label="+filter)
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		if strings.TrimSpace(ids) == "" {
			return nil, nil
		}
		out, err := d.run(ctx, nil, append([]string{"inspect"}, strings.Fields(ids)...)...)
		if err == nil {
			return nodesFromInspect([]byte(out))
		}
		lastErr = err
		if !strings.Contains(err.Error(), "No such") {
			break
		}
	}
	return nil, fmt.Errorf("list nodes: %w", lastErr)
}

// Node finds a node by its name or its container name.
func (l *Lab) Node(ctx context.Context, name string) (Node, error) {
	nodes, err := l.Nodes(ctx, "")
	if err != nil {
		return Node{}, err
	}
	for _, n := range nodes {
		if n.Name == name || n.Container == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("no lab node %q", name)
}

// Down removes the nodes with the given prefix and their volumes. It starts the lab's dockerd if needed.
func (l *Lab) Down(ctx context.Context, prefix string) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	if err := l.StartDaemon(ctx); err != nil {
		return err
	}
	if err := l.removeLabeled(ctx, labelPrefix+"="+prefix); err != nil {
		return fmt.Errorf("down %s: %w", prefix, err)
	}
	return l.writeKnownHosts(ctx)
}

// removeLabeled force-removes the containers and then the volumes carrying label (key=value).
func (l *Lab) removeLabeled(ctx context.Context, label string) error {
	d := l.docker(findTools().docker)
	ids, err := d.run(ctx, nil, "ps", "-a", "-q", "--filter", "label="+label)
	if err != nil {
		return err
	}
	if f := strings.Fields(ids); len(f) > 0 {
		if _, err := d.run(ctx, nil, append([]string{"rm", "-f", "-v"}, f...)...); err != nil {
			return err
		}
	}
	vols, err := d.run(ctx, nil, "volume", "ls", "-q", "--filter", "label="+label)
	if err != nil {
		return err
	}
	if f := strings.Fields(vols); len(f) > 0 {
		if _, err := d.run(ctx, nil, append([]string{"volume", "rm", "-f"}, f...)...); err != nil {
			return err
		}
	}
	return nil
}

// writeKnownHosts rewrites KnownHostsPath from the current nodes ("name,address key").
func (l *Lab) writeKnownHosts(ctx context.Context) error {
	nodes, err := l.Nodes(ctx, "")
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "%s,%s %s\n", n.Name, n.Address, n.HostPublicKey)
	}
	if err := os.MkdirAll(l.paths.state, 0o755); err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	if err := writeFileAtomic(l.paths.knownHosts, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	return nil
}

// Stop stops a node cleanly (SIGRTMIN+3 makes systemd shut down; SIGKILL after 30 s).
func (l *Lab) Stop(ctx context.Context, name string) error {
	n, err := l.Node(ctx, name)
	if err != nil {
		return err
	}
	if _, err := l.docker(findTools().docker).run(ctx, nil, "stop", "--time", "30", n.Container); err != nil {
		return fmt.Errorf("stop %s: %w", n.Name, err)
	}
	return nil
}

// Start starts a stopped node and waits until it answers SSH with its pinned key.
func (l *Lab) Start(ctx context.Context, name string) error {
	return l.startOrRestart(ctx, name, "start")
}

// Restart restarts a node (clean systemd shutdown, then boot) and waits until it answers SSH again.
// Its disk, host key and address stay; /run and /tmp are fresh, as after a reboot.
func (l *Lab) Restart(ctx context.Context, name string) error {
	return l.startOrRestart(ctx, name, "restart")
}

func (l *Lab) startOrRestart(ctx context.Context, name, verb string) error {
	n, err := l.Node(ctx, name)
	if err != nil {
		return err
	}
	signer, err := l.ClientSigner()
	if err != nil {
		return err
	}
	d := l.docker(findTools().docker)
	args := []string{verb, n.Container}
	if verb == "restart" {
		args = []string{verb, "--time", "30", n.Container}
	}
	if _, err := d.run(ctx, nil, args...); err != nil {
		return fmt.Errorf("%s %s: %w", verb, n.Name, err)
	}
	if err := l.waitSSH(ctx, d, n, signer, 3*time.Minute); err != nil {
		return fmt.Errorf("%s %s: %w", verb, n.Name, err)
	}
	return nil
}

// ExecResult is what a command run with Exec printed and how it exited.
type ExecResult struct {
	Stdout   string
	Stderr   string
	ExitCode int
}

// ExitError is returned by Exec, together with the result, when the command exits non-zero.
type ExitError struct {
	Node     string
	Cmd      string
	ExitCode int
	Stderr   string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s: %q exited %d: %s", e.Node, e.Cmd, e.ExitCode, e.Stderr)
}

// Exec runs cmd under /bin/sh -c as root inside a node through `docker exec` (not SSH), for test
// assertions that must not depend on the path under test.
func (l *Lab) Exec(ctx context.Context, name, cmd string) (ExecResult, error) {
	n, err := l.Node(ctx, name)
	if err != nil {
		return ExecResult{}, err
	}
	return l.execIn(ctx, n, cmd)
}

func (l *Lab) execIn(ctx context.Context, n Node, cmd string) (ExecResult, error) {
	d := l.docker(findTools().docker)
	stdout, err := d.run(ctx, nil, "exec", n.Container, "/bin/sh", "-c", cmd)
	if err == nil {
		return ExecResult{Stdout: stdout}, nil
	}
	var de *dockerError
	// docker exec passes the command's exit status through; its own failures ("Error response from daemon:
	// container … is not running", no such container) also exit 1 but are not the command's.
	if errors.As(err, &de) && exitCode(de.err) > 0 && ctx.Err() == nil && !strings.HasPrefix(de.fullStderr, "Error response from daemon") &&
		!strings.HasPrefix(de.fullStderr, "Error: No such container") {
		res := ExecResult{Stdout: stdout, Stderr: de.fullStderr, ExitCode: exitCode(de.err)}
		return res, &ExitError{Node: n.Name, Cmd: cmd, ExitCode: res.ExitCode, Stderr: de.stderr}
	}
	return ExecResult{}, fmt.Errorf("exec in %s: %w", n.Name, err)
}
