package artifacts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// SchemaVersion is the manifest schema this package reads and writes.
const SchemaVersion = 1

// ManifestName is the manifest's file name at the bundle root.
const ManifestName = "manifest.json"

// Kinds of bundle files.
const (
	// KindBinary is a static executable that is uploaded to nodes.
	KindBinary = "binary"
	// KindImage is an OCI image-layout archive that nodes import into containerd.
	KindImage = "image"
	// KindDeb is a Debian package for hosts without a package mirror.
	KindDeb = "deb"
	// KindTool is an executable for the machine that runs kubesmith (tofu, golangci-lint); never uploaded.
	KindTool = "tool"
)

// File is one entry of the manifest.
type File struct {
	// Path is the slash-separated path relative to the bundle root.
	Path string `json:"path"`
	// Component groups files that are versioned together ("kubernetes", "etcd", "containerd", "deb", ...).
	Component string `json:"component"`
	// Name is the binary name, image name or Debian package name.
	Name string `json:"name"`
	// Version is the component version ("v1.37.2", "3.10.2", Debian version for debs).
	Version string `json:"version"`
	// OS is the target operating system in Go's naming ("linux").
	OS string `json:"os"`
	// Arch is the target architecture in Go's naming ("amd64", "arm64").
	Arch string `json:"arch"`
	// Kind is one of KindBinary, KindImage, KindDeb, KindTool.
	Kind string `json:"kind"`
	// Size is the file size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the lowercase hex sha256 of the file.
	SHA256 string `json:"sha256"`
	// Image is the image reference the archive carries (io.containerd.image.name); images only.
	Image string `json:"image,omitempty"`
}

// Manifest lists every file of a bundle.
type Manifest struct {
	// Schema is SchemaVersion.
	Schema int `json:"schema"`
	// Files are sorted by Path when written by this package.
	Files []File `json:"files"`
}

// BinaryPath is where a binary or tool lives in a bundle: bin/<os>-<arch>/<component>-<version>/<name>.
func BinaryPath(goos, arch, component, version, name string) string {
	return path.Join("bin", goos+"-"+arch, component+"-"+version, name)
}

// ImagePath is where an image archive lives in a bundle: images/<os>-<arch>/<name>-<version>.oci.tar.
func ImagePath(goos, arch, name, version string) string {
	return path.Join("images", goos+"-"+arch, name+"-"+version+".oci.tar")
}

// DebPath is where a Debian package lives in a bundle: debs/bookworm-<arch>/<file>.
func DebPath(arch, file string) string {
	return path.Join("debs", "bookworm-"+arch, file)
}

// ParseManifest decodes and validates a manifest: the schema version, that every path is a clean relative path
// that appears once, the kind, the size and the sha256 of every file.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("artifacts: decode manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the manifest; ParseManifest calls it. All problems are reported, joined.
func (m *Manifest) Validate() error {
	if m.Schema != SchemaVersion {
		return fmt.Errorf("artifacts: manifest schema %d is not supported (want %d)", m.Schema, SchemaVersion)
	}
	var errs []error
	seen := make(map[string]int, len(m.Files))
	for i, f := range m.Files {
		if err := f.validate(); err != nil {
			errs = append(errs, fmt.Errorf("artifacts: manifest file %d (%q): %w", i, f.Path, err))
			continue
		}
		if j, dup := seen[f.Path]; dup {
			errs = append(errs, fmt.Errorf("artifacts: manifest files %d and %d have the same path %q", j, i, f.Path))
			continue
		}
		seen[f.Path] = i
	}
	return errors.Join(errs...)
}

func (f File) validate() error {
	switch {
	case f.Path == "":
		return errors.New("empty path")
	case strings.HasPrefix(f.Path, "/") || strings.Contains(f.Path, `\`) || path.Clean(f.Path) != f.Path ||
		f.Path == "." || f.Path == ".." || strings.HasPrefix(f.Path, "../"):
		return errors.New("path must be a clean relative slash-separated path inside the bundle")
	case f.Path == ManifestName:
		return errors.New("the manifest cannot list itself")
	}
	for _, kv := range [][2]string{
		{"component", f.Component},
		{"name", f.Name},
		{"version", f.Version},
		{"os", f.OS},
		{"arch", f.Arch},
	} {
		if kv[1] == "" {
			return fmt.Errorf("empty %s", kv[0])
		}
	}
	switch f.Kind {
	case KindBinary, KindTool:
		if want := BinaryPath(f.OS, f.Arch, f.Component, f.Version, f.Name); f.Path != want {
			return fmt.Errorf("%s path should be %q", f.Kind, want)
		}
	case KindImage:
		if want := ImagePath(f.OS, f.Arch, f.Name, f.Version); f.Path != want {
			return fmt.Errorf("image path should be %q", want)
		}
		if f.Image == "" {
			return errors.New("image without an image reference")
		}
	case KindDeb:
		if dir := path.Dir(f.Path); dir != path.Dir(DebPath(f.Arch, "x.deb")) || !strings.HasSuffix(f.Path, ".deb") {
			return fmt.Errorf("deb path should be %q", DebPath(f.Arch, "<file>.deb"))
		}
	default:
		return fmt.Errorf("unknown kind %q", f.Kind)
	}
	if f.Kind != KindImage && f.Image != "" {
		return fmt.Errorf("image reference on a %s", f.Kind)
	}
	if f.Size < 0 {
		return fmt.Errorf("negative size %d", f.Size)
	}
	if !isSHA256Hex(f.SHA256) {
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", f.SHA256)
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Marshal encodes the manifest with files sorted by path, indented, with a trailing newline. The same manifest
// always gives the same bytes.
func (m *Manifest) Marshal() ([]byte, error) {
	out := Manifest{Schema: m.Schema, Files: slices.Clone(m.Files)}
	slices.SortFunc(out.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("artifacts: encode manifest: %w", err)
	}
	return append(data, '\n'), nil
}

// Lookup finds the file of a component by name, version and architecture. Versions match with or without a
// leading "v" ("1.37.2" finds "v1.37.2").
func (m *Manifest) Lookup(component, name, version, arch string) (File, bool) {
	for _, f := range m.Files {
		if f.Component == component && f.Name == name && f.Arch == arch && sameVersion(f.Version, version) {
			return f, true
		}
	}
	return File{}, false
}

// Versions lists the distinct versions of a component, oldest first.
func (m *Manifest) Versions(component string) []string {
	var vs []string
	for _, f := range m.Files {
		if f.Component == component && !slices.Contains(vs, f.Version) {
			vs = append(vs, f.Version)
		}
	}
	slices.SortFunc(vs, CompareVersions)
	return vs
}

// byPath returns the manifest entry with this path.
func (m *Manifest) byPath(p string) (File, bool) {
	for _, f := range m.Files {
		if f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

func sameVersion(a, b string) bool {
	return strings.TrimPrefix(a, "v") == strings.TrimPrefix(b, "v")
}

// CompareVersions orders version strings such as "v1.36.3" < "v1.37.2" < "v1.37.10" field by field: fields are
// split at '.', '-', '+', ':' and '~', numbers compare numerically and sort after words, a leading "v" is ignored.
// When one version is the other plus more fields, the longer one is later ("1.2" < "1.2.1", "1:2.2.7-1" <
// "1:2.2.7-1+b2") unless the extra part is a pre-release: a word after '-' or '~' ("1.2.0-rc.1" < "1.2.0").
// It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	as, bs := versionFields(a), versionFields(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		an, aerr := strconv.ParseUint(as[i].text, 10, 64)
		bn, berr := strconv.ParseUint(bs[i].text, 10, 64)
		switch {
		case aerr == nil && berr == nil:
			if an != bn {
				if an < bn {
					return -1
				}
				return 1
			}
		case aerr == nil:
			return 1
		case berr == nil:
			return -1
		default:
			if c := strings.Compare(as[i].text, bs[i].text); c != 0 {
				return c
			}
		}
	}
	extra := func(f versionField) int { // how a version with this extra field compares to the shorter one
		_, err := strconv.ParseUint(f.text, 10, 64)
		if err != nil && (f.sep == '-' || f.sep == '~') {
			return -1
		}
		return 1
	}
	switch {
	case len(as) > len(bs):
		return extra(as[len(bs)])
	case len(as) < len(bs):
		return -extra(bs[len(as)])
	}
	return strings.Compare(a, b)
}

// versionField is a field of a version and the separator before it.
type versionField struct {
	sep  rune
	text string
}

func versionFields(v string) []versionField {
	var out []versionField
	sep := rune(0)
	start := -1
	s := strings.TrimPrefix(v, "v")
	for i, r := range s {
		if strings.ContainsRune(".-+:~", r) {
			if start >= 0 {
				out = append(out, versionField{sep: sep, text: s[start:i]})
				start = -1
			}
			sep = r
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, versionField{sep: sep, text: s[start:]})
	}
	return out
}
