package phase

import (
	"context"
	"testing"
	"time"
)

func TestPollWaitScale(t *testing.T) {
	never := func(context.Context) (bool, error) { return false, nil }
	start := time.Now()
	err := Poll(context.Background(), 10*time.Millisecond, 50*time.Millisecond, "never", never)
	plain := time.Since(start)
	start = time.Now()
	err2 := Poll(WithWaitScale(context.Background(), 4), 10*time.Millisecond, 50*time.Millisecond, "never", never)
	scaled := time.Since(start)
	if err == nil || err2 == nil {
		t.Fatal("a check that never succeeds succeeded")
	}
	if scaled < 180*time.Millisecond || plain > 150*time.Millisecond {
		t.Errorf("plain wait %s, scaled x4 %s; want about 50 ms and 200 ms", plain, scaled)
	}
}
