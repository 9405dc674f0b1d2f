package engine

import (
	"strings"
	"testing"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
)

func TestManifestImageWarnings(t *testing.T) {
	m := &artifacts.Manifest{Files: []artifacts.File{
		{Kind: artifacts.KindImage, Component: "echo", Name: "echo", Image: "kubesmith.invalid/echo:v1.0.0"},
		{Kind: artifacts.KindImage, Component: "pause", Name: "pause", Image: "registry.k8s.io/pause:3.10.2"},
		{Kind: artifacts.KindImage, Component: "busybox", Name: "busybox", Image: "docker.io/library/busybox:latest"},
		{Kind: artifacts.KindBinary, Component: "etcd", Name: "etcd"},
	}}
	manifests := []string{
		// Everything in the bundle, in the forms YAML allows: quoted, flow style, short Docker Hub names; and
		// "image:" keys that are not a container's.
		`apiVersion: v1
kind: Pod
spec:
  containers:
  - image: "kubesmith.invalid/echo:v1.0.0"
    name: echo
  - name: sidecar
    image: busybox
  # image: comments do not count
  initContainers:
  - {name: x, image: 'registry.k8s.io/pause:3.10.2'}
---
kind: ConfigMap
data:
  config.yaml: |
    image: not/a-container:1
  image: nor-this:2
`,
		`apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
      - name: traefik
        image: traefik:v3.6.12
      - name: again
        image: traefik:v3.6.12
      - name: app
        image: ghcr.io/example/app:1.2 # a comment
`,
	}
	got := manifestImageWarnings(manifests, m)
	if len(got) != 2 {
		t.Fatalf("want 2 warnings (the app and Traefik, once each), got %d: %+v", len(got), got)
	}
	for _, w := range got {
		if !w.Warning || w.Path != "manifests[1]" || w.Summary != "Image not in the artifact bundle" {
			t.Errorf("warning %+v", w)
		}
	}
	if d := got[1].Detail; !strings.Contains(d, "image traefik:v3.6.12,") || !strings.Contains(d, "ImagePullBackOff") ||
		!strings.Contains(d, "build it with `make artifacts-ingress` (or `ksartifacts build --with traefik`)") {
		t.Errorf("Traefik warning does not say how to add it: %s", d)
	}
	if d := got[0].Detail; !strings.Contains(d, "image ghcr.io/example/app:1.2,") || !strings.Contains(d, "access to that registry") {
		t.Errorf("app warning: %s", d)
	}
	if w := manifestImageWarnings([]string{"kind: ConfigMap\ndata:\n  x: y\n", "containers: [unclosed"}, m); len(w) != 0 {
		t.Errorf("a manifest without images, or one that is not YAML, warned: %+v", w)
	}
	refs, err := containerImages(`kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          initContainers: [{name: init, image: "a:1"}]
          containers: [{name: main, image: "b:2"}, {name: again, image: "a:1"}]
          ephemeralContainers: [{name: debug, image: "c:3"}]
`)
	if err != nil || strings.Join(refs, " ") != "a:1 b:2 c:3" {
		t.Errorf("CronJob images = %v, %v", refs, err)
	}
}

func TestNormalizeImage(t *testing.T) {
	for in, want := range map[string]string{
		"traefik:v3.6.12":              "docker.io/library/traefik:v3.6.12",
		"busybox":                      "docker.io/library/busybox:latest",
		"metallb/speaker:v0.15.2":      "docker.io/metallb/speaker:v0.15.2",
		"registry.k8s.io/pause:3.10.2": "registry.k8s.io/pause:3.10.2",
		"localhost:5000/app":           "localhost:5000/app:latest",
		"Not A Reference":              "Not A Reference",
	} {
		if got := normalizeImage(in); got != want {
			t.Errorf("normalizeImage(%q) = %q, want %q", in, got, want)
		}
	}
}
