package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/path"
	fwprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

func TestSchemasAreValid(t *testing.T) {
	ctx := context.Background()
	var presp fwprovider.SchemaResponse
	NewWithEngine("test", newFakeEngine())().Schema(ctx, fwprovider.SchemaRequest{}, &presp)
	if presp.Diagnostics.HasError() {
		t.Fatal(presp.Diagnostics)
	}
	if d := presp.Schema.ValidateImplementation(ctx); d.HasError() {
		t.Fatal(d)
	}
	var rresp resource.SchemaResponse
	NewClusterResource().Schema(ctx, resource.SchemaRequest{}, &rresp)
	if d := rresp.Schema.ValidateImplementation(ctx); d.HasError() {
		t.Fatal(d)
	}
	var eresp ephemeral.SchemaResponse
	NewKubeconfigEphemeralResource().Schema(ctx, ephemeral.SchemaRequest{}, &eresp)
	if d := eresp.Schema.ValidateImplementation(ctx); d.HasError() {
		t.Fatal(d)
	}
	// Every attribute is documented, since the registry docs are generated from these descriptions.
	for name, a := range rresp.Schema.Attributes {
		if a.GetDescription() == "" || a.GetMarkdownDescription() == "" {
			t.Errorf("kubesmith_cluster.%s has no description", name)
		}
	}
	for name, a := range presp.Schema.Attributes {
		if a.GetDescription() == "" || a.GetMarkdownDescription() == "" {
			t.Errorf("provider %s has no description", name)
		}
	}
	for name, a := range eresp.Schema.Attributes {
		if a.GetDescription() == "" || a.GetMarkdownDescription() == "" {
			t.Errorf("kubesmith_kubeconfig.%s has no description", name)
		}
	}
}

func TestParseFieldPath(t *testing.T) {
	cases := map[string]path.Path{
		"api_vip":                         path.Root("api_vip"),
		"control_plane.hosts":             path.Root("control_plane").AtName("hosts"),
		"control_plane.hosts[1].address":  path.Root("control_plane").AtName("hosts").AtListIndex(1).AtName("address"),
		"upstream_dns[0]":                 path.Root("upstream_dns").AtListIndex(0),
		`labels["tier"]`:                  path.Root("labels").AtMapKey("tier"),
		"tuning.etcd_election_ms":         path.Root("tuning").AtName("etcd_election_ms"),
		"a[2][3]":                         path.Root("a").AtListIndex(2).AtListIndex(3),
		`pools["a.b"].addresses[0]`:       path.Root("pools").AtMapKey("a.b").AtName("addresses").AtListIndex(0),
		"control_plane.hosts[10].address": path.Root("control_plane").AtName("hosts").AtListIndex(10).AtName("address"),
	}
	for in, want := range cases {
		got, err := parseFieldPath(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseFieldPath(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "[0]", "a[", "a[x]", "a[-1]", "a.[0]"} {
		if p, err := parseFieldPath(bad); err == nil {
			t.Errorf("parseFieldPath(%q) = %s, want an error", bad, p)
		}
	}
}

func TestAddFieldErrorsMapsPathsAndSkipsUnknown(t *testing.T) {
	errs := []engine.FieldError{
		{Path: "control_plane.hosts[1].address", Summary: "Duplicate address", Detail: "d1"},
		{Path: "control_plane.hosts[2].host_public_key", Summary: "Missing host key", Detail: "d2"},
		{Path: "api_vip", Summary: "API VIP outside the node network", Detail: "d3"},
		{Path: "ssh", Summary: "Missing SSH key", Detail: "d4"},
		{Path: "weird[", Summary: "Odd", Detail: "d5"},
		{Path: "upstream_dns[0]", Summary: "Loopback DNS server", Detail: "d6"},
	}
	var diags diag.Diagnostics
	addFieldErrors(&diags, errs, []string{"control_plane.hosts[2]", "upstream_dns"})
	if len(diags) != 4 {
		t.Fatalf("want 4 diagnostics, got %d: %v", len(diags), diags)
	}
	wantPaths := []path.Path{
		path.Root("control_plane").AtName("hosts").AtListIndex(1).AtName("address"),
		path.Root("api_vip"),
	}
	for i, want := range wantPaths {
		wp, ok := diags[i].(diag.DiagnosticWithPath)
		if !ok || !wp.Path().Equal(want) {
			t.Errorf("diagnostic %d: want an attribute error at %s, got %v", i, want, diags[i])
		}
	}
	if _, ok := diags[2].(diag.DiagnosticWithPath); ok || !strings.Contains(diags[2].Detail(), `provider "kubesmith" block`) {
		t.Errorf("provider-level error not reported as such: %v", diags[2])
	}
	if diags[3].Summary() != "Odd" {
		t.Errorf("unparsable path lost: %v", diags[3])
	}
}

func TestAddFieldErrorsKeepsWarningsWarnings(t *testing.T) {
	var diags diag.Diagnostics
	addFieldErrors(&diags, []engine.FieldError{
		{Path: "manifests[1]", Summary: "Image not in the artifact bundle", Detail: "d1", Warning: true},
	}, nil)
	if diags.HasError() || diags.WarningsCount() != 1 {
		t.Fatalf("want one warning and no error, got %v", diags)
	}
	wp, ok := diags[0].(diag.DiagnosticWithPath)
	if !ok || !wp.Path().Equal(path.Root("manifests").AtListIndex(1)) || !strings.Contains(diags[0].Detail(), "This concerns manifests[1].") {
		t.Fatalf("warning not on manifests[1]: %v", diags[0])
	}
}

func TestUnderAny(t *testing.T) {
	pre := []string{"control_plane.hosts[1]", "name"}
	for p, want := range map[string]bool{
		"control_plane.hosts[1]":          true,
		"control_plane.hosts[1].address":  true,
		"control_plane.hosts[10].address": false,
		"control_plane.hosts":             false,
		"name":                            true,
		"names":                           false,
	} {
		if got := underAny(p, pre); got != want {
			t.Errorf("underAny(%q) = %v", p, got)
		}
	}
}

// fakeEnv is an environment for resolveProviderConfig.
type fakeEnv map[string]string

func (e fakeEnv) Getenv(k string) string { return e[k] }
func (e fakeEnv) UserHomeDir() (string, error) {
	if h, ok := e["HOME"]; ok {
		return h, nil
	}
	return "", errors.New("no home")
}

func providerConfig(t *testing.T, ssh, artifacts map[string]any) providerModel {
	t.Helper()
	ctx := context.Background()
	var s fwprovider.SchemaResponse
	NewWithEngine("test", nil)().Schema(ctx, fwprovider.SchemaRequest{}, &s)
	return providerModel{
		SSH:        testObject(t, s.Schema.Attributes["ssh"].GetType(), ssh),
		Artifacts:  testObject(t, s.Schema.Attributes["artifacts"].GetType(), artifacts),
		LibvirtURI: types.StringNull(),
	}
}

// testObject builds an object of type typ from Go values; missing attributes are null.
func testObject(t *testing.T, typ attr.Type, vals map[string]any) types.Object {
	t.Helper()
	at := objectAttrTypes(typ)
	if vals == nil {
		return types.ObjectNull(at)
	}
	out := map[string]attr.Value{}
	for k, et := range at {
		switch v := vals[k].(type) {
		case nil:
			switch et {
			case types.StringType:
				out[k] = types.StringNull()
			case types.Int64Type:
				out[k] = types.Int64Null()
			case types.BoolType:
				out[k] = types.BoolNull()
			default:
				out[k] = types.ObjectNull(objectAttrTypes(et))
			}
		case string:
			out[k] = types.StringValue(v)
		case int64:
			out[k] = types.Int64Value(v)
		case bool:
			out[k] = types.BoolValue(v)
		case map[string]any:
			out[k] = testObject(t, et, v)
		default:
			t.Fatalf("unsupported test value %T", v)
		}
	}
	o, d := types.ObjectValue(at, out)
	if d.HasError() {
		t.Fatal(d)
	}
	return o
}

func TestResolveProviderConfig(t *testing.T) {
	ctx := context.Background()

	// Nothing configured: defaults and environment fallbacks.
	env := fakeEnv{"HOME": "/home/u", EnvSSHKeyPath: "~/.ssh/ks", "XDG_CACHE_HOME": "/xdg"}
	got, diags := resolveProviderConfig(ctx, providerConfig(t, nil, nil), env)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if got.ssh.User != "root" || got.ssh.Port != 22 || got.ssh.ConnectTimeout != 5*time.Minute {
		t.Errorf("ssh defaults: %+v", got.ssh)
	}
	if got.ssh.PrivateKeyPath != "/home/u/.ssh/ks" {
		t.Errorf("KUBESMITH_SSH_KEY_PATH not used: %q", got.ssh.PrivateKeyPath)
	}
	if got.artifacts.BundleDir != "/xdg/kubesmith/bundle" || got.artifacts.CacheDir != "/xdg/kubesmith/cache" {
		t.Errorf("artifact defaults: %+v", got.artifacts)
	}

	// KUBESMITH_BUNDLE beats the default; ~/.cache is used without XDG_CACHE_HOME.
	got, _ = resolveProviderConfig(ctx, providerConfig(t, nil, nil), fakeEnv{"HOME": "/home/u", EnvBundle: "~/b"})
	if got.artifacts.BundleDir != "/home/u/b" || got.artifacts.CacheDir != "/home/u/.cache/kubesmith/cache" {
		t.Errorf("KUBESMITH_BUNDLE: %+v", got.artifacts)
	}

	// Configuration beats the environment; a direct key suppresses the key path fallback; bastion defaults.
	cfg := providerConfig(t, map[string]any{
		"user": "admin", "port": int64(2222), "private_key": "PEM", "connect_timeout": "90s",
		"bastion": map[string]any{"address": "10.0.0.1", "port": nil, "user": nil, "host_public_key": testHostKey},
	}, map[string]any{"mirror": "http://127.0.0.1:8080/bundle"})
	got, diags = resolveProviderConfig(ctx, cfg, env)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if got.ssh.User != "admin" || got.ssh.Port != 2222 || got.ssh.PrivateKey != "PEM" || got.ssh.PrivateKeyPath != "" || got.ssh.ConnectTimeout != 90*time.Second {
		t.Errorf("configured ssh: %+v", got.ssh)
	}
	if b := got.ssh.Bastion; b == nil || b.Address != "10.0.0.1" || b.Port != 22 || b.User != "admin" || b.HostPublicKey != testHostKey {
		t.Errorf("bastion: %+v", b)
	}
	if got.artifacts.MirrorURL != "http://127.0.0.1:8080/bundle" || got.artifacts.BundleDir != "" {
		t.Errorf("mirror: %+v", got.artifacts)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		15 * time.Second: "15s", time.Minute: "1m", time.Hour: "1h", 90 * time.Minute: "1h30m",
		8760 * time.Hour: "8760h", 1500 * time.Millisecond: "1.5s", 500 * time.Millisecond: "500ms",
		10 * time.Minute: "10m", 0: "0s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %q, want %q", d, got, want)
		}
		if d > 0 {
			if back, err := time.ParseDuration(formatDuration(d)); err != nil || back != d {
				t.Errorf("formatDuration(%s) does not round-trip: %v %v", d, back, err)
			}
		}
	}
}

func TestProgressLogKeepsTheLastEvents(t *testing.T) {
	p := newProgressLog(context.Background(), "create")
	f := p.Func()
	for i := range 60 {
		f(engine.Event{Phase: fmt.Sprintf("phase%02d", i), Host: "m1", Duration: time.Second, Done: true})
	}
	f(engine.Event{Phase: "etcd", Host: "m2", Err: errors.New("boom")})
	lines := p.Lines()
	if len(lines) != progressHistoryLimit {
		t.Fatalf("kept %d lines, want %d", len(lines), progressHistoryLimit)
	}
	if !strings.HasPrefix(lines[0], "phase11 on m1: finished after 1s") {
		t.Errorf("oldest kept line = %q", lines[0])
	}
	if lines[len(lines)-1] != "etcd on m2: failed: boom" {
		t.Errorf("newest line = %q", lines[len(lines)-1])
	}
	var diags diag.Diagnostics
	p.AddWarning(&diags)
	if len(diags) != 1 || diags[0].Severity() != diag.SeverityWarning || !strings.Contains(diags[0].Detail(), "the last 50 of 61") {
		t.Fatalf("warning = %v", diags)
	}
}

func TestWriteKubeconfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "kubeconfig")
	if err := writeKubeconfigFile(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := writeKubeconfigFile(p, []byte("two")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Errorf("content %q", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestParseKubeconfig(t *testing.T) {
	f := newFakeEngine()
	pki, err := newFakePKI("demo")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.AdminKubeconfig(engine.ClusterSpec{Name: "demo", APIVIP: "fd00::10", APIPort: 6443}, engine.ClusterState{PKI: pki}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := parseKubeconfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if kc.server != "https://[fd00::10]:6443" || kc.ca != pki.CACert || !strings.HasPrefix(kc.key, "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("parsed %+v", kc)
	}
	if left := time.Until(kc.notAfter); left < time.Hour || left > 2*time.Hour {
		t.Errorf("notAfter in %s", left)
	}
	if _, err := parseKubeconfig([]byte("clusters: []")); err == nil {
		t.Error("empty kubeconfig accepted")
	}
}

func TestSpecFromJoin(t *testing.T) {
	s, err := specFromJoin(engine.Join{ClusterName: "demo", Endpoint: "https://[fd00::10]:7443", Masters: []string{"a", "b"}})
	if err != nil || s.APIVIP != "fd00::10" || s.APIPort != 7443 || len(s.ControlPlane) != 2 {
		t.Errorf("spec %+v, %v", s, err)
	}
	s, err = specFromJoin(engine.Join{Endpoint: "https://api.example.test"})
	if err != nil || s.APIVIP != "api.example.test" || s.APIPort != 6443 {
		t.Errorf("spec %+v, %v", s, err)
	}
	if _, err := specFromJoin(engine.Join{Endpoint: "http://x:1"}); err == nil {
		t.Error("http endpoint accepted")
	}
}

// TestImportModelRoundTrip checks that a spec read back by import converts to the same model a configuration
// produces, including defaults and host-level values equal to the provider's defaults.
func TestImportModelRoundTrip(t *testing.T) {
	ctx := context.Background()
	data := &providerData{ssh: engine.SSH{User: "root", Port: 22}}
	spec := engine.ClusterSpec{
		Name: "demo", KubernetesVersion: "1.37.2", NodeNetwork: "172.30.0.0/24", APIVIP: "172.30.0.250",
		ControlPlane: []engine.Host{
			{Name: "m1", Address: "172.30.0.11", User: "root", Port: 22, HostPublicKey: testHostKey},
			{Name: "m2", Address: "172.30.0.12", User: "debian", Port: 2222, SSHAddress: "127.0.0.1"},
		},
		Tuning: engine.Tuning{RenewDeadline: 20 * time.Second},
	}
	m, diags := modelFromImport(ctx, spec, engine.ClusterState{UID: "u"}, data)
	if diags.HasError() {
		t.Fatal(diags)
	}
	back, unknown, diags := specFromModel(ctx, m, data)
	if diags.HasError() || len(unknown) != 0 {
		t.Fatal(diags, unknown)
	}
	if back.APIPort != 6443 || back.PodCIDR != defaultPodCIDR || back.KubeProxyMode != "iptables" {
		t.Errorf("defaults not filled: %+v", back)
	}
	if h := back.ControlPlane[0]; h.User != "" || h.Port != 0 || h.HostPublicKey != testHostKey {
		t.Errorf("host 0 = %+v; values equal to provider defaults must be left out", h)
	}
	if h := back.ControlPlane[1]; h.User != "debian" || h.Port != 2222 || h.SSHAddress != "127.0.0.1" || h.HostPublicKey != "" {
		t.Errorf("host 1 = %+v", h)
	}
	if back.Tuning.RenewDeadline != 20*time.Second || back.Tuning.RetryPeriod != 2*time.Second || back.Tuning.EtcdHeartbeatMS != 100 {
		t.Errorf("tuning = %+v", back.Tuning)
	}
	if m.Tuning.Attributes()["renew_deadline"].String() != `"20s"` {
		t.Errorf("renew_deadline rendered as %s", m.Tuning.Attributes()["renew_deadline"])
	}
}

// validSpec is a cluster spec that passes validation.
func validSpec() engine.ClusterSpec {
	h := func(n, a string) engine.Host { return engine.Host{Name: n, Address: a, HostPublicKey: testHostKey} }
	return engine.ClusterSpec{
		Name: "demo", KubernetesVersion: "1.37.2", NodeNetwork: "172.30.0.0/24", APIVIP: "172.30.0.250",
		ControlPlane: []engine.Host{h("m1", "172.30.0.11"), h("m2", "172.30.0.12"), h("m3", "172.30.0.13")},
	}
}

// planFor runs ModifyPlan for creating a cluster described by spec (optionally edited as a model first) and
// returns the diagnostics.
func planFor(t *testing.T, spec engine.ClusterSpec, data *providerData, edit func(*clusterResourceModel)) diag.Diagnostics {
	t.Helper()
	ctx := context.Background()
	m, diags := modelFromImport(ctx, spec, engine.ClusterState{}, data)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if edit != nil {
		edit(&m)
	}
	s := clusterSchema(ctx)
	plan := tfsdk.Plan{Schema: s, Raw: tftypes.NewValue(s.Type().TerraformType(ctx), nil)}
	if d := plan.Set(ctx, &m); d.HasError() {
		t.Fatal(d)
	}
	r := &clusterResource{resourceBase{data: data}}
	req := resource.ModifyPlanRequest{Plan: plan, State: tfsdk.State{Schema: s, Raw: tftypes.NewValue(s.Type().TerraformType(ctx), nil)}}
	resp := resource.ModifyPlanResponse{Plan: plan}
	r.ModifyPlan(ctx, req, &resp)
	return resp.Diagnostics
}

// TestModifyPlanAttributePaths checks that every engine validation error lands on the attribute it is about,
// which Terraform's CLI output shows only for root attributes.
func TestModifyPlanAttributePaths(t *testing.T) {
	data := &providerData{engine: newFakeEngine(), ssh: engine.SSH{User: "root", Port: 22, PrivateKeyPath: "/k"}}
	if d := planFor(t, validSpec(), data, nil); d.HasError() {
		t.Fatalf("valid spec rejected: %v", d)
	}
	hosts := path.Root("control_plane").AtName("hosts")
	cases := []struct {
		name   string
		mutate func(*engine.ClusterSpec)
		want   path.Path
	}{
		{"two masters", func(s *engine.ClusterSpec) { s.ControlPlane = s.ControlPlane[:2] }, hosts},
		{"duplicate address", func(s *engine.ClusterSpec) { s.ControlPlane[2].Address = "172.30.0.11" }, hosts.AtListIndex(2).AtName("address")},
		{"malformed host key", func(s *engine.ClusterSpec) { s.ControlPlane[1].HostPublicKey = "ssh-ed25519 x" }, hosts.AtListIndex(1).AtName("host_public_key")},
		{"missing host key", func(s *engine.ClusterSpec) { s.ControlPlane[0].HostPublicKey = "" }, hosts.AtListIndex(0).AtName("host_public_key")},
		{"vip is a node", func(s *engine.ClusterSpec) { s.APIVIP = "172.30.0.13" }, path.Root("api_vip")},
		{"overlap", func(s *engine.ClusterSpec) { s.ServiceCIDR = "10.244.0.0/20" }, path.Root("service_cidr")},
		{"unknown version", func(s *engine.ClusterSpec) { s.KubernetesVersion = "1.30.0" }, path.Root("kubernetes_version")},
		{"loopback dns", func(s *engine.ClusterSpec) { s.UpstreamDNS = []string{"127.0.0.53"} }, path.Root("upstream_dns").AtListIndex(0)},
		{"etcd timing", func(s *engine.ClusterSpec) { s.Tuning.EtcdHeartbeatMS, s.Tuning.EtcdElectionMS = 300, 1000 }, path.Root("tuning").AtName("etcd_election_ms")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := validSpec()
			c.mutate(&spec)
			diags := planFor(t, spec, data, nil)
			for _, d := range diags {
				if wp, ok := d.(diag.DiagnosticWithPath); ok && wp.Path().Equal(c.want) && d.Severity() == diag.SeverityError {
					return
				}
			}
			t.Fatalf("want an error at %s, got %v", c.want, diags)
		})
	}

	t.Run("missing ssh key is a provider error", func(t *testing.T) {
		diags := planFor(t, validSpec(), &providerData{engine: newFakeEngine()}, nil)
		if len(diags) != 1 || !strings.Contains(diags[0].Detail(), "ssh in the provider") {
			t.Fatalf("got %v", diags)
		}
	})

	t.Run("unknown values are skipped", func(t *testing.T) {
		spec := validSpec()
		spec.ControlPlane[1].Address = "" // would be "Invalid address"
		spec.ControlPlane[1].HostPublicKey = ""
		spec.APIVIP = "10.9.9.9" // known and wrong: still reported
		diags := planFor(t, spec, data, func(m *clusterResourceModel) {
			cp := m.ControlPlane.Attributes()
			elems := cp["hosts"].(types.List).Elements()
			h := elems[1].(types.Object).Attributes()
			h["address"] = types.StringUnknown()
			h["host_public_key"] = types.StringUnknown()
			elems[1] = types.ObjectValueMust(hostAttrTypes(), h)
			cp["hosts"] = types.ListValueMust(types.ObjectType{AttrTypes: hostAttrTypes()}, elems)
			m.ControlPlane = types.ObjectValueMust(controlPlaneAttrTypes(), cp)
		})
		if len(diags) != 1 {
			t.Fatalf("want only the api_vip error, got %v", diags)
		}
		if wp, ok := diags[0].(diag.DiagnosticWithPath); !ok || !wp.Path().Equal(path.Root("api_vip")) {
			t.Fatalf("got %v", diags)
		}
	})
}

// TestParseKubeconfigFromEngine reads a kubeconfig issued by the real engine, so that the ephemeral resource and
// the engine agree on the format.
func TestParseKubeconfigFromEngine(t *testing.T) {
	ca, err := newFakePKI("demo")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := specFromJoin(engine.Join{ClusterName: "demo", Endpoint: "https://172.30.0.250:6443"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := engine.New(engine.Options{}).AdminKubeconfig(spec, engine.ClusterState{PKI: ca}, 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := parseKubeconfig(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if kc.server != "https://172.30.0.250:6443" || kc.ca != ca.CACert || kc.key == "" {
		t.Errorf("parsed %+v", kc)
	}
	if left := time.Until(kc.notAfter); left < time.Hour || left > 2*time.Hour {
		t.Errorf("certificate expires in %s, want about 90m", left)
	}
}
