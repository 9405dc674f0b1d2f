package artifacts

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

const (
	sumA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sumB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func kubelet(version string) File {
	return File{
		Path: BinaryPath("linux", "amd64", "kubernetes", version, "kubelet"), Component: "kubernetes",
		Name: "kubelet", Version: version, OS: "linux", Arch: "amd64", Kind: KindBinary, Size: 10, SHA256: sumA,
	}
}

func pauseImage() File {
	return File{
		Path: ImagePath("linux", "amd64", "pause", "3.10.2"), Component: "pause", Name: "pause",
		Version: "3.10.2", OS: "linux", Arch: "amd64", Kind: KindImage, Size: 20, SHA256: sumB,
		Image: "registry.k8s.io/pause:3.10.2",
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseManifestGood(t *testing.T) {
	deb := File{
		Path: "debs/bookworm-amd64/socat_1.7.4.4-2_amd64.deb", Component: "deb", Name: "socat",
		Version: "1.7.4.4-2", OS: "linux", Arch: "amd64", Kind: KindDeb, Size: 0, SHA256: sumA,
	}
	tool := File{
		Path: "bin/linux-amd64/opentofu-v1.12.6/tofu", Component: "opentofu", Name: "tofu",
		Version: "v1.12.6", OS: "linux", Arch: "amd64", Kind: KindTool, Size: 1, SHA256: sumB,
	}
	in := Manifest{Schema: 1, Files: []File{kubelet("v1.37.2"), pauseImage(), deb, tool}}
	m, err := ParseManifest(mustJSON(t, in))
	if err != nil {
		t.Fatalf("ParseManifest: %v", err)
	}
	if len(m.Files) != 4 || m.Files[0].Path != "bin/linux-amd64/kubernetes-v1.37.2/kubelet" {
		t.Fatalf("files = %+v", m.Files)
	}
	// The documented example line parses as is.
	doc := `{"schema":1,"files":[{"path":"bin/linux-amd64/kubernetes-v1.37.2/kubelet","component":"kubernetes",` +
		`"name":"kubelet","version":"v1.37.2","os":"linux","arch":"amd64","kind":"binary","size":91975842,"sha256":"` + sumA + `"}]}`
	if _, err := ParseManifest([]byte(doc)); err != nil {
		t.Fatalf("documented example: %v", err)
	}
}

func TestParseManifestBad(t *testing.T) {
	mod := func(f func(*File)) Manifest {
		k := kubelet("v1.37.2")
		f(&k)
		return Manifest{Schema: 1, Files: []File{k}}
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"not json", []byte("{"), "decode manifest"},
		{"unknown field", []byte(`{"schema":1,"files":[],"extra":1}`), "unknown field"},
		{"schema", mustJSON(t, Manifest{Schema: 2, Files: nil}), "schema 2 is not supported"},
		{"duplicate", mustJSON(t, Manifest{Schema: 1, Files: []File{kubelet("v1.37.2"), kubelet("v1.37.2")}}), "same path"},
		{"short sha", mustJSON(t, mod(func(f *File) { f.SHA256 = "abc" })), "not 64 lowercase hex"},
		{"upper sha", mustJSON(t, mod(func(f *File) { f.SHA256 = strings.ToUpper(sumA) })), "not 64 lowercase hex"},
		{"negative size", mustJSON(t, mod(func(f *File) { f.Size = -1 })), "negative size"},
		{"unknown kind", mustJSON(t, mod(func(f *File) { f.Kind = "rpm" })), `unknown kind "rpm"`},
		{"traversal", mustJSON(t, mod(func(f *File) { f.Path = "../etc/passwd" })), "clean relative"},
		{"absolute", mustJSON(t, mod(func(f *File) { f.Path = "/bin/kubelet" })), "clean relative"},
		{"layout", mustJSON(t, mod(func(f *File) { f.Path = "bin/kubelet" })), "path should be"},
		{"no arch", mustJSON(t, mod(func(f *File) { f.Arch = "" })), "empty arch"},
		{"image ref on binary", mustJSON(t, mod(func(f *File) { f.Image = "x:y" })), "image reference on a binary"},
		{"image without ref", mustJSON(t, Manifest{Schema: 1, Files: []File{func() File { p := pauseImage(); p.Image = ""; return p }()}}), "without an image reference"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseManifest(c.data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestLookupAndVersions(t *testing.T) {
	m := &Manifest{Schema: 1, Files: []File{kubelet("v1.37.2"), kubelet("v1.36.10"), kubelet("v1.36.3"), pauseImage()}}
	f, ok := m.Lookup("kubernetes", "kubelet", "1.37.2", "amd64")
	if !ok || f.Version != "v1.37.2" {
		t.Fatalf("Lookup without v = %+v, %v", f, ok)
	}
	if _, ok := m.Lookup("kubernetes", "kubelet", "v1.37.2", "arm64"); ok {
		t.Fatal("Lookup found an arm64 kubelet")
	}
	if _, ok := m.Lookup("kubernetes", "kubectl", "v1.37.2", "amd64"); ok {
		t.Fatal("Lookup found kubectl")
	}
	if got, want := m.Versions("kubernetes"), []string{"v1.36.3", "v1.36.10", "v1.37.2"}; !slices.Equal(got, want) {
		t.Fatalf("Versions = %v, want %v", got, want)
	}
	if got := m.Versions("etcd"); len(got) != 0 {
		t.Fatalf("Versions(etcd) = %v", got)
	}
	if err := m.Require("kubernetes", "v1.37.2", "amd64", "kubelet"); err != nil {
		t.Fatalf("Require: %v", err)
	}
	err := m.Require("kubernetes", "v1.38.0", "amd64", "kubelet")
	if err == nil || !strings.Contains(err.Error(), "v1.36.3, v1.36.10, v1.37.2") {
		t.Fatalf("Require error = %v", err)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, ordered := range [][]string{
		{"v1.0.0-rc.1", "v1.0.0", "1.0.1", "v1.2", "v1.2.1", "v1.10.0"},
		{"1:2.2.7-1", "1:2.2.7-1+b2", "1:2.2.8-1"},
	} {
		checkOrder(t, ordered)
	}
}

func checkOrder(t *testing.T, ordered []string) {
	t.Helper()
	for i := range ordered {
		for j := range ordered {
			got := CompareVersions(ordered[i], ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestMarshalDeterministicRoundTrip(t *testing.T) {
	a := &Manifest{Schema: 1, Files: []File{pauseImage(), kubelet("v1.37.2")}}
	b := &Manifest{Schema: 1, Files: []File{kubelet("v1.37.2"), pauseImage()}}
	da, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(da) != string(db) {
		t.Fatalf("Marshal depends on input order:\n%s\n%s", da, db)
	}
	if a.Files[0].Kind != KindImage {
		t.Fatal("Marshal reordered the caller's slice")
	}
	m, err := ParseManifest(da)
	if err != nil {
		t.Fatal(err)
	}
	if m.Files[0].Path > m.Files[1].Path || !strings.Contains(string(da), `"image": "registry.k8s.io/pause:3.10.2"`) {
		t.Fatalf("unexpected encoding:\n%s", da)
	}
	if strings.Contains(string(da[:strings.Index(string(da), "pause")]), `"image"`) {
		t.Fatalf("binary entry carries an image field:\n%s", da)
	}
}
