package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"build", "--nope"}, {"path", "extra"}, {"tool"}} {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errOut := runCLI(t, "build", "--set", "nginx=v1"); code != 1 || !strings.Contains(errOut, `unknown component "nginx"`) {
		t.Errorf("build --set nginx: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "build", "--cache", t.TempDir(), "--with", "etcd"); code != 1 || !strings.Contains(errOut, "--with etcd: not an optional component") {
		t.Errorf("build --with etcd: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "build", "--k8s", "2.0.0"); code != 1 || !strings.Contains(errOut, "v1.<minor>.<patch>") {
		t.Errorf("build --k8s 2.0.0: exit %d, %s", code, errOut)
	}
}

func TestPath(t *testing.T) {
	cache := t.TempDir()
	code, out, _ := runCLI(t, "path", "--cache", cache)
	if code != 0 || strings.TrimSpace(out) != filepath.Join(cache, "bundle") {
		t.Fatalf("path: exit %d, %q", code, out)
	}
	code, out, _ = runCLI(t, "path", "--out", filepath.Join(cache, "elsewhere"))
	if code != 0 || strings.TrimSpace(out) != filepath.Join(cache, "elsewhere") {
		t.Fatalf("path --out: exit %d, %q", code, out)
	}
}

func TestVerifyReportsProblems(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	manifest := `{"schema":1,"files":[{"path":"bin/linux-amd64/kubernetes-v1.37.2/kubelet","component":"kubernetes",` +
		`"name":"kubelet","version":"v1.37.2","os":"linux","arch":"amd64","kind":"binary","size":3,` +
		`"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}]}`
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "verify", "--bundle", dir)
	if code != 1 || !strings.Contains(out, "bin/linux-amd64/kubernetes-v1.37.2/kubelet: missing") ||
		!strings.Contains(errOut, "1 of 1 files have problems") {
		t.Fatalf("verify: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
