package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/nodetest"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase/phasetest"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
)

// engineFixture is an Engine whose Dial returns simulated container hosts m1-m3 of validSpec.
type engineFixture struct {
	t         *testing.T
	sim       *phasetest.Sim
	eng       *Engine
	bundleDir string
	now       time.Time

	mu    sync.Mutex
	down  map[string]error // address -> Dial error
	dials []node.Config
}

func newEngineFixture(t *testing.T) *engineFixture {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the bundle's hash cache
	fx := &engineFixture{t: t, bundleDir: t.TempDir(), now: time.Now(), down: map[string]error{}}
	phasetest.WriteBundle(t, fx.bundleDir, phasetest.BundleEntries())
	fx.sim = phasetest.NewSim(t, "172.30.0.250", "m1", "172.30.0.11", "m2", "172.30.0.12", "m3", "172.30.0.13")
	fx.eng = fx.newEngine()
	return fx
}

// newEngine returns a fresh Engine on the same hosts, as a new provider process would be.
func (fx *engineFixture) newEngine() *Engine {
	return New(Options{Dial: fx.dial, Now: func() time.Time { return fx.now }, StartGrace: 2 * time.Second})
}

func (fx *engineFixture) dial(_ context.Context, cfg node.Config) (node.Runner, error) {
	fx.mu.Lock()
	fx.dials = append(fx.dials, cfg)
	err := fx.down[cfg.Address]
	fx.mu.Unlock()
	if err != nil {
		return nil, err
	}
	h := fx.sim.HostAt(cfg.Address)
	if h == nil {
		return nil, fmt.Errorf("dial tcp %s:22: no route to host", cfg.Address)
	}
	return h.Fake, nil
}

func (fx *engineFixture) setDown(addr string, err error) {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	if err == nil {
		delete(fx.down, addr)
	} else {
		fx.down[addr] = err
	}
}

// spec is validSpec with the test bundle; a new value (and slice) each time.
func (fx *engineFixture) spec() ClusterSpec {
	s := validSpec()
	s.Artifacts.BundleDir = fx.bundleDir
	return s
}

// apply runs ApplyCluster and fails the test on error.
func (fx *engineFixture) apply(prior *ClusterState) ClusterState {
	fx.t.Helper()
	st, err := fx.eng.ApplyCluster(context.Background(), fx.spec(), prior, nil)
	if err != nil {
		fx.t.Fatalf("ApplyCluster: %v", err)
	}
	return st
}

// changes lists the files written or uploaded on any host since the last ResetCounters.
func (fx *engineFixture) changes() []string {
	var out []string
	for _, h := range fx.sim.Hosts() {
		for _, e := range h.Fake.Events() {
			if e.Kind == nodetest.KindWrite || e.Kind == nodetest.KindUpload {
				out = append(out, fmt.Sprintf("%s: %s %s", h.Name, e.Kind, e.Path))
			}
		}
	}
	return out
}

func fingerprint(t *testing.T, certPEM string) string {
	t.Helper()
	fp, err := pki.Fingerprint([]byte(certPEM))
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestApplyClusterThenNoOp(t *testing.T) {
	fx := newEngineFixture(t)
	ctx := context.Background()
	var mu sync.Mutex
	facts := map[string]bool{}
	progress := func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Err != nil {
			t.Errorf("progress: %s on %q failed: %v", e.Phase, e.Host, e.Err)
		}
		if e.Phase == "gather-facts" {
			facts[e.Host] = true
		}
	}
	st, err := fx.eng.ApplyCluster(ctx, fx.spec(), nil, progress)
	if err != nil {
		t.Fatalf("ApplyCluster: %v", err)
	}
	if len(facts) != 3 {
		t.Errorf("gather-facts reported for %v, want m1, m2, m3", facts)
	}

	// State: UID, key material, join information, what Read would show.
	if !uuidRE.MatchString(st.UID) {
		t.Errorf("UID %q is not a random UUID", st.UID)
	}
	if !st.Installed {
		t.Error("state not marked installed")
	}
	p := st.PKI
	for name, v := range map[string]string{
		"CACert": p.CACert, "CAKey": p.CAKey, "EtcdCACert": p.EtcdCACert, "EtcdCAKey": p.EtcdCAKey,
		"FrontProxyCACert": p.FrontProxyCACert, "FrontProxyCAKey": p.FrontProxyCAKey, "ServiceAccountKey": p.ServiceAccountKey,
		"ServiceAccountPub": p.ServiceAccountPub, "EncryptionKey": p.EncryptionKey, "KeepalivedPassword": p.KeepalivedPassword,
	} {
		if v == "" {
			t.Errorf("state PKI.%s is empty", name)
		}
	}
	if err := clusterCAs(p).Validate(fx.now); err != nil {
		t.Errorf("state CAs: %v", err)
	}
	if err := pki.ValidateEncryptionKey(p.EncryptionKey); err != nil {
		t.Errorf("encryption key: %v", err)
	}
	if n := len(p.KeepalivedPassword); n < 6 || n > 8 {
		t.Errorf("VRRP password has %d characters; keepalived uses at most 8", n)
	}
	if err := pki.Covers(pki.KeyPair{CertPEM: []byte(p.CACert), KeyPEM: []byte(p.CAKey)}, []byte(st.Pool.ClientCert), pki.PoolManagerRequest("demo"), fx.now); err != nil {
		t.Errorf("pool credentials: %v", err)
	}
	if _, _, err := pki.ParseKeyPair(pki.KeyPair{CertPEM: []byte(st.Pool.ClientCert), KeyPEM: []byte(st.Pool.ClientKey)}); err != nil {
		t.Errorf("pool credentials: %v", err)
	}
	hash, err := fx.eng.DesiredClusterHash(fx.spec(), st.UID)
	if err != nil {
		t.Fatal(err)
	}
	if st.ConfigHash != hash {
		t.Errorf("state config hash %q, want the desired hash %q", st.ConfigHash, hash)
	}
	j := st.Join
	if j.ClusterName != "demo" || j.ClusterUID != st.UID || j.Endpoint != "https://172.30.0.250:6443" || j.CACertificate != p.CACert ||
		j.KubernetesVersion != "v1.37.2" || j.ClusterDNS != "10.96.0.10" || j.PodCIDR != "10.244.0.0/16" ||
		!slices.Equal(j.Masters, []string{"172.30.0.11", "172.30.0.12", "172.30.0.13"}) {
		t.Errorf("join %+v", j)
	}
	if !slices.Equal(st.EtcdMembers, []string{"m1", "m2", "m3"}) {
		t.Errorf("etcd members %v", st.EtcdMembers)
	}
	if len(st.Nodes) != 3 {
		t.Fatalf("nodes %+v", st.Nodes)
	}
	for _, n := range st.Nodes {
		if !n.Reachable || !n.Ready || !n.EtcdMember || n.KubeletVersion != "v1.37.2" || n.ConfigHash != hash || n.Role != "control-plane" {
			t.Errorf("node %+v", n)
		}
	}
	if d := st.CertificatesExpire.Sub(fx.now.Add(pki.LeafValidity)); d > time.Minute || d < -time.Hour {
		t.Errorf("certificates expire %s, want about a year from now", st.CertificatesExpire)
	}

	// Hosts: marker, CA, record without secrets; every mutation under the host lock.
	for _, h := range fx.sim.Hosts() {
		if f, _ := h.Fake.File(phase.MarkerFile); string(f.Data) != st.UID+"\n" {
			t.Errorf("%s: marker %q", h.Name, f.Data)
		}
		if f, _ := h.Fake.File(phase.PKIDir + "/ca.crt"); string(f.Data) != p.CACert {
			t.Errorf("%s: CA on the host is not the state's", h.Name)
		}
		rec, _ := h.Fake.File(phase.RecordFile)
		var r record
		if err := json.Unmarshal(rec.Data, &r); err != nil || r.UID != st.UID || r.Name != "demo" || len(r.Masters) != 3 {
			t.Errorf("%s: record %s: %v", h.Name, rec.Data, err)
		}
		for _, secret := range []string{"PRIVATE KEY", p.EncryptionKey, p.KeepalivedPassword} {
			if strings.Contains(string(rec.Data), secret) {
				t.Errorf("%s: the cluster record holds a secret (%.20s...)", h.Name, secret)
			}
		}
		cmds := h.Fake.Commands()
		if len(cmds) == 0 || cmds[0] != node.HostLockCommand(phase.LockName, node.DefaultHostLockWait) {
			t.Errorf("%s: first command is not the host lock: %.80q", h.Name, cmds)
		}
	}

	// Second apply with the state: same key material, nothing written, nothing restarted.
	fx.sim.ResetCounters()
	st2, err := fx.eng.ApplyCluster(ctx, fx.spec(), &st, nil)
	if err != nil {
		t.Fatalf("second ApplyCluster: %v", err)
	}
	if fingerprint(t, st2.PKI.CACert) != fingerprint(t, p.CACert) {
		t.Error("second apply regenerated the cluster CA")
	}
	if st2.PKI != st.PKI || st2.Pool != st.Pool || st2.UID != st.UID {
		t.Error("second apply changed the key material, pool credentials or UID in state")
	}
	if st2.ConfigHash != hash {
		t.Errorf("second apply config hash %q", st2.ConfigHash)
	}
	if c := fx.changes(); len(c) != 0 {
		t.Errorf("second apply changed files:\n%s", strings.Join(c, "\n"))
	}
	for _, h := range fx.sim.Hosts() {
		if r := h.Restarts(); len(r) != 0 {
			t.Errorf("%s: second apply restarted %v", h.Name, r)
		}
		if n := h.Imports(); n != 0 {
			t.Errorf("%s: second apply imported %d images", h.Name, n)
		}
	}
}

func TestApplyClusterVersionNotInBundle(t *testing.T) {
	fx := newEngineFixture(t)
	s := fx.spec()
	s.KubernetesVersion = "1.35.0"
	_, err := fx.eng.ApplyCluster(context.Background(), s, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "make artifacts K8S_VERSION=v1.35.0") {
		t.Errorf("missing version: %v", err)
	}
	if len(fx.dials) != 0 {
		t.Errorf("hosts were contacted before the bundle was checked: %d dials", len(fx.dials))
	}
}

func TestApplyClusterAdoptsCrashedRun(t *testing.T) {
	fx := newEngineFixture(t)
	ctx := context.Background()
	// The first create fails late, after the key material is on the masters.
	fx.sim.Host("m2").FailStart("flanneld", true)
	first, err := fx.eng.ApplyCluster(ctx, fx.spec(), nil, nil)
	if err == nil {
		t.Fatal("ApplyCluster succeeded although flanneld cannot start on m2")
	}
	for _, want := range []string{"m2", "flanneld"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if first.UID == "" || first.PKI.CACert == "" || first.PKI.EncryptionKey == "" || first.Installed {
		t.Fatalf("a failed create must still return the UID and key material (DESIGN §3.2): %+v", first)
	}

	// The state of that run is lost; a new create on the same hosts adopts them.
	fx.sim.Host("m2").FailStart("flanneld", false)
	fx.sim.ResetCounters()
	fx.eng = fx.newEngine()
	st := fx.apply(nil)
	if st.UID != first.UID {
		t.Errorf("adopted UID %q, want the hosts' %q", st.UID, first.UID)
	}
	if fingerprint(t, st.PKI.CACert) != fingerprint(t, first.PKI.CACert) {
		t.Error("the CA on the hosts was not adopted")
	}
	if st.PKI.CAKey != first.PKI.CAKey || st.PKI.EtcdCACert != first.PKI.EtcdCACert || st.PKI.EtcdCAKey != first.PKI.EtcdCAKey ||
		st.PKI.FrontProxyCACert != first.PKI.FrontProxyCACert || st.PKI.FrontProxyCAKey != first.PKI.FrontProxyCAKey ||
		st.PKI.ServiceAccountKey != first.PKI.ServiceAccountKey || st.PKI.ServiceAccountPub != first.PKI.ServiceAccountPub ||
		st.PKI.KeepalivedPassword != first.PKI.KeepalivedPassword {
		t.Error("the key material on the hosts was not adopted")
	}
	if strings.TrimSpace(st.PKI.EncryptionKey) != first.PKI.EncryptionKey {
		t.Error("the encryption key on the hosts was not adopted")
	}
	for _, c := range fx.changes() {
		// The pool credentials are not read back on adoption, and TestAdoptionKeepsEncryptionKey covers the
		// encryption key.
		if strings.Contains(c, "/pki/") && !strings.Contains(c, "pool-manager") && !strings.Contains(c, "encryption.key") {
			t.Errorf("adoption rewrote key material: %s", c)
		}
		if strings.Contains(c, phase.MarkerFile) {
			t.Errorf("adoption rewrote the marker: %s", c)
		}
	}
	if !fx.sim.Host("m2").Active("flanneld") {
		t.Error("m2: flanneld not started by the adopting run")
	}
}

// TestAdoptionKeepsEncryptionKey checks that readPKI trims the raw secrets under the state directory (such as
// encryption.key) while keeping PEM files byte for byte, so that adoption keeps the key in state unchanged,
// rewrites neither encryption.key nor the EncryptionConfiguration, and restarts no kube-apiserver.
func TestAdoptionKeepsEncryptionKey(t *testing.T) {
	fx := newEngineFixture(t)
	fx.sim.Host("m2").FailStart("flanneld", true)
	first, err := fx.eng.ApplyCluster(context.Background(), fx.spec(), nil, nil)
	if err == nil {
		t.Fatal("first apply succeeded")
	}
	fx.sim.Host("m2").FailStart("flanneld", false)
	fx.sim.ResetCounters()
	fx.eng = fx.newEngine()
	st := fx.apply(nil)
	if st.PKI.EncryptionKey != first.PKI.EncryptionKey {
		t.Errorf("adopted encryption key %q, want %q", st.PKI.EncryptionKey, first.PKI.EncryptionKey)
	}
	for _, c := range fx.changes() {
		if strings.Contains(c, "encryption") {
			t.Errorf("adoption rewrote %s", c)
		}
	}
	for _, h := range fx.sim.Hosts() {
		if r := h.Restarts(); r["kube-apiserver"] != 0 {
			t.Errorf("%s: adoption restarted kube-apiserver", h.Name)
		}
	}
}

func TestApplyClusterAdoptsMarkerOnly(t *testing.T) {
	fx := newEngineFixture(t)
	ctx := context.Background()
	// The first create fails right after writing the markers: no key material reached the hosts.
	for _, h := range fx.sim.Hosts() {
		h.Fake.On(`(?s)^set -e\nmkdir -p `, node.Result{Stderr: "mkdir: cannot create directory '/etc/kubesmith': Read-only file system", ExitCode: 1}, nil)
	}
	first, err := fx.eng.ApplyCluster(ctx, fx.spec(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "Read-only file system") {
		t.Fatalf("want the prepare-host error, got %v", err)
	}
	for _, h := range fx.sim.Hosts() {
		h.Fake.OnFunc(`(?s)^set -e\nmkdir -p `, h.Prepare)
	}
	fx.eng = fx.newEngine()
	st := fx.apply(nil)
	if st.UID != first.UID {
		t.Errorf("adopted UID %q, want the hosts' %q", st.UID, first.UID)
	}
	if err := clusterCAs(st.PKI).Validate(fx.now); err != nil {
		t.Errorf("new key material: %v", err)
	}
}

func TestApplyClusterRefusesForeignHosts(t *testing.T) {
	fx := newEngineFixture(t)
	ctx := context.Background()
	st := fx.apply(nil)
	const other = "0b7c6a5d-1111-4222-8333-444455556666"
	fx.sim.Host("m2").Fake.SetFile(phase.MarkerFile, []byte(other+"\n"), 0o644)
	fx.sim.ResetCounters()

	// With state: the host with another UID is named.
	_, err := fx.eng.ApplyCluster(ctx, fx.spec(), &st, nil)
	if err == nil {
		t.Fatal("a host of another cluster was accepted")
	}
	for _, want := range []string{"m2 belong(s) to another cluster", other, "this cluster is " + st.UID, "reset those hosts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if c := fx.changes(); len(c) != 0 {
		t.Errorf("refused apply changed files: %v", c)
	}

	// Without state (a new create): the hosts disagree, and each group is named.
	_, err = fx.newEngine().ApplyCluster(ctx, fx.spec(), nil, nil)
	groups := []string{other + " on m2", st.UID + " on m1, m3"}
	slices.Sort(groups)
	want := "the hosts belong to different clusters (" + strings.Join(groups, "; ") + ")"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("want %q, got %v", want, err)
	}
	if c := fx.changes(); len(c) != 0 {
		t.Errorf("refused create changed files: %v", c)
	}
	if f, _ := fx.sim.Host("m2").Fake.File(phase.MarkerFile); string(f.Data) != other+"\n" {
		t.Errorf("m2's marker was changed to %q", f.Data)
	}
}

func TestDesiredClusterHash(t *testing.T) {
	e := New(Options{})
	hash := func(mutate func(*ClusterSpec), uid string) string {
		t.Helper()
		s := validSpec()
		if mutate != nil {
			mutate(&s)
		}
		h, err := e.DesiredClusterHash(s, uid)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	base := hash(nil, "uid-1")
	if len(base) != 32 {
		t.Errorf("hash %q is not 32 hex digits", base)
	}
	if again := hash(nil, "uid-1"); again != base {
		t.Errorf("hash not stable: %s then %s", base, again)
	}
	same := map[string]func(*ClusterSpec){
		"v prefix":     func(s *ClusterSpec) { s.KubernetesVersion = "v1.37.2" },
		"host key":     func(s *ClusterSpec) { s.ControlPlane[0].HostPublicKey = "ssh-ed25519 AAAAother" },
		"ssh user":     func(s *ClusterSpec) { s.ControlPlane[1].User = "debian"; s.SSH.User = "admin" },
		"ssh address":  func(s *ClusterSpec) { s.ControlPlane[2].SSHAddress = "10.9.9.9"; s.ControlPlane[2].Port = 2222 },
		"ssh key":      func(s *ClusterSpec) { s.SSH.PrivateKeyPath = "/other/key" },
		"default port": func(s *ClusterSpec) { s.APIPort = 6443 },
		"kubeconfig":   func(s *ClusterSpec) { s.KubeconfigPath = "/tmp/kc" },
	}
	for name, m := range same {
		if h := hash(m, "uid-1"); h != base {
			t.Errorf("%s changes the hash", name)
		}
	}
	differ := map[string]func(*ClusterSpec){
		"version":     func(s *ClusterSpec) { s.KubernetesVersion = "1.36.3" },
		"vip":         func(s *ClusterSpec) { s.APIVIP = "172.30.0.251" },
		"master":      func(s *ClusterSpec) { s.ControlPlane[2].Address = "172.30.0.14" },
		"manifest":    func(s *ClusterSpec) { s.Manifests = []string{"kind: Namespace"} },
		"proxy mode":  func(s *ClusterSpec) { s.KubeProxyMode = "nftables" },
		"schedulable": func(s *ClusterSpec) { s.MastersSchedulable = true },
		"dns":         func(s *ClusterSpec) { s.UpstreamDNS = []string{"9.9.9.9"} },
		"tuning":      func(s *ClusterSpec) { s.Tuning.EtcdHeartbeatMS = 250; s.Tuning.EtcdElectionMS = 2500 },
	}
	for name, m := range differ {
		if h := hash(m, "uid-1"); h == base {
			t.Errorf("%s does not change the hash", name)
		}
	}
	if hash(nil, "uid-2") == base {
		t.Error("the UID does not change the hash")
	}
}

// TestDesiredClusterHashLeavesSpecAlone checks that hashing does not clear the SSH details of the caller's
// hosts (recordOf shares the ControlPlane slice).
func TestDesiredClusterHashLeavesSpecAlone(t *testing.T) {
	s := validSpec()
	s.ControlPlane[1].User = "debian"
	if _, err := New(Options{}).DesiredClusterHash(s, "uid-1"); err != nil {
		t.Fatal(err)
	}
	if s.ControlPlane[0].HostPublicKey != testHostKey || s.ControlPlane[1].User != "debian" {
		t.Errorf("the caller's hosts were changed: %+v", s.ControlPlane[:2])
	}
}

func TestAdminKubeconfig(t *testing.T) {
	now := time.Now()
	e := New(Options{Now: func() time.Time { return now }})
	if _, err := e.AdminKubeconfig(validSpec(), ClusterState{}, time.Hour); err == nil || !strings.Contains(err.Error(), "apply it first") {
		t.Errorf("without a CA: %v", err)
	}
	cas, err := pki.NewClusterCAs(now)
	if err != nil {
		t.Fatal(err)
	}
	st := ClusterState{PKI: PKI{CACert: string(cas.Cluster.CertPEM), CAKey: string(cas.Cluster.KeyPEM)}}
	for _, c := range []struct {
		validity, want time.Duration
	}{{2 * time.Hour, 2 * time.Hour}, {0, time.Hour}} {
		data, err := e.AdminKubeconfig(validSpec(), st, c.validity)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := pki.ParseKubeconfig(data)
		if err != nil {
			t.Fatal(err)
		}
		if kc.Server != "https://172.30.0.250:6443" {
			t.Errorf("server %q, want the VIP", kc.Server)
		}
		if string(kc.CAPEM) != st.PKI.CACert {
			t.Error("kubeconfig does not trust the cluster CA")
		}
		if err := pki.Covers(cas.Cluster, kc.Client.CertPEM, pki.AdminRequest(c.validity), now); err != nil {
			t.Errorf("admin certificate: %v", err)
		}
		exp, err := pki.Expiry(kc.Client.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		if d := exp.Sub(now.Add(c.want)); d > time.Second || d < -time.Second {
			t.Errorf("validity %s: certificate expires %s, want %s", c.validity, exp, now.Add(c.want))
		}
	}
	s := validSpec()
	s.APIPort = 8443
	data, err := e.AdminKubeconfig(s, st, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if kc, _ := pki.ParseKubeconfig(data); kc.Server != "https://172.30.0.250:8443" {
		t.Errorf("server %q with api_port 8443", kc.Server)
	}
	other, err := pki.NewCA("other", pki.CAValidity, now)
	if err != nil {
		t.Fatal(err)
	}
	if kc, _ := pki.ParseKubeconfig(data); pki.Covers(other, kc.Client.CertPEM, pki.AdminRequest(time.Hour), now) == nil {
		t.Error("admin certificate verifies against an unrelated CA")
	}
}

func TestReadCluster(t *testing.T) {
	fx := newEngineFixture(t)
	ctx := context.Background()
	st := fx.apply(nil)
	read := func() ReadResult {
		t.Helper()
		fx.mu.Lock()
		fx.dials = nil
		fx.mu.Unlock()
		res, err := fx.eng.ReadCluster(ctx, fx.spec(), st)
		if err != nil {
			t.Fatalf("ReadCluster: %v", err)
		}
		return res
	}

	t.Run("in sync", func(t *testing.T) {
		fx.sim.ResetCounters()
		res := read()
		if res.Gone || len(res.Warnings) != 0 || res.State.ConfigHash != st.ConfigHash || len(res.State.Nodes) != 3 {
			t.Errorf("read %+v", res)
		}
		if c := fx.changes(); len(c) != 0 {
			t.Errorf("read changed files: %v", c)
		}
		for _, cfg := range fx.dials {
			if cfg.RetryFor >= 0 {
				t.Errorf("read dials %s with RetryFor %s; it must try once", cfg.Name, cfg.RetryFor)
			}
		}
		for _, h := range fx.sim.Hosts() {
			for _, cmd := range h.Fake.Commands() {
				if strings.Contains(cmd, "flock") {
					t.Errorf("%s: read took the host lock", h.Name)
				}
			}
		}
	})

	t.Run("drift", func(t *testing.T) {
		m2, m3 := fx.sim.Host("m2"), fx.sim.Host("m3")
		saved, _ := m2.Fake.File("/etc/kubernetes/kubelet/config.yaml")
		m2.Fake.SetFile("/etc/kubernetes/kubelet/config.yaml", []byte("edited\n"), 0o644)
		m3.Stop("kubelet")
		defer func() {
			m2.Fake.SetFile("/etc/kubernetes/kubelet/config.yaml", saved.Data, saved.Mode)
			fx.apply(&st) // restarts m3's kubelet
		}()
		res := read()
		if res.Gone || res.State.ConfigHash != "drift:m2" {
			t.Errorf("gone %v, config hash %q, want drift:m2", res.Gone, res.State.ConfigHash)
		}
		byName := map[string]NodeStatus{}
		for _, n := range res.State.Nodes {
			byName[n.Name] = n
		}
		if byName["m1"].ConfigHash != st.ConfigHash || byName["m2"].ConfigHash != "drift" || byName["m3"].ConfigHash != "drift" {
			t.Errorf("node hashes %+v", res.State.Nodes)
		}
		if byName["m3"].Ready || !byName["m2"].Ready {
			t.Errorf("readiness %+v", res.State.Nodes)
		}
	})

	t.Run("one host unreachable", func(t *testing.T) {
		fx.setDown("172.30.0.13", errors.New("dial tcp 172.30.0.13:22: connect: no route to host"))
		defer fx.setDown("172.30.0.13", nil)
		res := read()
		if res.Gone {
			t.Error("cluster reported gone because a host is unreachable")
		}
		if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "m3 (172.30.0.13) is not reachable") {
			t.Errorf("warnings %q", res.Warnings)
		}
		if res.State.ConfigHash != st.ConfigHash {
			t.Errorf("config hash %q: an unreachable host is not drift", res.State.ConfigHash)
		}
		var m3 *NodeStatus
		for i, n := range res.State.Nodes {
			if n.Name == "m3" {
				m3 = &res.State.Nodes[i]
			}
		}
		if m3 == nil || m3.Reachable || m3.ConfigHash != "unreachable" {
			t.Errorf("m3 status %+v", m3)
		}
	})

	t.Run("all hosts unreachable", func(t *testing.T) {
		for _, h := range fx.sim.Hosts() {
			fx.setDown(h.Addr, errors.New("i/o timeout"))
		}
		defer func() {
			for _, h := range fx.sim.Hosts() {
				fx.setDown(h.Addr, nil)
			}
		}()
		res := read()
		if res.Gone || len(res.Warnings) != 3 {
			t.Errorf("gone %v, warnings %q", res.Gone, res.Warnings)
		}
		if res.State.UID != st.UID || res.State.PKI != st.PKI {
			t.Error("read of unreachable hosts lost state")
		}
	})

	t.Run("host key mismatch is an error", func(t *testing.T) {
		fx.setDown("172.30.0.12", &node.HostKeyMismatchError{Host: "m2", Address: "172.30.0.12"})
		defer fx.setDown("172.30.0.12", nil)
		if _, err := fx.eng.ReadCluster(ctx, fx.spec(), st); err == nil || !strings.Contains(err.Error(), "reading m2") {
			t.Errorf("host key mismatch: %v", err)
		}
	})

	t.Run("reset hosts are gone", func(t *testing.T) {
		saved := map[*phasetest.Host]nodetest.File{}
		for _, h := range fx.sim.Hosts() {
			saved[h], _ = h.Fake.File(phase.MarkerFile)
			h.Fake.RemoveFile(phase.MarkerFile)
		}
		defer func() {
			for h, f := range saved {
				h.Fake.SetFile(phase.MarkerFile, f.Data, f.Mode)
			}
		}()
		fx.setDown("172.30.0.13", errors.New("no route to host"))
		if res := read(); res.Gone {
			t.Error("gone although m3 could not be asked")
		}
		fx.setDown("172.30.0.13", nil)
		if res := read(); !res.Gone {
			t.Error("not gone although every host answered without the marker")
		}
	})
}

// TestReadClusterObserveFailureIsNotGone checks that a host that accepts SSH but whose probe fails (sudo
// refused, connection dropped) counts as unreachable, not as "answered without a marker", so that Read does not
// remove a live cluster.
func TestReadClusterObserveFailureIsNotGone(t *testing.T) {
	fx := newEngineFixture(t)
	st := fx.apply(nil)
	for _, h := range fx.sim.Hosts() {
		h.Fake.On(`(?s)^echo "uid=`, node.Result{Stderr: "sudo: a password is required", ExitCode: 1}, nil)
	}
	res, err := fx.eng.ReadCluster(context.Background(), fx.spec(), st)
	if res.Gone {
		t.Error("cluster reported gone because the probe command failed on every host")
	}
	if err == nil {
		for _, h := range fx.sim.Hosts() {
			if !slices.ContainsFunc(res.Warnings, func(w string) bool {
				return strings.HasPrefix(w, h.Name+" ") && strings.Contains(w, "could not be probed") && strings.Contains(w, "sudo: a password is required")
			}) {
				t.Errorf("no warning says that %s could not be probed: %q", h.Name, res.Warnings)
			}
		}
	}
}

func TestApplyClusterUnreachableHost(t *testing.T) {
	fx := newEngineFixture(t)
	fx.setDown("172.30.0.13", errors.New("dial tcp 172.30.0.13:22: connect: connection refused"))
	prior := &ClusterState{UID: "kept"}
	st, err := fx.eng.ApplyCluster(context.Background(), fx.spec(), prior, nil)
	if err == nil || !strings.Contains(err.Error(), "connecting to m3 (172.30.0.13)") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unreachable host: %v", err)
	}
	if st.UID != "kept" {
		t.Errorf("state lost on a connection error: %+v", st)
	}
	if c := fx.changes(); len(c) != 0 {
		t.Errorf("hosts changed although one was unreachable: %v", c)
	}
	for _, h := range fx.sim.Hosts()[:2] {
		if !h.Fake.Closed() {
			t.Errorf("%s: connection left open", h.Name)
		}
	}
}

func TestImportThenDelete(t *testing.T) {
	fx := newEngineFixture(t)
	ctx := context.Background()
	st := fx.apply(nil)
	ssh := SSH{PrivateKeyPath: "/root/.ssh/id_ed25519"}
	arts := Artifacts{BundleDir: fx.bundleDir}

	spec, got, err := fx.newEngine().ImportCluster(ctx, ssh, arts, "172.30.0.12", testHostKey)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	want := fx.spec()
	if spec.Name != want.Name || spec.KubernetesVersion != want.KubernetesVersion || spec.APIVIP != want.APIVIP || spec.NodeNetwork != want.NodeNetwork ||
		spec.PodCIDR != want.PodCIDR || spec.ServiceCIDR != want.ServiceCIDR || spec.APIPort != 6443 || spec.KubeProxyMode != "iptables" {
		t.Errorf("imported spec %+v", spec)
	}
	if fmt.Sprint(spec.ControlPlane) != fmt.Sprint(want.ControlPlane) {
		t.Errorf("imported masters %+v, want %+v", spec.ControlPlane, want.ControlPlane)
	}
	if got.UID != st.UID || fingerprint(t, got.PKI.CACert) != fingerprint(t, st.PKI.CACert) || got.PKI.CAKey != st.PKI.CAKey ||
		got.PKI.EtcdCAKey != st.PKI.EtcdCAKey || got.PKI.ServiceAccountKey != st.PKI.ServiceAccountKey ||
		got.PKI.KeepalivedPassword != st.PKI.KeepalivedPassword || strings.TrimSpace(got.PKI.EncryptionKey) != st.PKI.EncryptionKey {
		t.Error("imported key material differs from the cluster's")
	}
	if got.Pool != st.Pool {
		t.Error("imported pool credentials differ")
	}
	if !got.Installed || len(got.Nodes) != 3 || !slices.Equal(got.EtcdMembers, []string{"m1", "m2", "m3"}) {
		t.Errorf("imported state %+v", got)
	}
	if _, _, err := fx.newEngine().ImportCluster(ctx, ssh, arts, "172.30.0.99", testHostKey); err == nil {
		t.Error("import from an unknown host succeeded")
	}
	fx.sim.Host("m3").Fake.RemoveFile(phase.RecordFile)
	if _, _, err := fx.newEngine().ImportCluster(ctx, ssh, arts, "172.30.0.13", testHostKey); err == nil || !strings.Contains(err.Error(), "is not a kubesmith master") {
		t.Errorf("import from a host without the record: %v", err)
	}

	// Delete resets every host (simulated: the reset script removes everything and stops the units) and
	// refuses a host that another cluster took over meanwhile.
	for _, h := range fx.sim.Hosts() {
		h.Fake.OnFunc(`^sh -s$`, func(string) (node.Result, error) {
			h.Wipe()
			return node.Result{}, nil
		})
	}
	const other = "0b7c6a5d-1111-4222-8333-444455556666"
	fx.sim.Host("m1").Fake.SetFile(phase.MarkerFile, []byte(other+"\n"), 0o644)
	err = fx.eng.DeleteCluster(ctx, fx.spec(), st, nil)
	if err == nil || !strings.Contains(err.Error(), "m1") || !strings.Contains(err.Error(), "another cluster (UID "+other) {
		t.Errorf("delete of a host of another cluster: %v", err)
	}
	if _, ok := fx.sim.Host("m1").Fake.File(phase.MarkerFile); !ok {
		t.Error("m1 was reset although it belongs to another cluster")
	}
	fx.sim.Host("m1").Fake.SetFile(phase.MarkerFile, []byte(st.UID+"\n"), 0o644)
	if err := fx.eng.DeleteCluster(ctx, fx.spec(), st, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
	for _, h := range fx.sim.Hosts() {
		if n := len(h.Fake.Files()); n != 0 || h.Active("kubelet") {
			t.Errorf("%s: %d files left, kubelet running %v", h.Name, n, h.Active("kubelet"))
		}
	}
	res, err := fx.eng.ReadCluster(ctx, fx.spec(), st)
	if err != nil || !res.Gone {
		t.Errorf("read after delete: gone %v, %v", res.Gone, err)
	}
}
