package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeELF is a 64-byte ELF64 little-endian header for the machine of goarch, followed by some payload.
func fakeELF(t *testing.T, goarch, payload string) []byte {
	t.Helper()
	machines := map[string]uint16{"amd64": 62, "arm64": 183, "386": 3, "s390x": 22}
	m, ok := machines[goarch]
	if !ok {
		t.Fatalf("no ELF machine for %s", goarch)
	}
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = elfClass64, elfDataLE, 1
	binary.LittleEndian.PutUint16(h[16:], 2) // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], m)
	return append(h, payload...)
}

type bundleEntry struct {
	file    File // Path, Size and SHA256 are filled in from content
	content []byte
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeBundle writes the files and a manifest describing them exactly.
func writeBundle(t *testing.T, dir string, entries []bundleEntry) *Manifest {
	t.Helper()
	m := &Manifest{Schema: 1}
	for _, e := range entries {
		f := e.file
		switch f.Kind {
		case KindBinary, KindTool:
			f.Path = BinaryPath(f.OS, f.Arch, f.Component, f.Version, f.Name)
		case KindImage:
			f.Path = ImagePath(f.OS, f.Arch, f.Name, f.Version)
		}
		f.Size, f.SHA256 = int64(len(e.content)), sha(e.content)
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, e.content, 0o755); err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, f)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

func binEntry(t *testing.T, name, elfArch string) bundleEntry {
	return bundleEntry{
		file:    File{Component: "kubernetes", Name: name, Version: "v1.37.2", OS: "linux", Arch: "amd64", Kind: KindBinary},
		content: fakeELF(t, elfArch, "payload of "+name),
	}
}

func imageEntry(t *testing.T, name, platformArch string) bundleEntry {
	t.Helper()
	var buf bytes.Buffer
	_, err := WriteImage(context.Background(), &buf, Image{
		Name: "registry.k8s.io/" + name + ":3.10.2", OS: "linux", Arch: platformArch,
		Layers: [][]ImageEntry{{{Path: "/" + name, Mode: 0o755, Content: []byte("#!/bin/true\n")}}},
		Config: ImageConfig{Entrypoint: []string{"/" + name}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return bundleEntry{file: File{
		Component: name, Name: name, Version: "3.10.2", OS: "linux", Arch: "amd64", Kind: KindImage,
		Image: "registry.k8s.io/" + name + ":3.10.2",
	}, content: buf.Bytes()}
}

func debEntry(file string) bundleEntry {
	name, version, _, _ := parseDebFileName(file)
	return bundleEntry{file: File{
		Path: DebPath("amd64", file), Component: ComponentDeb, Name: name, Version: version,
		OS: "linux", Arch: "amd64", Kind: KindDeb,
	}, content: []byte("!<arch>\ndebian-binary   0  0 0 100644 4 `\n2.0\n")}
}

// testBundle is a small bundle with every kind of file.
func testBundle(t *testing.T) (string, *Manifest) {
	t.Helper()
	dir := t.TempDir()
	m := writeBundle(t, dir, []bundleEntry{
		binEntry(t, "kubelet", "amd64"),
		binEntry(t, "kube-proxy", "amd64"),
		binEntry(t, "kubectl", "amd64"),
		imageEntry(t, "pause", "amd64"),
		debEntry("keepalived_1%3a2.2.7-1+b2_amd64.deb"),
		debEntry("iptables_1.8.9-2_all.deb"),
	})
	return dir, m
}

func fileByName(t *testing.T, m *Manifest, name string) File {
	t.Helper()
	for _, f := range m.Files {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no %s in manifest", name)
	return File{}
}

func problemsByPath(ps []Problem) map[string]ProblemKind {
	out := map[string]ProblemKind{}
	for _, p := range ps {
		out[p.Path] = p.Kind
	}
	return out
}

func TestVerifyCleanBundle(t *testing.T) {
	dir, m := testBundle(t)
	b, err := Open(dir, WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if ps := b.Verify(context.Background()); len(ps) != 0 {
		t.Fatalf("problems in a clean bundle: %v", ps)
	}
	if len(b.Manifest().Files) != len(m.Files) {
		t.Fatal("manifest not loaded")
	}
}

func TestVerifyReportsMissingCorruptAndWrongArch(t *testing.T) {
	dir := t.TempDir()
	m := writeBundle(t, dir, []bundleEntry{
		binEntry(t, "kubelet", "amd64"),
		binEntry(t, "kube-proxy", "amd64"),
		binEntry(t, "kubectl", "amd64"),
		binEntry(t, "kube-scheduler", "amd64"),
		binEntry(t, "crictl", "arm64"), // checksum right, architecture wrong
		{
			file:    File{Component: "kubernetes", Name: "notelf", Version: "v1.37.2", OS: "linux", Arch: "amd64", Kind: KindBinary},
			content: []byte("#!/bin/sh\n"),
		},
		imageEntry(t, "pause", "arm64"), // platform arm64, manifest amd64
		imageEntry(t, "echo", "amd64"),
		debEntry("socat_1.7.4.4-2_arm64.deb"),
	})
	p := func(name string) string { return filepath.Join(dir, filepath.FromSlash(fileByName(t, m, name).Path)) }
	if err := os.Remove(p("kube-proxy")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p("kubelet"), 10); err != nil {
		t.Fatal(err)
	}
	kubectl, err := os.ReadFile(p("kubectl"))
	if err != nil {
		t.Fatal(err)
	}
	kubectl[len(kubectl)-1] ^= 0xff // same size, other content
	if err := os.WriteFile(p("kubectl"), kubectl, 0o755); err != nil {
		t.Fatal(err)
	}

	b, err := Open(dir, WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ps := b.Verify(context.Background())
	got := problemsByPath(ps)
	want := map[string]ProblemKind{
		fileByName(t, m, "kube-proxy").Path: ProblemMissing,
		fileByName(t, m, "kubelet").Path:    ProblemCorrupt,
		fileByName(t, m, "kubectl").Path:    ProblemCorrupt,
		fileByName(t, m, "crictl").Path:     ProblemWrongArch,
		fileByName(t, m, "notelf").Path:     ProblemCorrupt,
		fileByName(t, m, "pause").Path:      ProblemWrongArch,
		fileByName(t, m, "socat").Path:      ProblemWrongArch,
	}
	if len(got) != len(want) || len(ps) != len(want) {
		t.Fatalf("problems:\n%v\nwant paths %v", ps, want)
	}
	for path, kind := range want {
		if got[path] != kind {
			t.Errorf("%s: kind %q, want %q (all: %v)", path, got[path], kind, ps)
		}
	}
	for _, pr := range ps {
		switch pr.Path {
		case fileByName(t, m, "kubelet").Path:
			if !strings.Contains(pr.Detail, "size is 10 bytes") {
				t.Errorf("kubelet detail = %q", pr.Detail)
			}
		case fileByName(t, m, "kubectl").Path:
			if !strings.Contains(pr.Detail, "sha256 is "+sha(kubectl)) || !strings.Contains(pr.Detail, "manifest says "+fileByName(t, m, "kubectl").SHA256) {
				t.Errorf("kubectl detail = %q", pr.Detail)
			}
		case fileByName(t, m, "crictl").Path:
			if !strings.Contains(pr.Detail, "ELF machine is arm64, manifest says amd64") {
				t.Errorf("crictl detail = %q", pr.Detail)
			}
		}
		if !strings.HasPrefix(pr.String(), pr.Path+": ") {
			t.Errorf("String() = %q does not start with the path", pr.String())
		}
	}
}

func TestFetchLocalNamesTheFile(t *testing.T) {
	dir, m := testBundle(t)
	b, err := Open(dir, WithCacheDir(""))
	if err != nil {
		t.Fatal(err)
	}
	f := fileByName(t, m, "kubelet")
	p, err := b.Fetch(context.Background(), f)
	if err != nil || p != filepath.Join(dir, filepath.FromSlash(f.Path)) {
		t.Fatalf("Fetch = %q, %v", p, err)
	}
	if err := os.WriteFile(p, []byte("replaced"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = b.Fetch(context.Background(), f)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Kind != ProblemCorrupt || !strings.Contains(err.Error(), f.Path) {
		t.Fatalf("Fetch of a replaced file: %v", err)
	}
	other := f
	other.SHA256 = sumA
	if _, err := b.Fetch(context.Background(), other); err == nil || !strings.Contains(err.Error(), "not in the manifest") {
		t.Fatalf("Fetch of a file the manifest does not list: %v", err)
	}
}

func TestHashCacheAvoidsRehash(t *testing.T) {
	dir, m := testBundle(t)
	cache := t.TempDir()
	var hashed []string
	b, err := Open(dir, WithCacheDir(cache), WithHashObserver(func(p string) { hashed = append(hashed, p) }))
	if err != nil {
		t.Fatal(err)
	}
	f := fileByName(t, m, "kubelet")
	ctx := context.Background()
	p, err := b.Fetch(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fetch(ctx, f); err != nil {
		t.Fatal(err)
	}
	if len(hashed) != 1 {
		t.Fatalf("hashed %d times in one process, want 1: %v", len(hashed), hashed)
	}

	// A new Bundle (a new provider process) finds the persisted entry.
	hashed = nil
	b2, err := Open(dir, WithCacheDir(cache), WithHashObserver(func(p string) { hashed = append(hashed, p) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Fetch(ctx, f); err != nil {
		t.Fatal(err)
	}
	if len(hashed) != 0 {
		t.Fatalf("re-hashed after reopening: %v", hashed)
	}
	if _, err := os.Stat(filepath.Join(cache, HashCacheName)); err != nil {
		t.Fatalf("hash cache not persisted: %v", err)
	}

	// A new mtime (same size) invalidates the entry.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Fetch(ctx, f); err != nil {
		t.Fatal(err)
	}
	if len(hashed) != 1 {
		t.Fatalf("hashed %d times after an mtime change, want 1", len(hashed))
	}
}

func TestOpenWithoutManifest(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, WithCacheDir(""))
	if err == nil || !strings.Contains(err.Error(), "has no manifest.json") {
		t.Fatalf("Open of an empty dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(`{"schema":9,"files":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, WithCacheDir("")); err == nil || !strings.Contains(err.Error(), "schema 9") {
		t.Fatalf("Open with a bad manifest: %v", err)
	}
}

func TestVerifyHonoursContext(t *testing.T) {
	dir, m := testBundle(t)
	b, err := Open(dir, WithCacheDir(""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ps := b.Verify(ctx)
	if len(ps) != len(m.Files) || ps[0].Kind != ProblemUnavailable || !strings.Contains(ps[0].Detail, "canceled") {
		t.Fatalf("Verify with a cancelled context: %v", ps)
	}
}

func TestElfArch(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64", "386", "s390x"} {
		got, err := elfArch(bytes.NewReader(fakeELF(t, arch, "")))
		if err != nil || got != arch {
			t.Errorf("elfArch(%s) = %q, %v", arch, got, err)
		}
	}
	if _, err := elfArch(bytes.NewReader([]byte("MZ"))); !errors.Is(err, errNotELF) {
		t.Errorf("short file: %v", err)
	}
	if _, err := elfArch(bytes.NewReader(append([]byte("\x7fELF\x02\x01"), make([]byte, 30)...))); err != nil {
		t.Errorf("machine 0: %v", err)
	}
}
