//go:build e2e

package e2epulumi

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// timings records how long each phase took, in the format of test/e2e's reports (nightly reads them).
type timings struct {
	Scenario string        `json:"scenario"`
	Started  time.Time     `json:"started"`
	Phases   []phaseTiming `json:"phases"`
	Passed   bool          `json:"passed"`
}

type phaseTiming struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	OK      bool    `json:"ok"`
}

func newTimings(t *testing.T, scenario string) *timings {
	tm := &timings{Scenario: scenario, Started: time.Now()}
	t.Cleanup(func() {
		tm.Passed = !t.Failed()
		tm.report(t)
	})
	return tm
}

func (tm *timings) measure(t *testing.T, name string, fn func() error) {
	t.Helper()
	start := time.Now()
	t.Logf("[%s] %s ...", time.Since(tm.Started).Round(time.Second), name)
	err := fn()
	d := time.Since(start)
	tm.Phases = append(tm.Phases, phaseTiming{Name: name, Seconds: d.Seconds(), OK: err == nil})
	if err != nil {
		t.Fatalf("%s failed after %s: %v", name, d.Round(100*time.Millisecond), err)
	}
	t.Logf("[%s] %s done in %s", time.Since(tm.Started).Round(time.Second), name, d.Round(100*time.Millisecond))
}

func (tm *timings) report(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-48s %10s  %s\n", "phase ("+tm.Scenario+")", "seconds", "ok")
	for _, p := range tm.Phases {
		fmt.Fprintf(&b, "%-48s %10.1f  %v\n", p.Name, p.Seconds, p.OK)
	}
	t.Log(b.String())
	dir := os.Getenv("KUBESMITH_E2E_REPORT_DIR")
	if dir == "" {
		dir = filepath.Join("..", "e2e", "reports")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("report directory: %v", err)
		return
	}
	data, err := json.MarshalIndent(tm, "", "  ")
	if err != nil {
		t.Logf("report: %v", err)
		return
	}
	out := filepath.Join(dir, tm.Scenario+".json")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Logf("writing %s: %v", out, err)
		return
	}
	t.Logf("timings written to %s", out)
}
