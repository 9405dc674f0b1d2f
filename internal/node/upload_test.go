package node_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/sshtest"
)

// writeLocal writes a local file of size bytes, compressible but distinct per seed.
func writeLocal(t testing.TB, dir, name string, size int, seed uint64) (string, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	words := []string{"alpha", "beta", "gamma", "node", "\n", "\x00\x01", "delta", "0123456789"}
	var b bytes.Buffer
	for b.Len() < size {
		b.WriteString(words[rng.IntN(len(words))])
	}
	data := b.Bytes()[:size]
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func TestUpload(t *testing.T) {
	signer, keyPEM := clientKey(t)
	pathEnv, logFile := sudoShim(t, "")
	home := t.TempDir()
	srv := startServer(t, sshtest.Config{Env: []string{pathEnv, "SUDO_LOG=" + logFile}, Dir: home}, signer)
	local := t.TempDir()
	srcA, dataA := writeLocal(t, local, "a.bin", 3<<19+17, 1)
	srcB, dataB := writeLocal(t, local, "b.bin", 3<<19+17, 2)

	for _, tc := range []struct {
		name     string
		user     string
		compress bool
	}{
		{"root-plain", "root", false},
		{"root-compressed", "root", true},
		{"sudo-plain", "alice", false},
		{"sudo-compressed", "alice", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := configFor(srv, keyPEM)
			cfg.User, cfg.CompressUploads, cfg.CacheDir = tc.user, tc.compress, t.TempDir()
			r := dial(t, cfg)
			ctx := context.Background()
			dst := filepath.Join(t.TempDir(), "usr", "bin", "tool")

			if err := r.Upload(ctx, srcA, dst, 0o755); err != nil {
				t.Fatal(err)
			}
			checkFile(t, dst, string(dataA), 0o755)

			// Atomicity: a reader polling the target only ever sees a whole old or a whole new file.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var torn []int
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					got, err := os.ReadFile(dst)
					if err != nil || (!bytes.Equal(got, dataA) && !bytes.Equal(got, dataB)) {
						torn = append(torn, len(got))
					}
				}
			}()
			for i := range 6 {
				src := srcA
				if i%2 == 0 {
					src = srcB
				}
				if err := r.Upload(ctx, src, dst, 0o755); err != nil {
					t.Error(err)
				}
			}
			close(stop)
			wg.Wait()
			if len(torn) > 0 {
				t.Errorf("a reader saw %d partial or missing files (sizes %v)", len(torn), torn[:min(len(torn), 5)])
			}
			checkFile(t, dst, string(dataA), 0o755)
			if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 1 {
				t.Errorf("leftovers next to %s: %v", dst, entries)
			}
			if tc.user != "root" && !tc.compress {
				if entries, err := os.ReadDir(filepath.Join(home, ".kubesmith-upload")); err != nil || len(entries) != 0 {
					t.Errorf("staging directory not clean: %v, %v", entries, err)
				}
				if fi, err := os.Stat(filepath.Join(home, ".kubesmith-upload")); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("staging directory mode: %v, %v", fi.Mode(), err)
				}
			}
			if tc.compress {
				cached, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "*"))
				if len(cached) != 2 || !strings.HasSuffix(cached[0], ".gz") || !strings.HasSuffix(cached[1], ".gz") {
					t.Errorf("compression cache holds %v, want one .gz per source file", cached)
				}
			}
		})
	}
}

func TestCompressedUploadCache(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	cfg := configFor(srv, keyPEM)
	cfg.CompressUploads, cfg.CacheDir = true, t.TempDir()
	r := dial(t, cfg)
	ctx := context.Background()
	src, data := writeLocal(t, t.TempDir(), "f", 1<<20, 3)
	dst := filepath.Join(t.TempDir(), "f")

	if err := r.Upload(ctx, src, dst, 0o644); err != nil {
		t.Fatal(err)
	}
	cached, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "*"))
	if len(cached) != 1 {
		t.Fatalf("cache holds %v, want one entry", cached)
	}
	fi, _ := os.Stat(cached[0])
	if fi.Size() >= int64(len(data)) {
		t.Errorf("cached .gz has %d bytes for a %d-byte file", fi.Size(), len(data))
	}

	// The cache is what gets uploaded: a corrupt entry fails the upload (gzip checks), and leaves the target
	// and its directory as they were.
	if err := os.WriteFile(cached[0], []byte("not gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := r.Upload(ctx, src, dst, 0o600)
	if err == nil {
		t.Fatal("upload of a corrupt cache entry succeeded")
	}
	t.Logf("corrupt cache: %v", err)
	checkFile(t, dst, string(data), 0o644)
	if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 1 {
		t.Errorf("leftovers next to %s: %v", dst, entries)
	}

	// A new version of the source file (other mtime) gets a new entry.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(src, later, later); err != nil {
		t.Fatal(err)
	}
	if err := r.Upload(ctx, src, dst, 0o600); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, string(data), 0o600)
	if cached, _ = filepath.Glob(filepath.Join(cfg.CacheDir, "*")); len(cached) != 2 {
		t.Errorf("cache holds %v, want two entries", cached)
	}
}

func TestUploadFailureLeavesNothing(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	src, _ := writeLocal(t, t.TempDir(), "f", 4096, 4)
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, compress := range []bool{false, true} {
		cfg := configFor(srv, keyPEM)
		cfg.CompressUploads, cfg.CacheDir = compress, t.TempDir()
		r := dial(t, cfg)
		err := r.Upload(context.Background(), src, filepath.Join(blocker, "sub"), 0o644)
		if err == nil {
			t.Fatalf("compress=%v: upload below a regular file succeeded", compress)
		}
		if !strings.HasPrefix(err.Error(), "n1: upload ") {
			t.Errorf("error does not name host and operation: %v", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("compress=%v: leftovers in %s: %v", compress, dir, entries)
		}
	}
	var _ node.Runner // the package under test
}
