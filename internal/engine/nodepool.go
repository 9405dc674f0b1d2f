package engine

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/render"
)

// Taint is a Node taint that a node pool puts on its nodes.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// NodePoolSpec is the desired state of a node pool: workers that join an existing cluster.
type NodePoolSpec struct {
	// Name names the pool; it is a DNS label.
	Name string
	// Cluster is the cluster's non-secret join object.
	Cluster Join
	// Credentials is the cluster's restricted pool-manager identity.
	Credentials PoolCredentials
	// Hosts are the workers.
	Hosts []Host
	// Libvirt, when set, makes the workers libvirt VMs that kubesmith creates; Hosts is then derived from it.
	Libvirt *LibvirtMachines
	// Labels and Taints are kept on every Node of the pool, through the API (no host is touched).
	Labels map[string]string
	Taints []Taint
	// MaxUnavailable bounds how many nodes are drained at once; 1 by default.
	MaxUnavailable int
	// DrainTimeout bounds the wait for one node's pods to leave; 5 minutes by default.
	DrainTimeout time.Duration
	SSH          SSH
	Artifacts    Artifacts
}

// NodePoolState is what exists of a node pool.
type NodePoolState struct {
	// ClusterUID is the UID of the cluster the workers joined.
	ClusterUID string
	// Hosts are the machines that carry (or may carry, after a failed apply) the pool's installation, with
	// how to reach them; removal and delete use them.
	Hosts []Host
	// ConfigHash is DesiredNodePoolHash when every node matches, otherwise "drift:<node>" or "".
	ConfigHash string
	Nodes      []NodeStatus
	// Addresses are the workers' node addresses (backends for load balancer frontends).
	Addresses []string
	// Machines are the VMs kubesmith created for the pool (libvirt only).
	Machines []Machine
}

// NodePoolReadResult is what ReadNodePool observed.
type NodePoolReadResult struct {
	State NodePoolState
	// Gone is true only when every host answered and none carries the cluster's marker.
	Gone     bool
	Warnings []string
}

// Node pool defaults and limits.
const (
	defaultDrainTimeout = 5 * time.Minute
	// bootstrapTokenTTL is how long a join token lives; it is deleted as soon as the join ends.
	bootstrapTokenTTL = time.Hour
	// agentTokenTTL is the lifetime requested for kube-proxy's and flanneld's tokens; apply renews them
	// within phase.RenewBefore of expiry.
	agentTokenTTL = 365 * 24 * time.Hour
	// Service accounts of the node agents (see the RBAC note in the node pool docs).
	saKubeProxy = "kubesmith-kube-proxy"
	saFlannel   = "kubesmith-flannel"
	// Annotations that record which labels and taints the pool manages on a Node, so that removed ones are
	// removed and nobody else's are touched.
	annotationLabels = "kubesmith.io/pool-labels"
	annotationTaints = "kubesmith.io/pool-taints"
	// LabelPool marks a Node with its pool's name.
	LabelPool = "kubesmith.io/pool"
)

var (
	poolNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	labelKeyRe = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	labelValRe = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
)

func poolDefaults(s NodePoolSpec) NodePoolSpec {
	if s.MaxUnavailable <= 0 {
		s.MaxUnavailable = 1
	}
	if s.DrainTimeout <= 0 {
		s.DrainTimeout = defaultDrainTimeout
	}
	if s.SSH.ConnectTimeout == 0 {
		s.SSH.ConnectTimeout = 5 * time.Minute
	}
	if s.Libvirt != nil {
		s.Hosts = expandMachines(s.Hosts, s.Cluster.ClusterName, s.Name, s.Libvirt)
	}
	return s
}

// ValidateNodePoolSpec checks a node pool spec without touching anything. availableVersions (nil: skip) are
// the Kubernetes versions in the bundle.
func ValidateNodePoolSpec(spec NodePoolSpec, availableVersions []string) []FieldError {
	if spec.Libvirt != nil {
		return validateMachinePool(spec, availableVersions)
	}
	var errs []FieldError
	add := func(path, summary, detail string, args ...any) {
		errs = append(errs, FieldError{Path: path, Summary: summary, Detail: fmt.Sprintf(detail, args...)})
	}
	if !poolNameRe.MatchString(spec.Name) {
		add("name", "Invalid node pool name", "%q must be 1-32 lower-case letters, digits or '-', starting and ending with a letter or digit.", spec.Name)
	}
	j := spec.Cluster
	validateJoinIdentity(j, add)
	if j.CACertificate != "" {
		if _, err := pki.ParseCertificate([]byte(j.CACertificate)); err != nil {
			add("cluster.ca_certificate", "Invalid CA certificate", "%v.", err)
		}
	}
	v, ok := NormalizeVersion(j.KubernetesVersion)
	switch {
	case !ok:
		add("cluster.kubernetes_version", "Invalid Kubernetes version", "%q is not a version like \"1.37.2\".", j.KubernetesVersion)
	case availableVersions != nil && !slices.Contains(availableVersions, v):
		add("cluster.kubernetes_version", "Kubernetes version not in the artifact bundle",
			"%s is not in the bundle; build it with `make artifacts K8S_VERSION=%s`.", v, v)
	}
	for _, c := range []struct{ path, val string }{{"cluster.pod_cidr", j.PodCIDR}, {"cluster.service_cidr", j.ServiceCIDR}} {
		if _, ok := parsePrefix(c.val); !ok {
			add(c.path, "Invalid CIDR", "%q is not a CIDR.", c.val)
		}
	}
	if spec.Credentials.ClientCert == "" || spec.Credentials.ClientKey == "" {
		add("credentials", "Missing pool credentials", "credentials must be the pool_credentials attribute of the kubesmith_cluster.")
	} else if _, _, err := pki.ParseKeyPair(pki.KeyPair{CertPEM: []byte(spec.Credentials.ClientCert), KeyPEM: []byte(spec.Credentials.ClientKey)}); err != nil {
		add("credentials", "Invalid pool credentials", "%v.", err)
	}
	nodeNet, nodeOK := parsePrefix(j.NodeNetwork)
	if len(spec.Hosts) == 0 {
		add("hosts", "No hosts", "A node pool needs at least one host.")
	}
	validateHosts(spec.Hosts, hostRules{
		list:    "hosts",
		network: "the cluster's node network",
		checkAddr: func(i int, _ Host, a netip.Addr) {
			if slices.Contains(j.Masters, a.String()) {
				add(fmt.Sprintf("hosts[%d].address", i), "Address of a master", "%s is a master of the cluster; a node pool needs its own hosts.", a)
			}
		},
	}, nodeNet, nodeOK, spec.SSH.KnownHostsPath != "", add)
	for k, val := range spec.Labels {
		p := "labels[" + k + "]"
		switch {
		case !labelKeyRe.MatchString(k):
			add(p, "Invalid label key", "%q is not a Kubernetes label key.", k)
		case k == LabelPool:
			add(p, "Reserved label", "%s is set by kubesmith to the pool's name.", k)
		case !labelValRe.MatchString(val):
			add(p, "Invalid label value", "%q is not a Kubernetes label value (63 characters of letters, digits, '-', '_', '.').", val)
		}
	}
	seenTaint := map[string]bool{}
	for i, t := range spec.Taints {
		p := fmt.Sprintf("taints[%d]", i)
		if !labelKeyRe.MatchString(t.Key) {
			add(p+".key", "Invalid taint key", "%q is not a Kubernetes taint key.", t.Key)
		} else if t.Key == phase.JoiningTaintKey || strings.HasPrefix(t.Key, "node.kubernetes.io/") {
			add(p+".key", "Reserved taint", "%s is managed by kubesmith or Kubernetes.", t.Key)
		}
		if !labelValRe.MatchString(t.Value) {
			add(p+".value", "Invalid taint value", "%q is not a Kubernetes taint value.", t.Value)
		}
		switch t.Effect {
		case "NoSchedule", "PreferNoSchedule", "NoExecute":
		default:
			add(p+".effect", "Invalid taint effect", "%q must be NoSchedule, PreferNoSchedule or NoExecute.", t.Effect)
		}
		if seenTaint[t.Key+":"+t.Effect] {
			add(p, "Duplicate taint", "%s:%s is given twice.", t.Key, t.Effect)
		}
		seenTaint[t.Key+":"+t.Effect] = true
	}
	if spec.MaxUnavailable < 0 {
		add("max_unavailable", "Invalid max_unavailable", "%d must be 1 or more.", spec.MaxUnavailable)
	}
	if spec.DrainTimeout < 0 {
		add("drain_timeout", "Invalid drain timeout", "%s must be positive.", spec.DrainTimeout)
	}
	if spec.SSH.PrivateKey == "" && spec.SSH.PrivateKeyPath == "" && !spec.SSH.UseAgent {
		add("ssh", "Missing SSH key", "No SSH credentials: set ssh.private_key_path or ssh.private_key in the provider block, or ssh.use_agent = true.")
	}
	return errs
}

// validateJoinIdentity checks the parts of a join object that identify the cluster, each under its own path, so
// that the ones still unknown at plan time (the UID and CA of a cluster created in the same apply) are skipped.
func validateJoinIdentity(j Join, add func(path, summary, detail string, args ...any)) {
	const hint = "cluster must be the join attribute of a kubesmith_cluster."
	if j.ClusterUID == "" {
		add("cluster.cluster_uid", "Incomplete cluster join object", "cluster_uid is empty; "+hint)
	}
	if j.CACertificate == "" {
		add("cluster.ca_certificate", "Incomplete cluster join object", "ca_certificate is empty; "+hint)
	}
	if j.Endpoint == "" {
		add("cluster.endpoint", "Incomplete cluster join object", "endpoint is empty; "+hint)
	} else if _, err := endpointAddr(j.Endpoint); err != nil {
		add("cluster.endpoint", "Invalid API endpoint", "%v.", err)
	}
}

// endpointAddr parses "https://IP:PORT".
func endpointAddr(endpoint string) (netip.AddrPort, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" {
		return netip.AddrPort{}, fmt.Errorf("%q is not an https URL", endpoint)
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not https://IP:PORT: %w", endpoint, err)
	}
	return ap, nil
}

// ValidateNodePool implements API.
func (e *Engine) ValidateNodePool(_ context.Context, spec NodePoolSpec) []FieldError {
	b, err := openBundle(spec.Artifacts)
	if err != nil {
		errs := ValidateNodePoolSpec(spec, nil)
		return append(errs, FieldError{Path: "cluster.kubernetes_version", Summary: "Artifact bundle unavailable", Detail: err.Error()})
	}
	return ValidateNodePoolSpec(spec, b.Manifest().Versions("kubernetes"))
}

// workerHostHash covers everything rendered on a worker's disk. Labels and taints live on the Node object only.
func workerHostHash(spec NodePoolSpec) (string, error) {
	j := spec.Cluster
	v := j.KubernetesVersion
	if n, ok := NormalizeVersion(v); ok {
		v = n
	}
	b, err := json.Marshal(struct {
		V, UID, Endpoint, CA, Version, Pod, Svc, DNS string
	}{engineConfigVersion, j.ClusterUID, j.Endpoint, j.CACertificate, v, j.PodCIDR, j.ServiceCIDR, j.ClusterDNS})
	if err != nil {
		return "", fmt.Errorf("hashing the worker configuration: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

// DesiredNodePoolHash implements API: the workers' host configuration plus the pool's labels and taints.
func (e *Engine) DesiredNodePoolHash(spec NodePoolSpec) (string, error) {
	host, err := workerHostHash(spec)
	if err != nil {
		return "", err
	}
	taints := slices.Clone(spec.Taints)
	sort.Slice(taints, func(a, b int) bool { return taints[a].Key+taints[a].Effect < taints[b].Key+taints[b].Effect })
	b, err := json.Marshal(struct {
		Host   string            `json:"host"`
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
		Taints []Taint           `json:"taints"`
	}{host, spec.Name, spec.Labels, taints})
	if err != nil {
		return "", fmt.Errorf("hashing the node pool: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

// poolRecord is the non-secret description of the pool kept on each worker, from which import rebuilds it.
type poolRecord struct {
	Name           string            `json:"name"`
	Cluster        Join              `json:"cluster"`
	Hosts          []Host            `json:"hosts"`
	Labels         map[string]string `json:"labels"`
	Taints         []Taint           `json:"taints"`
	MaxUnavailable int               `json:"max_unavailable"`
	DrainTimeout   string            `json:"drain_timeout"`
}

// ApplyNodePool implements API. New hosts (and hosts whose observed configuration differs) are installed and
// joined; hosts that are in sync are not contacted. Labels and taints are patched on every Node. Hosts that
// left the spec are cordoned, drained, deleted and reset, max_unavailable at a time.
func (e *Engine) ApplyNodePool(ctx context.Context, spec NodePoolSpec, prior *NodePoolState, progress Progress) (NodePoolState, error) {
	spec = poolDefaults(spec)
	state := NodePoolState{ClusterUID: spec.Cluster.ClusterUID}
	if prior != nil {
		state = *prior
		state.ClusterUID = spec.Cluster.ClusterUID
	}
	if errs := ValidateNodePoolSpec(spec, nil); len(errs) > 0 {
		return state, fmt.Errorf("invalid node pool: %w", joinFieldErrors(errs))
	}
	if prior != nil && prior.ClusterUID != "" && prior.ClusterUID != spec.Cluster.ClusterUID {
		return state, fmt.Errorf("the node pool belongs to cluster %s, not %s; a pool cannot move between clusters (replace it)", prior.ClusterUID, spec.Cluster.ClusterUID)
	}
	priorHosts := map[string]Host{}
	if prior != nil {
		for _, h := range prior.Hosts {
			priorHosts[h.Name] = h
		}
	}
	for _, h := range spec.Hosts {
		if old, ok := priorHosts[h.Name]; ok && old.Address != h.Address {
			return state, fmt.Errorf("host %s changed its address from %s to %s; remove it from the pool in one apply and add it back in another", h.Name, old.Address, h.Address)
		}
	}
	if spec.Libvirt != nil {
		ctx = machineContext(ctx, spec.Libvirt)
		if err := e.ensurePoolMachines(ctx, &spec, &state, progress); err != nil {
			return state, err
		}
	}
	hostHash, err := workerHostHash(spec)
	if err != nil {
		return state, err
	}
	api, err := newKubeAPI(ctx, spec.Cluster, spec.Credentials)
	if err != nil {
		return state, err
	}
	p := progressAdapter(progress)

	// Which hosts need work on the host itself.
	inSync := map[string]bool{}
	if prior != nil {
		for _, n := range prior.Nodes {
			if _, known := priorHosts[n.Name]; known && n.ConfigHash == hostHash {
				inSync[n.Name] = true
			}
		}
	}
	var join []Host
	for _, h := range spec.Hosts {
		if !inSync[h.Name] {
			join = append(join, h)
		}
	}
	// Record every host that may carry the installation before touching it, so that a failure keeps them
	// in state for the next apply or delete.
	state.Hosts = mergeHosts(state.Hosts, spec.Hosts)
	if len(join) > 0 {
		if err := e.joinWorkers(ctx, spec, hostHash, api, join, p); err != nil {
			return e.poolStateAfter(ctx, spec, state, api, hostHash, join), err
		}
	}
	if err := phaseOnce(ctx, p, "node-labels", func(ctx context.Context) error {
		return forEachNode(ctx, e.opts.Parallelism, spec.Hosts, func(ctx context.Context, h Host) error {
			return api.applyMetadata(ctx, h.Name, spec.Name, spec.Labels, spec.Taints)
		})
	}); err != nil {
		return e.poolStateAfter(ctx, spec, state, api, hostHash, nil), err
	}
	var removed []Host
	for _, h := range state.Hosts {
		if !slices.ContainsFunc(spec.Hosts, func(s Host) bool { return s.Name == h.Name }) {
			removed = append(removed, h)
		}
	}
	if len(removed) > 0 {
		gone, err := e.removeWorkers(ctx, spec, api, removed, p)
		state.Hosts = slices.DeleteFunc(state.Hosts, func(h Host) bool { return slices.Contains(gone, h.Name) })
		if err != nil {
			return e.poolStateAfter(ctx, spec, state, api, hostHash, nil), err
		}
	}
	state.Hosts = slices.Clone(spec.Hosts)
	state.Machines = keepMachines(state.Machines, spec.Hosts)
	st := e.poolStateAfter(ctx, spec, state, api, hostHash, nil)
	return st, nil
}

// poolStateAfter observes the pool after an apply. Nodes in failed are recorded with an empty hash, so that
// the next apply works on them again.
func (e *Engine) poolStateAfter(ctx context.Context, spec NodePoolSpec, state NodePoolState, api *kubeAPI, hostHash string, failed []Host) NodePoolState {
	res := e.observePool(ctx, spec, state, api, hostHash)
	for i := range res.State.Nodes {
		if slices.ContainsFunc(failed, func(h Host) bool { return h.Name == res.State.Nodes[i].Name }) {
			res.State.Nodes[i].ConfigHash = ""
		}
	}
	return res.State
}

func mergeHosts(have, add []Host) []Host {
	out := slices.Clone(have)
	for _, h := range add {
		i := slices.IndexFunc(out, func(o Host) bool { return o.Name == h.Name })
		if i >= 0 {
			out[i] = h
		} else {
			out = append(out, h)
		}
	}
	return out
}

func phaseOnce(ctx context.Context, p phase.Progress, name string, fn func(context.Context) error) error {
	return phase.Step(ctx, p, name, nil, fn)
}

// forEachNode runs fn for every host in parallel (bounded) and joins the errors.
func forEachNode(ctx context.Context, limit int, hosts []Host, fn func(context.Context, Host) error) error {
	return phase.Parallel(ctx, limit, hosts, fn)
}

// workerCluster is the phases' view of a cluster seen from a node pool: no CA key, no masters.
func (e *Engine) workerCluster(spec NodePoolSpec, hostHash string, workers []*phase.Target, p phase.Progress) (*phase.Cluster, error) {
	bundle, err := openBundle(spec.Artifacts)
	if err != nil {
		return nil, err
	}
	j := spec.Cluster
	v, _ := NormalizeVersion(j.KubernetesVersion)
	if !slices.Contains(bundle.Manifest().Versions("kubernetes"), v) {
		return nil, fmt.Errorf("kubernetes %s is not in the artifact bundle; run `make artifacts K8S_VERSION=%s`", v, v)
	}
	ap, err := endpointAddr(j.Endpoint)
	if err != nil {
		return nil, err
	}
	pod, _ := parsePrefix(j.PodCIDR)
	svc, _ := parsePrefix(j.ServiceCIDR)
	nodeNet, _ := parsePrefix(j.NodeNetwork)
	arch := "amd64"
	if len(workers) > 0 && workers[0].Facts.Arch != "" {
		arch = workers[0].Facts.Arch
	}
	return &phase.Cluster{
		Name: j.ClusterName, UID: j.ClusterUID, Version: v, NodeNetwork: nodeNet, VIP: ap.Addr(), APIPort: int(ap.Port()),
		PodCIDR: pod.Masked(), ServiceCIDR: svc.Masked(),
		// The join object does not carry the cluster's kube_proxy_mode yet; iptables is the cluster default.
		ProxyMode: "iptables",
		CAs:       pki.ClusterCAs{Cluster: pki.KeyPair{CertPEM: []byte(j.CACertificate)}},
		Workers:   workers, AppliedHash: hostHash,
		Bundle: bundle, Select: phase.Selection{Manifest: bundle.Manifest(), KubernetesVersion: v, Arch: arch},
		Progress: p, Now: e.opts.Now, Parallel: e.opts.Parallelism, StartGrace: e.opts.StartGrace,
	}, nil
}

// joinWorkers installs and joins hosts. Bootstrap tokens created on the way are deleted before it returns.
func (e *Engine) joinWorkers(ctx context.Context, spec NodePoolSpec, hostHash string, api *kubeAPI, hosts []Host, p phase.Progress) error {
	ses, err := e.connect(ctx, spec.SSH, hosts, phase.RoleWorker)
	if err != nil {
		return err
	}
	defer ses.close()
	rec, err := json.MarshalIndent(poolRecord{
		Name: spec.Name, Cluster: spec.Cluster, Hosts: spec.Hosts, Labels: spec.Labels,
		Taints: spec.Taints, MaxUnavailable: spec.MaxUnavailable, DrainTimeout: spec.DrainTimeout.String(),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the node pool record: %w", err)
	}
	auth := &poolAuthority{api: api, pool: spec.Name, now: e.opts.Now, tokens: map[string]string{}}
	defer func() {
		// A token must not outlive the join; use a fresh context so that a cancelled apply still cleans up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := auth.deleteTokens(cctx); err != nil && p != nil {
			p("bootstrap-token-cleanup", "", err.Error(), 0, err)
		}
	}()
	return withHostLocks(ctx, ses.targets, func() error {
		if err := e.forEach(ctx, ses.targets, func(ctx context.Context, t *phase.Target) error {
			return phase.Step(ctx, p, "gather-facts", t, func(ctx context.Context) error {
				f, err := phase.GatherFacts(ctx, t)
				t.Facts = f
				return err
			})
		}); err != nil {
			return err
		}
		e.loadKernelModules(ctx, ses.targets)
		var problems []error
		for _, t := range ses.targets {
			own := map[int]string{}
			switch t.Facts.ClusterUID {
			case "":
			case spec.Cluster.ClusterUID:
				for _, port := range []int{10248, 10249, 10250, 10256} {
					own[port] = "kubesmith"
				}
			default:
				problems = append(problems, fmt.Errorf("%s (%s) belongs to another cluster (UID %s); reset it or remove it from the pool", t.Name, t.Address, t.Facts.ClusterUID))
				continue
			}
			problems = append(problems, phase.Preflight(t, own, netip.MustParseAddr(t.Address))...)
		}
		if len(problems) > 0 {
			return fmt.Errorf("preflight failed:\n%w", errors.Join(problems...))
		}
		c, err := e.workerCluster(spec, hostHash, ses.targets, p)
		if err != nil {
			return err
		}
		if err := e.forEach(ctx, ses.targets, func(ctx context.Context, t *phase.Target) error {
			_, err := phase.SyncFiles(ctx, t.Runner, []phase.File{{Path: phase.MarkerFile, Data: []byte(spec.Cluster.ClusterUID + "\n"), Mode: 0o644}})
			return err
		}); err != nil {
			return err
		}
		if err := c.EachHost(ctx, "join-worker", ses.targets, func(ctx context.Context, t *phase.Target) error {
			return c.JoinWorker(ctx, t, auth, rec)
		}); err != nil {
			return err
		}
		return phaseOnce(ctx, p, "workers-ready", func(ctx context.Context) error {
			return phase.Poll(ctx, 2*time.Second, 5*time.Minute, "the new workers to be Ready", func(ctx context.Context) (bool, error) {
				var notReady []string
				for _, t := range ses.targets {
					n, err := api.getNode(ctx, t.Name)
					if err != nil {
						return false, err
					}
					if n == nil || !n.ready() {
						notReady = append(notReady, t.Name)
					}
				}
				if len(notReady) > 0 {
					return false, fmt.Errorf("not Ready yet: %s", strings.Join(notReady, ", "))
				}
				return true, nil
			})
		})
	})
}

// removeWorkers takes hosts out of the pool in batches of max_unavailable: cordon, drain, delete the Node,
// reset the host. It returns the names it fully removed.
func (e *Engine) removeWorkers(ctx context.Context, spec NodePoolSpec, api *kubeAPI, hosts []Host, p phase.Progress) ([]string, error) {
	var gone []string
	for start := 0; start < len(hosts); start += spec.MaxUnavailable {
		batch := hosts[start:min(start+spec.MaxUnavailable, len(hosts))]
		for _, h := range batch {
			if err := phase.Step(ctx, p, "cordon", &phase.Target{Name: h.Name, Address: h.Address}, func(ctx context.Context) error {
				return api.cordon(ctx, h.Name)
			}); err != nil {
				return gone, err
			}
		}
		if err := forEachNode(ctx, e.opts.Parallelism, batch, func(ctx context.Context, h Host) error {
			return phase.Step(ctx, p, "drain", &phase.Target{Name: h.Name, Address: h.Address}, func(ctx context.Context) error {
				return api.drain(ctx, h.Name, spec.DrainTimeout)
			})
		}); err != nil {
			return gone, err
		}
		for _, h := range batch {
			if err := phase.Step(ctx, p, "delete-node", &phase.Target{Name: h.Name, Address: h.Address}, func(ctx context.Context) error {
				return api.deleteNode(ctx, h.Name)
			}); err != nil {
				return gone, err
			}
		}
		if err := e.resetOrDestroyWorkers(ctx, spec, batch, p); err != nil {
			return gone, err
		}
		for _, h := range batch {
			gone = append(gone, h.Name)
		}
	}
	return gone, nil
}

// resetWorkers resets hosts that carry this cluster's marker (or none); a host of another cluster is refused.
func (e *Engine) resetWorkers(ctx context.Context, spec NodePoolSpec, hosts []Host, p phase.Progress) error {
	ses, err := e.connect(ctx, spec.SSH, hosts, phase.RoleWorker)
	if err != nil {
		return err
	}
	defer ses.close()
	return withHostLocks(ctx, ses.targets, func() error {
		return e.forEach(ctx, ses.targets, func(ctx context.Context, t *phase.Target) error {
			return phase.Step(ctx, p, "reset", t, func(ctx context.Context) error {
				f, err := phase.GatherFacts(ctx, t)
				if err != nil {
					return err
				}
				if f.ClusterUID != "" && f.ClusterUID != spec.Cluster.ClusterUID {
					return fmt.Errorf("the host belongs to another cluster (UID %s), not resetting it", f.ClusterUID)
				}
				t.Facts = f
				return phase.Reset(ctx, t)
			})
		})
	})
}

// DeleteNodePool implements API: every worker is drained, its Node deleted and the host reset.
func (e *Engine) DeleteNodePool(ctx context.Context, spec NodePoolSpec, state NodePoolState, progress Progress) error {
	spec = poolDefaults(spec)
	ctx = machineContext(ctx, spec.Libvirt) // slow (emulated) machines get longer waits and API timeouts
	api, err := newKubeAPI(ctx, spec.Cluster, spec.Credentials)
	if err != nil {
		return err
	}
	hosts := mergeHosts(state.Hosts, nil)
	if len(hosts) == 0 {
		hosts = spec.Hosts
	}
	_, err = e.removeWorkers(ctx, spec, api, hosts, progressAdapter(progress))
	if err == nil && spec.Libvirt != nil {
		err = e.destroyUnjoinedMachines(ctx, spec, state, hosts, progressAdapter(progress))
	}
	return err
}

// ReadNodePool implements API. Unreachable hosts give warnings and never a removal.
func (e *Engine) ReadNodePool(ctx context.Context, spec NodePoolSpec, state NodePoolState) (NodePoolReadResult, error) {
	spec = poolDefaults(spec)
	ctx = machineContext(ctx, spec.Libvirt) // slow (emulated) machines get longer waits and API timeouts
	if spec.Libvirt != nil {
		out := NodePoolReadResult{State: state}
		if done, err := e.readPoolMachines(ctx, &spec, &out); done || err != nil {
			return out, err
		}
		state = out.State
	}
	hostHash, err := workerHostHash(spec)
	if err != nil {
		return NodePoolReadResult{State: state}, err
	}
	api, err := newKubeAPI(ctx, spec.Cluster, spec.Credentials)
	var warn []string
	if err != nil {
		api = nil
		warn = append(warn, fmt.Sprintf("the cluster API was not queried: %v", err))
	}
	res := e.observePool(ctx, spec, state, api, hostHash)
	res.Warnings = append(warn, res.Warnings...)
	var mismatch *node.HostKeyMismatchError
	for _, err := range res.errs {
		if errors.As(err, &mismatch) {
			return res.NodePoolReadResult, fmt.Errorf("reading the node pool: %w", err)
		}
	}
	return res.NodePoolReadResult, nil
}

type poolObservation struct {
	NodePoolReadResult
	errs []error
}

// observePool probes every host of spec over SSH (one attempt each) and the Nodes through the API.
func (e *Engine) observePool(ctx context.Context, spec NodePoolSpec, state NodePoolState, api *kubeAPI, hostHash string) poolObservation {
	out := poolObservation{NodePoolReadResult: NodePoolReadResult{State: state}}
	hosts := spec.Hosts
	type probe struct {
		obs phase.Observation
		err error
	}
	probes := make([]probe, len(hosts))
	_ = forEachNode(ctx, e.opts.Parallelism, hosts, func(ctx context.Context, h Host) error {
		i := slices.IndexFunc(hosts, func(o Host) bool { return o.Name == h.Name })
		cfg := nodeConfig(spec.SSH, h)
		cfg.RetryFor = -1
		r, err := e.opts.Dial(ctx, cfg)
		if err != nil {
			probes[i].err = err
			return nil
		}
		defer func() { _ = r.Close() }()
		probes[i].obs, probes[i].err = phase.Observe(ctx, &phase.Target{Name: h.Name, Address: h.Address, Role: phase.RoleWorker, Runner: r})
		return nil
	})
	nodes := map[string]*kubeNode{}
	apiOK := false
	if api != nil {
		list, err := api.listNodes(ctx)
		if err != nil {
			out.Warnings = append(out.Warnings, fmt.Sprintf("the cluster API could not be queried, so Node readiness is unknown: %v", err))
		} else {
			apiOK = true
			for i := range list {
				nodes[list[i].Metadata.Name] = &list[i]
			}
		}
	}
	unreachable, marked := 0, 0
	st := state
	st.Nodes = nil
	st.Addresses = nil
	drift := ""
	for i, h := range hosts {
		st.Addresses = append(st.Addresses, h.Address)
		ns := NodeStatus{Name: h.Name, Address: h.Address, Role: string(phase.RoleWorker)}
		pr := probes[i]
		n := nodes[h.Name]
		if n != nil {
			ns.Ready = n.ready()
			ns.KubeletVersion = n.Status.NodeInfo.KubeletVersion
			ns.ContainerRuntime = n.Status.NodeInfo.ContainerRuntimeVersion
		}
		switch {
		case pr.err != nil:
			unreachable++
			out.errs = append(out.errs, pr.err)
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s (%s) is not reachable, so its state is unknown: %v", h.Name, h.Address, pr.err))
			ns.ConfigHash = "unreachable"
		case pr.obs.UID != spec.Cluster.ClusterUID:
			ns.Reachable = true
			ns.ConfigHash = "not-installed"
		case len(pr.obs.Drift) > 0:
			marked++
			ns.Reachable = true
			ns.ConfigHash = "drift"
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s: %s", h.Name, strings.Join(pr.obs.Drift, "; ")))
		case apiOK && n == nil:
			marked++
			ns.Reachable = true
			ns.ConfigHash = "node-missing"
		default:
			marked++
			ns.Reachable = true
			ns.ConfigHash = pr.obs.AppliedHash
			if ns.KubeletVersion == "" {
				ns.KubeletVersion = pr.obs.KubeletVersion
			}
		}
		if ns.Reachable && drift == "" && (ns.ConfigHash != hostHash || (n != nil && !n.metadataMatches(spec.Name, spec.Labels, spec.Taints))) {
			drift = "drift:" + h.Name
		}
		st.Nodes = append(st.Nodes, ns)
	}
	if unreachable == 0 && marked == 0 && len(hosts) > 0 {
		out.Gone = true
	}
	switch {
	case drift != "":
		st.ConfigHash = drift
	default:
		if h, err := e.DesiredNodePoolHash(spec); err == nil {
			st.ConfigHash = h
		}
	}
	out.State = st
	return out
}

// ImportNodePool implements API: the pool is rebuilt from the record on one of its workers. Credentials are
// not on the workers, so the result has none; the configuration supplies them.
func (e *Engine) ImportNodePool(ctx context.Context, sshCfg SSH, arts Artifacts, address, hostPublicKey string) (NodePoolSpec, NodePoolState, error) {
	r, err := e.opts.Dial(ctx, nodeConfig(poolDefaults(NodePoolSpec{SSH: sshCfg}).SSH, Host{Name: address, Address: address, HostPublicKey: hostPublicKey}))
	if err != nil {
		return NodePoolSpec{}, NodePoolState{}, fmt.Errorf("import: %w", err)
	}
	raw, err := r.ReadFile(ctx, phase.PoolRecordFile)
	_ = r.Close()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return NodePoolSpec{}, NodePoolState{}, fmt.Errorf("import: %s is not a kubesmith worker (no %s)", address, phase.PoolRecordFile)
		}
		return NodePoolSpec{}, NodePoolState{}, fmt.Errorf("import: %w", err)
	}
	var rec poolRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return NodePoolSpec{}, NodePoolState{}, fmt.Errorf("import: %s is corrupt: %w", phase.PoolRecordFile, err)
	}
	d, err := time.ParseDuration(rec.DrainTimeout)
	if err != nil {
		d = defaultDrainTimeout
	}
	spec := NodePoolSpec{
		Name: rec.Name, Cluster: rec.Cluster, Hosts: rec.Hosts, Labels: rec.Labels, Taints: rec.Taints,
		MaxUnavailable: rec.MaxUnavailable, DrainTimeout: d, SSH: sshCfg, Artifacts: arts,
	}
	state := NodePoolState{ClusterUID: rec.Cluster.ClusterUID, Hosts: rec.Hosts}
	res, err := e.ReadNodePool(ctx, spec, state)
	if err != nil {
		return spec, state, err
	}
	return spec, res.State, nil
}

// poolAuthority implements phase.WorkerAuthority with the pool manager's identity.
type poolAuthority struct {
	api  *kubeAPI
	pool string
	now  func() time.Time

	mu sync.Mutex
	// tokens maps a node name to the ID of its bootstrap token.
	tokens map[string]string
}

var _ phase.WorkerAuthority = (*poolAuthority)(nil)

// ServingCertificate implements phase.WorkerAuthority: a CSR for the kubernetes.io/kubelet-serving signer with
// the node's name and address only, approved by the pool manager and signed by the controller manager with
// the cluster CA.
func (a *poolAuthority) ServingCertificate(ctx context.Context, nodeName string, ip net.IP) (pki.KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pki.KeyPair{}, fmt.Errorf("generating a key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: pki.NodeUserPrefix + nodeName, Organization: []string{pki.GroupNodes}},
		DNSNames: []string{nodeName}, IPAddresses: []net.IP{ip},
	}, key)
	if err != nil {
		return pki.KeyPair{}, fmt.Errorf("creating the CSR: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return pki.KeyPair{}, fmt.Errorf("encoding the key: %w", err)
	}
	suffix, err := randomString(6)
	if err != nil {
		return pki.KeyPair{}, err
	}
	name := "kubesmith-serving-" + nodeName + "-" + suffix
	csr := kubeCSR{APIVersion: "certificates.k8s.io/v1", Kind: "CertificateSigningRequest"}
	csr.Metadata.Name = name
	csr.Metadata.Labels = map[string]string{LabelPool: a.pool}
	csr.Spec.SignerName = signerKubeletServing
	csr.Spec.Request = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	csr.Spec.Usages = []string{"digital signature", "server auth"}
	if err := a.api.do(ctx, http.MethodPost, "/apis/certificates.k8s.io/v1/certificatesigningrequests", "", csr, nil); err != nil {
		return pki.KeyPair{}, fmt.Errorf("creating CSR %s: %w", name, err)
	}
	var created kubeCSR
	if err := a.api.do(ctx, http.MethodGet, "/apis/certificates.k8s.io/v1/certificatesigningrequests/"+name, "", nil, &created); err != nil {
		return pki.KeyPair{}, fmt.Errorf("reading CSR %s: %w", name, err)
	}
	if err := a.api.approve(ctx, &created, "kubelet serving certificate of a node planned by the kubesmith node pool "+a.pool); err != nil {
		return pki.KeyPair{}, err
	}
	var cert []byte
	if err := phase.Poll(ctx, time.Second, 2*time.Minute, "CSR "+name+" to be signed", func(ctx context.Context) (bool, error) {
		var got kubeCSR
		if err := a.api.do(ctx, http.MethodGet, "/apis/certificates.k8s.io/v1/certificatesigningrequests/"+name, "", nil, &got); err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if (c.Type == "Failed" || c.Type == "Denied") && c.Status == "True" {
				return false, fmt.Errorf("CSR %s %s: %s", name, strings.ToLower(c.Type), c.Message)
			}
		}
		cert = got.Status.Certificate
		return len(cert) > 0, nil
	}); err != nil {
		return pki.KeyPair{}, err
	}
	return pki.KeyPair{CertPEM: cert, KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}, nil
}

// BootstrapToken implements phase.WorkerAuthority: one token per node, so that a CSR's requestor proves
// which planned node it is.
func (a *poolAuthority) BootstrapToken(ctx context.Context, nodeName string) (string, error) {
	id, err := randomString(6)
	if err != nil {
		return "", err
	}
	secret, err := randomString(16)
	if err != nil {
		return "", err
	}
	s := map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
		"metadata": map[string]any{
			"name": "bootstrap-token-" + id, "namespace": "kube-system",
			"labels": map[string]string{LabelPool: a.pool},
		},
		"data": map[string][]byte{
			"description":                    []byte("kubesmith node pool " + a.pool + ": join of " + nodeName),
			"token-id":                       []byte(id),
			"token-secret":                   []byte(secret),
			"expiration":                     []byte(a.now().Add(bootstrapTokenTTL).UTC().Format(time.RFC3339)),
			"usage-bootstrap-authentication": []byte("true"),
			"auth-extra-groups":              []byte(render.DefaultBootstrapGroup),
		},
	}
	if err := a.api.do(ctx, http.MethodPost, "/api/v1/namespaces/kube-system/secrets", "", s, nil); err != nil {
		return "", fmt.Errorf("creating the bootstrap token: %w", err)
	}
	a.mu.Lock()
	a.tokens[nodeName] = id
	a.mu.Unlock()
	return id + "." + secret, nil
}

// ApproveNodeClient implements phase.WorkerAuthority. A CSR is approved only when it asks the
// kube-apiserver-client-kubelet signer, was made with this node's bootstrap token, and requests exactly
// system:node:<name> in system:nodes with client usages. Anything else stays pending.
func (a *poolAuthority) ApproveNodeClient(ctx context.Context, nodeName string) (int, error) {
	a.mu.Lock()
	id := a.tokens[nodeName]
	a.mu.Unlock()
	if id == "" {
		return 0, fmt.Errorf("no bootstrap token was created for %s", nodeName)
	}
	var list struct {
		Items []kubeCSR `json:"items"`
	}
	if err := a.api.do(ctx, http.MethodGet, "/apis/certificates.k8s.io/v1/certificatesigningrequests", "", nil, &list); err != nil {
		return 0, fmt.Errorf("listing CSRs: %w", err)
	}
	n := 0
	for i := range list.Items {
		c := &list.Items[i]
		if c.decided() || c.Spec.SignerName != signerKubeletClient || c.Spec.Username != "system:bootstrap:"+id {
			continue
		}
		if err := nodeClientRequestOK(c, nodeName); err != nil {
			continue
		}
		if err := a.api.approve(ctx, c, "kubelet client certificate of node "+nodeName+", planned by the kubesmith node pool "+a.pool); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// nodeClientRequestOK checks that a CSR asks for exactly the node client identity of nodeName.
func nodeClientRequestOK(c *kubeCSR, nodeName string) error {
	block, _ := pem.Decode(c.Spec.Request)
	if block == nil {
		return errors.New("request is not PEM")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return err
	}
	if err := req.CheckSignature(); err != nil {
		return err
	}
	if req.Subject.CommonName != pki.NodeUserPrefix+nodeName || !slices.Equal(req.Subject.Organization, []string{pki.GroupNodes}) {
		return fmt.Errorf("subject %s", req.Subject)
	}
	if len(req.DNSNames)+len(req.IPAddresses)+len(req.EmailAddresses)+len(req.URIs) > 0 {
		return errors.New("client request with SANs")
	}
	for _, u := range c.Spec.Usages {
		if u != "client auth" && u != "digital signature" && u != "key encipherment" {
			return fmt.Errorf("usage %q", u)
		}
	}
	if !slices.Contains(c.Spec.Usages, "client auth") {
		return errors.New("no client auth usage")
	}
	return nil
}

// NodeUID implements phase.WorkerAuthority.
func (a *poolAuthority) NodeUID(ctx context.Context, nodeName string) (string, error) {
	n, err := a.api.getNode(ctx, nodeName)
	if err != nil || n == nil {
		return "", err
	}
	return n.Metadata.UID, nil
}

// AgentToken implements phase.WorkerAuthority through the TokenRequest API, bound to the Node object.
func (a *poolAuthority) AgentToken(ctx context.Context, agent, nodeName string) (string, error) {
	sa := map[string]string{phase.AgentKubeProxy: saKubeProxy, phase.AgentFlanneld: saFlannel}[agent]
	if sa == "" {
		return "", fmt.Errorf("unknown node agent %q", agent)
	}
	uid, err := a.NodeUID(ctx, nodeName)
	if err != nil {
		return "", err
	}
	if uid == "" {
		return "", fmt.Errorf("node %s is not registered", nodeName)
	}
	req := map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"spec": map[string]any{
			"expirationSeconds": int64(agentTokenTTL / time.Second),
			"boundObjectRef":    map[string]string{"apiVersion": "v1", "kind": "Node", "name": nodeName, "uid": uid},
		},
	}
	var out struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	if err := a.api.do(ctx, http.MethodPost, "/api/v1/namespaces/kube-system/serviceaccounts/"+sa+"/token", "", req, &out); err != nil {
		return "", fmt.Errorf("requesting a token for service account kube-system/%s: %w", sa, err)
	}
	if out.Status.Token == "" {
		return "", fmt.Errorf("the API returned no token for kube-system/%s", sa)
	}
	return out.Status.Token, nil
}

// deleteTokens deletes every bootstrap token this authority created.
func (a *poolAuthority) deleteTokens(ctx context.Context) error {
	a.mu.Lock()
	ids := make([]string, 0, len(a.tokens))
	for _, id := range a.tokens {
		ids = append(ids, id)
	}
	a.tokens = map[string]string{}
	a.mu.Unlock()
	var errs []error
	for _, id := range ids {
		err := a.api.do(ctx, http.MethodDelete, "/api/v1/namespaces/kube-system/secrets/bootstrap-token-"+id, "", nil, nil)
		if err != nil && !isStatus(err, http.StatusNotFound) {
			errs = append(errs, fmt.Errorf("deleting bootstrap token %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// randomString returns n characters of [a-z0-9], as bootstrap tokens require.
func randomString(n int) (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a token: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

// Kubernetes signers the pool manager may approve.
const (
	signerKubeletClient  = "kubernetes.io/kube-apiserver-client-kubelet"
	signerKubeletServing = "kubernetes.io/kubelet-serving"
)

// kubeAPI is a minimal Kubernetes REST client authenticated with the pool manager's client certificate. It
// speaks JSON over net/http, so the provider needs no client-go.
type kubeAPI struct {
	base   string
	client *http.Client
}

// apiError is a non-2xx answer of the API.
type apiError struct {
	Code    int
	Method  string
	Path    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Code, e.Message)
}

func isStatus(err error, code int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Code == code
}

func newKubeAPI(ctx context.Context, j Join, creds PoolCredentials) (*kubeAPI, error) {
	if creds.ClientCert == "" || creds.ClientKey == "" {
		return nil, errors.New("no pool credentials")
	}
	cert, err := tls.X509KeyPair([]byte(creds.ClientCert), []byte(creds.ClientKey))
	if err != nil {
		return nil, fmt.Errorf("pool credentials: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(j.CACertificate)) {
		return nil, errors.New("the cluster's CA certificate is not PEM")
	}
	if _, err := endpointAddr(j.Endpoint); err != nil {
		return nil, err
	}
	// A busy emulated master can take longer than 10 s for a TLS handshake (seen under TCG): slow machines scale it.
	connect := phase.Scaled(ctx, 10*time.Second)
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: connect, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: connect}).DialContext,
	}
	return &kubeAPI{base: strings.TrimSuffix(j.Endpoint, "/"), client: &http.Client{Transport: tr}}, nil
}

// kubeAPIRequestTimeout bounds one API request on real hardware (see phase.Scaled).
const kubeAPIRequestTimeout = 30 * time.Second

const (
	// kubeAPIUnreachableWait bounds how long do keeps trying a request that reaches no apiserver (scaled on slow
	// machines, see phase.Scaled).
	kubeAPIUnreachableWait = 2 * time.Minute
	// kubeAPIRetryInterval is the pause between those attempts.
	kubeAPIRetryInterval = 2 * time.Second
)

// do sends body (JSON, or a merge patch when contentType says so) and decodes the answer into out. A request that
// never reached an apiserver (refused or timed-out connection, TLS handshake timeout: a busy or restarting master,
// a moving VIP) is sent again for up to kubeAPIUnreachableWait, whatever its method; a GET also when its answer
// was lost (answerLost). Any answer from the apiserver is returned at once.
func (k *kubeAPI) do(ctx context.Context, method, path, contentType string, body, out any) error {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		payload = b
	}
	wctx, cancel := context.WithTimeout(ctx, phase.Scaled(ctx, kubeAPIUnreachableWait))
	defer cancel()
	tick := time.NewTicker(kubeAPIRetryInterval)
	defer tick.Stop()
	for {
		err := k.doOnce(ctx, method, path, contentType, payload, out)
		again := err != nil && (requestNotSent(err) || method == http.MethodGet && answerLost(err))
		if !again {
			return err
		}
		select {
		case <-wctx.Done():
			return err
		case <-tick.C:
		}
	}
}

// requestNotSent reports whether err means that the request never reached an apiserver, so that sending it again
// cannot apply it twice: the connection was not made, or its TLS handshake did not finish.
func requestNotSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return strings.Contains(err.Error(), "TLS handshake timeout")
}

// answerLost reports whether err means that no answer came back for a request that may have been sent: a
// timeout or a cut connection. A refused TLS client certificate, say, is an answer.
func answerLost(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// doOnce is one attempt of do; payload is the encoded body (nil: none).
func (k *kubeAPI) doOnce(ctx context.Context, method, path, contentType string, payload []byte, out any) error {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	// One request may take kubeAPIRequestTimeout, longer on slow (emulated) masters.
	ctx, cancel := context.WithTimeout(ctx, phase.Scaled(ctx, kubeAPIRequestTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, k.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		if contentType == "" {
			contentType = "application/json"
		}
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var st struct {
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &st) == nil && st.Message != "" {
			msg = st.Message
		}
		return &apiError{Code: resp.StatusCode, Method: method, Path: path, Message: msg}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}

// kubeCSR is the part of a certificates.k8s.io/v1 CertificateSigningRequest kubesmith uses. Unknown fields of
// an object read from the API are kept in raw so that the approval update sends the object back whole.
type kubeCSR struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string            `json:"name"`
		ResourceVersion string            `json:"resourceVersion,omitempty"`
		UID             string            `json:"uid,omitempty"`
		Labels          map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Request    []byte   `json:"request"`
		SignerName string   `json:"signerName"`
		Usages     []string `json:"usages,omitempty"`
		Username   string   `json:"username,omitempty"`
		Groups     []string `json:"groups,omitempty"`
		UID        string   `json:"uid,omitempty"`
	} `json:"spec"`
	Status struct {
		Conditions  []csrCondition `json:"conditions,omitempty"`
		Certificate []byte         `json:"certificate,omitempty"`
	} `json:"status"`
}

type csrCondition struct {
	Type           string `json:"type"`
	Status         string `json:"status"`
	Reason         string `json:"reason,omitempty"`
	Message        string `json:"message,omitempty"`
	LastUpdateTime string `json:"lastUpdateTime,omitempty"`
}

func (c *kubeCSR) decided() bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == "Approved" || cond.Type == "Denied" || cond.Type == "Failed" {
			return true
		}
	}
	return false
}

// approve adds the Approved condition through the approval subresource.
func (k *kubeAPI) approve(ctx context.Context, c *kubeCSR, why string) error {
	c.Status.Conditions = append(c.Status.Conditions, csrCondition{
		Type: "Approved", Status: "True",
		Reason: "KubesmithNodePool", Message: why, LastUpdateTime: time.Now().UTC().Format(time.RFC3339),
	})
	if err := k.do(ctx, http.MethodPut, "/apis/certificates.k8s.io/v1/certificatesigningrequests/"+c.Metadata.Name+"/approval", "", c, nil); err != nil {
		return fmt.Errorf("approving CSR %s: %w", c.Metadata.Name, err)
	}
	return nil
}

// kubeNode is the part of a Node kubesmith uses.
type kubeNode struct {
	Metadata struct {
		Name        string            `json:"name"`
		UID         string            `json:"uid"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Unschedulable bool    `json:"unschedulable"`
		Taints        []Taint `json:"taints"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		NodeInfo struct {
			KubeletVersion          string `json:"kubeletVersion"`
			ContainerRuntimeVersion string `json:"containerRuntimeVersion"`
		} `json:"nodeInfo"`
	} `json:"status"`
}

func (n *kubeNode) ready() bool {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// metadataMatches reports whether the Node carries the pool's labels and taints and nothing it removed.
func (n *kubeNode) metadataMatches(pool string, labels map[string]string, taints []Taint) bool {
	if n.Metadata.Labels[LabelPool] != pool {
		return false
	}
	for k, v := range labels {
		if got, ok := n.Metadata.Labels[k]; !ok || got != v {
			return false
		}
	}
	for _, k := range managedList(n.Metadata.Annotations[annotationLabels]) {
		if _, want := labels[k]; !want {
			if _, has := n.Metadata.Labels[k]; has {
				return false
			}
		}
	}
	for _, t := range n.Spec.Taints {
		if t.Key == phase.JoiningTaintKey {
			return false
		}
	}
	for _, t := range taints {
		if !slices.Contains(n.Spec.Taints, t) {
			return false
		}
	}
	for _, key := range managedList(n.Metadata.Annotations[annotationTaints]) {
		if !slices.ContainsFunc(taints, func(t Taint) bool { return t.Key+":"+t.Effect == key }) &&
			slices.ContainsFunc(n.Spec.Taints, func(t Taint) bool { return t.Key+":"+t.Effect == key }) {
			return false
		}
	}
	return true
}

func managedList(s string) []string {
	var out []string
	if s != "" {
		_ = json.Unmarshal([]byte(s), &out)
	}
	return out
}

func nodePath(name string) string { return "/api/v1/nodes/" + url.PathEscape(name) }

// getNode returns the Node, or nil if it does not exist.
func (k *kubeAPI) getNode(ctx context.Context, name string) (*kubeNode, error) {
	var n kubeNode
	if err := k.do(ctx, http.MethodGet, nodePath(name), "", nil, &n); err != nil {
		if isStatus(err, http.StatusNotFound) {
			return nil, nil
		}
		return nil, err
	}
	return &n, nil
}

func (k *kubeAPI) listNodes(ctx context.Context) ([]kubeNode, error) {
	var list struct {
		Items []kubeNode `json:"items"`
	}
	if err := k.do(ctx, http.MethodGet, "/api/v1/nodes", "", nil, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

func (k *kubeAPI) patchNode(ctx context.Context, name string, patch any) error {
	return k.do(ctx, http.MethodPatch, nodePath(name), "application/merge-patch+json", patch, nil)
}

// applyMetadata puts the pool's labels and taints on a Node, removes the ones the pool managed before and no
// longer wants, and removes the joining taint. Labels and taints of others are left alone.
func (k *kubeAPI) applyMetadata(ctx context.Context, name, pool string, labels map[string]string, taints []Taint) error {
	n, err := k.getNode(ctx, name)
	if err != nil {
		return fmt.Errorf("reading node %s: %w", name, err)
	}
	if n == nil {
		return fmt.Errorf("node %s is not registered in the cluster; its kubelet may have been reset or the Node deleted — apply again to rejoin it", name)
	}
	labelPatch := map[string]any{LabelPool: pool}
	var labelKeys []string
	for k, v := range labels {
		labelPatch[k] = v
		labelKeys = append(labelKeys, k)
	}
	for _, old := range managedList(n.Metadata.Annotations[annotationLabels]) {
		if _, keep := labels[old]; !keep {
			labelPatch[old] = nil
		}
	}
	prevTaints := managedList(n.Metadata.Annotations[annotationTaints])
	newTaints := []Taint{}
	for _, t := range n.Spec.Taints {
		id := t.Key + ":" + t.Effect
		if t.Key == phase.JoiningTaintKey || slices.Contains(prevTaints, id) ||
			slices.ContainsFunc(taints, func(d Taint) bool { return d.Key+":"+d.Effect == id }) {
			continue
		}
		newTaints = append(newTaints, t)
	}
	var taintKeys []string
	for _, t := range taints {
		newTaints = append(newTaints, t)
		taintKeys = append(taintKeys, t.Key+":"+t.Effect)
	}
	slices.Sort(labelKeys)
	slices.Sort(taintKeys)
	lk, _ := json.Marshal(nonNil(labelKeys))
	tk, _ := json.Marshal(nonNil(taintKeys))
	patch := map[string]any{
		"metadata": map[string]any{"labels": labelPatch, "annotations": map[string]string{annotationLabels: string(lk), annotationTaints: string(tk)}},
		"spec":     map[string]any{"taints": newTaints},
	}
	if err := k.patchNode(ctx, name, patch); err != nil {
		return fmt.Errorf("labelling node %s: %w", name, err)
	}
	return nil
}

func (k *kubeAPI) cordon(ctx context.Context, name string) error {
	err := k.patchNode(ctx, name, map[string]any{"spec": map[string]any{"unschedulable": true}})
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("cordoning node %s: %w", name, err)
	}
	return nil
}

func (k *kubeAPI) deleteNode(ctx context.Context, name string) error {
	err := k.do(ctx, http.MethodDelete, nodePath(name), "", nil, nil)
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("deleting node %s: %w", name, err)
	}
	return nil
}

// kubePod is the part of a Pod that draining uses.
type kubePod struct {
	Metadata struct {
		Name              string            `json:"name"`
		Namespace         string            `json:"namespace"`
		Annotations       map[string]string `json:"annotations"`
		DeletionTimestamp *string           `json:"deletionTimestamp"`
		OwnerReferences   []struct {
			Kind       string `json:"kind"`
			Controller *bool  `json:"controller"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Status struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

func (p *kubePod) id() string { return p.Metadata.Namespace + "/" + p.Metadata.Name }

// skipped reports whether drain leaves the pod alone: DaemonSet pods (their controller ignores cordons),
// static (mirror) pods, and finished pods.
func (p *kubePod) skipped() bool {
	if _, mirror := p.Metadata.Annotations["kubernetes.io/config.mirror"]; mirror {
		return true
	}
	for _, o := range p.Metadata.OwnerReferences {
		if o.Kind == "DaemonSet" && o.Controller != nil && *o.Controller {
			return true
		}
	}
	return p.Status.Phase == "Succeeded" || p.Status.Phase == "Failed"
}

// transientAPIError reports whether a request failed without an answer from the apiserver: a timeout, a
// refused or reset connection, a cut-off answer. An apiError (any HTTP status) is not transient here.
func transientAPIError(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF)
}

// drainInterval is how often drain retries evictions and checks for pods that are still there.
const drainInterval = 500 * time.Millisecond

// drain evicts every pod from a node through the Eviction API, so PodDisruptionBudgets are respected, and waits
// until they are gone. On timeout the error names every pod still there and why.
func (k *kubeAPI) drain(ctx context.Context, name string, timeout time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(drainInterval)
	defer tick.Stop()
	blocked := map[string]string{}
	var lastErr error // the last failed pod listing, reported on timeout
	for {
		var list struct {
			Items []kubePod `json:"items"`
		}
		q := url.Values{"fieldSelector": {"spec.nodeName=" + name}}
		if err := k.do(dctx, http.MethodGet, "/api/v1/pods?"+q.Encode(), "", nil, &list); err != nil {
			// An answer from the apiserver (forbidden, say) ends the drain; a request that did not get one (a
			// busy apiserver, a moving VIP) is tried again until the drain times out.
			if dctx.Err() == nil && !transientAPIError(err) {
				return fmt.Errorf("listing the pods of node %s: %w", name, err)
			}
			lastErr = err
		} else {
			var left []string
			for i := range list.Items {
				p := &list.Items[i]
				if p.skipped() {
					continue
				}
				left = append(left, p.id())
				if p.Metadata.DeletionTimestamp != nil {
					blocked[p.id()] = "terminating"
					continue
				}
				ev := map[string]any{
					"apiVersion": "policy/v1", "kind": "Eviction",
					"metadata": map[string]string{"name": p.Metadata.Name, "namespace": p.Metadata.Namespace},
				}
				err := k.do(dctx, http.MethodPost, "/api/v1/namespaces/"+url.PathEscape(p.Metadata.Namespace)+"/pods/"+url.PathEscape(p.Metadata.Name)+"/eviction", "", ev, nil)
				var ae *apiError
				switch {
				case err == nil:
					blocked[p.id()] = "evicted, terminating"
				case isStatus(err, http.StatusNotFound):
					delete(blocked, p.id())
				case isStatus(err, http.StatusTooManyRequests) && errors.As(err, &ae):
					blocked[p.id()] = "eviction blocked by a PodDisruptionBudget: " + ae.Message
				case dctx.Err() != nil:
				case transientAPIError(err):
					blocked[p.id()] = "eviction request failed: " + err.Error()
				default:
					return fmt.Errorf("evicting %s from node %s: %w", p.id(), name, err)
				}
			}
			if len(left) == 0 {
				return nil
			}
			for id := range blocked {
				if !slices.Contains(left, id) {
					delete(blocked, id)
				}
			}
		}
		select {
		case <-dctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("draining node %s: %w", name, ctx.Err())
			}
			var parts []string
			for id, why := range blocked {
				parts = append(parts, id+" ("+why+")")
			}
			sort.Strings(parts)
			if len(parts) == 0 && lastErr != nil {
				return fmt.Errorf("draining node %s timed out after %s: the pods could not be listed: %w", name, timeout, lastErr)
			}
			return fmt.Errorf("draining node %s timed out after %s; pods still on it: %s. Relax the PodDisruptionBudgets, move the pods, or raise drain_timeout, then apply again",
				name, timeout, strings.Join(parts, ", "))
		case <-tick.C:
		}
	}
}
