package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// HashCacheName is the file, in the cache directory, that remembers the sha256 of files by (path, size, mtime).
const HashCacheName = "hashes.json"

// hashEntry is what the cache knows about one file.
type hashEntry struct {
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

// hashCache maps an absolute path with a given size and modification time to its sha256, so that unchanged files
// are hashed once. It is persisted as JSON (merged with what other processes wrote) and safe for concurrent use.
type hashCache struct {
	file    string            // "" keeps the cache in memory only
	observe func(path string) // called before every real hash (tests count re-hashes with it)

	mu      sync.Mutex
	loaded  bool
	entries map[string]hashEntry
}

func newHashCache(file string, observe func(string)) *hashCache {
	return &hashCache{file: file, observe: observe, entries: map[string]hashEntry{}}
}

// sum returns the sha256 (hex) and size of the regular file at p, hashing it only when the cache has no entry
// with the file's current size and modification time.
func (c *hashCache) sum(ctx context.Context, p string) (string, int64, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", 0, fmt.Errorf("artifacts: %s: %w", p, err)
	}
	before, err := os.Stat(abs)
	if err != nil {
		return "", 0, fmt.Errorf("artifacts: %w", err)
	}
	if !before.Mode().IsRegular() {
		return "", 0, fmt.Errorf("artifacts: %s: not a regular file", p)
	}
	c.mu.Lock()
	c.loadLocked()
	e, ok := c.entries[abs]
	c.mu.Unlock()
	if ok && e.Size == before.Size() && e.MtimeNS == before.ModTime().UnixNano() {
		return e.SHA256, e.Size, nil
	}
	if c.observe != nil {
		c.observe(abs)
	}
	sum, n, err := hashFile(ctx, abs)
	if err != nil {
		return "", 0, err
	}
	after, err := os.Stat(abs)
	if err != nil {
		return "", 0, fmt.Errorf("artifacts: %w", err)
	}
	if after.Size() == n && after.ModTime().Equal(before.ModTime()) && after.Size() == before.Size() {
		// Cache only what did not change while it was read.
		c.put(abs, hashEntry{Size: n, MtimeNS: after.ModTime().UnixNano(), SHA256: sum})
	}
	return sum, n, nil
}

// record stores a hash that the caller computed while writing the file (a verified download).
func (c *hashCache) record(p, sum string) error {
	abs, err := filepath.Abs(p)
	if err != nil {
		return fmt.Errorf("artifacts: %s: %w", p, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	c.put(abs, hashEntry{Size: st.Size(), MtimeNS: st.ModTime().UnixNano(), SHA256: sum})
	return nil
}

func (c *hashCache) put(abs string, e hashEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadLocked()
	c.entries[abs] = e
	// The cache is an optimisation: failing to persist it costs a re-hash next time, nothing else.
	_ = c.saveLocked()
}

// loadLocked reads the persisted cache once. A missing or unreadable file is an empty cache.
func (c *hashCache) loadLocked() {
	if c.loaded || c.file == "" {
		c.loaded = true
		return
	}
	c.loaded = true
	for k, v := range readHashFile(c.file) {
		if _, ok := c.entries[k]; !ok {
			c.entries[k] = v
		}
	}
}

func readHashFile(file string) map[string]hashEntry {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var m map[string]hashEntry
	if json.Unmarshal(data, &m) != nil {
		return nil
	}
	return m
}

// saveLocked merges the entries with what is on disk (another process may have added some), drops entries of
// files that no longer exist, and replaces the file atomically.
func (c *hashCache) saveLocked() error {
	if c.file == "" {
		return nil
	}
	merged := readHashFile(c.file)
	if merged == nil {
		merged = map[string]hashEntry{}
	}
	for k, v := range c.entries {
		merged[k] = v
	}
	for k := range merged {
		if _, err := os.Stat(k); errors.Is(err, fs.ErrNotExist) {
			delete(merged, k)
			delete(c.entries, k)
		}
	}
	data, err := json.MarshalIndent(merged, "", " ")
	if err != nil {
		return fmt.Errorf("artifacts: encode hash cache: %w", err)
	}
	return writeFileAtomic(c.file, append(data, '\n'), 0o644)
}

// hashFile hashes a file, checking ctx between chunks.
func hashFile(ctx context.Context, p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, fmt.Errorf("artifacts: %w", err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	n, err := copyContext(ctx, h, f)
	if err != nil {
		return "", n, fmt.Errorf("artifacts: hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// copyContext is io.Copy that stops when ctx is done.
func copyContext(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		r, rerr := src.Read(buf)
		if r > 0 {
			w, werr := dst.Write(buf[:r])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// writeFileAtomic writes data to a temporary file next to name and renames it into place.
func writeFileAtomic(name string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("artifacts: write %s: %w", name, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("artifacts: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("artifacts: write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	return nil
}
