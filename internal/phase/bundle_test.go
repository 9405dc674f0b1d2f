package phase_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
)

// bundleEntry is one file of a test bundle.
type bundleEntry struct {
	component, name, version, arch, kind, image string
}

// testBundleEntries is a small bundle with everything a master needs for amd64, plus decoys that must not be
// picked: an older etcd, another Kubernetes version, an arm64 image and a tool.
func testBundleEntries() []bundleEntry {
	var es []bundleEntry
	bin := func(component, version string, names ...string) {
		for _, n := range names {
			es = append(es, bundleEntry{component, n, version, "amd64", artifacts.KindBinary, ""})
		}
	}
	bin("kubernetes", "v1.37.2", "kubelet", "kube-proxy", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
	bin("kubernetes", "v1.36.3", "kubelet", "kube-proxy", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
	bin("etcd", "3.5.21", "etcd", "etcdctl", "etcdutl")
	bin("etcd", "3.6.4", "etcd", "etcdctl", "etcdutl")
	bin("containerd", "v2.1.4", "containerd", "containerd-shim-runc-v2", "ctr")
	bin("runc", "v1.3.0", "runc")
	bin("crictl", "v1.34.0", "crictl")
	bin("cni-plugins", "v1.8.0", "bridge", "loopback", "host-local", "portmap", "bandwidth", "firewall", "tuning")
	bin("cni-flannel", "v1.7.1", "flannel")
	bin("flannel", "v0.27.3", "flanneld")
	es = append(es,
		bundleEntry{"images", "pause", "3.10.2", "amd64", artifacts.KindImage, "registry.k8s.io/pause:3.10.2"},
		bundleEntry{"images", "coredns", "v1.12.3", "amd64", artifacts.KindImage, "registry.k8s.io/coredns/coredns:v1.12.3"},
		bundleEntry{"images", "pause", "3.10.2", "arm64", artifacts.KindImage, "registry.k8s.io/pause:3.10.2"},
		bundleEntry{"tofu", "tofu", "1.10.6", "amd64", artifacts.KindTool, ""},
	)
	return es
}

// writeBundle writes a bundle (files whose content names the binary and its version, and manifest.json) into
// dir and returns its manifest.
func writeBundle(t testing.TB, dir string, entries []bundleEntry) *artifacts.Manifest {
	t.Helper()
	m := &artifacts.Manifest{Schema: artifacts.SchemaVersion}
	for _, e := range entries {
		f := artifacts.File{Component: e.component, Name: e.name, Version: e.version, OS: "linux", Arch: e.arch, Kind: e.kind, Image: e.image}
		var data []byte
		if e.kind == artifacts.KindImage {
			f.Path = artifacts.ImagePath("linux", e.arch, e.name, e.version)
			data = []byte("fake oci archive " + e.image + " " + e.arch + "\n")
		} else {
			f.Path = artifacts.BinaryPath("linux", e.arch, e.component, e.version, e.name)
			data = []byte("#!/bin/false\nfake " + e.name + " " + e.version + "\n")
		}
		f.Size, f.SHA256 = int64(len(data)), sha256Hex(data)
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, f)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, artifacts.ManifestName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}
