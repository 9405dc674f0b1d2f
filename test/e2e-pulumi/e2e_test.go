//go:build e2e

// Package e2epulumi runs kubesmith's Pulumi package end to end on container hosts: the same 1-master + 1-worker
// cluster first through the Go SDK (an Automation API inline program calling examples/pulumi-go/ha.Deploy), then
// through the Pulumi YAML example. Each run checks that both nodes are Ready, that the admin kubeconfig and the
// cluster's keys are Pulumi secrets, that refresh and a preview find no changes, and destroys the cluster.
//
// Run it with `make e2e-pulumi` (hack/e2e-pulumi.sh), which builds the tools and brings up the hosts.
package e2epulumi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kubesmith/terraform-provider-kubesmith/examples/pulumi-go/ha"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
	"github.com/kubesmith/terraform-provider-kubesmith/sdk/go/kubesmith"
)

const (
	kubernetesVersion = "1.37.2"
	nodeNetwork       = "172.30.0.0/24"
	// secretSig marks an encrypted secret in a Pulumi deployment.
	secretSig = "4dabf18193072939515e22adb298388d"
)

// labHosts is what `kslab hosts up --json` writes.
type labHosts struct {
	ClientKey string `json:"client_key"`
	Nodes     []struct {
		Name          string `json:"name"`
		Address       string `json:"address"`
		HostPublicKey string `json:"host_public_key"`
	} `json:"nodes"`
}

// env is everything hack/e2e-pulumi.sh prepares.
type env struct {
	cliRoot, yamlDir, pluginDir, bundle, vip string
	hosts                                    labHosts
	kubectl                                  string
}

func loadEnv(t *testing.T) env {
	t.Helper()
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			t.Fatalf("%s is not set: run the Pulumi e2e through `make e2e-pulumi`", name)
		}
		return v
	}
	e := env{
		cliRoot: get("KUBESMITH_PULUMI_ROOT"), yamlDir: get("KUBESMITH_PULUMI_YAML_DIR"),
		pluginDir: get("KUBESMITH_PULUMI_PLUGIN_DIR"), bundle: get("KUBESMITH_BUNDLE"), vip: get("KUBESMITH_PULUMI_VIP"),
	}
	data, err := os.ReadFile(get("KUBESMITH_PULUMI_HOSTS"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &e.hosts); err != nil {
		t.Fatalf("parsing the hosts JSON: %v", err)
	}
	if len(e.hosts.Nodes) != 2 {
		t.Fatalf("%d container hosts, want 2", len(e.hosts.Nodes))
	}
	e.kubectl = bundleKubectl(t, e.bundle)
	return e
}

// bundleKubectl is the bundle's kubectl for this machine.
func bundleKubectl(t *testing.T, dir string) string {
	t.Helper()
	b, err := artifacts.Open(dir)
	if err != nil {
		t.Fatalf("opening the bundle: %v", err)
	}
	f, ok := b.Manifest().Lookup("kubernetes", "kubectl", "v"+kubernetesVersion, "amd64")
	if !ok {
		t.Fatalf("the bundle has no kubectl v%s", kubernetesVersion)
	}
	p, err := b.Fetch(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e env) masters() []ha.Host { return []ha.Host{e.host(0)} }
func (e env) workers() []ha.Host { return []ha.Host{e.host(1)} }

func (e env) host(i int) ha.Host {
	n := e.hosts.Nodes[i]
	return ha.Host{Name: n.Name, Address: n.Address, HostPublicKey: n.HostPublicKey}
}

// workspaceOptions are the options every stack uses: the built CLI, a private PULUMI_HOME, the passphrase
// secrets provider and no plugin lookups outside the configured folders.
func (e env) workspaceOptions(t *testing.T) []auto.LocalWorkspaceOption {
	t.Helper()
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: e.cliRoot, SkipVersionCheck: true})
	if err != nil {
		t.Fatalf("the Pulumi CLI in %s: %v", e.cliRoot, err)
	}
	return []auto.LocalWorkspaceOption{
		auto.Pulumi(cmd),
		auto.PulumiHome(t.TempDir()),
		auto.SecretsProvider("passphrase"),
		auto.EnvVars(map[string]string{
			"PULUMI_CONFIG_PASSPHRASE":                    "kubesmith-e2e",
			"PULUMI_SKIP_UPDATE_CHECK":                    "1",
			"PULUMI_IGNORE_AMBIENT_PLUGINS":               "1",
			"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "1",
		}),
	}
}

func (e env) plugins(withYAML bool) *workspace.Plugins {
	p := &workspace.Plugins{Providers: []workspace.PluginOptions{{Name: "kubesmith", Path: e.pluginDir}}}
	if withYAML {
		p.Languages = []workspace.PluginOptions{{Name: "yaml", Path: e.yamlDir}}
	}
	return p
}

func TestPulumi(t *testing.T) {
	e := loadEnv(t)
	tm := newTimings(t, "e2e-pulumi")
	t.Run("go", func(t *testing.T) { testGo(t, e, tm) })
	t.Run("yaml", func(t *testing.T) { testYAML(t, e, tm) })
}

// testGo runs examples/pulumi-go's topology through an Automation API inline program.
func testGo(t *testing.T, e env, tm *timings) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	dir := t.TempDir()
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	program := func(pctx *pulumi.Context) error {
		prov, err := kubesmith.NewProvider(pctx, "lab", &kubesmith.ProviderArgs{
			Ssh:       &kubesmith.ProviderSshArgs{User: pulumi.String("root"), PrivateKeyPath: pulumi.String(e.hosts.ClientKey)},
			Artifacts: &kubesmith.ProviderArtifactsArgs{Bundle: pulumi.String(e.bundle)},
		})
		if err != nil {
			return err
		}
		res, err := ha.Deploy(pctx, ha.Config{
			Name: "pulumigo", KubernetesVersion: kubernetesVersion, NodeNetwork: nodeNetwork, APIVIP: e.vip,
			Masters: e.masters(), Workers: e.workers(), Labels: map[string]string{"tier": "general"},
			KubeconfigPath: kubeconfigPath,
		}, pulumi.Provider(prov))
		if err != nil {
			return err
		}
		pctx.Export("apiEndpoint", res.Cluster.ApiEndpoint)
		pctx.Export("kubeconfig", res.Kubeconfig)
		pctx.Export("poolCredentials", res.Cluster.PoolCredentials)
		pctx.Export("workerAddresses", res.Pool.Addresses)
		return nil
	}
	project := workspace.Project{
		Name:    tokens.PackageName("kubesmith-e2e-go"),
		Runtime: workspace.NewProjectRuntimeInfo("go", nil),
		Backend: &workspace.ProjectBackend{URL: "file://" + filepath.Join(dir, "state")},
		Plugins: e.plugins(false),
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	opts := append(e.workspaceOptions(t), auto.Project(project))
	var stack auto.Stack
	tm.measure(t, "go: stack init", func() error {
		var err error
		stack, err = auto.UpsertStackInlineSource(ctx, "e2e", "kubesmith-e2e-go", program, opts...)
		return err
	})
	runStack(ctx, t, e, tm, "go", stack, func() error {
		if err := endpointAndWorkers(ctx, stack, e); err != nil {
			return err
		}
		return kubeconfigFromOutput(ctx, stack, filepath.Join(dir, "kubeconfig.out"))
	}, filepath.Join(dir, "kubeconfig.out"), filepath.Join(dir, "state"))
}

// testYAML runs examples/pulumi-yaml with the YAML language host.
func testYAML(t *testing.T, e env, tm *timings) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "pulumi-yaml", "Pulumi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The example as users get it, plus where this run finds the plugins and keeps its state.
	extra := fmt.Sprintf("\nbackend:\n  url: file://%s\nplugins:\n  providers:\n    - name: kubesmith\n      path: %s\n"+
		"  languages:\n    - name: yaml\n      path: %s\n", filepath.Join(dir, "state"), e.pluginDir, e.yamlDir)
	work := filepath.Join(dir, "project")
	for _, d := range []string{work, filepath.Join(dir, "state")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(work, "Pulumi.yaml"), append(src, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	var stack auto.Stack
	tm.measure(t, "yaml: stack init and config", func() error {
		var err error
		stack, err = auto.UpsertStackLocalSource(ctx, "e2e", work, e.workspaceOptions(t)...)
		if err != nil {
			return err
		}
		// The format of `pulumi config --json`; masters and workers are lists of objects.
		cfg := map[string]any{}
		for k, v := range map[string]any{
			"clusterName": "pulumiyaml", "nodeNetwork": nodeNetwork, "apiVip": e.vip, "sshKeyPath": e.hosts.ClientKey,
			"bundle": e.bundle, "kubeconfigPath": kubeconfigPath, "masters": e.masters(), "workers": e.workers(),
		} {
			entry := map[string]any{"secret": false}
			if str, ok := v.(string); ok {
				entry["value"] = str
			} else {
				data, err := json.Marshal(v)
				if err != nil {
					return err
				}
				entry["value"], entry["objectValue"] = string(data), v
			}
			cfg["kubesmith-yaml:"+k] = entry
		}
		data, err := json.Marshal(cfg)
		if err != nil {
			return err
		}
		return stack.SetAllConfigJson(ctx, string(data), nil)
	})
	runStack(ctx, t, e, tm, "yaml", stack, func() error { return endpointAndWorkers(ctx, stack, e) },
		kubeconfigPath, filepath.Join(dir, "state"))
}

// runStack is the common life of a stack: up, Ready nodes, secrets, refresh and preview without changes, destroy.
// afterUp runs right after up; kubeconfig is the file kubectl uses; stateDir holds the file backend.
func runStack(ctx context.Context, t *testing.T, e env, tm *timings, name string, stack auto.Stack,
	afterUp func() error, kubeconfig, stateDir string,
) {
	t.Helper()
	log := testWriter{t}
	created := false
	t.Cleanup(func() {
		if !created || os.Getenv("KUBESMITH_E2E_KEEP") != "" {
			return
		}
		c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if _, err := stack.Destroy(c, optdestroy.ProgressStreams(log)); err != nil {
			t.Errorf("cleanup destroy: %v", err)
		}
	})
	tm.measure(t, name+": pulumi up: 1 master + 1 worker", func() error {
		created = true
		_, err := stack.Up(ctx, optup.ProgressStreams(log))
		return err
	})
	tm.measure(t, name+": outputs", afterUp)
	tm.measure(t, name+": 2 Ready nodes (kubectl)", func() error {
		return eventually(ctx, 3*time.Minute, 2*time.Second, func(ctx context.Context) error {
			out, err := kubectl(ctx, e.kubectl, kubeconfig, "get", "nodes", "--no-headers")
			if err != nil {
				return err
			}
			if n := strings.Count(out, " Ready "); n != 2 {
				return fmt.Errorf("%d Ready nodes, want 2:\n%s", n, out)
			}
			return nil
		})
	})
	tm.measure(t, name+": secrets encrypted in state", func() error { return secretsEncrypted(ctx, stack, stateDir) })
	tm.measure(t, name+": refresh finds no changes", func() error {
		res, err := stack.Refresh(ctx, optrefresh.ExpectNoChanges(), optrefresh.ProgressStreams(log))
		if err != nil {
			return err
		}
		if res.Summary.ResourceChanges == nil {
			return errors.New("refresh reported no resource changes summary")
		}
		return onlySame(*res.Summary.ResourceChanges)
	})
	tm.measure(t, name+": preview finds no changes", func() error {
		res, err := stack.Preview(ctx, optpreview.ExpectNoChanges(), optpreview.ProgressStreams(log))
		if err != nil {
			return err
		}
		changes := map[string]int{}
		for op, n := range res.ChangeSummary {
			changes[string(op)] = n
		}
		return onlySame(changes)
	})
	tm.measure(t, name+": pulumi destroy", func() error {
		_, err := stack.Destroy(ctx, optdestroy.ProgressStreams(log))
		if err == nil {
			created = false
		}
		return err
	})
	if err := stack.Workspace().RemoveStack(ctx, stack.Name()); err != nil {
		t.Errorf("removing the stack: %v", err)
	}
}

// endpointAndWorkers checks the apiEndpoint and workerAddresses outputs against the topology.
func endpointAndWorkers(ctx context.Context, stack auto.Stack, e env) error {
	outs, err := stack.Outputs(ctx)
	if err != nil {
		return err
	}
	if got, want := outs["apiEndpoint"].Value, "https://"+e.vip+":6443"; got != want {
		return fmt.Errorf("output apiEndpoint is %v, want %s", got, want)
	}
	addrs, _ := outs["workerAddresses"].Value.([]any)
	if len(addrs) != 1 || addrs[0] != e.host(1).Address {
		return fmt.Errorf("output workerAddresses is %v, want [%s]", outs["workerAddresses"].Value, e.host(1).Address)
	}
	return nil
}

// kubeconfigFromOutput checks that the kubeconfig output is a secret and writes it to path.
func kubeconfigFromOutput(ctx context.Context, stack auto.Stack, path string) error {
	outs, err := stack.Outputs(ctx)
	if err != nil {
		return err
	}
	for _, name := range []string{"kubeconfig", "poolCredentials"} {
		if !outs[name].Secret {
			return fmt.Errorf("output %s is not a secret", name)
		}
	}
	kc, ok := outs["kubeconfig"].Value.(string)
	if !ok || !strings.Contains(kc, "client-key-data") {
		return errors.New("output kubeconfig holds no client key")
	}
	return os.WriteFile(path, []byte(kc), 0o600)
}

// secretsEncrypted checks that every private key in the stack is a Pulumi secret: in the exported deployment
// (which the Automation API exports with secrets decrypted) each one sits inside a secret, and the state files
// of the backend in stateDir hold none in plaintext.
func secretsEncrypted(ctx context.Context, stack auto.Stack, stateDir string) error {
	dep, err := stack.Export(ctx)
	if err != nil {
		return err
	}
	if !bytes.Contains(dep.Deployment, []byte(secretSig)) {
		return errors.New("the state holds no secret")
	}
	var d struct {
		Resources []struct {
			URN     string         `json:"urn"`
			Inputs  map[string]any `json:"inputs"`
			Outputs map[string]any `json:"outputs"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(dep.Deployment, &d); err != nil {
		return fmt.Errorf("parsing the deployment: %w", err)
	}
	var plain []string
	for _, r := range d.Resources {
		plain = append(plain, plaintextKeys(r.URN+" inputs", r.Inputs)...)
		plain = append(plain, plaintextKeys(r.URN+" outputs", r.Outputs)...)
	}
	if len(plain) > 0 {
		return fmt.Errorf("private keys that are not secrets: %s", strings.Join(plain, ", "))
	}
	files := 0
	err = filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(data, []byte("PRIVATE KEY")) {
			return fmt.Errorf("%s holds a plaintext private key", p)
		}
		return nil
	})
	if err == nil && files == 0 {
		err = fmt.Errorf("no state file under %s", stateDir)
	}
	return err
}

// plaintextKeys lists the paths under v whose string value holds a PEM private key outside a secret.
func plaintextKeys(path string, v any) []string {
	switch x := v.(type) {
	case string:
		if strings.Contains(x, "PRIVATE KEY") {
			return []string{path}
		}
	case map[string]any:
		if _, ok := x[secretSig]; ok {
			return nil
		}
		var out []string
		for k, e := range x {
			out = append(out, plaintextKeys(path+"."+k, e)...)
		}
		return out
	case []any:
		var out []string
		for i, e := range x {
			out = append(out, plaintextKeys(fmt.Sprintf("%s[%d]", path, i), e)...)
		}
		return out
	}
	return nil
}

func onlySame(changes map[string]int) error {
	for op, n := range changes {
		if op != "same" && n > 0 {
			return fmt.Errorf("%d resources would %s: %v", n, op, changes)
		}
	}
	return nil
}

func kubectl(ctx context.Context, bin, kubeconfig string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig, "--request-timeout=20s"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
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
			return fmt.Errorf("%w (last: %w)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// testWriter sends progress to the test log, without the CLI's rows of progress dots.
type testWriter struct{ t *testing.T }

var _ io.Writer = testWriter{}

func (w testWriter) Write(p []byte) (int, error) {
	if s := strings.TrimRight(string(p), "\n"); strings.Trim(s, ". ") != "" {
		w.t.Log(s)
	}
	return len(p), nil
}
