package artifacts

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseAptDepends(t *testing.T) {
	out := []byte(`haproxy
  Depends: libc6
  Depends: <liblua5.3-0>
    liblua5.3-0
libc6
  Depends: libgcc-s1
<awk>
liblua5.3-0
libgcc-s1
haproxy
`)
	if got, want := parseAptDepends(out), []string{"haproxy", "libc6", "libgcc-s1", "liblua5.3-0"}; !slices.Equal(got, want) {
		t.Fatalf("parseAptDepends = %v, want %v", got, want)
	}
}

func TestParseAptPolicy(t *testing.T) {
	out := []byte(`haproxy:
  Installed: (none)
  Candidate: 2.6.12-1+deb12u4
  Version table:
     2.6.12-1+deb12u4 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
keepalived:
  Installed: (none)
  Candidate: 1:2.2.7-1+b2
  Version table:
     1:2.2.7-1+b2 500
mawk:
  Installed: 1.3.4.20200120-3.1
  Candidate: (none)
`)
	got := parseAptPolicy(out)
	if len(got) != 2 || got["haproxy"] != "2.6.12-1+deb12u4" || got["keepalived"] != "1:2.2.7-1+b2" {
		t.Fatalf("parseAptPolicy = %v", got)
	}
}

func TestParseDebFileName(t *testing.T) {
	name, version, arch, err := parseDebFileName("keepalived_1%3a2.2.7-1+b2_amd64.deb")
	if err != nil || name != "keepalived" || version != "1:2.2.7-1+b2" || arch != "amd64" {
		t.Fatalf("parseDebFileName = %q %q %q %v", name, version, arch, err)
	}
	for _, bad := range []string{"keepalived.deb", "a_b_c_d.deb", "a_b_c.rpm"} {
		if _, _, _, err := parseDebFileName(bad); err == nil {
			t.Errorf("parseDebFileName(%q) accepted", bad)
		}
	}
}

func TestDebianArch(t *testing.T) {
	for goarch, want := range map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armhf", "386": "i386", "ppc64le": "ppc64el"} {
		if got := DebianArch(goarch); got != want {
			t.Errorf("DebianArch(%s) = %s, want %s", goarch, got, want)
		}
	}
}

func TestResolveDebsCachedReusesAnEarlierResolution(t *testing.T) {
	dir := t.TempDir()
	top := []string{"kubesmith-no-such-package"} // apt-cache would fail on it: only the remembered closure can answer
	want := []debPkg{{Name: "kubesmith-no-such-package", Version: "1.0-1"}}
	data, err := json.Marshal(resolution{Top: top, AptState: aptState(), Packages: want})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolved.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := resolveDebsCached(context.Background(), dir, top)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("resolveDebsCached = %v, %v", got, err)
	}
}
