package phase

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/render"
)

// Install converges the cluster's masters (and any workers in c.Workers) to the desired state. Every step skips
// what is already done, so running it on an installed cluster changes nothing.
func Install(ctx context.Context, c *Cluster) error {
	all := c.All()
	if err := c.EachHost(ctx, "prepare-host", all, c.prepareHost); err != nil {
		return err
	}
	changed := newChangeSet()
	if err := c.EachHost(ctx, "upload-artifacts", all, func(ctx context.Context, t *Target) error {
		items, err := c.Select.Binaries(t.Role)
		if err != nil {
			return err
		}
		items = append(items, c.Select.Images()...)
		ch, err := UploadArtifacts(ctx, c.Bundle, t, items)
		changed.add(t, ch)
		if perr := markPending(ctx, t, ch); perr != nil && err == nil {
			err = perr
		}
		return err
	}); err != nil {
		return err
	}
	if err := c.EachHost(ctx, "write-config", all, func(ctx context.Context, t *Target) error {
		files, err := c.NodeFiles(ctx, t)
		if err != nil {
			return err
		}
		ch, err := SyncFiles(ctx, t.Runner, files)
		changed.add(t, ch)
		if perr := markPending(ctx, t, ch); perr != nil && err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
		return DaemonReload(ctx, t.Runner, ch)
	}); err != nil {
		return err
	}
	if err := c.EachHost(ctx, "containerd", all, func(ctx context.Context, t *Target) error {
		return c.startContainerd(ctx, t, changed.of(t))
	}); err != nil {
		return err
	}
	if err := c.EachHost(ctx, "etcd", c.Masters, func(ctx context.Context, t *Target) error {
		return c.startUnit(ctx, t, "etcd", changed.of(t))
	}); err != nil {
		return err
	}
	if err := c.Once(ctx, "etcd-healthy", c.waitEtcd); err != nil {
		return err
	}
	if err := c.EachHost(ctx, "control-plane", c.Masters, func(ctx context.Context, t *Target) error {
		for _, u := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
			if err := c.startUnit(ctx, t, u, changed.of(t)); err != nil {
				return err
			}
		}
		return c.waitLocalAPI(ctx, t)
	}); err != nil {
		return err
	}
	if err := c.EachHost(ctx, "keepalived", c.Masters, func(ctx context.Context, t *Target) error {
		return c.startUnit(ctx, t, "keepalived", changed.of(t))
	}); err != nil {
		return err
	}
	if err := c.Once(ctx, "api-vip", c.waitVIP); err != nil {
		return err
	}
	if err := c.Once(ctx, "rbac", func(ctx context.Context) error {
		if err := c.applyAddon(ctx, "rbac"); err != nil {
			return err
		}
		return c.applyAddon(ctx, "bootstrap-rbac")
	}); err != nil {
		return err
	}
	if err := c.EachHost(ctx, "node-agents", all, func(ctx context.Context, t *Target) error {
		for _, u := range []string{"kubelet", "kube-proxy"} {
			if err := c.startUnit(ctx, t, u, changed.of(t)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// flanneld takes its subnet from the Node's podCIDR, which the controller-manager assigns once kubelet has
	// registered the Node; starting it earlier makes it exit.
	if err := c.Once(ctx, "pod-cidrs", c.waitPodCIDRs); err != nil {
		return err
	}
	if err := c.EachHost(ctx, "pod-network", all, func(ctx context.Context, t *Target) error {
		return c.startUnit(ctx, t, "flanneld", changed.of(t))
	}); err != nil {
		return err
	}
	if err := c.Once(ctx, "addons", func(ctx context.Context) error {
		if err := c.applyAddon(ctx, "coredns"); err != nil {
			return err
		}
		for _, a := range OptionalAddons() {
			var err error
			if slices.Contains(c.Addons, a) {
				err = c.applyAddon(ctx, a)
			} else {
				err = c.removeAddon(ctx, a)
			}
			if err != nil {
				return err
			}
		}
		for i, m := range c.Manifests {
			if err := c.kubectlApply(ctx, fmt.Sprintf("user manifest %d", i), []byte(m)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := c.Once(ctx, "nodes-ready", c.waitNodesReady); err != nil {
		return err
	}
	if err := c.Once(ctx, "node-roles", c.labelRoles); err != nil {
		return err
	}
	return c.EachHost(ctx, "record", all, c.recordApplied)
}

// changeSet collects, per host, the paths that a run changed.
type changeSet struct {
	mu sync.Mutex
	m  map[*Target][]string
}

func newChangeSet() *changeSet { return &changeSet{m: map[*Target][]string{}} }

func (s *changeSet) add(t *Target, paths []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[t] = append(s.m[t], paths...)
}

func (s *changeSet) of(t *Target) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.m[t])
}

// prepareHost writes the cluster marker and the kernel settings the node needs. On container hosts only
// namespaced (net.*) sysctls are written and no module is loaded (DESIGN §3.10).
func (c *Cluster) prepareHost(ctx context.Context, t *Target) error {
	script := `set -e
mkdir -p /etc/kubesmith
` + preinstallScript + `
mkdir -p /etc/kubesmith /var/lib/kubesmith/images /etc/kubernetes/pki/etcd /var/lib/kubelet/pki /etc/cni/net.d /opt/cni/bin /run/flannel
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
`
	if !t.Facts.IsContainer() {
		script += `modprobe overlay 2>/dev/null || true
modprobe br_netfilter 2>/dev/null || true
`
	}
	if _, err := t.Runner.Run(ctx, script); err != nil {
		return fmt.Errorf("preparing the host: %w", err)
	}
	return nil
}

// unitTriggers lists, for each unit, the files whose change requires a restart. An entry ending in "*" is a
// prefix; every other entry must match exactly (so that etcdctl does not restart etcd).
var unitTriggers = map[string][]string{
	"containerd":              {render.PathContainerdConfig, render.PathContainerdUnit, "/usr/local/bin/containerd", render.RuncPath},
	"etcd":                    {render.PathEtcdUnit, render.EtcdPKIDir + "/*", "/usr/local/bin/etcd"},
	"kube-apiserver":          {render.PathAPIServerUnit, render.KubernetesDir + "/apiserver/*", render.PKIDir + "/apiserver*", render.PathCACert, render.PKIDir + "/front-proxy*", render.PKIDir + "/sa.*", "/usr/local/bin/kube-apiserver"},
	"kube-controller-manager": {render.PathControllerManagerUnit, render.PathControllerManagerKubeconfig, render.PKIDir + "/ca.*", render.PathSAKey, "/usr/local/bin/kube-controller-manager"},
	"kube-scheduler":          {render.PathSchedulerUnit, render.PathSchedulerKubeconfig, render.PathSchedulerConfig, "/usr/local/bin/kube-scheduler"},
	"keepalived":              {"/etc/keepalived/*", render.PathKeepalivedDropIn},
	"kubelet":                 {render.PathKubeletUnit, render.PathKubeletConfig, render.PathKubeletKubeconfig, render.PathKubeletServingCert, render.PathKubeletServingKey, render.PathCACert, render.PathResolvConf, "/usr/local/bin/kubelet"},
	"kube-proxy":              {render.PathKubeProxyUnit, render.PathKubeProxyConfig, render.PathKubeProxyKubeconfig, "/usr/local/bin/kube-proxy"},
	"flanneld":                {render.PathFlanneldUnit, render.PathFlannelNetConf, render.PathFlannelKubeconfig, "/usr/local/bin/flanneld"},
}

// PendingDir holds one empty file per unit that must be restarted because its files changed. The markers are
// written right after the files, so a run that fails before the restart still restarts the unit next time.
const PendingDir = "/var/lib/kubesmith/pending-restart"

func triggered(unit string, changed []string) bool {
	for _, c := range changed {
		for _, p := range unitTriggers[unit] {
			if prefix, ok := strings.CutSuffix(p, "*"); ok {
				if strings.HasPrefix(c, prefix) {
					return true
				}
			} else if c == p {
				return true
			}
		}
	}
	return false
}

// markPending records the units that the changed paths require to restart.
func markPending(ctx context.Context, t *Target, changed []string) error {
	var units []string
	for u := range unitTriggers {
		if triggered(u, changed) {
			units = append(units, node.Quote(PendingDir+"/"+u))
		}
	}
	if len(units) == 0 {
		return nil
	}
	slices.Sort(units)
	if _, err := t.Runner.Run(ctx, "mkdir -p "+PendingDir+" && touch "+strings.Join(units, " ")); err != nil {
		return fmt.Errorf("recording pending restarts: %w", err)
	}
	return nil
}

func (c *Cluster) startUnit(ctx context.Context, t *Target, unit string, changed []string) error {
	err := EnsureService(ctx, t.Runner, unit, triggered(unit, changed), unit == "etcd", PendingDir+"/"+unit)
	if err == nil {
		return nil
	}
	// kubesmith's units restart on failure: a start that failed on a transient cause (flanneld could not reach
	// a busy apiserver in time) recovers by itself. Give systemd's restarts a chance before failing.
	grace := cmp.Or(c.StartGrace, 2*time.Minute)
	if grace < 0 {
		return err
	}
	if perr := Poll(ctx, min(5*time.Second, grace/10), grace, unit+" on "+t.Name+" to come up after a failed start", func(ctx context.Context) (bool, error) {
		_, err := t.Runner.Run(ctx, "systemctl is-active --quiet "+node.Quote(unit))
		return err == nil, nil
	}); perr == nil {
		return nil
	}
	return err
}

// ContainerdReadyCommand succeeds once containerd answers and serves the CRI API the kubelet uses.
const ContainerdReadyCommand = "ctr --address /run/containerd/containerd.sock version >/dev/null && " +
	"crictl --runtime-endpoint unix:///run/containerd/containerd.sock --timeout 5s info >/dev/null"

// startContainerd starts containerd and imports every bundled image, pinned so that image GC keeps it.
func (c *Cluster) startContainerd(ctx context.Context, t *Target, changed []string) error {
	if err := c.startUnit(ctx, t, "containerd", changed); err != nil {
		return err
	}
	// The kubelet needs containerd's CRI service, which containerd serves a little after its socket (and never,
	// when the CRI plugin fails to load): wait for it, not only for the socket.
	if err := Poll(ctx, 200*time.Millisecond, time.Minute, "containerd and its CRI service", func(ctx context.Context) (bool, error) {
		_, err := t.Runner.Run(ctx, ContainerdReadyCommand)
		return err == nil, err
	}); err != nil {
		return fmt.Errorf("%w\n%s", err, unitLog(ctx, t, "containerd"))
	}
	res, err := t.Runner.Run(ctx, "ctr -n k8s.io images ls -q")
	if err != nil {
		return fmt.Errorf("listing images: %w", err)
	}
	have := strings.Fields(res.Stdout)
	for _, img := range c.Select.Images() {
		if slices.Contains(have, img.File.Image) && !slices.Contains(changed, img.Dest) {
			continue
		}
		cmd := fmt.Sprintf("ctr -n k8s.io images import --local %s >/dev/null && ctr -n k8s.io images label %s io.cri-containerd.pinned=pinned >/dev/null",
			node.Quote(img.Dest), node.Quote(img.File.Image))
		if _, err := t.Runner.Run(ctx, cmd); err != nil {
			return fmt.Errorf("importing image %s: %w", img.File.Image, err)
		}
	}
	return nil
}

// EtcdctlCommand returns an etcdctl command line against the given endpoints with the health-check client cert.
func EtcdctlCommand(endpoints []string, args string) string {
	return fmt.Sprintf("ETCDCTL_API=3 etcdctl --endpoints=%s --cacert=%s/etcd/ca.crt --cert=%s/etcd/healthcheck-client.crt --key=%s/etcd/healthcheck-client.key --command-timeout=5s %s",
		strings.Join(endpoints, ","), PKIDir, PKIDir, PKIDir, args)
}

// EtcdEndpoints are the client URLs of the masters' etcd members.
func EtcdEndpoints(masters []*Target) []string {
	var eps []string
	for _, m := range masters {
		eps = append(eps, fmt.Sprintf("https://%s:2379", m.Address))
	}
	return eps
}

func (c *Cluster) waitEtcd(ctx context.Context) error {
	m := c.Masters[0]
	return Poll(ctx, time.Second, 3*time.Minute, "etcd to be healthy on every member", func(ctx context.Context) (bool, error) {
		_, err := m.Runner.Run(ctx, EtcdctlCommand(EtcdEndpoints(c.Masters), "endpoint health"))
		return err == nil, err
	})
}

func (c *Cluster) waitLocalAPI(ctx context.Context, t *Target) error {
	return Poll(ctx, time.Second, 3*time.Minute, "kube-apiserver /readyz on "+t.Name, func(ctx context.Context) (bool, error) {
		_, err := t.Runner.Run(ctx, fmt.Sprintf("curl -sf --max-time 5 --cacert %s/ca.crt https://127.0.0.1:%d/readyz >/dev/null", PKIDir, c.APIPort))
		return err == nil, err
	})
}

func (c *Cluster) waitVIP(ctx context.Context) error {
	m := c.Masters[0]
	return Poll(ctx, time.Second, 2*time.Minute, "the API VIP "+c.VIP.String(), func(ctx context.Context) (bool, error) {
		_, err := m.Runner.Run(ctx, fmt.Sprintf("curl -sf --max-time 5 --cacert %s/ca.crt %s/readyz >/dev/null", PKIDir, c.Endpoint()))
		return err == nil, err
	})
}

// kubectlUnreachable matches kubectl failures where no apiserver answered the request: client-go's fixed 10 s
// TLS handshake timeout, refused or reset connections, timeouts. A busy apiserver (under TCG, or while the VIP
// moves) gives them for a while; an answer from the apiserver ("Error from server ...") never matches.
var kubectlUnreachable = regexp.MustCompile(`Unable to connect to the server|TLS handshake timeout|connection refused|connection reset by peer|i/o timeout|http2: client connection lost|net/http: request canceled|unexpected EOF`)

// KubectlUnreachable reports whether kubectl's output (or an error that carries it) says that no apiserver
// answered, so that running the same command again may succeed.
func KubectlUnreachable(output string) bool { return kubectlUnreachable.MatchString(output) }

const (
	// kubectlUnreachableWait bounds how long Kubectl keeps trying while no apiserver answers (scaled on slow
	// machines, see Scaled).
	kubectlUnreachableWait = 2 * time.Minute
	// kubectlRetryInterval is the pause between those attempts.
	kubectlRetryInterval = 2 * time.Second
)

// Kubectl runs kubectl with the admin kubeconfig on the first master that answers. While no apiserver answers at
// all, it tries again for up to kubectlUnreachableWait; other failures are returned at once.
func (c *Cluster) Kubectl(ctx context.Context, args string, stdin []byte) (node.Result, error) {
	wctx, cancel := context.WithTimeout(ctx, Scaled(ctx, kubectlUnreachableWait))
	defer cancel()
	tick := time.NewTicker(kubectlRetryInterval)
	defer tick.Stop()
	for {
		res, err := c.kubectlOnce(wctx, args, stdin)
		if err == nil || !KubectlUnreachable(err.Error()) {
			return res, err
		}
		select {
		case <-wctx.Done():
			return res, err
		case <-tick.C:
		}
	}
}

// kubectlOnce runs kubectl once on each master in turn until one succeeds.
func (c *Cluster) kubectlOnce(ctx context.Context, args string, stdin []byte) (node.Result, error) {
	var last error
	for _, m := range c.Masters {
		cmd := "kubectl --kubeconfig " + AdminConf + " --request-timeout=30s " + args
		var res node.Result
		var err error
		if stdin != nil {
			res, err = m.Runner.RunInput(ctx, cmd, strings.NewReader(string(stdin)))
		} else {
			res, err = m.Runner.Run(ctx, cmd)
		}
		if err == nil {
			return res, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return node.Result{}, last
}

func (c *Cluster) kubectlApply(ctx context.Context, what string, manifest []byte) error {
	return Poll(ctx, 2*time.Second, 2*time.Minute, "applying "+what, func(ctx context.Context) (bool, error) {
		_, err := c.Kubectl(ctx, "apply --server-side --force-conflicts --field-manager=kubesmith -f -", manifest)
		return err == nil, err
	})
}

func (c *Cluster) applyAddon(ctx context.Context, name string) error {
	m, err := c.AddonManifest(name)
	if err != nil {
		return err
	}
	return c.kubectlApply(ctx, name+" add-on", m)
}

// removeAddon deletes an optional add-on that is no longer wanted. It does nothing when the add-on's marker
// object (addonMarker) does not exist, so clusters that never had it pay one API call.
func (c *Cluster) removeAddon(ctx context.Context, name string) error {
	marker, err := addonMarker(name)
	if err != nil {
		return err
	}
	kind, obj, _ := strings.Cut(marker, " ")
	res, err := c.Kubectl(ctx, "get "+kind+" --ignore-not-found -o name "+node.Quote(obj), nil)
	if err != nil {
		return fmt.Errorf("looking for the %s add-on: %w", name, err)
	}
	if strings.TrimSpace(res.Stdout) == "" {
		return nil
	}
	m, err := c.AddonManifest(name)
	if err != nil {
		return err
	}
	if _, err := c.Kubectl(ctx, "delete --ignore-not-found --wait=false -f -", m); err != nil {
		return fmt.Errorf("removing the %s add-on: %w", name, err)
	}
	return nil
}

func (c *Cluster) waitNodesReady(ctx context.Context) error {
	want := map[string]bool{}
	for _, t := range c.All() {
		want[t.Name] = true
	}
	return Poll(ctx, 2*time.Second, 5*time.Minute, "every node to be Ready", func(ctx context.Context) (bool, error) {
		res, err := c.Kubectl(ctx, `get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{range .status.conditions[?(@.type=="Ready")]}{.status}{end}{"\n"}{end}'`, nil)
		if err != nil {
			return false, err
		}
		ready := map[string]bool{}
		for _, line := range strings.Split(res.Stdout, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[1] == "True" {
				ready[f[0]] = true
			}
		}
		var missing []string
		for n := range want {
			if !ready[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			return false, fmt.Errorf("not Ready yet: %s", strings.Join(missing, ", "))
		}
		return true, nil
	})
}

// labelRoles sets the role labels that kubelet may not set on itself.
func (c *Cluster) labelRoles(ctx context.Context) error {
	for _, t := range c.Masters {
		if _, err := c.Kubectl(ctx, "label node "+node.Quote(t.Name)+" node-role.kubernetes.io/control-plane= --overwrite", nil); err != nil {
			return fmt.Errorf("labelling %s: %w", t.Name, err)
		}
	}
	return nil
}

// waitPodCIDRs waits until every node is registered and has a pod CIDR.
func (c *Cluster) waitPodCIDRs(ctx context.Context) error {
	return Poll(ctx, time.Second, 3*time.Minute, "every node to be registered with a pod CIDR", func(ctx context.Context) (bool, error) {
		res, err := c.Kubectl(ctx, `get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.podCIDR}{"\n"}{end}'`, nil)
		if err != nil {
			return false, err
		}
		have := map[string]bool{}
		for _, line := range strings.Split(res.Stdout, "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				have[f[0]] = true
			}
		}
		var missing []string
		for _, t := range c.All() {
			if !have[t.Name] {
				missing = append(missing, t.Name)
			}
		}
		if len(missing) > 0 {
			return false, fmt.Errorf("no pod CIDR yet: %s", strings.Join(missing, ", "))
		}
		return true, nil
	})
}
