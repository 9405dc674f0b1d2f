package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/nodetest"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/sshtest"
)

// lockName returns a lock name unique to this test run and removes its lock file afterwards. The in-process
// server runs commands as the test's user, so the lock lives in this machine's /run/lock.
func lockName(t *testing.T) string {
	t.Helper()
	if err := checkWritable(node.HostLockDir); err != nil {
		t.Skipf("host lock tests need a writable %s: %v", node.HostLockDir, err)
	}
	name := fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() { _ = os.Remove(node.HostLockPath(name)) })
	return name
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, "kubesmith-probe-*")
	if err != nil {
		return err
	}
	_ = f.Close()
	return os.Remove(f.Name())
}

func TestWithHostLockMutualExclusion(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	name := lockName(t)
	runners := []node.Runner{dial(t, configFor(srv, keyPEM)), dial(t, configFor(srv, keyPEM))}

	var inside, maxInside, runs atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := runners[i%2]
			for range 2 {
				err := node.WithHostLock(context.Background(), r, name, func() error {
					n := inside.Add(1)
					for {
						m := maxInside.Load()
						if n <= m || maxInside.CompareAndSwap(m, n) {
							break
						}
					}
					time.Sleep(100 * time.Millisecond)
					inside.Add(-1)
					runs.Add(1)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if maxInside.Load() != 1 || runs.Load() != 8 {
		t.Errorf("%d runs, at most %d at once; want 8 runs, one at a time", runs.Load(), maxInside.Load())
	}
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("8 exclusive 100ms sections took only %s", d)
	}
	want := node.HostLockCommand(name, node.DefaultHostLockWait)
	if got := srv.Execs()[0]; got != "/bin/sh -c "+node.Quote(want) {
		t.Errorf("lock command = %q, want it to run %q", got, want)
	}
}

func TestWithHostLockBusyAndLost(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	name := lockName(t)
	holder := dial(t, configFor(srv, keyPEM))
	other := dial(t, configFor(srv, keyPEM))

	locked := make(chan struct{})
	release := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- node.WithHostLock(context.Background(), holder, name, func() error {
			close(locked)
			<-release
			// Drop the connection while holding the lock, as a crashed provider would.
			return holder.Close()
		})
	}()
	<-locked

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	called := false
	err := node.WithHostLock(ctx, other, name, func() error { called = true; return nil })
	var busy *node.HostLockedError
	if !errors.As(err, &busy) || called {
		t.Fatalf("WithHostLock on a busy host = %v (fn called: %v), want *HostLockedError", err, called)
	}
	t.Logf("busy: %v", err)

	close(release)
	err = <-held
	if err == nil || !strings.Contains(err.Error(), "lost") {
		t.Errorf("holder whose connection dropped: %v, want a lost-lock error", err)
	}
	// The dropped connection released the lock.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := node.WithHostLock(ctx2, other, name, func() error { called = true; return nil }); err != nil || !called {
		t.Errorf("WithHostLock after the holder dropped = %v (fn called: %v)", err, called)
	}
}

func TestWithHostLockFnErrorAndCtx(t *testing.T) {
	signer, keyPEM := clientKey(t)
	srv := startServer(t, sshtest.Config{}, signer)
	name := lockName(t)
	r := dial(t, configFor(srv, keyPEM))
	boom := errors.New("boom")
	if err := node.WithHostLock(context.Background(), r, name, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("fn error = %v, want boom", err)
	}
	// A ctx that ends while fn runs does not drop the lock before fn returns.
	ctx, cancel := context.WithCancel(context.Background())
	err := node.WithHostLock(ctx, r, name, func() error {
		cancel()
		time.Sleep(200 * time.Millisecond)
		res, err := r.Run(context.Background(), "flock -n "+node.Quote(node.HostLockPath(name))+" true; echo $?")
		if err != nil {
			return err
		}
		if strings.TrimSpace(res.Stdout) != "1" {
			return fmt.Errorf("lock not held after ctx ended: flock -n exited %s", res.Stdout)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if err := node.WithHostLock(context.Background(), r, "bad/name", func() error { return nil }); err == nil {
		t.Error("WithHostLock accepted a name with a slash")
	}
}

func TestWithHostLockFake(t *testing.T) {
	f := nodetest.New("m1", "10.0.0.1")
	ran := false
	if err := node.WithHostLock(context.Background(), f, "phase", func() error {
		ran = true
		_, err := f.Run(context.Background(), "touch /etc/x")
		return err
	}); err != nil || !ran {
		t.Fatalf("WithHostLock on the fake = %v, ran %v", err, ran)
	}
	cmds := f.Commands()
	if len(cmds) != 2 || cmds[0] != node.HostLockCommand("phase", node.DefaultHostLockWait) || cmds[1] != "touch /etc/x" {
		t.Errorf("commands = %q", cmds)
	}

	f.On("flock", node.Result{ExitCode: 75}, nil)
	err := node.WithHostLock(context.Background(), f, "phase", func() error { t.Error("fn ran without the lock"); return nil })
	var busy *node.HostLockedError
	if !errors.As(err, &busy) {
		t.Errorf("busy fake: %v, want *HostLockedError", err)
	}
}
