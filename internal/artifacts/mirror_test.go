package artifacts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// mirror serves a bundle directory as it is, counting requests per path; override, when set, answers instead.
type mirror struct {
	mu       sync.Mutex
	requests map[string]int
	files    http.Handler
	override func(w http.ResponseWriter, r *http.Request) bool
}

func newMirror(t *testing.T, dir string) (*mirror, *httptest.Server) {
	t.Helper()
	m := &mirror{requests: map[string]int{}, files: http.FileServer(http.Dir(dir))}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv
}

func (m *mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.requests[r.URL.Path]++
	override := m.override
	m.mu.Unlock()
	if override != nil && override(w, r) {
		return
	}
	m.files.ServeHTTP(w, r)
}

func (m *mirror) count(path string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests["/"+path]
}

func (m *mirror) set(f func(w http.ResponseWriter, r *http.Request) bool) {
	m.mu.Lock()
	m.override = f
	m.mu.Unlock()
}

// cacheEntries lists what is in the cache directory.
func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestMirrorGoodDownloadIsCached(t *testing.T) {
	dir, m := testBundle(t)
	mir, srv := newMirror(t, dir)
	cache := t.TempDir()
	var hashed []string
	b, err := OpenMirror(srv.URL, cache, srv.Client(), WithHashObserver(func(p string) { hashed = append(hashed, p) }))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Manifest().Files) != len(m.Files) {
		t.Fatalf("manifest has %d files, want %d", len(b.Manifest().Files), len(m.Files))
	}
	ctx := context.Background()
	for _, name := range []string{"kubelet", "keepalived", "pause"} { // keepalived's file name has "%3a" in it
		f := fileByName(t, m, name)
		p, err := b.Fetch(ctx, f)
		if err != nil {
			t.Fatalf("Fetch %s: %v", name, err)
		}
		if p != filepath.Join(cache, f.SHA256) {
			t.Fatalf("Fetch %s = %s, want the cache file named by its sha256", name, p)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: cached content differs", name)
		}
		if _, err := b.Fetch(ctx, f); err != nil {
			t.Fatal(err)
		}
		if n := mir.count(f.Path); n != 1 {
			t.Fatalf("%s downloaded %d times, want 1", name, n)
		}
	}
	if len(hashed) != 0 {
		t.Fatalf("verified downloads were hashed again: %v", hashed)
	}
	if ps := b.Verify(ctx); len(ps) != 0 {
		t.Fatalf("Verify of a good mirror: %v", ps)
	}
}

// assertNothingInstalled checks that a failed download left neither the file nor a temporary file.
func assertNothingInstalled(t *testing.T, cache string, f File) {
	t.Helper()
	for _, n := range cacheEntries(t, cache) {
		if n == HashCacheName {
			continue
		}
		t.Errorf("cache holds %q after a failed download of %s", n, f.Path)
	}
}

func TestMirrorWrongChecksum(t *testing.T) {
	dir, m := testBundle(t)
	f := fileByName(t, m, "kubelet")
	mir, srv := newMirror(t, dir)
	bad := bytes.Repeat([]byte{'x'}, int(f.Size)) // right size, wrong content
	mir.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/"+f.Path {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(bad)))
		_, _ = w.Write(bad)
		return true
	})
	cache := t.TempDir()
	b, err := OpenMirror(srv.URL, cache, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Fetch(context.Background(), f)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Kind != ProblemCorrupt {
		t.Fatalf("Fetch with a wrong checksum: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{f.Path, "sha256 is " + sha(bad), "manifest says " + f.SHA256} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	assertNothingInstalled(t, cache, f)
}

func TestMirrorTruncatedDownload(t *testing.T) {
	dir, m := testBundle(t)
	f := fileByName(t, m, "pause") // an image, large enough to cut
	content, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
	if err != nil {
		t.Fatal(err)
	}
	half := content[:len(content)/2]
	cases := []struct {
		name  string
		serve func(w http.ResponseWriter)
		want  string
	}{
		{"connection closed early", func(w http.ResponseWriter) {
			// Announce the full length, send half, and close the connection.
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer func() { _ = conn.Close() }()
			_, _ = fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", len(content))
			_, _ = buf.Write(half)
			_ = buf.Flush()
		}, "truncated download"},
		{"content length lie", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", fmt.Sprint(len(half)))
			_, _ = w.Write(half)
		}, fmt.Sprintf("server announces %d bytes, manifest says %d", len(half), len(content))},
		{"chunked and short", func(w http.ResponseWriter) {
			_, _ = w.Write(half)
			w.(http.Flusher).Flush() // no Content-Length: chunked encoding
		}, fmt.Sprintf("truncated download: got %d of %d bytes", len(half), len(content))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mir, srv := newMirror(t, dir)
			mir.set(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/"+f.Path {
					return false
				}
				c.serve(w)
				return true
			})
			cache := t.TempDir()
			b, err := OpenMirror(srv.URL, cache, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Fetch(context.Background(), f)
			var fe *FileError
			if !errors.As(err, &fe) || fe.Kind != ProblemCorrupt {
				t.Fatalf("Fetch: %v", err)
			}
			if !strings.Contains(err.Error(), f.Path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q should name %s and say %q", err, f.Path, c.want)
			}
			assertNothingInstalled(t, cache, f)
		})
	}
}

func TestMirrorMissingFileAndVerify(t *testing.T) {
	dir, m := testBundle(t)
	f := fileByName(t, m, "kubectl")
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(f.Path))); err != nil {
		t.Fatal(err)
	}
	_, srv := newMirror(t, dir)
	cache := t.TempDir()
	b, err := OpenMirror(srv.URL, cache, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Fetch(context.Background(), f)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Kind != ProblemMissing || !strings.Contains(err.Error(), f.Path) {
		t.Fatalf("Fetch of a missing file: %v", err)
	}
	ps := b.Verify(context.Background())
	if len(ps) != 1 || ps[0].Path != f.Path || ps[0].Kind != ProblemMissing {
		t.Fatalf("Verify: %v", ps)
	}
}

func TestMirrorReplacesDamagedCacheEntry(t *testing.T) {
	dir, m := testBundle(t)
	mir, srv := newMirror(t, dir)
	cache := t.TempDir()
	b, err := OpenMirror(srv.URL, cache, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	f := fileByName(t, m, "kubelet")
	p, err := b.Fetch(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte{0}, int(f.Size)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fetch(context.Background(), f); err != nil {
		t.Fatalf("Fetch after the cache file was damaged: %v", err)
	}
	if n := mir.count(f.Path); n != 2 {
		t.Fatalf("downloads = %d, want 2 (the damaged entry is fetched again)", n)
	}
}

func TestOpenMirrorErrors(t *testing.T) {
	_, srv := newMirror(t, t.TempDir()) // no manifest.json
	if _, err := OpenMirror(srv.URL, t.TempDir(), srv.Client()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("OpenMirror without a manifest: %v", err)
	}
	if _, err := OpenMirror("ftp://127.0.0.1/", t.TempDir(), nil); err == nil {
		t.Fatal("OpenMirror accepted an ftp URL")
	}
	if _, err := OpenMirror(srv.URL, "", nil); err == nil {
		t.Fatal("OpenMirror accepted an empty cache dir")
	}
}
