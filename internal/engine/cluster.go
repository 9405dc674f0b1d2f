package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
)

// engineConfigVersion changes when the engine renders hosts differently, so that upgrades of kubesmith show up
// as an in-place update.
const engineConfigVersion = "1"

// record is the non-secret description of a cluster kept on its masters, from which import rebuilds the spec.
type record struct {
	Name               string   `json:"name"`
	UID                string   `json:"uid"`
	KubernetesVersion  string   `json:"kubernetes_version"`
	NodeNetwork        string   `json:"node_network"`
	APIVIP             string   `json:"api_vip"`
	APIPort            int      `json:"api_port"`
	PodCIDR            string   `json:"pod_cidr"`
	ServiceCIDR        string   `json:"service_cidr"`
	UpstreamDNS        []string `json:"upstream_dns"`
	Masters            []Host   `json:"masters"`
	MastersSchedulable bool     `json:"masters_schedulable"`
	KubeProxyMode      string   `json:"kube_proxy_mode"`
	Manifests          []string `json:"manifests"`
	Addons             []string `json:"addons"`
	Tuning             Tuning   `json:"tuning"`
	// KubeconfigPath is where the last apply wrote the admin kubeconfig on the machine running Terraform; kept
	// so that an import reproduces the configuration.
	KubeconfigPath string `json:"kubeconfig_path,omitempty"`
}

func recordOf(spec ClusterSpec, uid string) record {
	return record{
		Name: spec.Name, UID: uid, KubernetesVersion: spec.KubernetesVersion, NodeNetwork: spec.NodeNetwork,
		APIVIP: spec.APIVIP, APIPort: spec.APIPort, PodCIDR: spec.PodCIDR, ServiceCIDR: spec.ServiceCIDR,
		UpstreamDNS: nonNil(spec.UpstreamDNS), Masters: spec.ControlPlane, MastersSchedulable: spec.MastersSchedulable,
		KubeProxyMode: spec.KubeProxyMode, Manifests: nonNil(spec.Manifests), Addons: nonNil(spec.Addons), Tuning: spec.Tuning,
		KubeconfigPath: spec.KubeconfigPath,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// DesiredClusterHash implements API. It covers everything that decides what is rendered on the hosts, so any
// change, or drift observed by Read, shows as an in-place update.
func (e *Engine) DesiredClusterHash(spec ClusterSpec, uid string) (string, error) {
	b, err := e.DesiredClusterConfig(spec, uid)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

// DesiredClusterConfig is what DesiredClusterHash hashes (JSON): the cluster's record without its SSH access
// details. The provider logs it when a plan finds the hosts' configuration different, to show what changed.
func (e *Engine) DesiredClusterConfig(spec ClusterSpec, uid string) ([]byte, error) {
	spec = withDefaults(spec)
	if v, ok := NormalizeVersion(spec.KubernetesVersion); ok {
		spec.KubernetesVersion = v
	}
	r := recordOf(spec, uid)
	// SSH access details do not change what is installed. Copy first: recordOf shares the caller's slice.
	r.Masters = append([]Host(nil), r.Masters...)
	r.KubeconfigPath = "" // a local file of the machine running Terraform, not host configuration
	for i := range r.Masters {
		r.Masters[i].SSHAddress, r.Masters[i].Port, r.Masters[i].User, r.Masters[i].HostPublicKey = "", 0, "", ""
	}
	b, err := json.Marshal(struct {
		V string `json:"v"`
		R record `json:"r"`
	}{engineConfigVersion, r})
	if err != nil {
		return nil, fmt.Errorf("hashing the cluster spec: %w", err)
	}
	return b, nil
}

// ApplyCluster implements API.
func (e *Engine) ApplyCluster(ctx context.Context, spec ClusterSpec, prior *ClusterState, progress Progress) (ClusterState, error) {
	spec = withDefaults(spec)
	var state ClusterState
	if prior != nil {
		state = *prior
	}
	if errs := ValidateClusterSpec(spec, nil); len(errs) > 0 {
		return state, fmt.Errorf("invalid cluster: %w", joinFieldErrors(errs))
	}
	bundle, err := openBundle(spec.Artifacts)
	if err != nil {
		return state, err
	}
	if v := normVersion(spec); !slices.Contains(bundle.Manifest().Versions("kubernetes"), v) {
		return state, fmt.Errorf("kubernetes %s is not in the artifact bundle; run `make artifacts K8S_VERSION=%s`", v, v)
	}
	if spec.Libvirt != nil {
		ctx = machineContext(ctx, spec.Libvirt)
		if err := e.ensureClusterMachines(ctx, &spec, &state, progress); err != nil {
			return state, err
		}
	}
	p := progressAdapter(progress)
	ses, err := e.connect(ctx, spec.SSH, spec.ControlPlane, phase.RoleMaster)
	if err != nil {
		return state, err
	}
	defer ses.close()
	err = withHostLocks(ctx, ses.targets, func() error {
		var err error
		state, err = e.applyLocked(ctx, spec, state, bundle, ses.targets, p)
		return err
	})
	return state, err
}

func (e *Engine) applyLocked(ctx context.Context, spec ClusterSpec, state ClusterState, bundle *artifacts.Bundle, masters []*phase.Target, p phase.Progress) (ClusterState, error) {
	// Facts, then adoption: a host carrying another cluster's UID is refused; a crashed first run is adopted.
	if err := e.forEach(ctx, masters, func(ctx context.Context, t *phase.Target) error {
		return phase.Step(ctx, p, "gather-facts", t, func(ctx context.Context) error {
			f, err := phase.GatherFacts(ctx, t)
			t.Facts = f
			return err
		})
	}); err != nil {
		return state, err
	}
	e.loadKernelModules(ctx, masters)
	if err := e.adopt(ctx, &state, masters); err != nil {
		return state, err
	}
	if err := e.ensureSecrets(spec, &state); err != nil {
		return state, err
	}
	c, err := e.phaseCluster(spec, state, bundle, masters, p)
	if err != nil {
		return state, err
	}
	own := map[int]string{}
	if state.Installed || anyMarker(masters, state.UID) {
		for _, port := range []int{2379, 2380, 2381, 6443, 10248, 10249, 10250, 10256, 10257, 10259} {
			own[port] = "kubesmith"
		}
	}
	var problems []error
	for _, t := range masters {
		if t.Facts.ClusterUID == "" || t.Facts.ClusterUID == state.UID {
			problems = append(problems, phase.Preflight(t, own, netip.MustParseAddr(t.Address))...)
		}
	}
	if len(problems) > 0 {
		return state, fmt.Errorf("preflight failed:\n%w", errors.Join(problems...))
	}
	// The marker goes first: from here on, a crash leaves hosts that a new run adopts.
	if err := e.forEach(ctx, masters, func(ctx context.Context, t *phase.Target) error {
		_, err := phase.SyncFiles(ctx, t.Runner, []phase.File{{Path: phase.MarkerFile, Data: []byte(state.UID + "\n"), Mode: 0o644}})
		return err
	}); err != nil {
		return state, err
	}
	if err := phase.Install(ctx, c); err != nil {
		return state, err
	}
	state.Installed = true
	state.ConfigHash = c.AppliedHash
	if err := e.observe(ctx, c, &state); err != nil {
		return state, err
	}
	return state, nil
}

func anyMarker(ts []*phase.Target, uid string) bool {
	for _, t := range ts {
		if uid != "" && t.Facts.ClusterUID == uid {
			return true
		}
	}
	return false
}

// adopt settles the cluster UID: the one in state, or the one the hosts carry after a crashed run. A host
// that belongs to another cluster is refused. When adopting, the CA found on the first master is reused.
func (e *Engine) adopt(ctx context.Context, state *ClusterState, masters []*phase.Target) error {
	var problems []error
	found := map[string][]string{}
	for _, t := range masters {
		if u := t.Facts.ClusterUID; u != "" {
			found[u] = append(found[u], t.Name)
		}
	}
	if state.UID != "" {
		for u, hosts := range found {
			if u != state.UID {
				problems = append(problems, fmt.Errorf("%s belong(s) to another cluster (UID %s, this cluster is %s); reset those hosts or remove them from the configuration",
					strings.Join(hosts, ", "), u, state.UID))
			}
		}
		return errors.Join(problems...)
	}
	switch len(found) {
	case 0:
		uid, err := newUID()
		if err != nil {
			return err
		}
		state.UID = uid
		return nil
	case 1:
		for u := range found {
			state.UID = u
		}
	default:
		var parts []string
		for u, hosts := range found {
			parts = append(parts, fmt.Sprintf("%s on %s", u, strings.Join(hosts, ", ")))
		}
		slices.Sort(parts)
		return fmt.Errorf("the hosts belong to different clusters (%s); reset them before creating a cluster", strings.Join(parts, "; "))
	}
	// Adoption: reuse the key material of the earlier run from the first master that has it.
	for _, t := range masters {
		if t.Facts.ClusterUID != state.UID {
			continue
		}
		got, err := readPKI(ctx, t.Runner)
		if err != nil {
			continue
		}
		state.PKI = got
		return nil
	}
	return nil
}

// readPKI reads the key material of a cluster from one of its masters.
func readPKI(ctx context.Context, r node.Runner) (PKI, error) {
	read := func(p string) (string, error) {
		b, err := r.ReadFile(ctx, p)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", p, err)
		}
		return string(b), nil
	}
	var out PKI
	var errs []error
	for _, f := range []struct {
		dst  *string
		path string
	}{
		{&out.CACert, phase.PKIDir + "/ca.crt"},
		{&out.CAKey, phase.PKIDir + "/ca.key"},
		{&out.EtcdCACert, phase.PKIDir + "/etcd/ca.crt"},
		{&out.EtcdCAKey, phase.PKIDir + "/etcd/ca.key"},
		{&out.FrontProxyCACert, phase.PKIDir + "/front-proxy-ca.crt"},
		{&out.FrontProxyCAKey, phase.PKIDir + "/front-proxy-ca.key"},
		{&out.ServiceAccountKey, phase.PKIDir + "/sa.key"},
		{&out.ServiceAccountPub, phase.PKIDir + "/sa.pub"},
		{&out.EncryptionKey, phase.EncryptionKeyFile},
		{&out.KeepalivedPassword, phase.KeepalivedPasswordFile},
	} {
		v, err := read(f.path)
		errs = append(errs, err)
		// PEM files are kept byte for byte; the raw secrets under StateDir are single trimmed lines.
		if strings.HasPrefix(f.path, phase.PKIDir+"/") {
			*f.dst = v
		} else {
			*f.dst = strings.TrimSpace(v)
		}
	}
	return out, errors.Join(errs...)
}

// ensureSecrets generates whatever key material the state lacks. Existing material is never replaced.
func (e *Engine) ensureSecrets(spec ClusterSpec, state *ClusterState) error {
	now := e.opts.Now()
	p := &state.PKI
	if p.CACert == "" || p.CAKey == "" {
		cas, err := pki.NewClusterCAs(now)
		if err != nil {
			return err
		}
		p.CACert, p.CAKey = string(cas.Cluster.CertPEM), string(cas.Cluster.KeyPEM)
		p.EtcdCACert, p.EtcdCAKey = string(cas.Etcd.CertPEM), string(cas.Etcd.KeyPEM)
		p.FrontProxyCACert, p.FrontProxyCAKey = string(cas.FrontProxy.CertPEM), string(cas.FrontProxy.KeyPEM)
		p.ServiceAccountKey, p.ServiceAccountPub = string(cas.ServiceAccount.PrivatePEM), string(cas.ServiceAccount.PublicPEM)
	}
	if p.EncryptionKey == "" {
		p.EncryptionKey = pki.NewEncryptionKey()
	}
	if p.KeepalivedPassword == "" {
		b := make([]byte, 6)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("generating the VRRP password: %w", err)
		}
		p.KeepalivedPassword = base64.RawURLEncoding.EncodeToString(b) // keepalived uses at most 8 characters
	}
	cas := clusterCAs(*p)
	if err := cas.Validate(now); err != nil {
		return fmt.Errorf("the cluster's key material in state is not usable: %w", err)
	}
	if state.Pool.ClientCert == "" || !poolCertValid(cas.Cluster, state.Pool, spec.Name, now) {
		kp, err := pki.PoolManagerCert(cas.Cluster, spec.Name, now)
		if err != nil {
			return err
		}
		state.Pool = PoolCredentials{ClientCert: string(kp.CertPEM), ClientKey: string(kp.KeyPEM)}
	}
	return nil
}

func poolCertValid(ca pki.KeyPair, p PoolCredentials, cluster string, now time.Time) bool {
	kp := pki.KeyPair{CertPEM: []byte(p.ClientCert), KeyPEM: []byte(p.ClientKey)}
	cert, _, err := pki.ParseKeyPair(kp)
	if err != nil || now.Add(phase.RenewBefore).After(cert.NotAfter) {
		return false
	}
	return pki.Covers(ca, kp.CertPEM, pki.PoolManagerRequest(cluster), now) == nil
}

func clusterCAs(p PKI) pki.ClusterCAs {
	return pki.ClusterCAs{
		Cluster:        pki.KeyPair{CertPEM: []byte(p.CACert), KeyPEM: []byte(p.CAKey)},
		Etcd:           pki.KeyPair{CertPEM: []byte(p.EtcdCACert), KeyPEM: []byte(p.EtcdCAKey)},
		FrontProxy:     pki.KeyPair{CertPEM: []byte(p.FrontProxyCACert), KeyPEM: []byte(p.FrontProxyCAKey)},
		ServiceAccount: pki.SAKey{PrivatePEM: []byte(p.ServiceAccountKey), PublicPEM: []byte(p.ServiceAccountPub)},
	}
}

// phaseCluster builds the phases' view of the cluster.
func (e *Engine) phaseCluster(spec ClusterSpec, state ClusterState, bundle *artifacts.Bundle, masters []*phase.Target, p phase.Progress) (*phase.Cluster, error) {
	hash, err := e.DesiredClusterHash(spec, state.UID)
	if err != nil {
		return nil, err
	}
	rec, err := json.MarshalIndent(recordOf(spec, state.UID), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the cluster record: %w", err)
	}
	arch := "amd64"
	if len(masters) > 0 && masters[0].Facts.Arch != "" {
		arch = masters[0].Facts.Arch
	}
	c := &phase.Cluster{
		Name: spec.Name, UID: state.UID, Version: normVersion(spec),
		NodeNetwork: netip.MustParsePrefix(spec.NodeNetwork).Masked(), VIP: netip.MustParseAddr(spec.APIVIP),
		APIPort: spec.APIPort, PodCIDR: netip.MustParsePrefix(spec.PodCIDR).Masked(),
		ServiceCIDR: netip.MustParsePrefix(spec.ServiceCIDR).Masked(), UpstreamDNS: spec.UpstreamDNS,
		ProxyMode: spec.KubeProxyMode, Schedulable: spec.MastersSchedulable, Manifests: spec.Manifests, Addons: spec.Addons,
		EtcdHeartbeatMS: spec.Tuning.EtcdHeartbeatMS, EtcdElectionMS: spec.Tuning.EtcdElectionMS,
		LeaseDuration: spec.Tuning.LeaderElectionLease, RenewDeadline: spec.Tuning.RenewDeadline, RetryPeriod: spec.Tuning.RetryPeriod,
		APICheckTimeout: spec.Tuning.APICheckTimeout,
		CAs:             clusterCAs(state.PKI), EncryptionKey: state.PKI.EncryptionKey, KeepalivedPassword: state.PKI.KeepalivedPassword,
		PoolManager: pki.KeyPair{CertPEM: []byte(state.Pool.ClientCert), KeyPEM: []byte(state.Pool.ClientKey)},
		Masters:     masters, AppliedHash: hash, Record: rec,
		Bundle: bundle, Select: phase.Selection{Manifest: bundle.Manifest(), KubernetesVersion: normVersion(spec), Arch: arch},
		Progress: p, Now: e.opts.Now, Parallel: e.opts.Parallelism, StartGrace: e.opts.StartGrace,
	}
	return c, nil
}

// observe fills the read-only parts of state from the hosts and the API.
func (e *Engine) observe(ctx context.Context, c *phase.Cluster, state *ClusterState) error {
	obs, errs := e.observeHosts(ctx, c.Masters)
	return e.observeWith(ctx, c, state, obs, errs)
}

// observeHosts probes every target in parallel; obs[i] and errs[i] belong to targets[i].
func (e *Engine) observeHosts(ctx context.Context, targets []*phase.Target) ([]phase.Observation, []error) {
	obs := make([]phase.Observation, len(targets))
	errs := make([]error, len(targets))
	_ = e.forEach(ctx, targets, func(ctx context.Context, t *phase.Target) error {
		i := slices.Index(targets, t)
		obs[i], errs[i] = phase.Observe(ctx, t)
		return nil
	})
	return obs, errs
}

// observeWith is observe with the host probes already done (one probe per host and Read).
func (e *Engine) observeWith(ctx context.Context, c *phase.Cluster, state *ClusterState, obs []phase.Observation, errs []error) error {
	var addrs []string
	for _, m := range c.Masters {
		addrs = append(addrs, m.Address)
	}
	state.Join = joinOf(c, addrs)
	state.Join.ClusterUID, state.Join.CACertificate = c.UID, state.PKI.CACert
	if exp, err := pki.Expiry([]byte(state.Pool.ClientCert)); err == nil {
		state.CertificatesExpire = exp
	}
	ready := map[string]bool{}
	if res, err := c.Kubectl(ctx, `get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{range .status.conditions[?(@.type=="Ready")]}{.status}{end}{"\n"}{end}'`, nil); err == nil {
		for _, line := range strings.Split(res.Stdout, "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				ready[f[0]] = f[1] == "True"
			}
		}
	}
	var members []string
	if res, err := c.Masters[0].Runner.Run(ctx, phase.EtcdctlCommand(phase.EtcdEndpoints(c.Masters), "member list -w simple")); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
			f := strings.Split(line, ", ")
			if len(f) >= 3 {
				members = append(members, strings.TrimSpace(f[2]))
			}
		}
		slices.Sort(members)
	}
	state.EtcdMembers = members
	state.Nodes = nil
	state.Drift = nil
	for i, t := range c.Masters {
		ns := NodeStatus{
			Name: t.Name, Address: t.Address, Role: string(phase.RoleMaster), Reachable: errs[i] == nil,
			Ready: ready[t.Name], KubeletVersion: obs[i].KubeletVersion, ContainerRuntime: "containerd",
			EtcdMember: slices.Contains(members, t.Name),
		}
		switch {
		case errs[i] != nil:
			ns.ConfigHash = "unreachable"
		case len(obs[i].Drift) > 0:
			ns.ConfigHash = "drift"
			state.Drift = append(state.Drift, fmt.Sprintf("%s: %s", t.Name, strings.Join(obs[i].Drift, "; ")))
		default:
			ns.ConfigHash = obs[i].AppliedHash
		}
		state.Nodes = append(state.Nodes, ns)
	}
	state.ConfigHash = c.AppliedHash
	for _, n := range state.Nodes {
		if n.Reachable && n.ConfigHash != c.AppliedHash {
			if state.ConfigHash == c.AppliedHash {
				state.ConfigHash = "drift:" + n.Name
			}
			if n.ConfigHash != "drift" {
				var rec bytes.Buffer
				_ = json.Compact(&rec, c.Record)
				state.Drift = append(state.Drift, fmt.Sprintf("%s: installed from configuration %s, the state describes %s: %s",
					n.Name, n.ConfigHash, c.AppliedHash, rec.String()))
			}
		}
	}
	return nil
}

// joinOf is the join object of c without the UID and the CA certificate.
func joinOf(c *phase.Cluster, masters []string) Join {
	return Join{
		ClusterName: c.Name, Endpoint: c.Endpoint(), KubernetesVersion: c.Version, NodeNetwork: c.NodeNetwork.String(),
		PodCIDR: c.PodCIDR.String(), ServiceCIDR: c.ServiceCIDR.String(), ClusterDNS: c.DNSServiceIP().String(),
		Masters: masters,
	}
}

// PlannedJoin is the join object ApplyCluster will report for spec, except the cluster UID and CA certificate,
// which it generates. ok is false when the spec cannot be parsed far enough. The provider plans it, so that node
// pools and load balancers validate their addresses against the cluster on the first plan.
func PlannedJoin(spec ClusterSpec) (j Join, ok bool) {
	spec = withDefaults(spec)
	nodeNet, err1 := netip.ParsePrefix(spec.NodeNetwork)
	podNet, err2 := netip.ParsePrefix(spec.PodCIDR)
	svcNet, err3 := netip.ParsePrefix(spec.ServiceCIDR)
	vip, err4 := netip.ParseAddr(spec.APIVIP)
	if err := errors.Join(err1, err2, err3, err4); err != nil || len(spec.ControlPlane) == 0 {
		return Join{}, false
	}
	c := &phase.Cluster{
		Name: spec.Name, Version: normVersion(spec), NodeNetwork: nodeNet.Masked(), VIP: vip, APIPort: spec.APIPort,
		PodCIDR: podNet.Masked(), ServiceCIDR: svcNet.Masked(),
	}
	masters := make([]string, 0, len(spec.ControlPlane))
	for _, h := range spec.ControlPlane {
		masters = append(masters, h.Address)
	}
	return joinOf(c, masters), true
}

func joinFieldErrors(errs []FieldError) error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// normVersion is the spec's Kubernetes version as "v1.37.2". The spec keeps the user's spelling, so that an
// import reproduces the configuration exactly.
func normVersion(spec ClusterSpec) string {
	if v, ok := NormalizeVersion(spec.KubernetesVersion); ok {
		return v
	}
	return spec.KubernetesVersion
}

// loadKernelModules loads br_netfilter and overlay on machines that have not loaded them yet, as the install
// would (a modules-load.d file keeps them across reboots), and lets preflight judge the result. Containers share
// the machine's kernel and are left alone (DESIGN §3.10).
func (e *Engine) loadKernelModules(ctx context.Context, targets []*phase.Target) {
	_ = e.forEach(ctx, targets, func(ctx context.Context, t *phase.Target) error {
		if !t.Facts.BridgeNF && !t.Facts.IsContainer() {
			if _, err := t.Runner.Run(ctx, "modprobe br_netfilter && modprobe overlay"); err == nil {
				t.Facts.BridgeNF = true
			}
		}
		return nil
	})
}
