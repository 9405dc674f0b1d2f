package engine

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase/phasetest"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
)

// fakeKubeAPI emulates the parts of the Kubernetes API a node pool uses, over TLS with client certificates,
// allowing only the pool manager group. It signs approved kubelet-serving CSRs with the cluster CA, as the
// controller manager does.
type fakeKubeAPI struct {
	t   *testing.T
	ca  pki.KeyPair
	srv *httptest.Server
	log *orderLog

	mu      sync.Mutex
	secrets map[string]map[string][]byte
	csrs    []*kubeCSR
	nodes   map[string]map[string]any
	pods    map[string][]kubePod // by node name
	pdb     map[string]bool      // pod id -> eviction refused (429)
	// dropEvictions and dropLists cut off that many eviction requests and pod listings without an answer, as a
	// busy apiserver or a moving VIP does.
	dropEvictions, dropLists int
	uids                     int
	denied                   []string
}

// orderLog records API calls and host resets in one sequence.
type orderLog struct {
	mu      sync.Mutex
	entries []string
}

func (l *orderLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, s)
}

func (l *orderLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

func newFakeKubeAPI(t *testing.T, log *orderLog) *fakeKubeAPI {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("kubernetes", 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := pki.APIServerCert(ca, net.ParseIP("127.0.0.1"), nil, nil, net.ParseIP("10.96.0.1"), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(srvCert.CertPEM, srvCert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	f := &fakeKubeAPI{
		t: t, ca: ca, log: log, secrets: map[string]map[string][]byte{}, nodes: map[string]map[string]any{},
		pods: map[string][]kubePod{}, pdb: map[string]bool{},
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeKubeAPI) join() Join {
	return Join{
		ClusterName: "demo", ClusterUID: "uid-1234", Endpoint: f.srv.URL, CACertificate: string(f.ca.CertPEM),
		KubernetesVersion: "v1.37.2", NodeNetwork: "172.30.0.0/24", PodCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12",
		ClusterDNS: "10.96.0.10", Masters: []string{"172.30.0.11"},
	}
}

func (f *fakeKubeAPI) creds(t *testing.T) PoolCredentials {
	kp, err := pki.PoolManagerCert(f.ca, "demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return PoolCredentials{ClientCert: string(kp.CertPEM), ClientKey: string(kp.KeyPEM)}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func status(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"kind": "Status", "message": msg, "code": code})
}

// mergePatch applies an RFC 7386 JSON merge patch.
func mergePatch(dst map[string]any, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			sub, ok := dst[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
			}
			mergePatch(sub, pv)
			dst[k] = sub
		default:
			dst[k] = v
		}
	}
}

func (f *fakeKubeAPI) serve(w http.ResponseWriter, r *http.Request) {
	cert := r.TLS.PeerCertificates[0]
	if !slices.Contains(cert.Subject.Organization, pki.GroupPoolManagers) {
		status(w, 403, "forbidden: not a pool manager")
		return
	}
	body, _ := io.ReadAll(r.Body)
	p := r.URL.Path
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodGet {
		f.log.add(r.Method + " " + p)
	}
	const csrBase = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
	switch {
	case r.Method == http.MethodPost && p == "/api/v1/namespaces/kube-system/secrets":
		var s struct {
			Type     string                `json:"type"`
			Metadata struct{ Name string } `json:"metadata"`
			Data     map[string][]byte     `json:"data"`
		}
		_ = json.Unmarshal(body, &s)
		// The admission policy of rbac.yaml.tmpl.
		if s.Type != "bootstrap.kubernetes.io/token" || !strings.HasPrefix(s.Metadata.Name, "bootstrap-token-") ||
			string(s.Data["auth-extra-groups"]) != "system:bootstrappers:kubesmith" {
			f.denied = append(f.denied, s.Metadata.Name)
			status(w, 403, "denied by kubesmith-pool-manager-bootstrap-tokens")
			return
		}
		f.secrets[s.Metadata.Name] = s.Data
		writeJSON(w, 201, map[string]any{})
	case r.Method == http.MethodDelete && strings.HasPrefix(p, "/api/v1/namespaces/kube-system/secrets/"):
		name := strings.TrimPrefix(p, "/api/v1/namespaces/kube-system/secrets/")
		if _, ok := f.secrets[name]; !ok {
			status(w, 404, "not found")
			return
		}
		delete(f.secrets, name)
		writeJSON(w, 200, map[string]any{})
	case r.Method == http.MethodPost && p == csrBase:
		var c kubeCSR
		_ = json.Unmarshal(body, &c)
		c.Spec.Username = pki.PoolManagerUserPrefix + "demo"
		f.csrs = append(f.csrs, &c)
		writeJSON(w, 201, c)
	case r.Method == http.MethodGet && p == csrBase:
		writeJSON(w, 200, map[string]any{"items": f.csrs})
	case r.Method == http.MethodGet && strings.HasPrefix(p, csrBase+"/"):
		if c := f.csr(strings.TrimPrefix(p, csrBase+"/")); c != nil {
			writeJSON(w, 200, c)
			return
		}
		status(w, 404, "not found")
	case r.Method == http.MethodPut && strings.HasSuffix(p, "/approval"):
		name := strings.TrimSuffix(strings.TrimPrefix(p, csrBase+"/"), "/approval")
		c := f.csr(name)
		var in kubeCSR
		_ = json.Unmarshal(body, &in)
		if c == nil {
			status(w, 404, "not found")
			return
		}
		if c.Spec.SignerName != signerKubeletClient && c.Spec.SignerName != signerKubeletServing {
			status(w, 403, "may not approve signer "+c.Spec.SignerName)
			return
		}
		c.Status.Conditions = in.Status.Conditions
		if c.Spec.SignerName == signerKubeletServing {
			c.Status.Certificate = f.sign(c.Spec.Request)
		}
		writeJSON(w, 200, c)
	case r.Method == http.MethodGet && p == "/api/v1/nodes":
		var items []map[string]any
		for _, n := range f.nodes {
			items = append(items, n)
		}
		writeJSON(w, 200, map[string]any{"items": items})
	case strings.HasPrefix(p, "/api/v1/nodes/"):
		name := strings.TrimPrefix(p, "/api/v1/nodes/")
		n, ok := f.nodes[name]
		if !ok {
			status(w, 404, "nodes \""+name+"\" not found")
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, 200, n)
		case http.MethodPatch:
			if r.Header.Get("Content-Type") != "application/merge-patch+json" {
				status(w, 415, "unsupported patch type")
				return
			}
			var patch map[string]any
			_ = json.Unmarshal(body, &patch)
			mergePatch(n, patch)
			writeJSON(w, 200, n)
		case http.MethodDelete:
			delete(f.nodes, name)
			writeJSON(w, 200, map[string]any{})
		}
	case r.Method == http.MethodGet && p == "/api/v1/pods" && f.dropLists > 0:
		f.dropLists--
		panic(http.ErrAbortHandler)
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/eviction") && f.dropEvictions > 0:
		f.dropEvictions--
		panic(http.ErrAbortHandler)
	case r.Method == http.MethodGet && p == "/api/v1/pods":
		nodeName := strings.TrimPrefix(r.URL.Query().Get("fieldSelector"), "spec.nodeName=")
		writeJSON(w, 200, map[string]any{"items": f.pods[nodeName]})
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/eviction"):
		parts := strings.Split(p, "/") // /api/v1/namespaces/NS/pods/NAME/eviction
		id := parts[4] + "/" + parts[6]
		if f.pdb[id] {
			status(w, 429, "Cannot evict pod as it would violate the pod's disruption budget.")
			return
		}
		for n, pods := range f.pods {
			f.pods[n] = slices.DeleteFunc(pods, func(p kubePod) bool { return p.id() == id })
		}
		writeJSON(w, 201, map[string]any{})
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/api/v1/namespaces/kube-system/serviceaccounts/") && strings.HasSuffix(p, "/token"):
		var req struct {
			Spec struct {
				ExpirationSeconds int64 `json:"expirationSeconds"`
				Bound             struct {
					Kind, Name, UID string
				} `json:"boundObjectRef"`
			} `json:"spec"`
		}
		_ = json.Unmarshal(body, &req)
		claims, _ := json.Marshal(map[string]any{
			"exp":           time.Now().Unix() + req.Spec.ExpirationSeconds,
			"kubernetes.io": map[string]any{"node": map[string]string{"name": req.Spec.Bound.Name, "uid": req.Spec.Bound.UID}},
		})
		tok := "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(claims) + ".sig"
		writeJSON(w, 201, map[string]any{"status": map[string]string{"token": tok}})
	default:
		status(w, 404, "fake API: no route for "+r.Method+" "+p)
	}
}

func (f *fakeKubeAPI) csr(name string) *kubeCSR {
	for _, c := range f.csrs {
		if c.Metadata.Name == name {
			return c
		}
	}
	return nil
}

func (f *fakeKubeAPI) sign(request []byte) []byte {
	block, _ := pem.Decode(request)
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		f.t.Errorf("bad CSR: %v", err)
		return nil
	}
	caCert, caKey, err := pki.ParseKeyPair(f.ca)
	if err != nil {
		f.t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: req.Subject, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, req.PublicKey, caKey)
	if err != nil {
		f.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// kubeletCSR is what a joining kubelet posts: a node client request made with its bootstrap token.
func (f *fakeKubeAPI) kubeletCSR(name, tokenID, nodeName string) {
	req, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
	}, mustKey(f.t))
	if err != nil {
		f.t.Fatal(err)
	}
	c := &kubeCSR{APIVersion: "certificates.k8s.io/v1", Kind: "CertificateSigningRequest"}
	c.Metadata.Name = name
	c.Spec.SignerName = signerKubeletClient
	c.Spec.Request = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req})
	c.Spec.Usages = []string{"digital signature", "client auth"}
	c.Spec.Username = "system:bootstrap:" + tokenID
	f.csrs = append(f.csrs, c)
}

func (f *fakeKubeAPI) approved(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.csr(name)
	return c != nil && slices.ContainsFunc(c.Status.Conditions, func(c csrCondition) bool { return c.Type == "Approved" })
}

func (f *fakeKubeAPI) registerNode(name string, ready bool) {
	f.uids++
	f.nodes[name] = map[string]any{
		"metadata": map[string]any{"name": name, "uid": fmt.Sprintf("node-uid-%d", f.uids), "labels": map[string]any{"kubernetes.io/hostname": name}},
		"spec":     map[string]any{"taints": []any{map[string]any{"key": phase.JoiningTaintKey, "effect": "NoSchedule"}}},
		"status": map[string]any{
			"conditions": []any{map[string]any{"type": "Ready", "status": map[bool]string{true: "True", false: "False"}[ready]}},
			"nodeInfo":   map[string]any{"kubeletVersion": "v1.37.2", "containerRuntimeVersion": "containerd://2.1.4"},
		},
	}
}

func (f *fakeKubeAPI) node(name string) kubeNode {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.Marshal(f.nodes[name])
	var n kubeNode
	_ = json.Unmarshal(b, &n)
	return n
}

func mustKey(t *testing.T) any {
	kp, err := pki.NewCA("throwaway", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := pki.ParseKeyPair(kp)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// poolFixture is a pool of simulated worker hosts against the fake API.
type poolFixture struct {
	*engineFixture
	api   *fakeKubeAPI
	log   *orderLog
	rogue bool // joining kubelets also post a CSR for another node name with their token
}

func newPoolFixture(t *testing.T) *poolFixture {
	fx := newEngineFixture(t)
	log := &orderLog{}
	px := &poolFixture{engineFixture: fx, log: log, api: newFakeKubeAPI(t, log)}
	fx.sim = phasetest.NewSim(t, "172.30.0.250", "w1", "172.30.0.21", "w2", "172.30.0.22", "w3", "172.30.0.23")
	for _, h := range fx.sim.Hosts() {
		px.installKubelet(h)
	}
	return px
}

// installKubelet simulates the kubelet's TLS bootstrap and the reset script on a worker. Like the real kubelet,
// it writes its kubeconfig as soon as it starts with a bootstrap kubeconfig, and its client certificate only
// once the CSR is approved.
func (px *poolFixture) installKubelet(h *phasetest.Host) {
	check := func(cmd string) (node.Result, error) {
		_, conf := h.File(phase.KubeletConf)
		if _, cert := h.File(phase.KubeletClientCert); conf && cert {
			return node.Result{Stdout: "joined\n"}, nil
		}
		word := "new"
		if strings.Contains(cmd, "waiting") {
			word = "waiting"
		}
		active := h.Active("kubelet")
		boot, ok := h.File(phase.BootstrapKubeconfig)
		if !active || !ok {
			return node.Result{Stdout: word + "\n"}, nil
		}
		kc, err := pki.ParseKubeconfig(boot)
		if err != nil {
			return node.Result{}, err
		}
		h.Fake.SetFile(phase.KubeletConf, []byte("kubelet kubeconfig of "+h.Name+", pointing at "+phase.KubeletClientCert), 0o600)
		id, secret, _ := strings.Cut(kc.Token, ".")
		csrName := "csr-" + h.Name
		px.api.mu.Lock()
		tok, exists := px.api.secrets["bootstrap-token-"+id]
		if exists && string(tok["token-secret"]) == secret && px.api.csr(csrName) == nil {
			px.api.kubeletCSR(csrName, id, h.Name)
			if px.rogue {
				px.api.kubeletCSR("csr-rogue-"+h.Name, id, "intruder-"+h.Name)
			}
		}
		px.api.mu.Unlock()
		if px.api.approved(csrName) {
			h.Fake.SetFile(phase.KubeletClientCert, []byte("kubelet client certificate of "+h.Name), 0o600)
			px.api.mu.Lock()
			px.api.registerNode(h.Name, true)
			px.api.mu.Unlock()
			return node.Result{Stdout: "joined\n"}, nil
		}
		return node.Result{Stdout: word + "\n"}, nil
	}
	h.Fake.OnFunc(`^test -s /etc/kubernetes/kubelet\.conf && test -s /var/lib/kubelet/pki/kubelet-client-current\.pem && echo joined \|\| echo (new|waiting)$`, check)
	h.Fake.OnFunc(`^rm -f /etc/kubernetes/bootstrap-kubelet\.conf$`, func(string) (node.Result, error) {
		h.Fake.RemoveFile(phase.BootstrapKubeconfig)
		return node.Result{}, nil
	})
	h.Fake.OnFunc(`^sh -s$`, func(string) (node.Result, error) {
		// Reset pipes two scripts: the reset itself, then the pre-install restore (files already gone).
		if len(h.Fake.Files()) == 0 {
			return node.Result{}, nil
		}
		px.log.add("reset " + h.Name)
		h.Wipe()
		return node.Result{}, nil
	})
}

func (px *poolFixture) spec(names ...string) NodePoolSpec {
	s := NodePoolSpec{
		Name: "general", Cluster: px.api.join(), Credentials: px.api.creds(px.t),
		Labels: map[string]string{"tier": "general"}, Taints: []Taint{{Key: "dedicated", Value: "batch", Effect: "NoSchedule"}},
		SSH: SSH{PrivateKeyPath: "/root/.ssh/id_ed25519"}, Artifacts: Artifacts{BundleDir: px.bundleDir}, DrainTimeout: 5 * time.Second,
	}
	for _, n := range names {
		h := px.sim.Host(n)
		s.Hosts = append(s.Hosts, Host{Name: h.Name, Address: h.Addr, HostPublicKey: testHostKey})
	}
	return s
}

func TestNodePoolJoinScaleAndLabels(t *testing.T) {
	px := newPoolFixture(t)
	px.rogue = true
	ctx := context.Background()
	spec := px.spec("w1", "w2")
	st, err := px.eng.ApplyNodePool(ctx, spec, nil, nil)
	if err != nil {
		t.Fatalf("ApplyNodePool: %v", err)
	}
	want, _ := px.eng.DesiredNodePoolHash(spec)
	if st.ConfigHash != want {
		t.Fatalf("config hash %q, want %q (nodes %+v)", st.ConfigHash, want, st.Nodes)
	}
	if !slices.Equal(st.Addresses, []string{"172.30.0.21", "172.30.0.22"}) {
		t.Errorf("addresses %v", st.Addresses)
	}
	for _, n := range st.Nodes {
		if !n.Ready || !n.Reachable || n.KubeletVersion != "v1.37.2" || n.Role != "worker" {
			t.Errorf("node %+v", n)
		}
	}
	// Exactly the planned nodes' client CSRs were approved; the rogue ones stay pending.
	for _, w := range []string{"w1", "w2"} {
		if !px.api.approved("csr-" + w) {
			t.Errorf("CSR of %s not approved", w)
		}
		if px.api.approved("csr-rogue-" + w) {
			t.Errorf("rogue CSR made with %s's token was approved", w)
		}
	}
	// Tokens are gone, the bootstrap kubeconfig removed, agents run on node-bound tokens.
	if len(px.api.secrets) != 0 {
		t.Errorf("bootstrap tokens left behind: %v", px.api.secrets)
	}
	w1 := px.sim.Host("w1")
	if _, ok := w1.File(phase.BootstrapKubeconfig); ok {
		t.Error("bootstrap kubeconfig left on w1")
	}
	kc, ok := w1.File(phase.KubeProxyConf)
	if !ok {
		t.Fatal("no kube-proxy kubeconfig on w1")
	}
	spec2, err := pki.ParseKubeconfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	if !phase.TokenUsable(spec2.Token, px.api.node("w1").Metadata.UID, time.Now()) {
		t.Errorf("kube-proxy token not bound to w1's Node: %q", spec2.Token)
	}
	crt, _ := w1.File("/etc/kubernetes/pki/kubelet.crt")
	if err := pki.Covers(px.api.ca, crt, pki.KubeletServingRequest("w1", []net.IP{net.ParseIP("172.30.0.21")}), time.Now()); err != nil {
		t.Errorf("serving certificate: %v", err)
	}
	for _, p := range []string{"kube-proxy", "flanneld", "kubelet", "containerd"} {
		if !w1.Active(p) {
			t.Errorf("%s not active on w1", p)
		}
	}
	n := px.api.node("w1")
	if n.Metadata.Labels["tier"] != "general" || n.Metadata.Labels[LabelPool] != "general" {
		t.Errorf("labels %v", n.Metadata.Labels)
	}
	if !slices.Equal(n.Spec.Taints, []Taint{{Key: "dedicated", Value: "batch", Effect: "NoSchedule"}}) {
		t.Errorf("taints %v (joining taint must be gone)", n.Spec.Taints)
	}

	// Second apply: nothing on any host, nothing changes.
	for _, h := range px.sim.Hosts() {
		h.Fake.Reset()
	}
	st2, err := px.eng.ApplyNodePool(ctx, spec, &st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st2.ConfigHash != want {
		t.Errorf("re-apply hash %q", st2.ConfigHash)
	}
	if ch := px.changes(); len(ch) != 0 {
		t.Errorf("re-apply wrote files: %v", ch)
	}

	// Scale up: only w3 is worked on over SSH beyond the read probe.
	for _, h := range px.sim.Hosts() {
		h.Fake.Reset()
	}
	up := px.spec("w1", "w2", "w3")
	st3, err := px.eng.ApplyNodePool(ctx, up, &st2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range px.changes() {
		if !strings.HasPrefix(ch, "w3: ") {
			t.Errorf("scale up touched an existing node: %s", ch)
		}
	}
	if len(st3.Nodes) != 3 || st3.ConfigHash != want {
		t.Errorf("after scale up: %+v", st3)
	}

	// Label change: patched in place, no file written anywhere.
	for _, h := range px.sim.Hosts() {
		h.Fake.Reset()
	}
	relabel := px.spec("w1", "w2", "w3")
	relabel.Labels = map[string]string{"tier": "gold"}
	relabel.Taints = nil
	st4, err := px.eng.ApplyNodePool(ctx, relabel, &st3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ch := px.changes(); len(ch) != 0 {
		t.Errorf("label change wrote files: %v", ch)
	}
	n = px.api.node("w2")
	if n.Metadata.Labels["tier"] != "gold" || len(n.Spec.Taints) != 0 {
		t.Errorf("after relabel: labels %v taints %v", n.Metadata.Labels, n.Spec.Taints)
	}
	if want4, _ := px.eng.DesiredNodePoolHash(relabel); st4.ConfigHash != want4 {
		t.Errorf("after relabel hash %q want %q", st4.ConfigHash, want4)
	}

	// A Node deleted out of band shows as drift; an unreachable host is a warning, not drift or removal.
	px.api.mu.Lock()
	delete(px.api.nodes, "w3")
	px.api.mu.Unlock()
	px.setDown("172.30.0.22", fmt.Errorf("dial tcp 172.30.0.22:22: connect: no route to host"))
	res, err := px.eng.ReadNodePool(ctx, relabel, st4)
	if err != nil {
		t.Fatal(err)
	}
	if res.Gone || res.State.ConfigHash != "drift:w3" {
		t.Errorf("read: gone=%v hash=%q", res.Gone, res.State.ConfigHash)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "w2") {
		t.Errorf("warnings %v", res.Warnings)
	}
	if res.State.Nodes[2].ConfigHash != "node-missing" || res.State.Nodes[1].ConfigHash != "unreachable" {
		t.Errorf("nodes %+v", res.State.Nodes)
	}
}

func TestNodePoolScaleDownOrderAndDrainTimeout(t *testing.T) {
	px := newPoolFixture(t)
	ctx := context.Background()
	spec := px.spec("w1", "w2", "w3")
	st, err := px.eng.ApplyNodePool(ctx, spec, nil, nil)
	if err != nil {
		t.Fatalf("ApplyNodePool: %v", err)
	}
	yes := true
	pod := func(ns, name string, ds bool) kubePod {
		var p kubePod
		p.Metadata.Namespace, p.Metadata.Name, p.Status.Phase = ns, name, "Running"
		if ds {
			p.Metadata.OwnerReferences = append(p.Metadata.OwnerReferences, struct {
				Kind       string `json:"kind"`
				Controller *bool  `json:"controller"`
			}{"DaemonSet", &yes})
		}
		return p
	}
	px.api.mu.Lock()
	px.api.pods["w2"] = []kubePod{pod("default", "web-1", false), pod("kube-system", "proxy-ds", true)}
	px.api.pods["w3"] = []kubePod{pod("default", "web-2", false)}
	px.api.mu.Unlock()

	// Scale down to w1, one node at a time: cordon, drain, delete the Node, reset the host, then the next.
	down := px.spec("w1")
	before := len(px.log.list())
	st2, err := px.eng.ApplyNodePool(ctx, down, &st, nil)
	if err != nil {
		t.Fatalf("scale down: %v", err)
	}
	var got []string
	for _, e := range px.log.list()[before:] {
		if strings.Contains(e, "w2") || strings.Contains(e, "w3") || strings.Contains(e, "web-") {
			got = append(got, e)
		}
	}
	wantOrder := []string{
		"PATCH /api/v1/nodes/w2", "POST /api/v1/namespaces/default/pods/web-1/eviction", "DELETE /api/v1/nodes/w2", "reset w2",
		"PATCH /api/v1/nodes/w3", "POST /api/v1/namespaces/default/pods/web-2/eviction", "DELETE /api/v1/nodes/w3", "reset w3",
	}
	if !slices.Equal(got, wantOrder) {
		t.Errorf("scale-down order:\n got %q\nwant %q", got, wantOrder)
	}
	if len(st2.Hosts) != 1 || len(st2.Nodes) != 1 || st2.Nodes[0].Name != "w1" {
		t.Errorf("state after scale down: %+v", st2)
	}

	// A PodDisruptionBudget that never allows the eviction: the drain times out and names the pod.
	px.api.mu.Lock()
	px.api.pods["w1"] = []kubePod{pod("shop", "db-0", false), pod("shop", "cache-0", false)}
	px.api.pdb["shop/db-0"] = true
	px.api.mu.Unlock()
	spec1 := px.spec("w1")
	spec1.DrainTimeout = 1500 * time.Millisecond
	err = px.eng.DeleteNodePool(ctx, spec1, st2, nil)
	if err == nil {
		t.Fatal("delete succeeded although a PDB blocks the drain")
	}
	for _, want := range []string{"draining node w1 timed out", "shop/db-0 (eviction blocked by a PodDisruptionBudget", "drain_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "cache-0") {
		t.Errorf("error names an evicted pod: %v", err)
	}
	if px.api.node("w1").Metadata.Name != "w1" {
		t.Error("the Node was deleted although its drain failed")
	}
}

// A drain outlasts requests that get no answer (a busy TCG master, a VIP moving between masters): it retries
// them until drain_timeout instead of failing the delete at the first one.
func TestDrainRetriesRequestsWithoutAnAnswer(t *testing.T) {
	px := newPoolFixture(t)
	ctx := context.Background()
	spec := px.spec("w1")
	st, err := px.eng.ApplyNodePool(ctx, spec, nil, nil)
	if err != nil {
		t.Fatalf("ApplyNodePool: %v", err)
	}
	var web kubePod
	web.Metadata.Namespace, web.Metadata.Name, web.Status.Phase = "default", "web-1", "Running"
	px.api.mu.Lock()
	px.api.pods["w1"] = []kubePod{web}
	px.api.dropLists, px.api.dropEvictions = 2, 2
	px.api.mu.Unlock()
	if err := px.eng.DeleteNodePool(ctx, spec, st, nil); err != nil {
		t.Fatalf("delete failed on requests that got no answer: %v", err)
	}
	px.api.mu.Lock()
	left, lists, evictions := len(px.api.pods["w1"]), px.api.dropLists, px.api.dropEvictions
	px.api.mu.Unlock()
	if left != 0 || lists != 0 || evictions != 0 {
		t.Errorf("pods left %d, cut-off listings not yet sent %d, cut-off evictions not yet sent %d", left, lists, evictions)
	}

	// When every listing goes unanswered, the drain times out with the cause.
	st2, err := px.eng.ApplyNodePool(ctx, spec, nil, nil)
	if err != nil {
		t.Fatalf("ApplyNodePool again: %v", err)
	}
	px.api.mu.Lock()
	px.api.dropLists = 1 << 20
	px.api.mu.Unlock()
	spec.DrainTimeout = 1500 * time.Millisecond
	err = px.eng.DeleteNodePool(ctx, spec, st2, nil)
	if err == nil || !strings.Contains(err.Error(), "timed out after 1.5s: the pods could not be listed") {
		t.Errorf("got %v, want a drain timeout naming the failed listing", err)
	}
}

func TestPoolAuthorityRefusesOtherCSRs(t *testing.T) {
	log := &orderLog{}
	api := newFakeKubeAPI(t, log)
	client, err := newKubeAPI(context.Background(), api.join(), api.creds(t))
	if err != nil {
		t.Fatal(err)
	}
	a := &poolAuthority{api: client, pool: "p", now: time.Now, tokens: map[string]string{}}
	ctx := context.Background()
	if _, err := a.ApproveNodeClient(ctx, "w1"); err == nil {
		t.Error("approved without a token of this run")
	}
	tok, err := a.BootstrapToken(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := strings.Cut(tok, ".")
	api.mu.Lock()
	api.kubeletCSR("good", id, "w1")
	api.kubeletCSR("other-name", id, "w2")        // right token, other node
	api.kubeletCSR("other-token", "zzzzzz", "w1") // right node, someone else's token
	api.mu.Unlock()
	n, err := a.ApproveNodeClient(ctx, "w1")
	if err != nil || n != 1 {
		t.Fatalf("approved %d, %v", n, err)
	}
	for name, want := range map[string]bool{"good": true, "other-name": false, "other-token": false} {
		if api.approved(name) != want {
			t.Errorf("CSR %s approved=%v, want %v", name, !want, want)
		}
	}
	if err := a.deleteTokens(ctx); err != nil {
		t.Fatal(err)
	}
	if len(api.secrets) != 0 {
		t.Errorf("token not deleted")
	}
	// Wrong credentials are refused by the API and reported with the status.
	other, _ := pki.NewCA("other", time.Hour, time.Now())
	kp, _ := pki.PoolManagerCert(other, "demo", time.Now())
	if bad, err := newKubeAPI(context.Background(), api.join(), PoolCredentials{ClientCert: string(kp.CertPEM), ClientKey: string(kp.KeyPEM)}); err == nil {
		if _, err := bad.listNodes(ctx); err == nil {
			t.Error("a client certificate of another CA was accepted")
		}
	}
}

func TestValidateNodePoolSpec(t *testing.T) {
	log := &orderLog{}
	api := newFakeKubeAPI(t, log)
	good := NodePoolSpec{
		Name: "general", Cluster: api.join(), Credentials: api.creds(t),
		Hosts: []Host{{Name: "w1", Address: "172.30.0.21", HostPublicKey: testHostKey}}, SSH: SSH{PrivateKeyPath: "/k"},
	}
	if errs := ValidateNodePoolSpec(good, []string{"v1.37.2"}); len(errs) != 0 {
		t.Fatalf("valid spec rejected: %v", errs)
	}
	cases := []struct {
		name   string
		mutate func(*NodePoolSpec)
		path   string
	}{
		{"bad name", func(s *NodePoolSpec) { s.Name = "Bad_Name" }, "name"},
		{"no hosts", func(s *NodePoolSpec) { s.Hosts = nil }, "hosts"},
		{"outside network", func(s *NodePoolSpec) { s.Hosts[0].Address = "10.9.9.9" }, "hosts[0].address"},
		{"master address", func(s *NodePoolSpec) { s.Hosts[0].Address = "172.30.0.11" }, "hosts[0].address"},
		{"bad label", func(s *NodePoolSpec) { s.Labels = map[string]string{"a b": "x"} }, "labels[a b]"},
		{"reserved taint", func(s *NodePoolSpec) { s.Taints = []Taint{{Key: phase.JoiningTaintKey, Effect: "NoSchedule"}} }, "taints[0].key"},
		{"bad effect", func(s *NodePoolSpec) { s.Taints = []Taint{{Key: "a", Effect: "Never"}} }, "taints[0].effect"},
		{"no credentials", func(s *NodePoolSpec) { s.Credentials = PoolCredentials{} }, "credentials"},
		{"version missing", func(s *NodePoolSpec) { s.Cluster.KubernetesVersion = "1.30.0" }, "cluster.kubernetes_version"},
	}
	for _, c := range cases {
		s := good
		s.Hosts = slices.Clone(good.Hosts)
		c.mutate(&s)
		errs := ValidateNodePoolSpec(s, []string{"v1.37.2"})
		if !slices.ContainsFunc(errs, func(e FieldError) bool { return e.Path == c.path }) {
			t.Errorf("%s: no error at %s: %v", c.name, c.path, errs)
		}
	}
}

// stallingFront is a TCP front for the fake API: its first stall connections are accepted and never answered
// (a master too busy to finish a TLS handshake), later ones are passed through to target.
func stallingFront(t *testing.T, target string, stall int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if n < stall {
				t.Cleanup(func() { _ = c.Close() })
				continue
			}
			go func() {
				defer func() { _ = c.Close() }()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer func() { _ = up.Close() }()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestKubeAPISendsAgainWhatNeverReachedTheAPIServer(t *testing.T) {
	log := &orderLog{}
	api := newFakeKubeAPI(t, log)
	j := api.join()
	j.Endpoint = "https://" + stallingFront(t, strings.TrimPrefix(api.srv.URL, "https://"), 2)
	client, err := newKubeAPI(context.Background(), j, api.creds(t))
	if err != nil {
		t.Fatal(err)
	}
	client.client.Transport.(*http.Transport).TLSHandshakeTimeout = 100 * time.Millisecond
	a := &poolAuthority{api: client, pool: "p", now: time.Now, tokens: map[string]string{}}
	if _, err := a.BootstrapToken(context.Background(), "w1"); err != nil {
		t.Fatalf("a POST whose first two connections timed out in the TLS handshake: %v", err)
	}
	api.mu.Lock()
	n := len(api.secrets)
	api.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d bootstrap token secrets created, want exactly 1", n)
	}

	// Only a request that cannot have reached the apiserver counts as not sent.
	for _, err := range []error{
		fmt.Errorf("POST /x: %w", &url.Error{Op: "Post", URL: "https://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}),
		errors.New(`POST /x: Post "https://x": net/http: TLS handshake timeout`),
	} {
		if !requestNotSent(err) {
			t.Errorf("requestNotSent(%v) = false", err)
		}
	}
	for _, err := range []error{
		&apiError{Code: 409, Method: "POST", Path: "/x", Message: "exists"},
		fmt.Errorf("POST /x: %w", &url.Error{Op: "Post", URL: "https://x", Err: io.ErrUnexpectedEOF}),
		fmt.Errorf("POST /x: %w", context.DeadlineExceeded),
	} {
		if requestNotSent(err) {
			t.Errorf("requestNotSent(%v) = true: the apiserver may have applied it", err)
		}
		if _, ok := err.(*apiError); ok == answerLost(err) {
			t.Errorf("answerLost(%v) = %v", err, !ok)
		}
	}
	// A refused client certificate is an answer: a GET is not tried again.
	if err := fmt.Errorf("GET /x: %w", &url.Error{Op: "Get", URL: "https://x", Err: &net.OpError{Op: "remote error", Err: tls.AlertError(42)}}); answerLost(err) {
		t.Errorf("answerLost(%v) = true", err)
	}
}
