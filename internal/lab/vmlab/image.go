//go:build linux && cgo

package vmlab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// cachePaths are the directories under Config.CacheDir.
type cachePaths struct {
	root, images, minbase, debCache, aptCache, build, logs, lock string
}

func (l *Lab) paths() cachePaths {
	r := l.cfg.CacheDir
	return cachePaths{
		root:     r,
		images:   filepath.Join(r, "images"),
		minbase:  filepath.Join(r, "minbase"),
		debCache: filepath.Join(r, "debcache"),
		aptCache: filepath.Join(r, "aptcache"),
		build:    filepath.Join(r, "build"),
		logs:     filepath.Join(r, "logs"),
		lock:     filepath.Join(r, "lab.lock"),
	}
}

// inputs returns the build inputs of the image: the embedded assets, the mirror and the guest's sources.
func (l *Lab) inputs() buildInputs {
	mirror, sources := guestSources(hostAptSources("/etc/apt"), l.cfg.Mirror)
	return buildInputs{assets: assetFS, mirror: mirror, sources: sources}
}

// EnsureImage returns the cached base image for the current build inputs, building it first when the
// cache has none: debootstrap minbase (cached as a tarball of its own), the packages and the guest files in
// a chroot, then a compressed qcow2 plus kernel and initrd. Other cached images are removed afterwards.
func (l *Lab) EnsureImage(ctx context.Context) (*Image, error) {
	p := l.paths()
	in := l.inputs()
	key, err := in.Key()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(p.images, key)
	if img, err := readImage(dir); err == nil {
		l.logf("image %s (%s) cached in %s", BaseImage, key, dir)
		return img, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		l.logf("cached image %s is unusable (%v): rebuilding", dir, err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("building the guest image needs root (debootstrap, chroot)")
	}
	for _, tool := range []string{"bash", "debootstrap", "mkfs.ext4", "qemu-img", "tar", "apt-config"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("building the guest image needs %s (run `kslab vm setup`): %w", tool, err)
		}
	}
	for _, d := range []string{p.images, p.minbase, p.debCache, p.aptCache, p.build, p.logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("image cache: %w", err)
		}
	}
	t0 := time.Now()
	l.logf("building image %s (%s) from %s; logs in %s", BaseImage, key, in.mirror, p.logs)
	minbase, err := l.ensureMinbase(ctx, p, in)
	if err != nil {
		return nil, err
	}
	if err := l.writeBuildInputs(p, in); err != nil {
		return nil, err
	}
	partial := dir + ".partial"
	if err := os.RemoveAll(partial); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	l.logf("stage 2: packages, configuration, initramfs, qcow2")
	err = l.runBuildScript(ctx, p, buildAsset, []string{
		"ROOTFS=" + filepath.Join(p.build, "rootfs"),
		"OUTDIR=" + partial,
		"NAME=" + BaseImage,
		"MINBASE_TAR=" + minbase,
		"APTCACHE=" + p.aptCache,
		"LOGDIR=" + p.logs,
		"GUEST=" + filepath.Join(p.build, "guest"),
		"PACKAGES=" + filepath.Join(p.build, "packages.txt"),
		"SOURCES=" + filepath.Join(p.build, "debian.sources"),
		"SIZE=" + imageSize,
	})
	if err != nil {
		return nil, fmt.Errorf("build image, stage 2: %w", err)
	}
	img, err := describeImage(partial, key, time.Since(t0))
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	if err := os.Rename(partial, dir); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	for i := range img.Files {
		img.Files[i].Path = filepath.Join(dir, filepath.Base(img.Files[i].Path))
	}
	img.Built = true
	l.logf("image built in %s: %s %s qcow2, kernel %s", time.Since(t0).Round(time.Second), img.Key,
		mib(img.Files[0].Size), img.Kernel)
	l.pruneCache(p, dir, minbase)
	return img, nil
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// ensureMinbase returns the stage-1 tarball, running debootstrap when it is not cached.
func (l *Lab) ensureMinbase(ctx context.Context, p cachePaths, in buildInputs) (string, error) {
	mkey, err := in.MinbaseKey()
	if err != nil {
		return "", err
	}
	tarball := filepath.Join(p.minbase, "minbase-"+suite+"-"+mkey+".tar")
	if _, err := os.Stat(tarball); err == nil {
		l.logf("stage 1: debootstrap minbase cached (%s)", filepath.Base(tarball))
		return tarball, nil
	}
	l.logf("stage 1: debootstrap --variant=minbase %s", suite)
	if err := l.runBuildScript(ctx, p, minbaseAsset, []string{
		"TARGET=" + filepath.Join(p.build, "minbase"),
		"OUT=" + tarball + ".partial",
		"DEBCACHE=" + p.debCache,
		"MIRROR=" + in.mirror,
		"SUITE=" + suite,
		"LOGDIR=" + p.logs,
	}); err != nil {
		return "", fmt.Errorf("build image, stage 1: %w", err)
	}
	if err := os.Rename(tarball+".partial", tarball); err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	return tarball, nil
}

// writeBuildInputs writes the guest tree, the package list and the guest's apt sources into the build dir.
func (l *Lab) writeBuildInputs(p cachePaths, in buildInputs) error {
	guest := filepath.Join(p.build, "guest")
	if err := os.RemoveAll(guest); err != nil {
		return fmt.Errorf("build dir: %w", err)
	}
	err := fs.WalkDir(in.assets, guestDir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(name, guestDir), "/")
		dst := filepath.Join(guest, filepath.FromSlash(rel))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(in.assets, name)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.Contains(rel, "/sbin/") || strings.Contains(rel, "/bin/") {
			mode = 0o755
		}
		return os.WriteFile(dst, b, mode)
	})
	if err != nil {
		return fmt.Errorf("write guest files: %w", err)
	}
	pkgs, err := fs.ReadFile(in.assets, packagesAsset)
	if err != nil {
		return fmt.Errorf("package list: %w", err)
	}
	if err := os.WriteFile(filepath.Join(p.build, "packages.txt"), pkgs, 0o644); err != nil {
		return fmt.Errorf("write package list: %w", err)
	}
	if err := os.WriteFile(filepath.Join(p.build, "debian.sources"), []byte(in.sources), 0o644); err != nil {
		return fmt.Errorf("write apt sources: %w", err)
	}
	return nil
}

// describeImage hashes the files of a freshly built image dir and writes its image.json.
func describeImage(dir, key string, took time.Duration) (*Image, error) {
	kver, err := os.ReadFile(filepath.Join(dir, "kernel-version"))
	if err != nil {
		return nil, fmt.Errorf("built image: %w", err)
	}
	disk, kernel, initrd := VolumeNames(BaseImage)
	img := &Image{Key: key, Name: BaseImage, Kernel: strings.TrimSpace(string(kver)), BuildSeconds: took.Seconds()}
	for _, f := range []struct{ name, format string }{{disk, "qcow2"}, {kernel, "raw"}, {initrd, "raw"}} {
		path := filepath.Join(dir, f.name)
		size, sum, err := hashFile(path)
		if err != nil {
			return nil, fmt.Errorf("built image: %w", err)
		}
		img.Files = append(img.Files, ImageFile{Path: path, Volume: f.name, Format: f.format, Size: size, SHA256: sum})
	}
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("image.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "image.json"), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("image.json: %w", err)
	}
	return img, nil
}

// readImage loads a cached image's image.json and checks that its files are there with their sizes.
func readImage(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, "image.json"))
	if err != nil {
		return nil, fmt.Errorf("cached image: %w", err)
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("cached image %s: %w", dir, err)
	}
	if len(img.Files) != 3 {
		return nil, fmt.Errorf("cached image %s: %d files, want 3", dir, len(img.Files))
	}
	for i, f := range img.Files {
		path := filepath.Join(dir, filepath.Base(f.Path))
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("cached image: %w", err)
		}
		if st.Size() != f.Size {
			return nil, fmt.Errorf("cached image: %s has %d bytes, want %d", path, st.Size(), f.Size)
		}
		img.Files[i].Path = path
	}
	return &img, nil
}

// hashFile returns the size and hex sha256 of a file.
func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = f.Close() }() // read only
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("hash %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// pruneCache removes cached images and minbase tarballs other than the ones in use.
func (l *Lab) pruneCache(p cachePaths, keepImage, keepMinbase string) {
	for _, pattern := range []string{filepath.Join(p.images, "*"), filepath.Join(p.minbase, "minbase-*.tar*")} {
		olds, _ := filepath.Glob(pattern)
		for _, old := range olds {
			if old == keepImage || old == keepMinbase {
				continue
			}
			if err := os.RemoveAll(old); err == nil {
				l.logf("removed outdated %s", old)
			}
		}
	}
}

// runBuildScript runs an embedded script with bash in a private mount namespace (so every mount it makes
// vanishes when it exits, even when killed) and its own process group (killed as a whole when ctx ends),
// streaming its output lines as progress, then empties the build dir.
func (l *Lab) runBuildScript(ctx context.Context, p cachePaths, asset string, env []string) error {
	script, err := assetFS.ReadFile(asset)
	if err != nil {
		return fmt.Errorf("asset %s: %w", asset, err)
	}
	scriptPath := filepath.Join(p.build, filepath.Base(asset))
	if err := os.WriteFile(scriptPath, script, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", scriptPath, err)
	}
	cmd := exec.CommandContext(ctx, "bash", scriptPath)
	// libmount records userspace mount options in /run/mount/utab, the host's even inside the private
	// namespace: keep that file in the build dir instead.
	cmd.Env = append(os.Environ(), append(env, "LIBMOUNT_UTAB="+filepath.Join(p.build, "utab"))...)
	cmd.Dir = p.build
	cmd.WaitDelay = 10 * time.Second
	// Go makes the new mount namespace's mounts private (MS_REC|MS_PRIVATE on /) before exec.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	done := make(chan []string, 1)
	go func() {
		var tail []string
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l.logf("  %s", sc.Text())
			tail = append(tail, sc.Text())
			if len(tail) > 30 {
				tail = tail[1:]
			}
		}
		_, _ = io.Copy(io.Discard, pr) // drain a line too long for the scanner
		done <- tail
	}()
	runErr := cmd.Run()
	_ = pw.Close() // always nil for an io.PipeWriter; ends the reader goroutine's scan
	tail := <-done
	if err := emptyBuildDir(p.build); err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("%s: %w\n%s", filepath.Base(asset), runErr, strings.Join(tail, "\n"))
	}
	return nil
}

// emptyBuildDir removes everything in the build dir, after checking that nothing is mounted beneath it
// (the private mount namespace guarantees that; this is a second guard against deleting through a mount).
func emptyBuildDir(dir string) error {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("build dir: %w", err)
	}
	if m := mountPointsUnder(string(info), dir); len(m) > 0 {
		return fmt.Errorf("build dir %s still has mounts %v: not removing it", dir, m)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("build dir: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("build dir: %w", err)
		}
	}
	return nil
}
