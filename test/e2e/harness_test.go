//go:build e2e

// Package e2e holds kubesmith's end-to-end tests: real clusters on container hosts (privileged systemd
// containers reached over SSH, exactly like physical hosts) or libvirt VMs, driven by `terraform apply`. Each
// scenario prints a per-phase timing table and writes it as JSON.
package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/lab/containerhosts"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
)

// timings records how long each phase of a scenario took.
type timings struct {
	Scenario string        `json:"scenario"`
	Started  time.Time     `json:"started"`
	Phases   []phaseTiming `json:"phases"`
	Passed   bool          `json:"passed"`
}

type phaseTiming struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	OK      bool    `json:"ok"`
}

func (tm *timings) measure(t *testing.T, name string, fn func() error) {
	t.Helper()
	start := time.Now()
	t.Logf("[%s] %s ...", time.Since(tm.Started).Round(time.Second), name)
	err := fn()
	d := time.Since(start)
	tm.Phases = append(tm.Phases, phaseTiming{Name: name, Seconds: d.Seconds(), OK: err == nil})
	if err != nil {
		t.Fatalf("%s failed after %s: %v", name, d.Round(100*time.Millisecond), err)
	}
	t.Logf("[%s] %s done in %s", time.Since(tm.Started).Round(time.Second), name, d.Round(100*time.Millisecond))
}

func (tm *timings) report(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-48s %10s  %s\n", "phase ("+tm.Scenario+")", "seconds", "ok")
	for _, p := range tm.Phases {
		fmt.Fprintf(&b, "%-48s %10.1f  %v\n", p.Name, p.Seconds, p.OK)
	}
	t.Log(b.String())
	dir := reportDir(t)
	_ = os.MkdirAll(dir, 0o755)
	data, _ := json.MarshalIndent(tm, "", "  ")
	out := filepath.Join(dir, tm.Scenario+".json")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Logf("writing %s: %v", out, err)
	} else {
		t.Logf("timings written to %s", out)
	}
}

func newTimings(t *testing.T, scenario string) *timings {
	tm := &timings{Scenario: scenario, Started: time.Now()}
	t.Cleanup(func() {
		tm.Passed = !t.Failed()
		tm.report(t)
	})
	return tm
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// tfRunner runs terraform (or tofu) in one working directory with the locally installed provider.
type tfRunner struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

func newTF(t *testing.T, dir string) *tfRunner {
	bin := os.Getenv("KUBESMITH_TF")
	if bin == "" {
		bin = "terraform"
	}
	cfg := os.Getenv("TF_CLI_CONFIG_FILE")
	if cfg == "" {
		t.Fatal("TF_CLI_CONFIG_FILE is not set: run the e2e tests through `make e2e-cluster`, which installs the provider locally")
	}
	// The provider's progress events (phase, host, duration) go to a log next to the timing reports.
	logDir := reportDir(t)
	_ = os.MkdirAll(logDir, 0o755)
	logPath := filepath.Join(logDir, t.Name()+"-provider.log")
	t.Logf("provider log: %s", logPath)
	return &tfRunner{t: t, bin: bin, dir: dir, env: append(os.Environ(), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_LOG_PROVIDER=INFO", "TF_LOG_PATH="+logPath)}
}

// reportDir is where timing reports and provider logs go.
func reportDir(t *testing.T) string {
	if dir := os.Getenv("KUBESMITH_E2E_REPORT_DIR"); dir != "" {
		return dir
	}
	return filepath.Join(repoRoot(t), "test", "e2e", "reports")
}

func (r *tfRunner) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Dir = r.dir
	cmd.Env = r.env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", r.bin, strings.Join(args, " "), err, tail(out.String(), 60))
	}
	return out.String(), nil
}

// planIsEmpty runs a plan and reports whether it proposes no change.
func (r *tfRunner) planIsEmpty(ctx context.Context) (bool, string, error) {
	cmd := exec.CommandContext(ctx, r.bin, "plan", "-input=false", "-no-color", "-detailed-exitcode")
	cmd.Dir = r.dir
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
		return false, string(out), nil
	}
	if err != nil {
		return false, string(out), fmt.Errorf("plan: %w\n%s", err, tail(string(out), 40))
	}
	return true, string(out), nil
}

// emptyPlan fails when a plan proposes any change, showing the end of the plan.
func (r *tfRunner) emptyPlan(ctx context.Context) error {
	empty, out, err := r.planIsEmpty(ctx)
	if err != nil {
		return err
	}
	if !empty {
		return fmt.Errorf("plan is not empty:\n%s", planBody(out, 200))
	}
	return nil
}

// planBody is a plan's output from its list of actions on (at most n lines), where the changed attributes are.
func planBody(out string, n int) string {
	if i := strings.Index(out, "Terraform will perform the following actions"); i >= 0 {
		out = out[i:]
	} else if i := strings.Index(out, "OpenTofu will perform the following actions"); i >= 0 {
		out = out[i:]
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kubectl runs the bundle's kubectl on this machine against the cluster.
type kubectl struct {
	bin, kubeconfig string
	// requestTimeout is kubectl's --request-timeout; 20s when empty. TCG masters need more.
	requestTimeout string
	// retryTransient, when set, runs a command again while it fails only because the apiserver could not be
	// reached (a TLS handshake that took longer than client-go's fixed 10 s, a refused or reset connection), for
	// at most this long. A busy TCG master needs it; real hardware does not.
	retryTransient time.Duration
	// retryInterval is the pause between such attempts; 5 s when zero.
	retryInterval time.Duration
}

func (k kubectl) args(args []string) []string {
	rt := k.requestTimeout
	if rt == "" {
		rt = "20s"
	}
	return append([]string{"--kubeconfig", k.kubeconfig, "--request-timeout=" + rt}, args...)
}

func newKubectl(t *testing.T, kubeconfig string) kubectl {
	b, err := artifacts.Open(bundleDir())
	if err != nil {
		t.Fatalf("opening the bundle: %v", err)
	}
	var f artifacts.File
	for _, v := range b.Manifest().Versions("kubernetes") {
		if x, ok := b.Manifest().Lookup("kubernetes", "kubectl", v, "amd64"); ok {
			f = x
		}
	}
	if f.Path == "" {
		t.Fatal("the bundle has no kubectl")
	}
	p, err := b.Fetch(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return kubectl{bin: p, kubeconfig: kubeconfig}
}

func (k kubectl) run(ctx context.Context, args ...string) (string, error) {
	return k.invoke(ctx, nil, args)
}

func (k kubectl) stdin(ctx context.Context, in string, args ...string) (string, error) {
	return k.invoke(ctx, &in, args)
}

func (k kubectl) invoke(ctx context.Context, in *string, args []string) (string, error) {
	deadline := time.Now().Add(k.retryTransient)
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, k.bin, k.args(args)...)
		if in != nil {
			cmd.Stdin = strings.NewReader(*in)
		}
		b, err := cmd.CombinedOutput()
		out := string(b)
		if err == nil {
			return out, nil
		}
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, tail(out, 20))
		if k.retryTransient == 0 || !phase.KubectlUnreachable(out) || time.Now().After(deadline) {
			if attempt > 1 {
				err = fmt.Errorf("attempt %d: %w", attempt, err)
			}
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(cmp.Or(k.retryInterval, 5*time.Second)):
		}
	}
}

// eventually retries fn every interval until it succeeds or the timeout passes.
func eventually(ctx context.Context, timeout, interval time.Duration, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		if last = fn(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func bundleDir() string {
	if d := os.Getenv("KUBESMITH_BUNDLE"); d != "" {
		return d
	}
	return engine.DefaultBundleDir()
}

// labNodes brings up count container hosts named prefix-N, removing any left from an earlier run, and
// registers their removal.
func labNodes(t *testing.T, ctx context.Context, l *containerhosts.Lab, prefix string, addrs []string) []containerhosts.Node {
	t.Helper()
	if err := l.Down(ctx, prefix); err != nil {
		t.Fatalf("removing leftovers: %v", err)
	}
	nodes, err := l.Up(ctx, containerhosts.Spec{Prefix: prefix, Count: len(addrs), Addresses: addrs})
	if err != nil {
		t.Fatalf("container hosts: %v", err)
	}
	t.Cleanup(func() {
		if os.Getenv("KUBESMITH_E2E_KEEP") != "" {
			t.Logf("KUBESMITH_E2E_KEEP set: leaving %s-* running", prefix)
			return
		}
		c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := l.Down(c, prefix); err != nil {
			t.Errorf("removing %s-*: %v", prefix, err)
		}
	})
	return nodes
}

func newLab(t *testing.T) *containerhosts.Lab {
	l, err := containerhosts.New(containerhosts.Config{Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// echoImage is the reference of the bundle's echo image.
func echoImage(t *testing.T) string {
	t.Helper()
	b, err := artifacts.Open(bundleDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range b.Manifest().Files {
		if f.Kind == "image" && f.Name == "echo" {
			return f.Image
		}
	}
	t.Fatal("the bundle has no echo image")
	return ""
}

// snapshotAll takes the pre-install snapshot of every node.
func snapshotAll(ctx context.Context, l *containerhosts.Lab, nodes []containerhosts.Node) (map[string]containerhosts.Snapshot, error) {
	out := map[string]containerhosts.Snapshot{}
	for _, n := range nodes {
		s, err := l.Snapshot(ctx, n.Name)
		if err != nil {
			return nil, err
		}
		out[n.Name] = s
	}
	return out, nil
}

// sameAsBefore reports every difference between the nodes now and their snapshots in before.
func sameAsBefore(ctx context.Context, l *containerhosts.Lab, nodes []containerhosts.Node, before map[string]containerhosts.Snapshot) error {
	var problems []string
	for _, n := range nodes {
		after, err := l.Snapshot(ctx, n.Name)
		if err != nil {
			return err
		}
		for _, d := range containerhosts.Diff(before[n.Name], after) {
			problems = append(problems, n.Name+": "+d)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("hosts differ after destroy:\n%s", strings.Join(problems, "\n"))
	}
	return nil
}

// rogueCSRStaysPending submits a kubelet client CSR for a name no pool planned, made with a bootstrap token of
// kubesmith's bootstrap group, runs apply (which approves the pools' own CSRs) and checks that it stays pending.
func rogueCSRStaysPending(ctx context.Context, k kubectl, dir string, apply func() error) error {
	// A joining kubelet's identity: a bootstrap token in kubesmith's bootstrap group. Such a requester has no
	// nodeclient auto-approval, so only kubesmith could approve its CSR, and kubesmith approves planned names only.
	secret := `apiVersion: v1
kind: Secret
metadata: {name: bootstrap-token-rogue1, namespace: kube-system}
type: bootstrap.kubernetes.io/token
stringData:
  token-id: rogue1
  token-secret: 0123456789abcdef
  usage-bootstrap-authentication: "true"
  auth-extra-groups: system:bootstrappers:kubesmith
`
	if _, err := k.stdin(ctx, secret, "apply", "-f", "-"); err != nil {
		return err
	}
	csr := `apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: rogue-node}
spec:
  request: ` + rogueCSR + `
  signerName: kubernetes.io/kube-apiserver-client-kubelet
  usages: [digital signature, client auth]
`
	server, err := k.run(ctx, "config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.server}")
	if err != nil {
		return err
	}
	ca, err := k.run(ctx, "config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}")
	if err != nil {
		return err
	}
	tokenKC := filepath.Join(dir, "rogue.kubeconfig")
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: %q, certificate-authority-data: %q}}]\n"+
		"users: [{name: u, user: {token: rogue1.0123456789abcdef}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n", server, ca)
	if err := os.WriteFile(tokenKC, []byte(kc), 0o600); err != nil {
		return err
	}
	kt := kubectl{bin: k.bin, kubeconfig: tokenKC}
	if _, err := kt.stdin(ctx, csr, "create", "--validate=false", "-f", "-"); err != nil {
		return err
	}
	// Another apply of the pool (which approves its own nodes' CSRs) must leave it alone.
	if err := apply(); err != nil {
		return err
	}
	out, err := k.run(ctx, "get", "csr", "rogue-node", "--no-headers")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Pending") {
		return fmt.Errorf("rogue CSR is not pending: %s", out)
	}
	return nil
}
