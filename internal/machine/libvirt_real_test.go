//go:build linux && cgo

package machine

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRealKVMProbe runs the accelerator probe against a real libvirtd with the lab's base image. It is opt-in:
// set KUBESMITH_TEST_LIBVIRT_URI (for example qemu:///system after `make lab`). It reports the verdict and its
// reason; KUBESMITH_TEST_EXPECT_ACCEL (kvm or tcg) makes it an assertion.
func TestRealKVMProbe(t *testing.T) {
	uri := os.Getenv("KUBESMITH_TEST_LIBVIRT_URI")
	if uri == "" {
		t.Skip("set KUBESMITH_TEST_LIBVIRT_URI to probe a real libvirtd")
	}
	l := newLibvirt(LibvirtOptions{URI: uri})
	conn, err := l.connect()
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(conn)
	env, err := l.preflight(conn, Group{Network: "kubesmith", ClusterUID: "probe"}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer env.free()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	usable, reason, err := l.probeKVMBoot(ctx, conn, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("KVM usable: %v after %s: %s", usable, time.Since(start).Round(100*time.Millisecond), reason)
	if want := os.Getenv("KUBESMITH_TEST_EXPECT_ACCEL"); want != "" && (want == string(AccelKVM)) != usable {
		t.Errorf("probe says usable=%v, expected %s", usable, want)
	}
	// The same probe under TCG must see the kernel finish booting: this proves that the console stream
	// delivers the guest's output, so that a KVM verdict of "unusable" is not an artefact of reading nothing.
	start = time.Now()
	ok, reason, err := probeBoot(ctx, conn, env, "qemu", 100*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TCG boot seen: %v after %s: %s", ok, time.Since(start).Round(100*time.Millisecond), reason)
	if !ok {
		t.Errorf("the probe saw no boot under TCG either: %s", reason)
	}
	doms, err := inventory(conn)
	if err != nil {
		t.Fatal(err)
	}
	for name := range doms {
		if strings.HasPrefix(name, "kubesmith-kvm-probe-") || strings.HasPrefix(name, "kubesmith-qemu-probe-") {
			t.Errorf("probe domain %s left behind", name)
		}
	}
}
