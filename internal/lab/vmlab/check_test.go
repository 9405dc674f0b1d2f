//go:build linux && cgo

package vmlab

import (
	"testing"
	"time"
)

func TestPassedCheckRecord(t *testing.T) {
	l, err := New(Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.passedBefore("disk:a kslab:b"); ok {
		t.Fatal("a check passed before any was recorded")
	}
	at := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
	l.recordPass("disk:a kslab:b", &CheckResult{VM: "ks-lab-check-1", CreateToSSHSeconds: 42.5, CheckedAt: at})
	got, ok := l.passedBefore("disk:a kslab:b")
	if !ok || !got.Cached || got.CreateToSSHSeconds != 42.5 || !got.CheckedAt.Equal(at) {
		t.Errorf("recorded check: %+v, %v", got, ok)
	}
	for _, other := range []string{"disk:other kslab:b", "disk:a kslab:rebuilt"} {
		if _, ok := l.passedBefore(other); ok {
			t.Errorf("stamp %q matched the record of another image or build", other)
		}
	}
}
