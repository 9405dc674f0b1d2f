package artifacts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testImage is a small image with a binary from a local file, inline files, a symlink, a capability and the base.
func testImage(t *testing.T, binContent string) Image {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	if err := os.WriteFile(bin, []byte(binContent), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	entries := append(BaseImageEntries(ca),
		ImageEntry{Path: "/usr/local/bin/server", Mode: 0o755, Source: bin, Xattrs: map[string]string{"security.capability": capNetBindService()}},
		ImageEntry{Path: "/usr/bin/server", Mode: fs.ModeSymlink | 0o777, Target: "/usr/local/bin/server"},
		ImageEntry{Path: "/etc/server/config.yaml", Mode: 0o644, Content: []byte("port: 8080\n")},
	)
	return Image{
		Name: "kubesmith.invalid/server:v1", OS: "linux", Arch: "amd64", Layers: [][]ImageEntry{
			entries,
			{{Path: "/etc/server/extra", Mode: 0o600, Content: []byte("second layer")}},
		},
		Config: ImageConfig{
			Entrypoint: []string{"/usr/local/bin/server"}, Cmd: []string{"--port=8080"},
			Env: []string{"A=1"}, User: "65532:65532", ExposedPorts: []string{"8080/tcp"}, Labels: map[string]string{"b": "2", "a": "1"},
		},
	}
}

func writeTestImage(t *testing.T, img Image) ([]byte, ImageResult) {
	t.Helper()
	var buf bytes.Buffer
	res, err := WriteImage(context.Background(), &buf, img)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), res
}

// readTar returns the entries of a tar by name, with their contents.
func readTar(t *testing.T, r io.Reader) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(r)
	var hs []*tar.Header
	data := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		data[h.Name] = b
	}
}

func TestWriteImageDeterministic(t *testing.T) {
	a, ra := writeTestImage(t, testImage(t, "binary v1"))
	time.Sleep(10 * time.Millisecond) // other source files, other mtimes, same content
	b, rb := writeTestImage(t, testImage(t, "binary v1"))
	if !bytes.Equal(a, b) || ra != rb {
		t.Fatalf("same input, different output: %v vs %v", ra, rb)
	}
	_, rc := writeTestImage(t, testImage(t, "binary v2"))
	if rc.ManifestDigest == ra.ManifestDigest {
		t.Fatal("different content, same digest")
	}
	if !strings.HasPrefix(ra.ManifestDigest, "sha256:") || len(ra.ManifestDigest) != 71 {
		t.Fatalf("digest %q", ra.ManifestDigest)
	}
}

func TestWriteImageLayout(t *testing.T) {
	img := testImage(t, "binary v1")
	data, res := writeTestImage(t, img)
	hs, files := readTar(t, bytes.NewReader(data))
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d", h.Name, h.ModTime, h.Uid, h.Gid)
		}
	}
	if !slices.IsSorted(names) || names[0] != "blobs/" || names[len(names)-1] != "oci-layout" {
		t.Fatalf("archive entries not sorted as expected: %v", names)
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("oci-layout = %s", files["oci-layout"])
	}
	var idx ociIndex
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	d := idx.Manifests[0]
	if d.Annotations[AnnotationContainerdImageName] != img.Name || d.Annotations[AnnotationRefName] != "v1" ||
		d.Platform.Architecture != "amd64" || d.Digest != res.ManifestDigest {
		t.Fatalf("index = %+v", idx)
	}
	blob := func(digest string) []byte {
		t.Helper()
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
		if !ok {
			t.Fatalf("blob %s missing", digest)
		}
		if "sha256:"+sha(b) != digest {
			t.Fatalf("blob %s has digest %s", digest, sha(b))
		}
		return b
	}
	var man ociManifest
	if err := json.Unmarshal(blob(d.Digest), &man); err != nil {
		t.Fatal(err)
	}
	var cfg ociImageConfig
	if err := json.Unmarshal(blob(man.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || cfg.Config.Entrypoint[0] != "/usr/local/bin/server" ||
		len(cfg.RootFS.DiffIDs) != 2 || len(man.Layers) != 2 || cfg.Created != "1970-01-01T00:00:00Z" {
		t.Fatalf("config = %+v, manifest = %+v", cfg, man)
	}
	if _, ok := cfg.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Fatalf("exposed ports = %v", cfg.Config.ExposedPorts)
	}

	gz, err := gzip.NewReader(bytes.NewReader(blob(man.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	if gz.Name != "" || !gz.ModTime.IsZero() {
		t.Fatalf("gzip header has name %q time %v", gz.Name, gz.ModTime)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	if "sha256:"+sha(raw) != cfg.RootFS.DiffIDs[0] {
		t.Fatal("diff ID is not the digest of the uncompressed layer")
	}
	lh, lf := readTar(t, bytes.NewReader(raw))
	byName := map[string]*tar.Header{}
	var layerNames []string
	for _, h := range lh {
		byName[h.Name] = h
		layerNames = append(layerNames, h.Name)
	}
	if !slices.IsSorted(layerNames) {
		t.Fatalf("layer entries not sorted: %v", layerNames)
	}
	for _, dir := range []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "usr/", "usr/local/", "usr/local/bin/", "etc/server/"} {
		if h := byName[dir]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o755 {
			t.Errorf("parent directory %s: %+v", dir, h)
		}
	}
	if h := byName["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("/tmp = %+v, want mode 1777", h)
	}
	if h := byName["home/nonroot/"]; h == nil || h.Uid != 65532 || h.Mode != 0o700 {
		t.Errorf("/home/nonroot = %+v", h)
	}
	srv := byName["usr/local/bin/server"]
	if srv == nil || srv.Mode != 0o755 || string(lf["usr/local/bin/server"]) != "binary v1" ||
		srv.PAXRecords["SCHILY.xattr.security.capability"] != capNetBindService() {
		t.Errorf("server entry = %+v", srv)
	}
	if h := byName["usr/bin/server"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/usr/local/bin/server" {
		t.Errorf("symlink = %+v", h)
	}
	if !strings.Contains(string(lf["etc/passwd"]), "nonroot:x:65532:65532") || string(lf["etc/ssl/certs/ca-certificates.crt"]) == "" {
		t.Error("base files missing")
	}
	// Verify's reader finds the index in the archive.
	got, err := readImageIndex(bytes.NewReader(data))
	if err != nil || got.Manifests[0].Digest != res.ManifestDigest {
		t.Fatalf("readImageIndex = %+v, %v", got, err)
	}
}

func TestWriteImageRejectsBadInput(t *testing.T) {
	base := func() Image {
		return Image{Name: "x.invalid/a:1", OS: "linux", Arch: "amd64", Layers: [][]ImageEntry{{{Path: "/a", Mode: 0o644, Content: []byte("a")}}}}
	}
	cases := map[string]func(*Image){
		"no name":        func(i *Image) { i.Name = "" },
		"no layers":      func(i *Image) { i.Layers = nil },
		"relative path":  func(i *Image) { i.Layers[0][0].Path = "a" },
		"duplicate":      func(i *Image) { i.Layers[0] = append(i.Layers[0], i.Layers[0][0]) },
		"file as parent": func(i *Image) { i.Layers[0] = append(i.Layers[0], ImageEntry{Path: "/a/b", Mode: 0o644}) },
		"symlink target": func(i *Image) { i.Layers[0][0] = ImageEntry{Path: "/l", Mode: fs.ModeSymlink} },
		"missing source": func(i *Image) { i.Layers[0][0] = ImageEntry{Path: "/s", Mode: 0o755, Source: "/nonexistent/x"} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			img := base()
			mutate(&img)
			if _, err := WriteImage(context.Background(), io.Discard, img); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestWriteImageFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "img.oci.tar")
	bad := Image{Name: "x.invalid/a:1", OS: "linux", Arch: "amd64", Layers: [][]ImageEntry{{{Path: "/s", Mode: 0o755, Source: "/nonexistent/x"}}}}
	if _, err := WriteImageFile(context.Background(), out, bad); err == nil {
		t.Fatal("accepted a missing source")
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Fatalf("failed write left %v", es)
	}
	res, err := WriteImageFile(context.Background(), out, testImage(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	_, want := writeTestImage(t, testImage(t, "x"))
	if res != want || len(data) == 0 {
		t.Fatalf("WriteImageFile = %v, WriteImage = %v", res, want)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("temporary files left: %v", es)
	}

	// Two identical layers share one blob, and no staged layer file is left behind.
	layer := []ImageEntry{{Path: "/a", Mode: 0o644, Content: []byte("same")}}
	dup := Image{Name: "x.invalid/dup:1", OS: "linux", Arch: "amd64", Layers: [][]ImageEntry{layer, layer}}
	dupDir := t.TempDir()
	if _, err := WriteImageFile(context.Background(), filepath.Join(dupDir, "dup.oci.tar"), dup); err != nil {
		t.Fatal(err)
	}
	if es, _ := os.ReadDir(dupDir); len(es) != 1 {
		t.Fatalf("temporary files left: %v", es)
	}
	f, err := os.Open(filepath.Join(dupDir, "dup.oci.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	hs, _ := readTar(t, f)
	if len(hs) != 2+3+2 { // blobs/, blobs/sha256/, layer + config + manifest, index.json, oci-layout
		t.Fatalf("archive has %d entries", len(hs))
	}
}

func TestImageTag(t *testing.T) {
	for ref, want := range map[string]string{
		"registry.k8s.io/pause:3.10.2": "3.10.2", "localhost:5000/echo": "latest", "localhost:5000/echo:v1": "v1", "busybox": "latest",
	} {
		if got := imageTag(ref); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", ref, got, want)
		}
	}
}

// TestImageImportsIntoContainerd imports an image with `ctr -n k8s.io images import`, checks its name and removes
// it again. It needs ctr and a running containerd: the socket is $KUBESMITH_CONTAINERD_ADDRESS or
// /run/containerd/containerd.sock.
func TestImageImportsIntoContainerd(t *testing.T) {
	ctr, err := exec.LookPath("ctr")
	if err != nil {
		t.Skip("ctr is not installed")
	}
	addr := os.Getenv("KUBESMITH_CONTAINERD_ADDRESS")
	if addr == "" {
		addr = "/run/containerd/containerd.sock"
	}
	if st, err := os.Stat(addr); err != nil || st.Mode().Type() != fs.ModeSocket {
		t.Skipf("no containerd socket at %s (set KUBESMITH_CONTAINERD_ADDRESS to use another)", addr)
	}
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, ctr, append([]string{"-a", addr, "-n", "k8s.io"}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := run("version"); err != nil {
		t.Skipf("containerd at %s does not answer: %v: %s", addr, err, out)
	}
	img := testImage(t, "#!/bin/true\n")
	img.Name = fmt.Sprintf("kubesmith.invalid/artifacts-test:%d", time.Now().UnixNano())
	path := filepath.Join(t.TempDir(), "test.oci.tar")
	res, err := WriteImageFile(context.Background(), path, img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := run("images", "rm", img.Name); err != nil {
			t.Logf("remove %s: %v: %s", img.Name, err, out)
		}
	})
	if out, err := run("images", "import", path); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	// The import unpacked the layers (ownership, modes, the capability xattr) into the snapshotter.
	if out, err := run("images", "check", "name=="+img.Name); err != nil || !strings.Contains(out, "complete") {
		t.Fatalf("ctr images check: %v\n%s", err, out)
	}
	out, err := run("images", "ls")
	if err != nil {
		t.Fatalf("ctr images ls: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == img.Name {
			if f[2] != res.ManifestDigest {
				t.Fatalf("imported %s with digest %s, want %s", img.Name, f[2], res.ManifestDigest)
			}
			return
		}
	}
	t.Fatal(errors.New("imported image not listed: " + out))
}
