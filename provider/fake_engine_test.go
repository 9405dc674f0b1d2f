package provider

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// fakeHost is what the fake engine remembers about one machine.
type fakeHost struct {
	name       string
	uid        string // cluster marker
	configHash string // hash of the configuration on disk
	running    bool   // kubelet and the control plane services are up
	version    string
}

// fakeEngine implements engine.API with hosts kept in memory. Validation is the real engine function; only the
// side effects on hosts are simulated.
type fakeEngine struct {
	versions []string

	mu          sync.Mutex
	hosts       map[string]*fakeHost // by address
	clusters    map[string]fakeCluster
	failCreates int // creates that fail after minting the UID and PKI
	casMinted   []string
	applies     int
	resumes     int // ApplyCluster calls with a prior state whose install had not finished
	deletes     int
	lastValid   time.Duration
	pools       map[string]*fakePool
	poolApplies int
	poolEvents  []string
	lbs         map[string]*fakeLB
	lbEvents    []string
}

type fakeCluster struct {
	spec  engine.ClusterSpec
	state engine.ClusterState
}

var _ engine.API = (*fakeEngine)(nil)

func newFakeEngine() *fakeEngine {
	return &fakeEngine{
		versions: []string{"v1.37.2", "v1.38.0"},
		hosts:    map[string]*fakeHost{},
		clusters: map[string]fakeCluster{},
		pools:    map[string]*fakePool{},
		lbs:      map[string]*fakeLB{},
	}
}

func (f *fakeEngine) ValidateCluster(_ context.Context, spec engine.ClusterSpec) []engine.FieldError {
	return engine.ValidateClusterSpec(spec, f.versions)
}

// DesiredClusterHash hashes what would be rendered on the hosts: the spec without connection details and
// without the local kubeconfig file, plus the UID.
func (f *fakeEngine) DesiredClusterHash(spec engine.ClusterSpec, uid string) (string, error) {
	b, err := f.DesiredClusterConfig(spec, uid)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func (f *fakeEngine) DesiredClusterConfig(spec engine.ClusterSpec, uid string) ([]byte, error) {
	spec = fakeMachines(spec)
	spec.SSH, spec.Artifacts, spec.KubeconfigPath = engine.SSH{}, engine.Artifacts{}, ""
	spec.ControlPlane = append([]engine.Host(nil), spec.ControlPlane...) // do not edit the caller's hosts
	for i := range spec.ControlPlane {
		h := &spec.ControlPlane[i]
		h.SSHAddress, h.Port, h.User, h.HostPublicKey = "", 0, "", ""
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("hash spec: %w", err)
	}
	return append(b, uid...), nil
}

func (f *fakeEngine) ApplyCluster(ctx context.Context, spec engine.ClusterSpec, prior *engine.ClusterState, progress engine.Progress) (engine.ClusterState, error) {
	libvirt := spec.Libvirt != nil
	spec = fakeMachines(spec)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies++
	emit := func(phase, host string, err error) {
		if progress != nil {
			progress(engine.Event{Phase: phase, Host: host, Duration: 3 * time.Millisecond, Done: true, Err: err})
		}
	}
	for _, h := range spec.ControlPlane {
		emit("connect", h.Name, nil)
	}

	var st engine.ClusterState
	if prior != nil {
		st = *prior
		if !prior.Installed {
			f.resumes++
		}
	} else {
		uid, err := randomHex(16)
		if err != nil {
			return st, err
		}
		st.UID = uid
		if st.PKI, err = newFakePKI(spec.Name); err != nil {
			return engine.ClusterState{}, err
		}
		f.casMinted = append(f.casMinted, st.PKI.CACert)
	}
	for _, h := range spec.ControlPlane {
		if fh, ok := f.hosts[h.Address]; ok && fh.uid != st.UID {
			return engine.ClusterState{}, fmt.Errorf("host %s belongs to cluster %s", h.Name, fh.uid)
		}
	}
	emit("pki", "", nil)
	if prior == nil && f.failCreates > 0 {
		f.failCreates--
		first := spec.ControlPlane[0]
		f.hosts[first.Address] = &fakeHost{name: first.Name, uid: st.UID, configHash: "partial"}
		err := fmt.Errorf("etcd on %s: simulated failure", spec.ControlPlane[len(spec.ControlPlane)-1].Name)
		emit("etcd", spec.ControlPlane[len(spec.ControlPlane)-1].Name, err)
		return st, err
	}

	hash, err := f.DesiredClusterHash(spec, st.UID)
	if err != nil {
		return st, err
	}
	v, _ := engine.NormalizeVersion(spec.KubernetesVersion)
	for _, h := range spec.ControlPlane {
		f.hosts[h.Address] = &fakeHost{name: h.Name, uid: st.UID, configHash: hash, running: true, version: v}
		emit("kubelet", h.Name, nil)
	}
	st.ConfigHash = hash
	st.Installed = true
	st.Pool = engine.PoolCredentials{ClientCert: "pool-cert-" + st.UID, ClientKey: "pool-key-" + st.UID}
	// The real engine's join (it is derived from the spec), which the provider also plans.
	st.Join, _ = engine.PlannedJoin(spec)
	st.Join.ClusterUID, st.Join.CACertificate = st.UID, st.PKI.CACert
	st.EtcdMembers = nil
	for _, h := range spec.ControlPlane {
		st.EtcdMembers = append(st.EtcdMembers, h.Name)
	}
	st.CertificatesExpire = time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	st.Nodes = f.observeLocked(spec, st.UID)
	st.Machines = nil
	if libvirt {
		for _, h := range spec.ControlPlane {
			st.Machines = append(st.Machines, engine.Machine{Name: h.Name, ID: "fake-" + h.Name, Address: h.Address, HostPublicKey: h.HostPublicKey})
		}
	}
	f.clusters[st.UID] = fakeCluster{spec: spec, state: st}
	return st, nil
}

// observeLocked reports the nodes of spec as Read sees them.
func (f *fakeEngine) observeLocked(spec engine.ClusterSpec, uid string) []engine.NodeStatus {
	var out []engine.NodeStatus
	for _, h := range spec.ControlPlane {
		fh, ok := f.hosts[h.Address]
		if !ok || fh.uid != uid {
			continue
		}
		hash := fh.configHash
		if !fh.running {
			hash = "stopped"
		}
		out = append(out, engine.NodeStatus{
			Name: h.Name, Address: h.Address, Role: "control-plane", Reachable: true, Ready: fh.running,
			KubeletVersion: fh.version, ContainerRuntime: "containerd://2.1.0", ConfigHash: hash, EtcdMember: true,
		})
	}
	return out
}

func (f *fakeEngine) ReadCluster(_ context.Context, spec engine.ClusterSpec, state engine.ClusterState) (engine.ReadResult, error) {
	spec = fakeMachines(spec)
	f.mu.Lock()
	defer f.mu.Unlock()
	nodes := f.observeLocked(spec, state.UID)
	if len(nodes) == 0 {
		return engine.ReadResult{Gone: true}, nil
	}
	st := state
	st.Nodes = nodes
	st.ConfigHash = nodes[0].ConfigHash
	for _, n := range nodes[1:] {
		if n.ConfigHash != st.ConfigHash {
			st.ConfigHash = "mixed"
		}
	}
	if c, ok := f.clusters[state.UID]; ok {
		st.EtcdMembers, st.CertificatesExpire = c.state.EtcdMembers, c.state.CertificatesExpire
	}
	return engine.ReadResult{State: st}, nil
}

func (f *fakeEngine) DeleteCluster(_ context.Context, _ engine.ClusterSpec, state engine.ClusterState, progress engine.Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	for addr, h := range f.hosts {
		if h.uid == state.UID {
			delete(f.hosts, addr)
			if progress != nil {
				progress(engine.Event{Phase: "reset", Host: h.name, Done: true})
			}
		}
	}
	delete(f.clusters, state.UID)
	return nil
}

func (f *fakeEngine) ImportCluster(_ context.Context, _ engine.SSH, _ engine.Artifacts, address, hostPublicKey string) (engine.ClusterSpec, engine.ClusterState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hosts[address]
	if !ok {
		return engine.ClusterSpec{}, engine.ClusterState{}, fmt.Errorf("no kubesmith cluster on %s", address)
	}
	c, ok := f.clusters[h.uid]
	if !ok {
		return engine.ClusterSpec{}, engine.ClusterState{}, fmt.Errorf("cluster %s on %s is not fully installed", h.uid, address)
	}
	for _, m := range c.spec.ControlPlane {
		if m.Address == address && hostPublicKey != "" && m.HostPublicKey != hostPublicKey {
			return engine.ClusterSpec{}, engine.ClusterState{}, fmt.Errorf("host key mismatch: %q is not %q", hostPublicKey, m.HostPublicKey)
		}
	}
	spec := c.spec
	spec.SSH, spec.Artifacts, spec.KubeconfigPath = engine.SSH{}, engine.Artifacts{}, ""
	st := c.state
	st.Nodes = f.observeLocked(c.spec, h.uid)
	return spec, st, nil
}

// AdminKubeconfig signs a real client certificate with the CA from state, like the engine does.
func (f *fakeEngine) AdminKubeconfig(spec engine.ClusterSpec, state engine.ClusterState, validity time.Duration) ([]byte, error) {
	f.mu.Lock()
	f.lastValid = validity
	f.mu.Unlock()
	caBlock, _ := pem.Decode([]byte(state.PKI.CACert))
	keyBlock, _ := pem.Decode([]byte(state.PKI.CAKey))
	if caBlock == nil || keyBlock == nil {
		return nil, errors.New("state has no cluster CA")
	}
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return nil, err
	}
	caKey, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "kubesmith-admin", Organization: []string{"system:masters"}},
		NotBefore:    now.Add(-time.Minute), NotAfter: now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	b64 := func(typ string, der []byte) string {
		return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	server := "https://" + net.JoinHostPort(spec.APIVIP, strconv.Itoa(spec.APIPort))
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[1]s-admin
  user:
    client-certificate-data: %[4]s
    client-key-data: %[5]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[1]s-admin
current-context: %[1]s
`, spec.Name, server, base64.StdEncoding.EncodeToString([]byte(state.PKI.CACert)),
		b64("CERTIFICATE", der), b64("PRIVATE KEY", keyDER))), nil
}

// Test controls.

func (f *fakeEngine) stopNode(address string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts[address].running = false
}

func (f *fakeEngine) tamper(address string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts[address].configHash = "edited-by-hand"
}

func (f *fakeEngine) wipe(address string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.hosts, address)
}

func (f *fakeEngine) failNextCreates(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failCreates = n
}

func (f *fakeEngine) counts() (applies, resumes, deletes int, cas []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applies, f.resumes, f.deletes, append([]string(nil), f.casMinted...)
}

func (f *fakeEngine) hostCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.hosts)
}

func (f *fakeEngine) validity() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastValid
}

// newFakePKI makes a real self-signed ed25519 CA (so kubeconfigs can be signed) and placeholder secrets.
func newFakePKI(name string) (engine.PKI, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return engine.PKI{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + "-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return engine.PKI{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return engine.PKI{}, err
	}
	secret := func(what string) string {
		s, _ := randomHex(8)
		return what + "-" + s
	}
	return engine.PKI{
		CACert:     string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		CAKey:      string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		EtcdCACert: secret("etcd-ca"), EtcdCAKey: secret("etcd-key"),
		FrontProxyCACert: secret("fp-ca"), FrontProxyCAKey: secret("fp-key"),
		ServiceAccountKey: secret("sa-key"), ServiceAccountPub: secret("sa-pub"),
		EncryptionKey: secret("enc"), KeepalivedPassword: secret("vrrp"),
	}, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// caFingerprint is the SHA-256 of the CA certificate's DER.
func caFingerprint(pemCert string) string {
	block, _ := pem.Decode([]byte(pemCert))
	if block == nil {
		return "not-pem:" + strings.TrimSpace(pemCert)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// Node pools.

// fakePool is what the fake engine remembers about one node pool.
type fakePool struct {
	spec   engine.NodePoolSpec
	labels map[string]map[string]string // node -> labels on its Node object
}

func poolKey(uid, name string) string { return uid + "/" + name }

func (f *fakeEngine) ValidateNodePool(_ context.Context, spec engine.NodePoolSpec) []engine.FieldError {
	return engine.ValidateNodePoolSpec(spec, f.versions)
}

// DesiredNodePoolHash is the real engine's, which reads nothing from hosts.
func (f *fakeEngine) DesiredNodePoolHash(spec engine.NodePoolSpec) (string, error) {
	return engine.New(engine.Options{}).DesiredNodePoolHash(spec)
}

func (f *fakeEngine) ApplyNodePool(_ context.Context, spec engine.NodePoolSpec, prior *engine.NodePoolState, progress engine.Progress) (engine.NodePoolState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.poolApplies++
	hash, err := f.DesiredNodePoolHash(spec)
	if err != nil {
		return engine.NodePoolState{}, err
	}
	key := poolKey(spec.Cluster.ClusterUID, spec.Name)
	p, ok := f.pools[key]
	if !ok {
		p = &fakePool{labels: map[string]map[string]string{}}
		f.pools[key] = p
	}
	if prior != nil {
		for _, h := range prior.Hosts {
			if !slices.ContainsFunc(spec.Hosts, func(s engine.Host) bool { return s.Name == h.Name }) {
				delete(f.hosts, h.Address)
				delete(p.labels, h.Name)
				f.poolEvents = append(f.poolEvents, "remove "+h.Name)
			}
		}
	}
	for _, h := range spec.Hosts {
		if fh, ok := f.hosts[h.Address]; ok && fh.uid != spec.Cluster.ClusterUID {
			return engine.NodePoolState{}, fmt.Errorf("host %s belongs to cluster %s", h.Name, fh.uid)
		}
		if fh, ok := f.hosts[h.Address]; !ok || fh.configHash != "worker" {
			f.hosts[h.Address] = &fakeHost{name: h.Name, uid: spec.Cluster.ClusterUID, configHash: "worker", running: true, version: spec.Cluster.KubernetesVersion}
			f.poolEvents = append(f.poolEvents, "join "+h.Name)
			if progress != nil {
				progress(engine.Event{Phase: "join-worker", Host: h.Name, Done: true})
			}
		}
		p.labels[h.Name] = maps.Clone(spec.Labels)
	}
	p.spec = spec
	return f.observePoolLocked(spec, hash), nil
}

// observePoolLocked reports a pool as Read sees it.
func (f *fakeEngine) observePoolLocked(spec engine.NodePoolSpec, desired string) engine.NodePoolState {
	st := engine.NodePoolState{ClusterUID: spec.Cluster.ClusterUID, Hosts: spec.Hosts, ConfigHash: desired}
	p := f.pools[poolKey(spec.Cluster.ClusterUID, spec.Name)]
	for _, h := range spec.Hosts {
		st.Addresses = append(st.Addresses, h.Address)
		fh, ok := f.hosts[h.Address]
		n := engine.NodeStatus{Name: h.Name, Address: h.Address, Role: "worker", Reachable: true}
		switch {
		case !ok || fh.uid != spec.Cluster.ClusterUID:
			n.ConfigHash = "not-installed"
		default:
			n.Ready, n.KubeletVersion, n.ConfigHash = fh.running, fh.version, fh.configHash
		}
		labelsOK := p != nil && (maps.Equal(p.labels[h.Name], spec.Labels) || len(p.labels[h.Name])+len(spec.Labels) == 0)
		if n.ConfigHash != "worker" || !labelsOK {
			if !strings.HasPrefix(st.ConfigHash, "drift:") {
				st.ConfigHash = "drift:" + h.Name
			}
		}
		st.Nodes = append(st.Nodes, n)
	}
	return st
}

func (f *fakeEngine) ReadNodePool(_ context.Context, spec engine.NodePoolSpec, state engine.NodePoolState) (engine.NodePoolReadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	found := false
	for _, h := range spec.Hosts {
		if fh, ok := f.hosts[h.Address]; ok && fh.uid == spec.Cluster.ClusterUID {
			found = true
		}
	}
	if !found {
		return engine.NodePoolReadResult{Gone: true}, nil
	}
	hash, err := f.DesiredNodePoolHash(spec)
	if err != nil {
		return engine.NodePoolReadResult{}, err
	}
	return engine.NodePoolReadResult{State: f.observePoolLocked(spec, hash)}, nil
}

func (f *fakeEngine) DeleteNodePool(_ context.Context, spec engine.NodePoolSpec, state engine.NodePoolState, _ engine.Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range state.Hosts {
		delete(f.hosts, h.Address)
		f.poolEvents = append(f.poolEvents, "remove "+h.Name)
	}
	delete(f.pools, poolKey(spec.Cluster.ClusterUID, spec.Name))
	return nil
}

func (f *fakeEngine) ImportNodePool(_ context.Context, _ engine.SSH, _ engine.Artifacts, address, _ string) (engine.NodePoolSpec, engine.NodePoolState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pools {
		for _, h := range p.spec.Hosts {
			if h.Address == address {
				spec := p.spec
				spec.SSH, spec.Artifacts, spec.Credentials = engine.SSH{}, engine.Artifacts{}, engine.PoolCredentials{}
				hash, err := f.DesiredNodePoolHash(p.spec)
				if err != nil {
					return spec, engine.NodePoolState{}, err
				}
				return spec, f.observePoolLocked(p.spec, hash), nil
			}
		}
	}
	return engine.NodePoolSpec{}, engine.NodePoolState{}, fmt.Errorf("no kubesmith worker at %s", address)
}

// relabelOutOfBand changes a Node's labels behind kubesmith's back.
func (f *fakeEngine) relabelOutOfBand(uid, pool, nodeName string, labels map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pools[poolKey(uid, pool)].labels[nodeName] = labels
}

func (f *fakeEngine) poolLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.poolEvents)
}

// fakeMachines stands in for the engine's libvirt machines: the masters a libvirt block describes, as hosts
// with a known host key.
func fakeMachines(spec engine.ClusterSpec) engine.ClusterSpec {
	if spec.Libvirt != nil {
		spec.ControlPlane = engine.MachineHosts(spec.Name, "m", spec.Libvirt)
		for i := range spec.ControlPlane {
			spec.ControlPlane[i].HostPublicKey = testHostKey
		}
		spec.Libvirt = nil
	}
	return spec
}
