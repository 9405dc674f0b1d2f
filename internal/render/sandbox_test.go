package render

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// sandboxHost sets up the reset sandbox and runs testdata/reset-sandbox/inside.sh in it. It runs as PID 1 of
// fresh mount, network and PID namespaces (unshare), so mounts, links, iptables and nftables changes never reach
// the machine. The chroot is an overlay of / whose upper layer is a tmpfs: file removals hit only the copy.
const sandboxHost = `set -eu
T=$1
mount -t tmpfs -o size=256m tmpfs "$T"
mkdir "$T/upper" "$T/work" "$T/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
touch "$T/root/.kubesmith-reset-sandbox"
mount -t proc proc "$T/root/proc"
mount -t sysfs sysfs "$T/root/sys"
mount --rbind /dev "$T/root/dev"
mount -t tmpfs tmpfs "$T/root/run"
mount -t tmpfs tmpfs "$T/root/tmp"
cp "$2" "$T/root/tmp/reset.sh"
cp "$3" "$T/root/tmp/inside.sh"
exec chroot "$T/root" /bin/sh /tmp/inside.sh /tmp/reset.sh
`

// TestResetScriptInSandbox runs the rendered reset script against a fake install: units, binaries, state
// directories, kubelet and containerd mounts (a hostPath bind mount among them), a volume-backed
// /var/lib/containerd, pod network namespaces, cni0/flannel.1/veth links, KUBE-/FLANNEL/CNI- iptables chains
// and nftables tables, next to host resources that must survive. It checks the result, a second (no-op) run,
// and a third run that must refuse to delete below a foreign mount and exit 1.
//
// It needs root, unshare, chroot, overlayfs and iptables, so it runs only with KUBESMITH_SANDBOX_TESTS=1.
func TestResetScriptInSandbox(t *testing.T) {
	if os.Getenv("KUBESMITH_SANDBOX_TESTS") != "1" {
		t.Skip("set KUBESMITH_SANDBOX_TESTS=1 to run (root; uses unshare, chroot, overlayfs, iptables)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range []string{"unshare", "chroot", "iptables", "ip6tables", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	var reset Rendered
	for _, c := range goldenCases() {
		if c.golden == "reset.sh" {
			r, err := RenderFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			reset = r
		}
	}
	dir := t.TempDir()
	resetPath := filepath.Join(dir, "reset.sh")
	if err := os.WriteFile(resetPath, reset.Data, 0o755); err != nil {
		t.Fatal(err)
	}
	inside, err := filepath.Abs(filepath.Join("testdata", "reset-sandbox", "inside.sh"))
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "sandbox")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
		"sh", "-c", sandboxHost, "sandbox", mnt, resetPath, inside)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	t.Logf("sandbox ran in %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
}
