package phase_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/render"
)

// fakeAuthority issues serving certificates with the cluster CA, as the controller manager does for an approved
// kubelet-serving CSR, and counts what it was asked for.
type fakeAuthority struct {
	ca      pki.KeyPair
	now     time.Time
	serving int
	tokens  int
}

func (a *fakeAuthority) ServingCertificate(_ context.Context, name string, ip net.IP) (pki.KeyPair, error) {
	a.serving++
	return pki.Issue(a.ca, pki.KubeletServingRequest(name, []net.IP{ip}), a.now)
}

func (a *fakeAuthority) BootstrapToken(context.Context, string) (string, error) {
	return "abcdef.0123456789abcdef", nil
}
func (a *fakeAuthority) ApproveNodeClient(context.Context, string) (int, error) { return 0, nil }
func (a *fakeAuthority) NodeUID(context.Context, string) (string, error)        { return "uid-1", nil }

func (a *fakeAuthority) AgentToken(_ context.Context, agent, _ string) (string, error) {
	a.tokens++
	return testToken("uid-1", a.now.Add(365*24*time.Hour)), nil
}

func testToken(uid string, exp time.Time) string {
	claims, _ := json.Marshal(map[string]any{"exp": exp.Unix(), "kubernetes.io": map[string]any{"node": map[string]string{"name": "w1", "uid": uid}}})
	return "h." + base64.RawURLEncoding.EncodeToString(claims) + ".s"
}

func TestWorkerFilesUseNoCAKeyAndKeepValidCredentials(t *testing.T) {
	fx := newInstallFixture(t)
	ctx := context.Background()
	auth := &fakeAuthority{ca: fx.c.CAs.Cluster, now: fx.now}
	// The pool sees the CA certificate only.
	fx.c.CAs = pki.ClusterCAs{Cluster: pki.KeyPair{CertPEM: fx.c.CAs.Cluster.CertPEM}}
	h := fx.sim.Hosts()[0]
	tg := &phase.Target{Name: "w1", Address: h.Addr, Role: phase.RoleWorker, Runner: h.Fake, Facts: fx.c.Masters[0].Facts}
	files, err := fx.c.WorkerFiles(ctx, tg, auth)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, f := range files {
		got[f.Path] = f.Data
		if strings.HasSuffix(f.Path, "ca.key") || strings.Contains(f.Path, "/etcd/") || strings.Contains(f.Path, "apiserver") {
			t.Errorf("worker gets master file %s", f.Path)
		}
	}
	if auth.serving != 1 {
		t.Errorf("serving certificates requested: %d", auth.serving)
	}
	if !strings.Contains(string(got[render.PathKubeletUnit]), "--bootstrap-kubeconfig=") {
		t.Errorf("kubelet unit without TLS bootstrap:\n%s", got[render.PathKubeletUnit])
	}
	if !strings.Contains(string(got[render.PathKubeletConfig]), phase.JoiningTaintKey) {
		t.Errorf("kubelet config without the joining taint:\n%s", got[render.PathKubeletConfig])
	}
	// A second plan keeps the certificate found on the host.
	if _, err := phase.SyncFiles(ctx, h.Fake, files); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.c.WorkerFiles(ctx, tg, auth); err != nil {
		t.Fatal(err)
	}
	if auth.serving != 1 {
		t.Errorf("a valid serving certificate was replaced (%d requests)", auth.serving)
	}
	agents, err := fx.c.AgentFiles(ctx, tg, auth)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := phase.SyncFiles(ctx, h.Fake, agents); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.c.AgentFiles(ctx, tg, auth); err != nil {
		t.Fatal(err)
	}
	if auth.tokens != 2 {
		t.Errorf("agent tokens requested %d times, want 2 (kept on the second run)", auth.tokens)
	}
}

func TestTokenUsable(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name  string
		token string
		want  bool
	}{
		{"valid", testToken("uid-1", now.Add(100*24*time.Hour)), true},
		{"other node", testToken("uid-2", now.Add(100*24*time.Hour)), false},
		{"expiring", testToken("uid-1", now.Add(24*time.Hour)), false},
		{"not a JWT", "abc", false},
	} {
		if got := phase.TokenUsable(c.token, "uid-1", now); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}
