package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// newTestCAs generates a fresh set of cluster CAs at testNow.
func newTestCAs(t *testing.T) ClusterCAs {
	t.Helper()
	cas, err := NewClusterCAs(testNow)
	if err != nil {
		t.Fatalf("NewClusterCAs: %v", err)
	}
	return cas
}

func mustParse(t *testing.T, kp KeyPair) *x509.Certificate {
	t.Helper()
	cert, _, err := ParseKeyPair(kp)
	if err != nil {
		t.Fatalf("ParseKeyPair: %v", err)
	}
	return cert
}

func ips(ss ...string) []net.IP {
	var out []net.IP
	for _, s := range ss {
		out = append(out, net.ParseIP(s))
	}
	return out
}

func ipStrings(in []net.IP) []string {
	var out []string
	for _, ip := range in {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

func TestNewCA(t *testing.T) {
	ca, err := NewCA("test-ca", CAValidity, testNow)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ParseKeyPair(ca)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		t.Error("CA certificate is not marked as CA")
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 || cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		t.Errorf("CA key usage %b lacks certSign/cRLSign", cert.KeyUsage)
	}
	if got, want := cert.NotAfter, testNow.Add(CAValidity); !got.Equal(want) {
		t.Errorf("NotAfter = %s, want %s", got, want)
	}
	if got, want := cert.NotBefore, testNow.Add(-Backdate); !got.Equal(want) {
		t.Errorf("NotBefore = %s, want %s", got, want)
	}
	if len(cert.SubjectKeyId) == 0 {
		t.Error("CA has no subject key ID")
	}
	ec, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", key.Public())
	}
	if !strings.Contains(string(ca.KeyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Error("CA key is not PKCS #8 PEM")
	}
	// Self-signed: verifies against itself.
	if err := Verify(ca, ca.CertPEM, x509.ExtKeyUsageAny, testNow); err != nil {
		t.Errorf("self verification: %v", err)
	}
	if _, err := NewCA("", CAValidity, testNow); err == nil {
		t.Error("NewCA with empty CN succeeded")
	}
	if _, err := NewCA("x", 0, testNow); err == nil {
		t.Error("NewCA with zero validity succeeded")
	}
}

func TestClusterCAs(t *testing.T) {
	cas := newTestCAs(t)
	if err := cas.Validate(testNow); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for name, kp := range map[string]KeyPair{ClusterCAName: cas.Cluster, EtcdCAName: cas.Etcd, FrontProxyCAName: cas.FrontProxy} {
		cert := mustParse(t, kp)
		if cert.Subject.CommonName != name {
			t.Errorf("CA CN = %q, want %q", cert.Subject.CommonName, name)
		}
		if got, want := cert.NotAfter.Sub(testNow), 10*365*24*time.Hour; got != want {
			t.Errorf("%s validity = %s, want %s", name, got, want)
		}
	}
	if err := cas.Validate(testNow.Add(CAValidity + time.Hour)); err == nil {
		t.Error("Validate accepted expired CAs")
	}
	swapped := cas
	swapped.Etcd = cas.Cluster
	if err := swapped.Validate(testNow); err == nil || !strings.Contains(err.Error(), "same certificate") {
		t.Errorf("Validate with duplicated CA: %v", err)
	}
	mismatched := cas
	mismatched.Cluster.KeyPEM = cas.Etcd.KeyPEM
	if err := mismatched.Validate(testNow); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Validate with mismatched key: %v", err)
	}
}

func TestServiceAccountKey(t *testing.T) {
	k, err := NewServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	signer, err := ParsePrivateKey(k.PrivatePEM)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := signer.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != ServiceAccountKeyBits {
		t.Fatalf("service-account key is %T, want RSA %d", signer, ServiceAccountKeyBits)
	}
	other, err := NewServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := (SAKey{PublicPEM: other.PublicPEM, PrivatePEM: k.PrivatePEM}).Validate(); err == nil {
		t.Error("mismatched service-account halves validated")
	}
}

func TestEncryptionKey(t *testing.T) {
	a, b := NewEncryptionKey(), NewEncryptionKey()
	if a == b {
		t.Fatal("two encryption keys are equal")
	}
	raw, err := base64.StdEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("key %q decodes to %d bytes (%v), want 32", a, len(raw), err)
	}
	if err := ValidateEncryptionKey(a); err != nil {
		t.Error(err)
	}
	if err := ValidateEncryptionKey(base64.StdEncoding.EncodeToString(make([]byte, 16))); err == nil {
		t.Error("16-byte key validated")
	}
}

func TestAPIServerCert(t *testing.T) {
	cas := newTestCAs(t)
	vip := net.ParseIP("172.30.0.250")
	masters := ips("172.30.0.11", "172.30.0.12", "172.30.0.13")
	names := []string{"m1", "m2", "m3"}
	svc, err := KubernetesServiceIP("10.96.0.0/12")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := APIServerCert(cas.Cluster, vip, masters, names, svc, []string{"api.example.test", "192.0.2.7"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	cert := mustParse(t, kp)
	wantDNS := []string{
		"api.example.test", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "localhost", "m1", "m2", "m3",
	}
	gotDNS := slices.Clone(cert.DNSNames)
	slices.Sort(gotDNS)
	if !slices.Equal(gotDNS, wantDNS) {
		t.Errorf("DNS SANs = %v, want %v", gotDNS, wantDNS)
	}
	wantIPs := []string{"10.96.0.1", "127.0.0.1", "172.30.0.11", "172.30.0.12", "172.30.0.13", "172.30.0.250", "192.0.2.7"}
	if got := ipStrings(cert.IPAddresses); !slices.Equal(got, wantIPs) {
		t.Errorf("IP SANs = %v, want %v", got, wantIPs)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ext key usage = %v, want serverAuth only", cert.ExtKeyUsage)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage = %b, want digitalSignature", cert.KeyUsage)
	}
	if cert.IsCA {
		t.Error("leaf is a CA")
	}
	if got := cert.NotAfter.Sub(testNow); got != LeafValidity {
		t.Errorf("validity = %s, want %s", got, LeafValidity)
	}
	// Chains to the cluster CA and to nothing else; the hostname checks that TLS clients do pass.
	if err := Verify(cas.Cluster, kp.CertPEM, x509.ExtKeyUsageServerAuth, testNow); err != nil {
		t.Error(err)
	}
	if err := Verify(cas.Etcd, kp.CertPEM, x509.ExtKeyUsageServerAuth, testNow); err == nil {
		t.Error("apiserver certificate verified against the etcd CA")
	}
	for _, h := range []string{"172.30.0.250", "10.96.0.1", "kubernetes.default.svc", "m2", "127.0.0.1"} {
		if err := cert.VerifyHostname(h); err != nil {
			t.Errorf("VerifyHostname(%s): %v", h, err)
		}
	}
	if err := Covers(cas.Cluster, kp.CertPEM, APIServerRequest(vip, masters, names, svc, nil), testNow); err != nil {
		t.Errorf("Covers(same masters): %v", err)
	}
	moreMasters := append(slices.Clone(masters), net.ParseIP("172.30.0.14"))
	if err := Covers(cas.Cluster, kp.CertPEM, APIServerRequest(vip, moreMasters, names, svc, nil), testNow); err == nil {
		t.Error("Covers accepted a certificate that lacks a new master's IP")
	}
	if _, err := APIServerCert(cas.Cluster, nil, masters, names, svc, nil, testNow); err == nil {
		t.Error("APIServerCert without VIP succeeded")
	}
}

func TestLeafUsagesAndChains(t *testing.T) {
	cas := newTestCAs(t)
	nodeIP := ips("172.30.0.21")
	type leaf struct {
		name       string
		issue      func() (KeyPair, error)
		ca         KeyPair
		cn         string
		org        []string
		server     bool
		client     bool
		dns        []string
		ips        []string
		validity   time.Duration
		wrongCAs   []KeyPair
		notMasters bool
	}
	leaves := []leaf{
		{
			name: "etcd server", issue: func() (KeyPair, error) { return EtcdServerCert(cas.Etcd, "m1", net.ParseIP("172.30.0.11"), testNow) },
			ca: cas.Etcd, cn: "m1", server: true, client: true, dns: []string{"localhost", "m1"},
			ips: []string{"127.0.0.1", "172.30.0.11", "::1"}, validity: LeafValidity, wrongCAs: []KeyPair{cas.Cluster},
		},
		{
			name: "etcd peer", issue: func() (KeyPair, error) { return EtcdPeerCert(cas.Etcd, "m2", net.ParseIP("172.30.0.12"), testNow) },
			ca: cas.Etcd, cn: "m2", server: true, client: true, dns: []string{"localhost", "m2"},
			ips: []string{"127.0.0.1", "172.30.0.12", "::1"}, validity: LeafValidity, wrongCAs: []KeyPair{cas.Cluster},
		},
		{
			name: "apiserver etcd client", issue: func() (KeyPair, error) { return EtcdClientCert(cas.Etcd, UserAPIServerEtcdClient, testNow) },
			ca: cas.Etcd, cn: "kube-apiserver-etcd-client", client: true, validity: LeafValidity, wrongCAs: []KeyPair{cas.Cluster},
		},
		{
			name: "etcd healthcheck", issue: func() (KeyPair, error) { return EtcdClientCert(cas.Etcd, UserEtcdHealthcheck, testNow) },
			ca: cas.Etcd, cn: "kube-etcd-healthcheck-client", client: true, validity: LeafValidity,
		},
		{
			name: "apiserver kubelet client", issue: func() (KeyPair, error) { return APIServerKubeletClientCert(cas.Cluster, testNow) },
			ca: cas.Cluster, cn: "kube-apiserver-kubelet-client", client: true, validity: LeafValidity, notMasters: true,
		},
		{
			name: "front proxy client", issue: func() (KeyPair, error) { return FrontProxyClientCert(cas.FrontProxy, testNow) },
			ca: cas.FrontProxy, cn: "front-proxy-client", client: true, validity: LeafValidity, wrongCAs: []KeyPair{cas.Cluster},
		},
		{
			name: "kubelet serving", issue: func() (KeyPair, error) { return KubeletServingCert(cas.Cluster, "w1", nodeIP, testNow) },
			ca: cas.Cluster, cn: "system:node:w1", org: []string{"system:nodes"}, server: true, dns: []string{"w1"},
			ips: []string{"172.30.0.21"}, validity: LeafValidity, notMasters: true,
		},
		{
			name: "node client", issue: func() (KeyPair, error) { return NodeClientCert(cas.Cluster, "w1", testNow) },
			ca: cas.Cluster, cn: "system:node:w1", org: []string{"system:nodes"}, client: true, validity: LeafValidity, notMasters: true,
		},
		{
			name: "admin", issue: func() (KeyPair, error) { return AdminCert(cas.Cluster, 2*time.Hour, testNow) },
			ca: cas.Cluster, cn: "kubesmith-admin", org: []string{"system:masters"}, client: true, validity: 2 * time.Hour,
		},
		{
			name: "controller manager", issue: func() (KeyPair, error) { return ControllerManagerCert(cas.Cluster, testNow) },
			ca: cas.Cluster, cn: "system:kube-controller-manager", client: true, validity: LeafValidity, notMasters: true,
		},
		{
			name: "scheduler", issue: func() (KeyPair, error) { return SchedulerCert(cas.Cluster, testNow) },
			ca: cas.Cluster, cn: "system:kube-scheduler", client: true, validity: LeafValidity, notMasters: true,
		},
		{
			name: "kube-proxy", issue: func() (KeyPair, error) { return KubeProxyCert(cas.Cluster, testNow) },
			ca: cas.Cluster, cn: "system:kube-proxy", client: true, validity: LeafValidity, notMasters: true,
		},
		{
			name: "pool manager", issue: func() (KeyPair, error) { return PoolManagerCert(cas.Cluster, "demo", testNow) },
			ca: cas.Cluster, cn: "kubesmith:pool-manager:demo", org: []string{"kubesmith:pool-managers"}, client: true,
			validity: LeafValidity, notMasters: true, wrongCAs: []KeyPair{cas.Etcd, cas.FrontProxy},
		},
		{
			name: "flannel", issue: func() (KeyPair, error) { return FlannelCert(cas.Cluster, testNow) },
			ca: cas.Cluster, cn: "kubesmith:flannel", client: true, validity: LeafValidity, notMasters: true,
		},
	}
	for _, l := range leaves {
		t.Run(l.name, func(t *testing.T) {
			kp, err := l.issue()
			if err != nil {
				t.Fatal(err)
			}
			cert := mustParse(t, kp)
			if cert.Subject.CommonName != l.cn {
				t.Errorf("CN = %q, want %q", cert.Subject.CommonName, l.cn)
			}
			if !slices.Equal(cert.Subject.Organization, l.org) {
				t.Errorf("O = %q, want %q", cert.Subject.Organization, l.org)
			}
			if l.notMasters && slices.Contains(cert.Subject.Organization, GroupMasters) {
				t.Errorf("%s is in system:masters", l.cn)
			}
			var wantEKU []x509.ExtKeyUsage
			if l.server {
				wantEKU = append(wantEKU, x509.ExtKeyUsageServerAuth)
			}
			if l.client {
				wantEKU = append(wantEKU, x509.ExtKeyUsageClientAuth)
			}
			if !slices.Equal(cert.ExtKeyUsage, wantEKU) {
				t.Errorf("ext key usage = %v, want %v", cert.ExtKeyUsage, wantEKU)
			}
			if cert.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("key usage = %b, want digitalSignature only", cert.KeyUsage)
			}
			gotDNS := slices.Clone(cert.DNSNames)
			slices.Sort(gotDNS)
			if !slices.Equal(gotDNS, l.dns) {
				t.Errorf("DNS SANs = %v, want %v", gotDNS, l.dns)
			}
			if got := ipStrings(cert.IPAddresses); !slices.Equal(got, l.ips) {
				t.Errorf("IP SANs = %v, want %v", got, l.ips)
			}
			if got := cert.NotAfter.Sub(testNow); got != l.validity {
				t.Errorf("validity = %s, want %s", got, l.validity)
			}
			exp, err := Expiry(kp.CertPEM)
			if err != nil || !exp.Equal(testNow.Add(l.validity)) {
				t.Errorf("Expiry = %s, %v", exp, err)
			}
			for _, eku := range wantEKU {
				if err := Verify(l.ca, kp.CertPEM, eku, testNow); err != nil {
					t.Errorf("verify %v: %v", eku, err)
				}
			}
			if !l.server {
				if err := Verify(l.ca, kp.CertPEM, x509.ExtKeyUsageServerAuth, testNow); err == nil {
					t.Error("client-only certificate verified for serverAuth")
				}
			}
			if !l.client {
				if err := Verify(l.ca, kp.CertPEM, x509.ExtKeyUsageClientAuth, testNow); err == nil {
					t.Error("server-only certificate verified for clientAuth")
				}
			}
			for _, wrong := range l.wrongCAs {
				if err := Verify(wrong, kp.CertPEM, wantEKU[0], testNow); err == nil {
					t.Error("verified against the wrong CA")
				}
			}
			if err := Verify(l.ca, kp.CertPEM, wantEKU[0], testNow.Add(l.validity+time.Minute)); err == nil {
				t.Error("verified after expiry")
			}
			// The pair loads as a TLS certificate, as Go-based components will load it.
			if _, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM); err != nil {
				t.Errorf("tls.X509KeyPair: %v", err)
			}
		})
	}
}

func TestPoolManagerIsRestricted(t *testing.T) {
	req := PoolManagerRequest("demo")
	if slices.Contains(req.Organization, GroupMasters) {
		t.Fatal("pool manager request is in system:masters")
	}
	if req.CommonName != "kubesmith:pool-manager:demo" || !slices.Equal(req.Organization, []string{"kubesmith:pool-managers"}) {
		t.Errorf("pool manager subject = %q %q", req.CommonName, req.Organization)
	}
	if req.Server {
		t.Error("pool manager certificate has server usage")
	}
	if _, err := PoolManagerCert(newTestCAs(t).Cluster, "", testNow); err == nil {
		t.Error("pool manager certificate without cluster name succeeded")
	}
}

func TestIssueClipsToCAExpiry(t *testing.T) {
	ca, err := NewCA("short", 24*time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := Issue(ca, Request{CommonName: "x", Client: true, Validity: LeafValidity}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := Expiry(kp.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if want := testNow.Add(24 * time.Hour); !exp.Equal(want) {
		t.Errorf("leaf expiry = %s, want CA expiry %s", exp, want)
	}
	if _, err := Issue(ca, Request{CommonName: "x", Client: true, Validity: time.Hour}, testNow.Add(48*time.Hour)); err == nil {
		t.Error("issued with an expired CA")
	}
}

func TestIssueRejects(t *testing.T) {
	cas := newTestCAs(t)
	leaf, err := FlannelCert(cas.Cluster, testNow)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		ca  KeyPair
		req Request
	}{
		"no CN":           {cas.Cluster, Request{Client: true, Validity: time.Hour}},
		"no usage":        {cas.Cluster, Request{CommonName: "x", Validity: time.Hour}},
		"server w/o SANs": {cas.Cluster, Request{CommonName: "x", Server: true, Validity: time.Hour}},
		"zero validity":   {cas.Cluster, Request{CommonName: "x", Client: true}},
		"leaf as CA":      {leaf, Request{CommonName: "x", Client: true, Validity: time.Hour}},
		"mismatched CA":   {KeyPair{CertPEM: cas.Cluster.CertPEM, KeyPEM: cas.Etcd.KeyPEM}, Request{CommonName: "x", Client: true, Validity: time.Hour}},
	}
	for name, c := range cases {
		if _, err := Issue(c.ca, c.req, testNow); err == nil {
			t.Errorf("%s: Issue succeeded", name)
		}
	}
}

func TestFingerprint(t *testing.T) {
	cas := newTestCAs(t)
	fp, err := Fingerprint(cas.Cluster.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if len(fp) != 64 || strings.ToLower(fp) != fp {
		t.Errorf("fingerprint %q is not 64 lowercase hex digits", fp)
	}
	again, _ := Fingerprint(cas.Cluster.CertPEM)
	other, _ := Fingerprint(cas.Etcd.CertPEM)
	if fp != again || fp == other {
		t.Errorf("fingerprints: same=%q/%q other=%q", fp, again, other)
	}
	if _, err := Fingerprint([]byte("garbage")); err == nil {
		t.Error("fingerprint of garbage succeeded")
	}
}

func TestParsePrivateKeyFormats(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(signer.Public()) {
		t.Error("SEC 1 key round trip changed the key")
	}
	if _, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "DSA PRIVATE KEY", Bytes: []byte{1}})); err == nil {
		t.Error("unsupported PEM type accepted")
	}
}

func TestNthIP(t *testing.T) {
	cases := []struct {
		cidr string
		n    int
		want string
		err  bool
	}{
		{"10.96.0.0/12", 1, "10.96.0.1", false},
		{"10.96.0.0/12", 10, "10.96.0.10", false},
		{"10.96.5.7/12", 1, "10.96.0.1", false},
		{"10.0.0.0/30", 4, "", true},
		{"fd00::/108", 10, "fd00::a", false},
		{"bogus", 1, "", true},
	}
	for _, c := range cases {
		got, err := NthIP(c.cidr, c.n)
		if (err != nil) != c.err || (err == nil && got.String() != c.want) {
			t.Errorf("NthIP(%s, %d) = %v, %v; want %s (err %v)", c.cidr, c.n, got, err, c.want, c.err)
		}
	}
}

func TestKubeconfigRoundTrip(t *testing.T) {
	cas := newTestCAs(t)
	admin, err := AdminCert(cas.Cluster, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Kubeconfig("https://172.30.0.250:6443", cas.Cluster.CertPEM, UserAdmin, admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"apiVersion: v1", "kind: Config", "current-context: kubesmith-admin@kubernetes",
		"server: https://172.30.0.250:6443", "certificate-authority-data: ", "client-certificate-data: ", "client-key-data: ",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("kubeconfig lacks %q:\n%s", want, data)
		}
	}
	spec, err := ParseKubeconfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Server != "https://172.30.0.250:6443" || spec.User != UserAdmin || spec.Cluster != DefaultKubeconfigCluster {
		t.Errorf("parsed spec = %+v", spec)
	}
	if !bytes.Equal(spec.CAPEM, cas.Cluster.CertPEM) || !bytes.Equal(spec.Client.CertPEM, admin.CertPEM) ||
		!bytes.Equal(spec.Client.KeyPEM, admin.KeyPEM) {
		t.Error("credentials changed in the round trip")
	}
	// The embedded credentials work as a TLS client identity trusted by the CA.
	if _, err := tls.X509KeyPair(spec.Client.CertPEM, spec.Client.KeyPEM); err != nil {
		t.Error(err)
	}

	tok, err := TokenKubeconfig("https://172.30.0.250:6443", cas.Cluster.CertPEM, "tls-bootstrap-token-user", "abcdef.0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	tspec, err := ParseKubeconfig(tok)
	if err != nil {
		t.Fatal(err)
	}
	if tspec.Token != "abcdef.0123456789abcdef" || len(tspec.Client.CertPEM) != 0 {
		t.Errorf("token kubeconfig parsed as %+v", tspec)
	}
	if strings.Contains(string(tok), "client-key-data") {
		t.Error("token kubeconfig carries an empty client key field")
	}
}

func TestKubeconfigRejects(t *testing.T) {
	cas := newTestCAs(t)
	admin, err := AdminCert(cas.Cluster, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	bad := []KubeconfigSpec{
		{Cluster: "c", Server: "http://x:6443", CAPEM: cas.Cluster.CertPEM, User: "u", Client: admin},
		{Cluster: "c", Server: "https://x:6443", CAPEM: []byte("nope"), User: "u", Client: admin},
		{Cluster: "c", Server: "https://x:6443", CAPEM: cas.Cluster.CertPEM, User: "u"},
		{Cluster: "c", Server: "https://x:6443", CAPEM: cas.Cluster.CertPEM, User: "u", Client: admin, Token: "t"},
		{Cluster: "c", Server: "https://x:6443", CAPEM: cas.Cluster.CertPEM, User: "u", Client: KeyPair{CertPEM: admin.CertPEM, KeyPEM: cas.Etcd.KeyPEM}},
		{Cluster: "", Server: "https://x:6443", CAPEM: cas.Cluster.CertPEM, User: "u", Token: "t"},
	}
	for i, s := range bad {
		if _, err := s.Marshal(); err == nil {
			t.Errorf("case %d: Marshal succeeded", i)
		}
	}
	if _, err := ParseKubeconfig([]byte("apiVersion: v1\nkind: Config\ncurrent-context: nope\n")); err == nil {
		t.Error("ParseKubeconfig accepted a missing context")
	}
}
