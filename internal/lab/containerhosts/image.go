package containerhosts

import (
	"bufio"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// assetFS holds the node image's build scripts and the capfix runtime wrapper.
//
//go:embed assets/*.sh
var assetFS embed.FS

// Image build inputs. The image tag hashes imageAssets; the minbase tarball hashes minbaseAsset, the suite
// and the mirror.
const (
	suite        = "bookworm"
	minbaseAsset = "assets/minbase.sh"
	buildAsset   = "assets/build-image.sh"
)

// assetsHash is a short sha256 over the named files of fsys (name and content), plus extra strings.
func assetsHash(fsys fs.FS, names []string, extra ...string) (string, error) {
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", fmt.Errorf("asset %s: %w", n, err)
		}
		_, _ = fmt.Fprintf(h, "%s\x00%d\x00", n, len(b)) // a hash.Hash never returns a write error
		h.Write(b)
	}
	for _, e := range extra {
		_, _ = fmt.Fprintf(h, "%s\x00", e) // a hash.Hash never returns a write error
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// ImageTag is the node image this version of the package builds: kubesmith/host:bookworm-<hash of the
// image build scripts>. Editing a script changes the tag, so the next Setup rebuilds.
func ImageTag() (string, error) {
	h, err := assetsHash(assetFS, []string{minbaseAsset, buildAsset})
	if err != nil {
		return "", err
	}
	return ImageRepository + ":" + suite + "-" + h, nil
}

// mirror is Config.Mirror or the host's Debian mirror.
func (l *Lab) mirror() string {
	if l.cfg.Mirror != "" {
		return l.cfg.Mirror
	}
	osRelease, _ := os.ReadFile("/etc/os-release")
	deb822, _ := os.ReadFile("/etc/apt/sources.list.d/debian.sources")
	list, _ := os.ReadFile("/etc/apt/sources.list")
	return hostMirror(string(osRelease), string(deb822), string(list))
}

// hostMirror picks the Debian mirror from the host's apt sources: the first non-security URI of
// debian.sources (deb822) or of sources.list. Non-Debian hosts get deb.debian.org.
func hostMirror(osRelease, deb822, list string) string {
	const fallback = "http://deb.debian.org/debian"
	isDebian := false
	for _, line := range strings.Split(osRelease, "\n") {
		if strings.TrimSpace(line) == "ID=debian" || strings.TrimSpace(line) == `ID="debian"` {
			isDebian = true
		}
	}
	if !isDebian {
		return fallback
	}
	for _, line := range strings.Split(deb822, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "URIs:"); ok {
			for _, u := range strings.Fields(v) {
				if !strings.Contains(u, "security") {
					return u
				}
			}
		}
	}
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "deb" {
			u := f[1]
			if strings.HasPrefix(u, "[") { // deb [options] uri suite
				for i := 1; i < len(f); i++ {
					if strings.HasSuffix(f[i], "]") && i+1 < len(f) {
						u = f[i+1]
						break
					}
				}
			}
			if !strings.Contains(u, "security") {
				return u
			}
		}
	}
	return fallback
}

// EnsureImage makes sure the lab's dockerd has the node image and returns its tag. It imports the cached
// tarball (StateDir/images) when the image is missing, and builds the tarball first when that is missing
// too: debootstrap minbase (cached as a tarball of its own), packages from the host's mirror and the
// container tweaks, all in a private mount namespace. Older node images and tarballs are removed.
func (l *Lab) EnsureImage(ctx context.Context) (string, error) {
	ctx, p := l.progress(ctx)
	tag, err := ImageTag()
	if err != nil {
		return "", err
	}
	t := findTools()
	d := l.docker(t.docker)
	if _, err := d.run(ctx, nil, "image", "inspect", "--format", "{{.Id}}", tag); err == nil {
		p.logf("node image %s present", tag)
		return tag, nil
	}
	hash := strings.TrimPrefix(tag, ImageRepository+":"+suite+"-")
	tarPath := filepath.Join(l.paths.images, "host-"+suite+"-"+hash+".tar")
	if _, err := os.Stat(tarPath); errors.Is(err, os.ErrNotExist) {
		if err := l.buildTarball(ctx, p, t, tarPath); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", fmt.Errorf("node image tarball: %w", err)
	} else {
		p.logf("using cached %s", tarPath)
	}
	// docker 20.10 rejects --change STOPSIGNAL; the stop signal is given at create time instead.
	if _, err := d.run(ctx, nil, "import", "--change", "ENV container=docker", "--change", `CMD ["/sbin/init"]`,
		"--message", "kubesmith container host", tarPath, tag); err != nil {
		return "", fmt.Errorf("import node image: %w", err)
	}
	p.logf("imported %s", tag)
	l.pruneImages(ctx, p, d, tag, tarPath)
	return tag, nil
}

// pruneImages removes other kubesmith/host images that no container uses, and other cached host tarballs.
func (l *Lab) pruneImages(ctx context.Context, p progress, d dockerCLI, keepTag, keepTar string) {
	out, err := d.run(ctx, nil, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", ImageRepository)
	if err == nil {
		for _, img := range strings.Fields(out) {
			if img != keepTag {
				if _, err := d.run(ctx, nil, "image", "rm", img); err == nil {
					p.logf("removed old node image %s", img)
				}
			}
		}
	}
	olds, _ := filepath.Glob(filepath.Join(l.paths.images, "host-"+suite+"-*.tar"))
	for _, f := range olds {
		if f != keepTar && os.Remove(f) == nil {
			p.logf("removed old tarball %s", f)
		}
	}
}

// buildTarball writes the node image tarball to out, via the cached minbase tarball.
func (l *Lab) buildTarball(ctx context.Context, p progress, t tools, out string) error {
	if t.bash == "" {
		return errors.New("build node image: bash not found")
	}
	for _, dir := range []string{l.paths.images, l.paths.build, l.paths.logs, l.paths.debCache, l.paths.aptCache} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("build node image: %w", err)
		}
	}
	mirror := l.mirror()
	mhash, err := assetsHash(assetFS, []string{minbaseAsset}, suite, mirror)
	if err != nil {
		return err
	}
	minbase := filepath.Join(l.paths.images, "minbase-"+suite+"-"+mhash+".tar")
	if _, err := os.Stat(minbase); errors.Is(err, os.ErrNotExist) {
		if t.debootstrap == "" {
			return errors.New("build node image: debootstrap not found (run `kslab hosts setup`)")
		}
		p.logf("stage 1: debootstrap %s minbase from %s", suite, mirror)
		err := l.runBuildScript(ctx, p, t, minbaseAsset, []string{
			"TARGET=" + filepath.Join(l.paths.build, "minbase"),
			"OUT=" + minbase + ".partial",
			"DEBCACHE=" + l.paths.debCache,
			"MIRROR=" + mirror,
			"SUITE=" + suite,
			"LOGDIR=" + l.paths.logs,
		})
		if err != nil {
			return fmt.Errorf("build node image, stage 1: %w", err)
		}
		if err := os.Rename(minbase+".partial", minbase); err != nil {
			return fmt.Errorf("build node image: %w", err)
		}
		olds, _ := filepath.Glob(filepath.Join(l.paths.images, "minbase-"+suite+"-*.tar"))
		for _, f := range olds {
			if f != minbase {
				_ = os.Remove(f) // best effort: an outdated stage-1 tarball only wastes space
			}
		}
	} else if err != nil {
		return fmt.Errorf("build node image: %w", err)
	} else {
		p.logf("stage 1: using cached %s", minbase)
	}
	p.logf("stage 2: packages and container tweaks")
	err = l.runBuildScript(ctx, p, t, buildAsset, []string{
		"ROOTFS=" + filepath.Join(l.paths.build, "rootfs"),
		"OUT=" + out + ".partial",
		"MINBASE_TAR=" + minbase,
		"APTCACHE=" + l.paths.aptCache,
		"LOGDIR=" + l.paths.logs,
	})
	if err != nil {
		return fmt.Errorf("build node image, stage 2: %w", err)
	}
	if err := os.Rename(out+".partial", out); err != nil {
		return fmt.Errorf("build node image: %w", err)
	}
	p.logf("node image tarball %s", out)
	return nil
}

// runBuildScript runs an embedded script with bash in a private mount namespace, streaming its output
// lines to the progress writer, then removes the scratch directory. It refuses to remove anything that
// still has a mount beneath it.
func (l *Lab) runBuildScript(ctx context.Context, p progress, t tools, asset string, env []string) error {
	script, err := assetFS.ReadFile(asset)
	if err != nil {
		return fmt.Errorf("asset %s: %w", asset, err)
	}
	scriptPath := filepath.Join(l.paths.build, filepath.Base(asset))
	if err := os.WriteFile(scriptPath, script, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", scriptPath, err)
	}
	defer func() { _ = os.Remove(scriptPath) }() // best effort: the build dir is scratch space
	cmd := exec.CommandContext(ctx, t.bash, scriptPath)
	// libmount records userspace mount options in /run/mount/utab, which is the host's /run even inside the
	// private mount namespace: keep that file in the scratch dir instead.
	cmd.Env = append(os.Environ(), append(env, "LIBMOUNT_UTAB="+filepath.Join(l.paths.build, "utab"))...)
	cmd.Dir = l.paths.build
	cmd.WaitDelay = 10 * time.Second
	if err := isolateBuild(cmd); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	done := make(chan []string, 1)
	go func() {
		var tail []string
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.logf("  %s", sc.Text())
			tail = append(tail, sc.Text())
			if len(tail) > 30 {
				tail = tail[1:]
			}
		}
		_, _ = io.Copy(io.Discard, pr)
		done <- tail
	}()
	runErr := cmd.Run()
	_ = pw.Close() // always nil for an io.PipeWriter; ends the reader goroutine's scan
	tail := <-done
	if err := removeScratch(l.paths.build, scriptPath); err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(asset), runErr, strings.Join(tail, "\n"))
	}
	return nil
}

// removeScratch removes every entry of the build dir except the running script, after checking that no
// mount is left beneath it (the private mount namespace guarantees that; this is a second guard).
func removeScratch(buildDir, keep string) error {
	if mounts := mountsUnder(buildDir); len(mounts) > 0 {
		return fmt.Errorf("build dir still has mounts %v: not removing it", mounts)
	}
	ents, err := os.ReadDir(buildDir)
	if err != nil {
		return fmt.Errorf("build dir: %w", err)
	}
	for _, e := range ents {
		path := filepath.Join(buildDir, e.Name())
		if path == keep {
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("build dir: %w", err)
		}
	}
	return nil
}

// mountsUnder lists the mount points of this mount namespace at or below dir.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	return mountPointsUnder(string(data), dir)
}

// mountPointsUnder parses mountinfo text and returns the mount points at or below dir.
func mountPointsUnder(mountinfo, dir string) []string {
	dir = filepath.Clean(dir)
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.Sort(out)
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for space, ...) of /proc/*/mountinfo fields.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, ok := octal3(s[i+1 : i+4]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	v := 0
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}
