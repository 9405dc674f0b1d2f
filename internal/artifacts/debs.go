package artifacts

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// debPkg is a resolved Debian package.
type debPkg struct {
	Name    string
	Version string
}

// debCodename is the Debian release whose packages a bundle carries.
const debCodename = "bookworm"

// aptEnv is the environment of apt commands: the C locale, so that their output can be parsed.
func aptEnv() []string {
	return append(os.Environ(), "LC_ALL=C", "LANG=C")
}

// parseAptDepends returns the package names of `apt-cache depends --recurse` output: the lines that are not
// indented, without virtual packages (written "<name>").
func parseAptDepends(out []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == ' ' || l[0] == '\t' || l[0] == '<' {
			continue
		}
		n := strings.TrimSpace(l)
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// parseAptPolicy returns the candidate version of each package of `apt-cache policy` output; packages without a
// candidate ("(none)") are left out.
func parseAptPolicy(out []byte) map[string]string {
	cand := map[string]string{}
	var cur string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if l != "" && l[0] != ' ' && strings.HasSuffix(l, ":") {
			cur = strings.TrimSuffix(l, ":")
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Candidate: "); ok && cur != "" {
			if v != "(none)" {
				cand[cur] = v
			}
			cur = ""
		}
	}
	return cand
}

// parseDebFileName splits apt's file name "name_version_arch.deb" (the epoch's ':' written as "%3a").
func parseDebFileName(file string) (name, version, arch string, err error) {
	base, ok := strings.CutSuffix(file, ".deb")
	parts := strings.Split(base, "_")
	if !ok || len(parts) != 3 {
		return "", "", "", fmt.Errorf("%s is not a name_version_arch.deb file name", file)
	}
	version, err = url.PathUnescape(parts[1])
	if err != nil {
		return "", "", "", fmt.Errorf("%s: %w", file, err)
	}
	return parts[0], version, parts[2], nil
}

// resolveDebs computes the dependency closure of the packages with the apt of this host and pins every package
// that has a candidate to it. Recommends, suggests and the negative relations are not followed.
func resolveDebs(ctx context.Context, top []string) ([]debPkg, error) {
	args := append([]string{
		"depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
		"--no-breaks", "--no-replaces", "--no-enhances",
	}, top...)
	out, err := output(ctx, "/", aptEnv(), "apt-cache", args...)
	if err != nil {
		return nil, fmt.Errorf("resolve dependencies (apt-get update may help): %w", err)
	}
	names := parseAptDepends(out)
	out, err = output(ctx, "/", aptEnv(), "apt-cache", append([]string{"policy"}, names...)...)
	if err != nil {
		return nil, fmt.Errorf("candidate versions: %w", err)
	}
	cand := parseAptPolicy(out)
	for _, t := range top {
		if _, ok := cand[t]; !ok {
			return nil, fmt.Errorf("apt has no candidate for %s (run apt-get update)", t)
		}
	}
	var pkgs []debPkg
	for _, n := range names {
		if v, ok := cand[n]; ok {
			pkgs = append(pkgs, debPkg{Name: n, Version: v})
		}
	}
	return pkgs, nil
}

// aptState fingerprints what apt resolves from: the package lists and the pinning. When it has not changed, a
// resolution from before is still right.
func aptState() string {
	var b strings.Builder
	for _, pattern := range []string{"/var/lib/apt/lists/*", "/etc/apt/preferences", "/etc/apt/preferences.d/*"} {
		matches, _ := filepath.Glob(pattern)
		slices.Sort(matches)
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() && !strings.HasSuffix(m, "/lock") {
				_, _ = fmt.Fprintf(&b, "%s %d %d\n", m, st.Size(), st.ModTime().UnixNano())
			}
		}
	}
	return b.String()
}

// resolution is a dependency closure remembered in the build directory.
type resolution struct {
	Top      []string `json:"top"`
	AptState string   `json:"apt_state"`
	Packages []debPkg `json:"packages"`
}

// resolveDebsCached returns the closure resolved by an earlier run when the packages asked for and apt's state are
// the same (apt-cache takes seconds), and resolves and remembers it otherwise.
func resolveDebsCached(ctx context.Context, dir string, top []string) ([]debPkg, error) {
	file := filepath.Join(dir, "resolved.json")
	state := aptState()
	if data, err := os.ReadFile(file); err == nil {
		var r resolution
		if json.Unmarshal(data, &r) == nil && slices.Equal(r.Top, top) && r.AptState == state && len(r.Packages) > 0 {
			return r.Packages, nil
		}
	}
	pkgs, err := resolveDebs(ctx, top)
	if err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(resolution{Top: top, AptState: state, Packages: pkgs}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode resolution: %w", err)
	}
	if err := writeFileAtomic(file, append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	return pkgs, nil
}

// osCodename reads VERSION_CODENAME from /etc/os-release.
func osCodename() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VERSION_CODENAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// debUnit downloads the .debs with apt-get download. It runs beside the builds.
func (r *run) debUnit() *unit {
	arch := DebianArch(r.arch)
	u := &unit{
		component: ComponentDeb, version: debCodename + "-" + arch, dir: r.unitDir("debs-" + debCodename + "-" + arch),
		concurrent: true,
	}
	top := r.b.Debs
	if top == nil {
		top = DefaultDebs()
	}
	var pkgs []debPkg
	u.key = func(ctx context.Context) (string, error) {
		if c := osCodename(); c != debCodename {
			return "", fmt.Errorf("the bundle carries Debian 12 (%s) packages, but this host is %q: build on Debian 12 or skip deb", debCodename, c)
		}
		var err error
		if pkgs, err = resolveDebsCached(ctx, u.dir, top); err != nil {
			return "", err
		}
		return keyOf(struct {
			Rev, Arch string
			Packages  []debPkg
		}{builderRevision, arch, pkgs})
	}
	u.build = func(ctx context.Context, log io.Writer) ([]string, error) {
		out := filepath.Join(u.dir, "out")
		dl := filepath.Join(u.dir, "download")
		if err := os.RemoveAll(dl); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dl, 0o755); err != nil {
			return nil, err
		}
		args := []string{"download"}
		for _, p := range pkgs {
			args = append(args, p.Name+"="+p.Version)
		}
		if err := command(ctx, log, dl, aptEnv(), "apt-get", args...); err != nil {
			return nil, err
		}
		got, err := filepath.Glob(filepath.Join(dl, "*.deb"))
		if err != nil {
			return nil, err
		}
		if len(got) != len(pkgs) {
			return nil, fmt.Errorf("apt-get download gave %d files for %d packages", len(got), len(pkgs))
		}
		// Replace the previous set: old versions must not linger in out/.
		old, err := filepath.Glob(filepath.Join(out, "*.deb"))
		if err != nil {
			return nil, err
		}
		for _, o := range old {
			if err := os.Remove(o); err != nil {
				return nil, err
			}
		}
		var names []string
		for _, g := range got {
			name := filepath.Base(g)
			if _, _, _, err := parseDebFileName(name); err != nil {
				return nil, err
			}
			if err := os.Rename(g, filepath.Join(out, name)); err != nil {
				return nil, err
			}
			names = append(names, name)
		}
		slices.Sort(names)
		return names, os.Remove(dl)
	}
	u.entry = func(file string) (File, bool) {
		name, version, _, err := parseDebFileName(file)
		if err != nil {
			return File{}, false
		}
		return File{
			Path: DebPath(r.arch, file), Component: ComponentDeb, Name: name, Version: version,
			OS: "linux", Arch: r.arch, Kind: KindDeb,
		}, true
	}
	return u
}

// ensureDebianPackage installs a build dependency with apt-get when it is missing (root only).
func ensureDebianPackage(ctx context.Context, log io.Writer, pkg string) error {
	if _, err := output(ctx, "/", aptEnv(), "dpkg", "-s", pkg); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("the build needs the Debian package " + pkg + ": apt-get install " + pkg)
	}
	_, _ = fmt.Fprintf(log, "installing the build dependency %s\n", pkg)
	if err := command(ctx, log, "/", append(aptEnv(), "DEBIAN_FRONTEND=noninteractive"), "apt-get", "install", "-y", pkg); err != nil {
		return fmt.Errorf("install build dependency %s: %w", pkg, err)
	}
	return nil
}
