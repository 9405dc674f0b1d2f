//go:build e2e

package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// TestApplyBreakdownReadsThisApply checks the per-phase breakdown against a real provider log: events of an
// earlier run in the same (appended) file are ignored, and the "N VM(s) of cluster/role" events are found.
func TestApplyBreakdownReadsThisApply(t *testing.T) {
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
