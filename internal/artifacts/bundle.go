package artifacts

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ProblemKind classifies what is wrong with a bundle file.
type ProblemKind string

// Problem kinds reported by Verify and carried by FileError.
const (
	// ProblemMissing: the file is not in the bundle directory, or the mirror answers 404.
	ProblemMissing ProblemKind = "missing"
	// ProblemCorrupt: size, sha256 or format differ from what the manifest says.
	ProblemCorrupt ProblemKind = "corrupt"
	// ProblemWrongArch: the file is built for another architecture than the manifest says.
	ProblemWrongArch ProblemKind = "wrong architecture"
	// ProblemUnavailable: the file could not be read or downloaded (I/O error, HTTP error, cancelled).
	ProblemUnavailable ProblemKind = "unavailable"
)

// Problem is one finding of Verify.
type Problem struct {
	// Path is the file's path in the bundle, as in the manifest.
	Path string
	// Kind says what is wrong.
	Kind ProblemKind
	// Detail explains it, with expected and actual values.
	Detail string
}

// String formats the problem as "<path>: <kind>: <detail>".
func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Path, p.Kind, p.Detail) }

// FileError is the error Fetch returns when a file is missing, corrupt or cannot be obtained. It names the file.
type FileError struct {
	// Path is the file's path in the bundle.
	Path string
	// Source is the local path or URL that was read.
	Source string
	// Kind classifies the failure.
	Kind ProblemKind
	// Err is the underlying cause.
	Err error
}

// Error formats the error as "artifacts: <path>: <kind>: <cause> (<source>)".
func (e *FileError) Error() string {
	return fmt.Sprintf("artifacts: %s: %s: %v (%s)", e.Path, e.Kind, e.Err, e.Source)
}

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// Bundle is an opened bundle: a local directory or an HTTP mirror, with its manifest loaded.
// It is safe for concurrent use.
type Bundle struct {
	dir      string   // local bundle root; "" for a mirror
	base     *url.URL // mirror base; nil for a local bundle
	client   *http.Client
	cacheDir string // downloads (mirror) and the hash cache live here
	manifest *Manifest
	hashes   *hashCache
}

// Option configures Open and OpenMirror.
type Option func(*options)

type options struct {
	cacheDir     string
	cacheDirSet  bool
	hashObserver func(path string)
}

// WithCacheDir sets where Open keeps its (size, mtime) → sha256 cache; "" keeps it in memory only.
// The default is DefaultCacheDir().
func WithCacheDir(dir string) Option {
	return func(o *options) { o.cacheDir, o.cacheDirSet = dir, true }
}

// WithHashObserver registers a function called with the path of every file that is really hashed (not answered
// from the hash cache). Useful for progress reporting and tests.
func WithHashObserver(fn func(path string)) Option {
	return func(o *options) { o.hashObserver = fn }
}

// DefaultCacheDir is ${XDG_CACHE_HOME:-$HOME/.cache}/kubesmith.
func DefaultCacheDir() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "kubesmith"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("artifacts: cache dir: %w", err)
	}
	return filepath.Join(home, ".cache", "kubesmith"), nil
}

// DefaultBundleDir is DefaultCacheDir()/bundle, where `make artifacts` puts the bundle.
func DefaultBundleDir() (string, error) {
	c, err := DefaultCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "bundle"), nil
}

// ExpandHome replaces a leading "~/" with the user's home directory.
func ExpandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("artifacts: expand %s: %w", p, err)
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}

// Open opens the local bundle in dir. It reads and validates only the manifest, so it is cheap enough for plan
// time; files are checked when they are fetched or verified.
func Open(dir string, opts ...Option) (*Bundle, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if dir, err = ExpandHome(dir); err != nil {
		return nil, err
	}
	if o.cacheDir, err = ExpandHome(o.cacheDir); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("artifacts: bundle %s has no %s (build it with `make artifacts`): %w", dir, ManifestName, err)
		}
		return nil, fmt.Errorf("artifacts: bundle %s: %w", dir, err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("artifacts: bundle %s: %w", dir, err)
	}
	return &Bundle{dir: dir, cacheDir: o.cacheDir, manifest: m, hashes: newHashCache(hashFileIn(o.cacheDir), o.hashObserver)}, nil
}

// OpenMirror opens a bundle served over HTTP at baseURL (the bundle directory served as it is) and downloads its
// manifest. Files are downloaded into cacheDir on Fetch. A nil client means http.DefaultClient.
func OpenMirror(baseURL, cacheDir string, client *http.Client, opts ...Option) (*Bundle, error) {
	return OpenMirrorContext(context.Background(), baseURL, cacheDir, client, opts...)
}

// OpenMirrorContext is OpenMirror with a context for the manifest download.
func OpenMirrorContext(ctx context.Context, baseURL, cacheDir string, client *http.Client, opts ...Option) (*Bundle, error) {
	o, err := buildOptions(append(opts, WithCacheDir(cacheDir)))
	if err != nil {
		return nil, err
	}
	if o.cacheDir == "" {
		return nil, errors.New("artifacts: a mirror needs a cache directory for its downloads")
	}
	cacheDir, err = ExpandHome(o.cacheDir)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("artifacts: mirror URL %q: %w", baseURL, err)
	}
	if base.Scheme != "http" && base.Scheme != "https" {
		return nil, fmt.Errorf("artifacts: mirror URL %q: scheme must be http or https", baseURL)
	}
	if client == nil {
		client = http.DefaultClient
	}
	b := &Bundle{
		base: base, client: client, cacheDir: cacheDir,
		hashes: newHashCache(hashFileIn(cacheDir), o.hashObserver),
	}
	u := b.url(ManifestName)
	data, err := b.get(ctx, u, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("artifacts: mirror %s: %w", baseURL, err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("artifacts: mirror %s: %w", baseURL, err)
	}
	b.manifest = m
	return b, nil
}

func buildOptions(opts []Option) (options, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if !o.cacheDirSet {
		d, err := DefaultCacheDir()
		if err != nil {
			return o, err
		}
		o.cacheDir = d
	}
	return o, nil
}

func hashFileIn(cacheDir string) string {
	if cacheDir == "" {
		return ""
	}
	return filepath.Join(cacheDir, HashCacheName)
}

// Manifest returns the bundle's manifest. Callers must not modify it.
func (b *Bundle) Manifest() *Manifest { return b.manifest }

// Location is the bundle directory or the mirror URL, for messages.
func (b *Bundle) Location() string {
	if b.base != nil {
		return b.base.String()
	}
	return b.dir
}

// Fetch returns a local path holding the file's verified content. For a local bundle that is the file in the
// bundle, after its size and sha256 were checked (the sha256 comes from the (size, mtime) cache when the file is
// unchanged). For a mirror the file is downloaded into the cache directory, named by its sha256, and only renamed
// into place after size and sha256 matched: a truncated or corrupt download leaves nothing behind.
// Failures are *FileError values naming the file.
func (b *Bundle) Fetch(ctx context.Context, f File) (string, error) {
	want, ok := b.manifest.byPath(f.Path)
	if !ok || want.SHA256 != f.SHA256 || want.Size != f.Size {
		return "", fmt.Errorf("artifacts: %s is not in the manifest of %s", f.Path, b.Location())
	}
	if b.base != nil {
		return b.fetchMirror(ctx, want)
	}
	return b.fetchLocal(ctx, want)
}

func (b *Bundle) fetchLocal(ctx context.Context, f File) (string, error) {
	p := filepath.Join(b.dir, filepath.FromSlash(f.Path))
	if err := b.checkLocal(ctx, p, f); err != nil {
		return "", err
	}
	return p, nil
}

// checkLocal verifies that the file at p has the manifest's size and sha256.
func (b *Bundle) checkLocal(ctx context.Context, p string, f File) error {
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &FileError{Path: f.Path, Source: p, Kind: ProblemMissing, Err: errors.New("no such file")}
	case err != nil:
		return &FileError{Path: f.Path, Source: p, Kind: ProblemUnavailable, Err: err}
	case !st.Mode().IsRegular():
		return &FileError{Path: f.Path, Source: p, Kind: ProblemCorrupt, Err: fmt.Errorf("not a regular file (%s)", st.Mode().Type())}
	case st.Size() != f.Size:
		return &FileError{
			Path: f.Path, Source: p, Kind: ProblemCorrupt,
			Err: fmt.Errorf("size is %d bytes, manifest says %d", st.Size(), f.Size),
		}
	}
	sum, _, err := b.hashes.sum(ctx, p)
	if err != nil {
		return &FileError{Path: f.Path, Source: p, Kind: ProblemUnavailable, Err: err}
	}
	if sum != f.SHA256 {
		return &FileError{
			Path: f.Path, Source: p, Kind: ProblemCorrupt,
			Err: fmt.Errorf("sha256 is %s, manifest says %s", sum, f.SHA256),
		}
	}
	return nil
}

// url is the mirror URL of a bundle path. Segments are escaped first: JoinPath takes escaped elements, and deb
// file names contain '%' ("1%3a2.2.7").
func (b *Bundle) url(bundlePath string) string {
	segs := strings.Split(bundlePath, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return b.base.JoinPath(segs...).String()
}

// get downloads a small document (the manifest).
func (b *Bundle) get(ctx context.Context, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return data, nil
}

func (b *Bundle) fetchMirror(ctx context.Context, f File) (string, error) {
	dest := filepath.Join(b.cacheDir, f.SHA256)
	if _, err := os.Stat(dest); err == nil {
		if b.checkLocal(ctx, dest, f) == nil {
			return dest, nil
		}
		// A damaged cache entry is replaced by a fresh download.
		if err := os.Remove(dest); err != nil {
			return "", &FileError{Path: f.Path, Source: dest, Kind: ProblemUnavailable, Err: err}
		}
	}
	u := b.url(f.Path)
	if err := b.download(ctx, u, dest, f); err != nil {
		return "", err
	}
	return dest, nil
}

// download streams u into a temporary file in the cache directory, hashing as it goes, and renames it to dest only
// when the size and the sha256 match the manifest. The temporary file is removed on every failure.
func (b *Bundle) download(ctx context.Context, u, dest string, f File) (err error) {
	fail := func(kind ProblemKind, cause error) error {
		return &FileError{Path: f.Path, Source: u, Kind: kind, Err: cause}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail(ProblemUnavailable, err)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return fail(ProblemUnavailable, err)
	}
	defer func() { _ = resp.Body.Close() }()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fail(ProblemMissing, fmt.Errorf("server answered %s", resp.Status))
	case resp.StatusCode != http.StatusOK:
		return fail(ProblemUnavailable, fmt.Errorf("server answered %s", resp.Status))
	case resp.ContentLength >= 0 && resp.ContentLength != f.Size:
		return fail(ProblemCorrupt, fmt.Errorf("server announces %d bytes, manifest says %d", resp.ContentLength, f.Size))
	}
	if err := os.MkdirAll(b.cacheDir, 0o755); err != nil {
		return fail(ProblemUnavailable, err)
	}
	tmp, err := os.CreateTemp(b.cacheDir, ".download-"+f.SHA256+"-*")
	if err != nil {
		return fail(ProblemUnavailable, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := copyContext(ctx, io.MultiWriter(tmp, h), io.LimitReader(resp.Body, f.Size+1))
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fail(ProblemCorrupt, fmt.Errorf("truncated download: got %d of %d bytes", n, f.Size))
	case err != nil:
		return fail(ProblemUnavailable, fmt.Errorf("after %d of %d bytes: %w", n, f.Size, err))
	case n < f.Size:
		return fail(ProblemCorrupt, fmt.Errorf("truncated download: got %d of %d bytes", n, f.Size))
	case n > f.Size:
		return fail(ProblemCorrupt, fmt.Errorf("download is longer than the %d bytes the manifest says", f.Size))
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return fail(ProblemCorrupt, fmt.Errorf("sha256 is %s, manifest says %s", sum, f.SHA256))
	}
	mode := fs.FileMode(0o644)
	if f.Kind == KindBinary || f.Kind == KindTool {
		mode = 0o755
	}
	if err = tmp.Chmod(mode); err != nil {
		return fail(ProblemUnavailable, err)
	}
	if err = tmp.Close(); err != nil {
		return fail(ProblemUnavailable, err)
	}
	if err = os.Rename(tmp.Name(), dest); err != nil {
		return fail(ProblemUnavailable, err)
	}
	// The content was hashed while it was written: remember it, so the next Fetch does not read it again.
	if rerr := b.hashes.record(dest, f.SHA256); rerr != nil {
		return fail(ProblemUnavailable, rerr)
	}
	return nil
}

// Verify checks every file of the manifest and reports exactly which are missing, corrupt (size, sha256, format)
// or built for another architecture (the ELF machine of binaries, the platform of images, the package
// architecture of debs). A mirror's files are downloaded into the cache to be checked. No problems means an empty
// slice. If ctx ends, the files not checked yet are reported as unavailable.
func (b *Bundle) Verify(ctx context.Context) []Problem {
	files := slices.Clone(b.manifest.Files)
	slices.SortFunc(files, func(a, c File) int { return strings.Compare(a.Path, c.Path) })
	problems := []Problem{}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			problems = append(problems, Problem{Path: f.Path, Kind: ProblemUnavailable, Detail: "not verified: " + err.Error()})
			continue
		}
		p, err := b.Fetch(ctx, f)
		if err != nil {
			var fe *FileError
			if errors.As(err, &fe) {
				problems = append(problems, Problem{Path: f.Path, Kind: fe.Kind, Detail: fmt.Sprintf("%v (%s)", fe.Err, fe.Source)})
			} else {
				problems = append(problems, Problem{Path: f.Path, Kind: ProblemUnavailable, Detail: err.Error()})
			}
			continue
		}
		if pr, bad := checkContent(p, f); bad {
			problems = append(problems, pr)
		}
	}
	return problems
}

// checkContent checks what the checksum cannot: that the file is what its kind says, for the manifest's
// architecture.
func checkContent(p string, f File) (Problem, bool) {
	bad := func(kind ProblemKind, format string, args ...any) (Problem, bool) {
		return Problem{Path: f.Path, Kind: kind, Detail: fmt.Sprintf(format, args...)}, true
	}
	fh, err := os.Open(p)
	if err != nil {
		return bad(ProblemUnavailable, "%v", err)
	}
	defer func() { _ = fh.Close() }()
	switch f.Kind {
	case KindBinary, KindTool:
		arch, err := elfArch(fh)
		switch {
		case errors.Is(err, errNotELF):
			return bad(ProblemCorrupt, "not an ELF executable")
		case err != nil:
			return bad(ProblemCorrupt, "%v", err)
		case arch != f.Arch:
			return bad(ProblemWrongArch, "ELF machine is %s, manifest says %s", arch, f.Arch)
		}
	case KindImage:
		idx, err := readImageIndex(fh)
		if err != nil {
			return bad(ProblemCorrupt, "%v", err)
		}
		if len(idx.Manifests) == 0 {
			return bad(ProblemCorrupt, "index.json lists no image")
		}
		for _, d := range idx.Manifests {
			if d.Platform != nil && (d.Platform.Architecture != f.Arch || d.Platform.OS != f.OS) {
				return bad(ProblemWrongArch, "image platform is %s/%s, manifest says %s/%s",
					d.Platform.OS, d.Platform.Architecture, f.OS, f.Arch)
			}
			if name := d.Annotations[AnnotationContainerdImageName]; name != f.Image {
				return bad(ProblemCorrupt, "image name is %q, manifest says %q", name, f.Image)
			}
		}
	case KindDeb:
		var magic [8]byte
		if _, err := io.ReadFull(fh, magic[:]); err != nil || string(magic[:]) != "!<arch>\n" {
			return bad(ProblemCorrupt, "not a Debian package (no ar header)")
		}
		base := strings.TrimSuffix(path.Base(f.Path), ".deb")
		debArch := base[strings.LastIndex(base, "_")+1:]
		if want := DebianArch(f.Arch); debArch != want && debArch != "all" {
			return bad(ProblemWrongArch, "package architecture is %s, manifest says %s (Debian %s)", debArch, f.Arch, want)
		}
	}
	return Problem{}, false
}

// DebianArch maps a Go architecture name to Debian's.
func DebianArch(goarch string) string {
	switch goarch {
	case "arm":
		return "armhf"
	case "386":
		return "i386"
	case "ppc64le":
		return "ppc64el"
	}
	return goarch
}

// readImageIndex reads index.json from an OCI image-layout tar.
func readImageIndex(r io.Reader) (*ociIndex, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("not an OCI image layout: no index.json")
		}
		if err != nil {
			return nil, fmt.Errorf("read image archive: %w", err)
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) != "index.json" {
			continue
		}
		var idx ociIndex
		if err := json.NewDecoder(io.LimitReader(tr, 16<<20)).Decode(&idx); err != nil {
			return nil, fmt.Errorf("index.json: %w", err)
		}
		return &idx, nil
	}
}

// Require checks that the manifest holds every named file of a component version for arch, and names the
// missing ones together with the versions that are there.
func (m *Manifest) Require(component, version, arch string, names ...string) error {
	var missing []string
	for _, n := range names {
		if _, ok := m.Lookup(component, n, version, arch); !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	have := m.Versions(component)
	if len(have) == 0 {
		return fmt.Errorf("artifacts: the bundle has no %s at all (needed: %s %s for %s)", component, strings.Join(missing, ", "), version, arch)
	}
	return fmt.Errorf("artifacts: the bundle has no %s %s %s for %s; it has %s versions %s",
		component, version, strings.Join(missing, ", "), arch, component, strings.Join(have, ", "))
}
