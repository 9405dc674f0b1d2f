//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHarnessApplyBreakdownReadsThisApply checks the per-phase breakdown against a real provider log: events of an
// earlier run in the same (appended) file are ignored, and the "N VM(s) of cluster/role" events are found.
func TestHarnessApplyBreakdownReadsThisApply(t *testing.T) {
	start := time.Date(2026, 11, 26, 12, 27, 0, 0, time.UTC)
	end := time.Date(2026, 11, 26, 12, 48, 0, 0, time.UTC)
	got := map[string]float64{}
	for _, p := range applyBreakdown(t, filepath.Join("testdata", "progress", "libvirt-provider.log"), start, end) {
		got[p.Name] = p.Seconds
	}
	check := func(name string, w float64) {
		t.Helper()
		g, ok := got[name]
		if !ok {
			t.Errorf("%q missing; got %v", name, got)
			return
		}
		if g < w-0.01 || g > w+0.01 {
			t.Errorf("%q = %.3f s, want %.3f s", name, g, w)
		}
	}
	check("  masters: VM create (slowest)", 0.826)
	check("  masters: boot to SSH (slowest, after the last start)", 32.574)
	// From the masters' machines event (12:28:35.249) to the start of the workers' (12:39:28.849 - 61.887 s).
	check("  masters: install to a ready control plane", 591.713)
	check("  workers: VM create (slowest)", 0.667)
	check("  workers: boot to SSH (slowest, after the last start)", 59.711)
	check("  workers: wait for Ready (part of the join)", 27.518)
	check("  workers: join until Ready", end.Sub(time.Date(2026, 11, 26, 12, 39, 28, 849e6, time.UTC)).Seconds())
}

// TestHarnessKubectlRetriesOnlyUnreachable checks that kubectl is run again when the apiserver could not be
// reached, and not when it answered with an error.
func TestHarnessKubectlRetriesOnlyUnreachable(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl")
	// Fails twice with client-go's TLS handshake timeout, then answers; "forbidden" always fails.
	script := `#!/bin/sh
n=$(cat "$0.count" 2>/dev/null || echo 0); echo $((n+1)) > "$0.count"
case "$*" in *forbidden*) echo 'Error from server (Forbidden): nodes is forbidden'; exit 1;; esac
if [ "$n" -lt 2 ]; then echo 'Unable to connect to the server: net/http: TLS handshake timeout'; exit 1; fi
echo ok
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	count := func() string {
		b, _ := os.ReadFile(bin + ".count")
		_ = os.Remove(bin + ".count")
		return strings.TrimSpace(string(b))
	}
	k := kubectl{bin: bin, kubeconfig: filepath.Join(dir, "kubeconfig"), retryTransient: time.Minute, retryInterval: time.Millisecond}
	out, err := k.run(context.Background(), "get", "nodes")
	if err != nil || strings.TrimSpace(out) != "ok" || count() != "3" {
		t.Errorf("unreachable twice, then ok: out %q, err %v", out, err)
	}
	if _, err := k.run(context.Background(), "get", "forbidden"); err == nil || count() != "1" {
		t.Errorf("an answer from the server was retried or hidden: %v", err)
	}
	k.retryTransient = 0
	if _, err := k.run(context.Background(), "get", "nodes"); err == nil || count() != "1" {
		t.Errorf("retried without retryTransient: %v", err)
	}
}
