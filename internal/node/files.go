package node

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/pkg/sftp"
)

const (
	// sftpMaxPacket is the payload of one SFTP write. Both OpenSSH's sftp-server and pkg/sftp accept messages up
	// to 256 KiB. On loopback (BenchmarkUpload) 128 KiB needed a quarter less CPU than the usual 32 KiB and
	// about as little as 252 KiB, with a margin below the limit.
	sftpMaxPacket = 128 << 10
	// sftpConcurrency is how many SFTP requests one file transfer keeps in flight.
	sftpConcurrency = 64
	// gzipLevel: level 1 gives 41% of the size of Go binaries, the default level 37% for three times the CPU.
	// Compression is paid once per file version (the cache), but the first upload waits for it.
	gzipLevel = gzip.BestSpeed
	// notExistExit is the exit code with which the sudo read script reports a missing file.
	notExistExit = 44
	notExistMark = "kubesmith: no such file"
)

// WriteFile implements Runner. For root the data goes over SFTP to PATH.tmp-RANDOM, gets its mode, and is
// renamed over PATH. For a non-root user it is streamed to `sudo -n sh -c 'cat > PATH.tmp-RANDOM'`, which is
// then renamed over PATH: the data never lands in a file the user owns, which matters for keys.
func (r *sshRunner) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	if err := checkRemotePath(p); err != nil {
		return fmt.Errorf("%s: write file: %w", r.cfg.Name, err)
	}
	var err error
	if r.cfg.User == "root" {
		err = r.sftpWriteAtomic(ctx, p, mode, func(f *sftp.File) error {
			_, err := f.ReadFrom(bytes.NewReader(data))
			return err
		})
	} else {
		err = r.runScript(ctx, installScript(p, mode, "cat"), bytes.NewReader(data), nil)
	}
	if err != nil {
		return fmt.Errorf("%s: write %s: %w", r.cfg.Name, p, err)
	}
	return nil
}

// ReadFile implements Runner: over SFTP for root, through `sudo -n cat` otherwise.
func (r *sshRunner) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := checkRemotePath(p); err != nil {
		return nil, fmt.Errorf("%s: read file: %w", r.cfg.Name, err)
	}
	if r.cfg.User == "root" {
		var data []byte
		err := r.withSFTP(ctx, func(c *sftp.Client) error {
			f, err := c.Open(p)
			if err != nil {
				return err
			}
			defer func() { _ = f.Close() }()
			data, err = io.ReadAll(f)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("%s: read %s: %w", r.cfg.Name, p, err)
		}
		return data, nil
	}
	q := Quote(p)
	script := fmt.Sprintf("if [ -e %s ] || [ -L %s ]; then exec cat -- %s; else echo %s >&2; exit %d; fi",
		q, q, q, Quote(notExistMark), notExistExit)
	var stdout lockedBuffer
	err := r.runScript(ctx, script, nil, &stdout)
	var exitErr *ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode == notExistExit {
		return nil, fmt.Errorf("%s: read %s: %w", r.cfg.Name, p, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", r.cfg.Name, p, err)
	}
	return []byte(stdout.String()), nil
}

// Upload implements Runner. With Config.CompressUploads the file is gzipped (once, then served from the cache)
// and streamed into `gzip -dc` on the host; otherwise it goes over SFTP with concurrent writes. Either way it
// lands in PATH.tmp-RANDOM first and is renamed over PATH.
func (r *sshRunner) Upload(ctx context.Context, localPath, p string, mode fs.FileMode) error {
	if err := checkRemotePath(p); err != nil {
		return fmt.Errorf("%s: upload %s: %w", r.cfg.Name, localPath, err)
	}
	var err error
	if r.cfg.CompressUploads {
		err = r.uploadCompressed(ctx, localPath, p, mode)
	} else {
		err = r.uploadPlain(ctx, localPath, p, mode)
	}
	if err != nil {
		return fmt.Errorf("%s: upload %s to %s: %w", r.cfg.Name, localPath, p, err)
	}
	return nil
}

func (r *sshRunner) uploadPlain(ctx context.Context, localPath, p string, mode fs.FileMode) error {
	src, err := openRegular(localPath)
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	fill := func(f *sftp.File) error {
		_, err := f.ReadFromWithConcurrency(src, sftpConcurrency)
		return err
	}
	if r.cfg.User == "root" {
		return r.sftpWriteAtomic(ctx, p, mode, fill)
	}
	// A non-root user cannot write the target: upload into a private directory, then let sudo install it.
	var staged string
	err = r.withSFTP(ctx, func(c *sftp.Client) error {
		dir, err := r.userTmpDir(c)
		if err != nil {
			return err
		}
		staged = path.Join(dir, path.Base(p)+".upload-"+randomSuffix())
		f, err := c.OpenFile(staged, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return fmt.Errorf("create %s: %w", staged, err)
		}
		err = fill(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = c.Remove(staged)
			return fmt.Errorf("write %s: %w", staged, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	tmp := p + ".tmp-" + randomSuffix()
	script := fmt.Sprintf("mkdir -p -- %s && umask 077 && install -m %s -- %s %s && mv -f -- %s %s; rc=$?; rm -f -- %s; "+
		"[ $rc -eq 0 ] || rm -f -- %s; exit $rc",
		Quote(path.Dir(p)), octalMode(mode), Quote(staged), Quote(tmp), Quote(tmp), Quote(p), Quote(staged), Quote(tmp))
	return r.runScript(ctx, script, nil, nil)
}

func (r *sshRunner) uploadCompressed(ctx context.Context, localPath, p string, mode fs.FileMode) error {
	src, finish, err := r.compressedSource(localPath)
	if err != nil {
		return err
	}
	err = r.runScript(ctx, installScript(p, mode, "gzip -dc"), src, nil)
	if ferr := finish(err == nil); err == nil && ferr != nil {
		return ferr
	}
	return err
}

// installScript returns a root script that writes the output of filter (reading stdin) to a temp file next to
// p, gives it mode and renames it over p, removing the temp file on failure.
func installScript(p string, mode fs.FileMode, filter string) string {
	tmp := Quote(p + ".tmp-" + randomSuffix())
	return fmt.Sprintf("mkdir -p -- %s && umask 077 && %s > %s && chmod %s -- %s && mv -f -- %s %s || { rc=$?; rm -f -- %s; exit $rc; }",
		Quote(path.Dir(p)), filter, tmp, octalMode(mode), tmp, tmp, Quote(p), tmp)
}

// sftpWriteAtomic writes PATH.tmp-RANDOM with fill (mode set before any data is written), syncs it if the
// server can, and renames it over p.
func (r *sshRunner) sftpWriteAtomic(ctx context.Context, p string, mode fs.FileMode, fill func(*sftp.File) error) error {
	tmp := p + ".tmp-" + randomSuffix()
	posixRename := false
	err := r.withSFTP(ctx, func(c *sftp.Client) error {
		if err := c.MkdirAll(path.Dir(p)); err != nil {
			return fmt.Errorf("create directory %s: %w", path.Dir(p), err)
		}
		f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return fmt.Errorf("create %s: %w", tmp, err)
		}
		err = f.Chmod(mode)
		if err == nil {
			err = fill(f)
		}
		if _, ok := c.HasExtension("fsync@openssh.com"); ok && err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			if _, posixRename = c.HasExtension("posix-rename@openssh.com"); posixRename {
				err = c.PosixRename(tmp, p)
			}
		}
		if err != nil {
			_ = c.Remove(tmp)
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		return nil
	})
	if err != nil || posixRename {
		return err
	}
	// Without posix-rename, SFTP's plain rename refuses to replace an existing file.
	script := fmt.Sprintf("mv -f -- %s %s || { rc=$?; rm -f -- %s; exit $rc; }", Quote(tmp), Quote(p), Quote(tmp))
	return r.runScript(ctx, script, nil, nil)
}

// withSFTP runs fn with the connection's SFTP client. SFTP calls take no context, so when ctx ends the client
// is closed (and reopened by the next call), which makes fn return.
func (r *sshRunner) withSFTP(ctx context.Context, fn func(c *sftp.Client) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := r.sftpClient()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { r.dropSFTP(c) })
	err = fn(c)
	if !stop() {
		return fmt.Errorf("sftp interrupted: %w", ctx.Err())
	}
	if err != nil && (errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, sftp.ErrSSHFxNoConnection)) {
		r.dropSFTP(c)
	}
	return err
}

func (r *sshRunner) sftpClient() (*sftp.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sftp != nil {
		return r.sftp, nil
	}
	c, err := sftp.NewClient(r.client, sftp.UseConcurrentWrites(true), sftp.MaxPacketUnchecked(sftpMaxPacket),
		sftp.MaxConcurrentRequestsPerFile(sftpConcurrency))
	if err != nil {
		return nil, fmt.Errorf("start SFTP: %w", err)
	}
	r.sftp = c
	return c, nil
}

func (r *sshRunner) dropSFTP(c *sftp.Client) {
	r.mu.Lock()
	if r.sftp == c {
		r.sftp = nil
	}
	r.mu.Unlock()
	_ = c.Close()
}

// userTmpDir returns (creating it once) a directory only the login user can enter, under its SFTP start
// directory (the home directory with OpenSSH), where uploads are staged before sudo installs them.
func (r *sshRunner) userTmpDir(c *sftp.Client) (string, error) {
	r.mu.Lock()
	dir := r.userTmp
	r.mu.Unlock()
	if dir != "" {
		return dir, nil
	}
	wd, err := c.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the home directory of %s: %w", r.cfg.User, err)
	}
	dir = path.Join(wd, ".kubesmith-upload")
	if err := c.Mkdir(dir); err != nil {
		if fi, serr := c.Lstat(dir); serr != nil || !fi.IsDir() {
			return "", fmt.Errorf("create %s: %w", dir, err)
		}
	}
	if err := c.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("chmod %s: %w", dir, err)
	}
	r.mu.Lock()
	r.userTmp = dir
	r.mu.Unlock()
	return dir, nil
}

// compressedSource returns the gzipped content of localPath: from the cache when it holds this version of the
// file, else compressed on the fly while a copy is written to the cache. finish(ok) must be called once the
// upload is over; it commits the cache entry only if the upload succeeded and the file did not change meanwhile.
func (r *sshRunner) compressedSource(localPath string) (io.ReadCloser, func(ok bool) error, error) {
	src, err := openRegular(localPath)
	if err != nil {
		return nil, nil, err
	}
	fi, err := src.Stat()
	if err != nil {
		_ = src.Close()
		return nil, nil, err
	}
	cacheDir := r.cacheDir()
	var final string
	if cacheDir != "" {
		final = filepath.Join(cacheDir, cacheKey(localPath, fi)+".gz")
		if cached, err := os.Open(final); err == nil {
			_ = src.Close()
			r.log.Debug("upload from compressed cache", "file", localPath, "cache", final)
			return cached, func(bool) error { return nil }, nil
		}
	}
	var cacheTmp *os.File
	if final != "" {
		if cacheTmp, err = os.CreateTemp(cacheDir, filepath.Base(final)+".*.tmp"); err != nil {
			r.log.Debug("compressed upload cache unusable", "dir", cacheDir, "error", err)
			cacheTmp = nil
		}
	}
	cacheW := &bestEffortWriter{w: cacheTmp}
	pr, pw := io.Pipe()
	compressed := make(chan error, 1)
	go func() {
		zw, err := gzip.NewWriterLevel(io.MultiWriter(pw, cacheW), gzipLevel)
		if err == nil {
			_, err = io.Copy(zw, src)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		}
		_ = src.Close()
		pw.CloseWithError(err)
		compressed <- err
	}()
	finish := func(ok bool) error {
		_ = pr.Close() // unblocks the compressor if the upload stopped reading
		err := <-compressed
		if cacheTmp == nil {
			return nil
		}
		tmpName := cacheTmp.Name()
		cerr := cacheTmp.Close()
		after, serr := os.Stat(localPath)
		unchanged := serr == nil && after.Size() == fi.Size() && after.ModTime().Equal(fi.ModTime())
		if ok && err == nil && cerr == nil && cacheW.err == nil && unchanged {
			if rerr := os.Rename(tmpName, final); rerr == nil {
				return nil
			}
		}
		_ = os.Remove(tmpName)
		return nil
	}
	return pr, finish, nil
}

// cacheDir returns the directory of compressed uploads, creating it, or "" if there is none usable.
func (r *sshRunner) cacheDir() string {
	dir := r.cfg.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(base, "kubesmith", "upload-gz")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.log.Debug("compressed upload cache unusable", "dir", dir, "error", err)
		return ""
	}
	return dir
}

// cacheKey identifies one version of a local file: sha256 of its absolute path, size, mtime and the gzip level.
func cacheKey(localPath string, fi fs.FileInfo) string {
	abs, err := filepath.Abs(localPath)
	if err != nil {
		abs = localPath
	}
	h := sha256.New()
	for _, part := range []string{
		abs, strconv.FormatInt(fi.Size(), 10), strconv.FormatInt(fi.ModTime().UnixNano(), 10),
		strconv.Itoa(gzipLevel),
	} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// bestEffortWriter writes to w until the first error, which it remembers instead of returning, so that a full
// cache disk does not fail an upload.
type bestEffortWriter struct {
	w   io.Writer
	err error
}

func (b *bestEffortWriter) Write(p []byte) (int, error) {
	if b.w != nil && b.err == nil {
		_, b.err = b.w.Write(p)
	}
	return len(p), nil
}

func openRegular(localPath string) (*os.File, error) {
	f, err := os.Open(localPath)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("%s is not a regular file", localPath)
	}
	return f, nil
}

// checkRemotePath accepts clean absolute paths only.
func checkRemotePath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("remote path %q must be a clean absolute file path", p)
	}
	return nil
}

// randomSuffix returns 12 random hex digits for temp file names.
func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
