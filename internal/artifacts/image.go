package artifacts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Annotations that name an image in an OCI image layout.
const (
	// AnnotationContainerdImageName is the full reference that `ctr images import` gives the image.
	AnnotationContainerdImageName = "io.containerd.image.name"
	// AnnotationRefName is the OCI reference name (the tag).
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// OCI media types.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// ImageGzipLevel is the fixed compression level of image layers. Changing it changes every image digest.
const ImageGzipLevel = 6

// epoch is the modification time of every entry: images depend only on their content.
func epoch() time.Time { return time.Unix(0, 0).UTC() }

// ImageEntry is one file system entry of an image layer. Times are always the epoch.
type ImageEntry struct {
	// Path is the absolute path in the image ("/usr/local/bin/coredns").
	Path string
	// Mode holds the permission bits (with fs.ModeSetuid, fs.ModeSetgid, fs.ModeSticky) and the type:
	// 0 for a regular file, fs.ModeDir or fs.ModeSymlink.
	Mode fs.FileMode
	// Content is a regular file's content when Source is empty.
	Content []byte
	// Source is a local file whose content is streamed into the layer.
	Source string
	// Target is a symlink's target.
	Target string
	// UID and GID own the entry; 0 (root) unless set.
	UID, GID int
	// Xattrs are extended attributes, for example "security.capability".
	Xattrs map[string]string
}

// ImageConfig is the runtime configuration of an image.
type ImageConfig struct {
	// Entrypoint and Cmd as in a Dockerfile.
	Entrypoint []string
	Cmd        []string
	// Env entries are "KEY=value".
	Env []string
	// User is "uid[:gid]" or a name from the image's /etc/passwd; "" means root.
	User string
	// WorkingDir defaults to "/".
	WorkingDir string
	// ExposedPorts are "8080/tcp" style.
	ExposedPorts []string
	// Labels are image labels.
	Labels map[string]string
}

// Image describes an image to write.
type Image struct {
	// Name is the full reference ("registry.k8s.io/pause:3.10.2"), stored in the index annotations.
	Name string
	// OS and Arch are the platform ("linux", "amd64").
	OS   string
	Arch string
	// Layers are applied in order; each becomes one gzip-compressed layer.
	Layers [][]ImageEntry
	// Config is the runtime configuration.
	Config ImageConfig
}

// ImageResult describes a written image.
type ImageResult struct {
	// ManifestDigest is "sha256:<hex>" of the image manifest, the image's identity.
	ManifestDigest string
	// ConfigDigest is "sha256:<hex>" of the config blob (the image ID containerd shows).
	ConfigDigest string
}

// OCI JSON documents; field order is fixed by the structs, map keys are sorted by encoding/json.
type ociPlatform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *ociPlatform      `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     []ociDescriptor `json:"manifests"`
}

type ociManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        ociDescriptor   `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
}

type ociRuntimeConfig struct {
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
}

type ociHistory struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

type ociImageConfig struct {
	Created      string           `json:"created"`
	Architecture string           `json:"architecture"`
	OS           string           `json:"os"`
	Config       ociRuntimeConfig `json:"config"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []ociHistory `json:"history"`
}

// blob is a content-addressed file of the layout: in memory (JSON documents) or in a temporary file (layers).
type blob struct {
	digest string // hex
	size   int64
	data   []byte
	file   string
}

// WriteImageFile writes the image as an OCI image-layout tar to name, through a temporary file in the same
// directory that is renamed into place only when complete.
func WriteImageFile(ctx context.Context, name string, img Image) (ImageResult, error) {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ImageResult{}, fmt.Errorf("artifacts: image %s: %w", img.Name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return ImageResult{}, fmt.Errorf("artifacts: image %s: %w", img.Name, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after the rename
	res, err := writeImage(ctx, tmp, img, dir)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("artifacts: image %s: %w", img.Name, cerr)
	}
	if err != nil {
		return ImageResult{}, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return ImageResult{}, fmt.Errorf("artifacts: image %s: %w", img.Name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return ImageResult{}, fmt.Errorf("artifacts: image %s: %w", img.Name, err)
	}
	return res, nil
}

// WriteImage writes the image as an OCI image-layout tar (oci-layout, index.json, blobs/sha256/...) to w, ready for
// `ctr -n k8s.io images import`. The output is deterministic: entries sorted, owner 0, times at the epoch, gzip
// without name or time at ImageGzipLevel. The same input gives the same bytes and digests. Layers are staged in
// temporary files in os.TempDir().
func WriteImage(ctx context.Context, w io.Writer, img Image) (ImageResult, error) {
	return writeImage(ctx, w, img, "")
}

func writeImage(ctx context.Context, w io.Writer, img Image, tmpDir string) (ImageResult, error) {
	if err := validateImage(img); err != nil {
		return ImageResult{}, err
	}
	var blobs []blob
	var temps []string // layer files, removed whatever happens
	defer func() {
		for _, f := range temps {
			_ = os.Remove(f)
		}
	}()
	cfg := ociImageConfig{Created: epoch().Format(time.RFC3339), Architecture: img.Arch, OS: img.OS}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{}
	man := ociManifest{SchemaVersion: 2, MediaType: mediaTypeManifest, Layers: []ociDescriptor{}}
	for i, entries := range img.Layers {
		lb, diffID, err := writeLayer(ctx, entries, tmpDir)
		if err != nil {
			return ImageResult{}, fmt.Errorf("artifacts: image %s layer %d: %w", img.Name, i, err)
		}
		temps = append(temps, lb.file)
		blobs = append(blobs, lb)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, "sha256:"+diffID)
		cfg.History = append(cfg.History, ociHistory{Created: cfg.Created, CreatedBy: fmt.Sprintf("kubesmith artifacts: layer %d", i)})
		man.Layers = append(man.Layers, ociDescriptor{MediaType: mediaTypeLayerGz, Digest: "sha256:" + lb.digest, Size: lb.size})
	}
	rc := img.Config
	cfg.Config = ociRuntimeConfig{
		User: rc.User, Env: rc.Env, Entrypoint: rc.Entrypoint, Cmd: rc.Cmd,
		WorkingDir: rc.WorkingDir, Labels: rc.Labels,
	}
	if cfg.Config.WorkingDir == "" {
		cfg.Config.WorkingDir = "/"
	}
	if len(rc.ExposedPorts) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range rc.ExposedPorts {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	cb, err := jsonBlob(cfg)
	if err != nil {
		return ImageResult{}, err
	}
	blobs = append(blobs, cb)
	man.Config = ociDescriptor{MediaType: mediaTypeConfig, Digest: "sha256:" + cb.digest, Size: cb.size}
	mb, err := jsonBlob(man)
	if err != nil {
		return ImageResult{}, err
	}
	blobs = append(blobs, mb)
	idx := ociIndex{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []ociDescriptor{{
		MediaType: mediaTypeManifest, Digest: "sha256:" + mb.digest, Size: mb.size,
		Platform:    &ociPlatform{Architecture: img.Arch, OS: img.OS},
		Annotations: map[string]string{AnnotationContainerdImageName: img.Name, AnnotationRefName: imageTag(img.Name)},
	}}}
	indexJSON, err := json.Marshal(idx)
	if err != nil {
		return ImageResult{}, fmt.Errorf("artifacts: image %s: %w", img.Name, err)
	}

	// The archive: directories, blobs sorted by digest, index.json, oci-layout; all in name order.
	tw := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch()}); err != nil {
			return ImageResult{}, fmt.Errorf("artifacts: image %s: %w", img.Name, err)
		}
	}
	slices.SortFunc(blobs, func(a, b blob) int { return strings.Compare(a.digest, b.digest) })
	blobs = slices.CompactFunc(blobs, func(a, b blob) bool { return a.digest == b.digest })
	for _, b := range blobs {
		if err := writeBlob(ctx, tw, b); err != nil {
			return ImageResult{}, fmt.Errorf("artifacts: image %s: %w", img.Name, err)
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"index.json", indexJSON}, {"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}} {
		if err := writeTarFile(tw, f.name, f.data); err != nil {
			return ImageResult{}, fmt.Errorf("artifacts: image %s: %w", img.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return ImageResult{}, fmt.Errorf("artifacts: image %s: %w", img.Name, err)
	}
	return ImageResult{ManifestDigest: "sha256:" + mb.digest, ConfigDigest: "sha256:" + cb.digest}, nil
}

func validateImage(img Image) error {
	switch {
	case img.Name == "":
		return errors.New("artifacts: image without a name")
	case img.OS == "" || img.Arch == "":
		return fmt.Errorf("artifacts: image %s: OS and Arch are required", img.Name)
	case len(img.Layers) == 0:
		return fmt.Errorf("artifacts: image %s has no layers", img.Name)
	}
	return nil
}

// imageTag is the tag of a reference ("registry.k8s.io/pause:3.10.2" → "3.10.2"), "latest" when there is none.
func imageTag(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "latest"
}

func jsonBlob(v any) (blob, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return blob{}, fmt.Errorf("artifacts: encode image document: %w", err)
	}
	sum := sha256.Sum256(data)
	return blob{digest: hex.EncodeToString(sum[:]), size: int64(len(data)), data: data}, nil
}

func writeTarFile(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch()}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func writeBlob(ctx context.Context, tw *tar.Writer, b blob) error {
	name := "blobs/sha256/" + b.digest
	if b.file == "" {
		return writeTarFile(tw, name, b.data)
	}
	f, err := os.Open(b.file)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: b.size, ModTime: epoch()}); err != nil {
		return err
	}
	_, err = copyContext(ctx, tw, f)
	return err
}

// layerEntry is an ImageEntry with its tar name ("usr/local/bin/x").
type layerEntry struct {
	name string
	ImageEntry
}

// writeLayer writes the entries (plus missing parent directories) as a sorted tar, gzip-compressed into a
// temporary file. It returns the compressed blob and the uncompressed digest (the diff ID).
func writeLayer(ctx context.Context, entries []ImageEntry, tmpDir string) (blob, string, error) {
	list, err := layerEntries(entries)
	if err != nil {
		return blob{}, "", err
	}
	tmp, err := os.CreateTemp(tmpDir, ".layer-*.tar.gz")
	if err != nil {
		return blob{}, "", err
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	compressed := sha256.New()
	counter := &countWriter{}
	gz, err := gzip.NewWriterLevel(io.MultiWriter(tmp, compressed, counter), ImageGzipLevel)
	if err != nil {
		return blob{}, "", err
	}
	uncompressed := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(gz, uncompressed))
	for _, e := range list {
		if err := writeLayerEntry(ctx, tw, e); err != nil {
			return blob{}, "", fmt.Errorf("%s: %w", e.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return blob{}, "", err
	}
	if err := gz.Close(); err != nil {
		return blob{}, "", err
	}
	if err := tmp.Close(); err != nil {
		return blob{}, "", err
	}
	ok = true
	return blob{digest: hexSum(compressed), size: counter.n, file: tmp.Name()}, hexSum(uncompressed), nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// layerEntries normalises paths, adds parent directories that are not listed (mode 0755), rejects duplicates and
// sorts by name.
func layerEntries(entries []ImageEntry) ([]layerEntry, error) {
	byName := map[string]layerEntry{}
	for _, e := range entries {
		if !strings.HasPrefix(e.Path, "/") {
			return nil, fmt.Errorf("path %q is not absolute", e.Path)
		}
		name := strings.TrimPrefix(path.Clean(e.Path), "/")
		if name == "" {
			return nil, fmt.Errorf("path %q is the root", e.Path)
		}
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("path %q is listed twice", e.Path)
		}
		switch e.Mode.Type() {
		case 0:
			if e.Content != nil && e.Source != "" {
				return nil, fmt.Errorf("%s: both Content and Source are set", e.Path)
			}
		case fs.ModeDir:
		case fs.ModeSymlink:
			if e.Target == "" {
				return nil, fmt.Errorf("%s: symlink without a target", e.Path)
			}
		default:
			return nil, fmt.Errorf("%s: unsupported file type %s", e.Path, e.Mode.Type())
		}
		byName[name] = layerEntry{name: name, ImageEntry: e}
	}
	for name := range byName {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, ok := byName[dir]; !ok {
				byName[dir] = layerEntry{name: dir, ImageEntry: ImageEntry{Path: "/" + dir, Mode: fs.ModeDir | 0o755}}
			}
		}
	}
	list := make([]layerEntry, 0, len(byName))
	for name, e := range byName {
		if p := path.Dir(name); p != "." && !byName[p].Mode.IsDir() {
			return nil, fmt.Errorf("%s: parent %s is not a directory", e.Path, "/"+p)
		}
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b layerEntry) int { return strings.Compare(a.name, b.name) })
	return list, nil
}

// tarMode converts permission and special bits to the tar (POSIX) encoding.
func tarMode(m fs.FileMode) int64 {
	v := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

func writeLayerEntry(ctx context.Context, tw *tar.Writer, e layerEntry) error {
	h := &tar.Header{Name: e.name, Mode: tarMode(e.Mode), ModTime: epoch(), Uid: e.UID, Gid: e.GID}
	if len(e.Xattrs) > 0 {
		h.Format = tar.FormatPAX
		h.PAXRecords = map[string]string{}
		for k, v := range e.Xattrs {
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	switch e.Mode.Type() {
	case fs.ModeDir:
		h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		return tw.WriteHeader(h)
	case fs.ModeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.Target
		return tw.WriteHeader(h)
	}
	h.Typeflag = tar.TypeReg
	if e.Source == "" {
		h.Size = int64(len(e.Content))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := io.Copy(tw, bytes.NewReader(e.Content))
		return err
	}
	f, err := os.Open(e.Source)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("source %s is not a regular file", e.Source)
	}
	h.Size = st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := copyContext(ctx, tw, f)
	if err != nil {
		return fmt.Errorf("copy %s: %w", e.Source, err)
	}
	if n != st.Size() {
		return fmt.Errorf("source %s changed while it was read", e.Source)
	}
	return nil
}

// BaseImageEntries is a minimal distroless-like root file system: /etc/passwd and /etc/group with root, nobody
// (65534) and nonroot (65532, with its home), /etc/nsswitch.conf, the CA bundle from caBundle (a host file such as
// /etc/ssl/certs/ca-certificates.crt) and a world-writable sticky /tmp.
func BaseImageEntries(caBundle string) []ImageEntry {
	return []ImageEntry{
		{Path: "/etc", Mode: fs.ModeDir | 0o755},
		{Path: "/etc/passwd", Mode: 0o644, Content: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Path: "/etc/group", Mode: 0o644, Content: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{Path: "/etc/nsswitch.conf", Mode: 0o644, Content: []byte("hosts: files dns\n")},
		{Path: "/etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Source: caBundle},
		{Path: "/home/nonroot", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
		{Path: "/root", Mode: fs.ModeDir | 0o700},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
}
