package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/nodetest"
)

func fakes(n int) []node.Runner {
	var rs []node.Runner
	for i := range n {
		rs = append(rs, nodetest.New(fmt.Sprintf("h%d", i), fmt.Sprintf("10.0.0.%d", i)))
	}
	return rs
}

func TestForEachLimit(t *testing.T) {
	var cur, peak, calls atomic.Int32
	err := node.ForEach(context.Background(), fakes(10), 3, func(ctx context.Context, r node.Runner) error {
		n := cur.Add(1)
		for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		cur.Add(-1)
		calls.Add(1)
		return nil
	})
	if err != nil || calls.Load() != 10 || peak.Load() > 3 || peak.Load() < 2 {
		t.Errorf("ForEach = %v, %d calls, peak %d; want nil, 10 calls, peak 2-3", err, calls.Load(), peak.Load())
	}
}

func TestForEachErrors(t *testing.T) {
	sentinel := errors.New("disk full")
	rs := fakes(6)
	rs[1].(*nodetest.Fake).On("check", node.Result{ExitCode: 2, Stderr: "nope"}, nil)
	err := node.ForEach(context.Background(), rs, 0, func(ctx context.Context, r node.Runner) error {
		switch r.Name() {
		case "h1":
			_, err := r.Run(ctx, "check")
			return err
		case "h3":
			return fmt.Errorf("write: %w", sentinel)
		case "h4":
			panic("bug")
		}
		return nil
	})
	if !errors.Is(err, sentinel) {
		t.Errorf("joined error loses the sentinel: %v", err)
	}
	var exitErr *node.ExitError
	if !errors.As(err, &exitErr) || exitErr.Host != "h1" {
		t.Errorf("joined error loses the ExitError: %v", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if !strings.HasPrefix(lines[0], `h1: command "check" exited 2`) || lines[1] != "h3: write: disk full" ||
		!strings.HasPrefix(lines[2], "h4: panic: bug") {
		t.Errorf("error = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err = node.ForEach(ctx, rs, 2, func(context.Context, node.Runner) error { called = true; return nil })
	if called || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "h5: not started") {
		t.Errorf("ForEach with a done ctx = %v (called %v)", err, called)
	}
}
