package node_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/sshtest"
)

// benchFile writes a 100 MB file made of this machine's Go tool binaries (as compressible as the large static
// binaries that kubesmith uploads), or of synthetic data if they are missing.
func benchFile(b *testing.B) string {
	b.Helper()
	const size = 100 << 20
	p := filepath.Join(b.TempDir(), "payload")
	out, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = out.Close() }()
	bins, _ := filepath.Glob(filepath.Join(os.Getenv("GOROOT"), "pkg", "tool", "*", "*"))
	if len(bins) == 0 {
		bins, _ = filepath.Glob("/usr/local/go/pkg/tool/*/*")
	}
	var written int64
	for written < size && len(bins) > 0 {
		for _, bin := range bins {
			in, err := os.Open(bin)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(out, io.LimitReader(in, size-written))
			_ = in.Close()
			if err != nil {
				b.Fatal(err)
			}
			if written += n; written >= size {
				break
			}
		}
	}
	if written < size {
		src, _ := writeLocal(b, b.TempDir(), "synthetic", int(size-written), 9)
		in, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = in.Close() }()
		if _, err := io.Copy(out, in); err != nil {
			b.Fatal(err)
		}
	}
	return p
}

// cpuTime returns the user+system time of this process and its reaped children.
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

// BenchmarkUpload measures Upload of a 100 MB file to the in-process server over loopback:
//
//	go test ./internal/node/ -run '^$' -bench Upload -benchtime 3x
func BenchmarkUpload(b *testing.B) {
	signer, keyPEM := clientKey(b)
	pathEnv, logFile := sudoShim(b, "")
	srv := startServer(b, sshtest.Config{Env: []string{pathEnv, "SUDO_LOG=" + logFile}, Dir: b.TempDir()}, signer)
	src := benchFile(b)
	fi, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		user     string
		compress bool
		warm     bool
	}{
		{"plain-sftp-root", "root", false, false},
		{"plain-sftp-sudo", "alice", false, false},
		{"gzip-cold-root", "root", true, false},
		{"gzip-warm-root", "root", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := configFor(srv, keyPEM)
			cfg.User, cfg.CompressUploads, cfg.CacheDir = tc.user, tc.compress, b.TempDir()
			r := dial(b, cfg)
			dst := filepath.Join(b.TempDir(), "payload")
			ctx := context.Background()
			if tc.warm {
				if err := r.Upload(ctx, src, dst, 0o755); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(fi.Size())
			// CPU time of client, in-process server and remote commands: stable where wall time is not (this
			// machine's other work shares the cores).
			cpuBefore := cpuTime()
			b.ResetTimer()
			for range b.N {
				if tc.compress && !tc.warm {
					b.StopTimer()
					if err := os.RemoveAll(cfg.CacheDir); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				if err := r.Upload(ctx, src, dst, 0o755); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuTime()-cpuBefore).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}
