package phasetest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
)

// BundleEntry is one file of a test bundle.
type BundleEntry struct {
	Component string // artifacts.File.Component
	Name      string // the binary's or image's name
	Version   string
	Arch      string // amd64, arm64
	Kind      string // artifacts.KindBinary, KindImage or KindTool
	Image     string // the image reference, for KindImage
}

// BundleEntries is a small bundle with everything a master needs for amd64, plus decoys that must not be
// picked: an older etcd, another Kubernetes version, an arm64 image and a tool.
func BundleEntries() []BundleEntry {
	var es []BundleEntry
	bin := func(component, version string, names ...string) {
		for _, n := range names {
			es = append(es, BundleEntry{Component: component, Name: n, Version: version, Arch: "amd64", Kind: artifacts.KindBinary})
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
		BundleEntry{Component: "images", Name: "pause", Version: "3.10.2", Arch: "amd64", Kind: artifacts.KindImage, Image: "registry.k8s.io/pause:3.10.2"},
		BundleEntry{Component: "images", Name: "coredns", Version: "v1.12.3", Arch: "amd64", Kind: artifacts.KindImage, Image: "registry.k8s.io/coredns/coredns:v1.12.3"},
		BundleEntry{Component: "metallb", Name: "metallb-controller", Version: "v0.15.2", Arch: "amd64", Kind: artifacts.KindImage, Image: "quay.io/metallb/controller:v0.15.2"},
		BundleEntry{Component: "metallb", Name: "metallb-speaker", Version: "v0.15.2", Arch: "amd64", Kind: artifacts.KindImage, Image: "quay.io/metallb/speaker:v0.15.2"},
		BundleEntry{Component: "metrics-server", Name: "metrics-server", Version: "v0.9.0", Arch: "amd64", Kind: artifacts.KindImage, Image: "registry.k8s.io/metrics-server/metrics-server:v0.9.0"},
		BundleEntry{Component: "images", Name: "pause", Version: "3.10.2", Arch: "arm64", Kind: artifacts.KindImage, Image: "registry.k8s.io/pause:3.10.2"},
		BundleEntry{Component: "tofu", Name: "tofu", Version: "1.10.6", Arch: "amd64", Kind: artifacts.KindTool},
	)
	return es
}

// WriteBundle writes a bundle of entries (files whose content names the binary and its version, and
// manifest.json) into dir and returns its manifest. Any failure ends the test.
func WriteBundle(t testing.TB, dir string, entries []BundleEntry) *artifacts.Manifest {
	t.Helper()
	m := &artifacts.Manifest{Schema: artifacts.SchemaVersion}
	for _, e := range entries {
		f := artifacts.File{Component: e.Component, Name: e.Name, Version: e.Version, OS: "linux", Arch: e.Arch, Kind: e.Kind, Image: e.Image}
		var data []byte
		if e.Kind == artifacts.KindImage {
			f.Path = artifacts.ImagePath("linux", e.Arch, e.Name, e.Version)
			data = []byte("fake oci archive " + e.Image + " " + e.Arch + "\n")
		} else {
			f.Path = artifacts.BinaryPath("linux", e.Arch, e.Component, e.Version, e.Name)
			data = []byte("#!/bin/false\nfake " + e.Name + " " + e.Version + "\n")
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
