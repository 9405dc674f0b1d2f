package artifacts

import (
	"slices"
	"strings"
	"testing"
)

// sampleKubernetesGoMod is an excerpt of k8s.io/kubernetes' go.mod in the shape of v1.37.2: requires of staging
// modules at v0.0.0 and their replace block into ./staging.
const sampleKubernetesGoMod = `// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
	github.com/blang/semver/v4 v4.0.0
	k8s.io/api v0.0.0
	k8s.io/apimachinery v0.0.0
	k8s.io/cri-streaming v0.0.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
	k8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming
	k8s.io/kms => ./staging/src/k8s.io/kms
	k8s.io/streaming => ./staging/src/k8s.io/streaming
)
`

func TestKubernetesScratchGoMod(t *testing.T) {
	got, err := kubernetesScratchGoMod("v1.36.3", []byte(sampleKubernetesGoMod))
	if err != nil {
		t.Fatal(err)
	}
	// Byte for byte what shared/lab/build-k8s-bins.sh writes before `go mod tidy`.
	want := `module example.invalid/k8sbins

go 1.26.0

godebug default=go1.26

tool (
	k8s.io/kubernetes/cmd/kubelet
	k8s.io/kubernetes/cmd/kubeadm
	k8s.io/kubernetes/cmd/kube-apiserver
	k8s.io/kubernetes/cmd/kube-controller-manager
	k8s.io/kubernetes/cmd/kube-scheduler
	k8s.io/kubernetes/cmd/kube-proxy
	k8s.io/kubernetes/cmd/kubectl
)

require k8s.io/kubernetes v1.36.3

replace (
	k8s.io/api => k8s.io/api v0.36.3
	k8s.io/apimachinery => k8s.io/apimachinery v0.36.3
	k8s.io/cri-streaming => k8s.io/cri-streaming v0.36.3
	k8s.io/kms => k8s.io/kms v0.36.3
	k8s.io/streaming => k8s.io/streaming v0.36.3
)
`
	if got != want {
		t.Fatalf("scratch go.mod:\n%s\nwant:\n%s", got, want)
	}
	if _, err := kubernetesScratchGoMod("v1.37.2", []byte("module k8s.io/kubernetes\n")); err == nil {
		t.Fatal("accepted a go.mod without staging replaces")
	}
}

func TestKubernetesStagingVersion(t *testing.T) {
	for in, want := range map[string]string{"v1.37.2": "v0.37.2", "v1.36.3": "v0.36.3", "v1.38.0-rc.1": "v0.38.0-rc.1"} {
		if got, err := kubernetesStagingVersion(in); err != nil || got != want {
			t.Errorf("kubernetesStagingVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"1.37.2", "v2.0.0", "v1.37", "v1.37.2;rm"} {
		if _, err := kubernetesStagingVersion(bad); err == nil {
			t.Errorf("kubernetesStagingVersion(%q) accepted", bad)
		}
	}
}

func TestKubernetesLDFlags(t *testing.T) {
	got, err := kubernetesLDFlags("v1.37.2", "2026-10-27T12:01:04Z", "")
	if err != nil {
		t.Fatal(err)
	}
	zero := strings.Repeat("0", 40)
	want := "-s -w" +
		" -X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37" +
		" -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=2026-10-27T12:01:04Z -X k8s.io/component-base/version.gitCommit=" + zero +
		" -X k8s.io/client-go/pkg/version.gitVersion=v1.37.2 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=37" +
		" -X k8s.io/client-go/pkg/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.buildDate=2026-10-27T12:01:04Z -X k8s.io/client-go/pkg/version.gitCommit=" + zero
	if got != want {
		t.Fatalf("ldflags:\n%s\nwant:\n%s", got, want)
	}
	if got, _ := kubernetesLDFlags("v1.36.3", "d", "abc"); !strings.Contains(got, "gitMinor=36") || !strings.Contains(got, "gitCommit=abc") {
		t.Fatalf("v1.36.3 ldflags: %s", got)
	}
	if _, err := kubernetesLDFlags("latest", "d", ""); err == nil {
		t.Fatal("accepted version latest")
	}
}

func TestEtcdScratchGoMod(t *testing.T) {
	want := "module example.invalid/etcdbins\n\ngo 1.26.0\n\ntool (\n\tgo.etcd.io/etcd/etcdctl/v3\n\tgo.etcd.io/etcd/etcdutl/v3\n\tgo.etcd.io/etcd/server/v3\n)\n\n" +
		"require (\n\tgo.etcd.io/etcd/etcdctl/v3 v3.7.3\n\tgo.etcd.io/etcd/etcdutl/v3 v3.7.3\n\tgo.etcd.io/etcd/server/v3 v3.7.3\n)\n"
	if got := etcdScratchGoMod("v3.7.3"); got != want {
		t.Fatalf("etcd go.mod:\n%s\nwant:\n%s", got, want)
	}
}

func TestScratchGoModCopiesDirectives(t *testing.T) {
	// The shape of OpenTofu's and Traefik's go.mods.
	published := `module github.com/example/app

go 1.26.0

require github.com/hashicorp/hcl/v2 v2.20.1

replace github.com/hashicorp/hcl/v2 v2.20.1 => github.com/opentofu/hcl/v2 v2.20.2-0.20251021132045-587d123c2828

// Dynamic config extension.
replace github.com/example/app/ext => ./pkg/ext

replace (
	github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1 // fork
	github.com/example/local => ../local
)

replace (
	github.com/only/local => ./x
)

exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible
`
	if !hasReplace([]byte(published)) || hasReplace([]byte("module x\n\n// replace a => b\n")) {
		t.Fatal("hasReplace")
	}
	got := scratchGoMod("appbin", []string{"github.com/example/app/cmd/app"}, "github.com/example/app", "v1.2.3",
		moduleDirectives([]byte(published)), []string{"github.com/x/y => github.com/x/y v0.0.21"})
	want := `module example.invalid/appbin

go 1.26.0

tool github.com/example/app/cmd/app

require github.com/example/app v1.2.3

replace github.com/hashicorp/hcl/v2 v2.20.1 => github.com/opentofu/hcl/v2 v2.20.2-0.20251021132045-587d123c2828
replace (
	github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1
)
exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible
replace github.com/x/y => github.com/x/y v0.0.21
`
	if got != want {
		t.Fatalf("scratch go.mod:\n%s\nwant:\n%s", got, want)
	}

	// OpenTofu: the same text as the lab's build_tofu (tool line, require, then the replace line).
	tofu := scratchGoMod("tofubin", []string{"github.com/opentofu/opentofu/cmd/tofu"}, "github.com/opentofu/opentofu", "v1.12.6",
		moduleDirectives([]byte("module github.com/opentofu/opentofu\n\nreplace github.com/hashicorp/hcl/v2 v2.20.1 => github.com/opentofu/hcl/v2 v2.20.2-0.20251021132045-587d123c2828\n")), nil)
	wantTofu := "module example.invalid/tofubin\n\ngo 1.26.0\n\ntool github.com/opentofu/opentofu/cmd/tofu\n\nrequire github.com/opentofu/opentofu v1.12.6\n\n" +
		"replace github.com/hashicorp/hcl/v2 v2.20.1 => github.com/opentofu/hcl/v2 v2.20.2-0.20251021132045-587d123c2828\n"
	if tofu != wantTofu {
		t.Fatalf("tofu go.mod:\n%s\nwant:\n%s", tofu, wantTofu)
	}

	multi := scratchGoMod("m", []string{"b/cmd/y", "b/cmd/x"}, "b", "v1.0.0", "", nil)
	if !strings.Contains(multi, "tool (\n\tb/cmd/x\n\tb/cmd/y\n)\n") {
		t.Fatalf("tool block:\n%s", multi)
	}
}

func TestDefaultExecName(t *testing.T) {
	for in, want := range map[string]string{
		"go.etcd.io/etcd/server/v3":            "server",
		"go.etcd.io/etcd/etcdctl/v3":           "etcdctl",
		"github.com/coredns/coredns":           "coredns",
		"k8s.io/kubernetes/cmd/kubelet":        "kubelet",
		"github.com/traefik/traefik/v3/cmd/tr": "tr",
		"example.com/v1":                       "v1",
		"gopkg.in/v2":                          "gopkg.in",
	} {
		if got := defaultExecName(in); got != want {
			t.Errorf("defaultExecName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDropBlankImports(t *testing.T) {
	src := "import (\n\t\"fmt\"\n\t_ \"github.com/flannel-io/flannel/pkg/backend/tencentvpc\"\n\t_ \"github.com/flannel-io/flannel/pkg/backend/udp\"\n\t_ \"github.com/flannel-io/flannel/pkg/backend/vxlan\"\n)\n"
	got := dropBlankImports(src, flannelDroppedBackends())
	want := "import (\n\t\"fmt\"\n\t_ \"github.com/flannel-io/flannel/pkg/backend/vxlan\"\n)\n"
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestStagingModulesInFileOrder(t *testing.T) {
	got := kubernetesStagingModules([]byte(sampleKubernetesGoMod))
	if want := []string{"api", "apimachinery", "cri-streaming", "kms", "streaming"}; !slices.Equal(got, want) {
		t.Fatalf("staging modules = %v, want %v", got, want)
	}
}
