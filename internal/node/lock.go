package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"
)

const (
	// HostLockDir is where WithHostLock keeps its lock files on the host.
	HostLockDir = "/run/lock"
	// DefaultHostLockWait is how long WithHostLock waits for a busy lock when ctx has no deadline.
	DefaultHostLockWait = 10 * time.Minute
	// hostLockBusyExit is flock's exit code when the wait times out (flock -E).
	hostLockBusyExit = 75
	// hostLockReleaseWait bounds how long releasing the lock may take before the holder session is cut.
	hostLockReleaseWait = 30 * time.Second
)

var hostLockNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// HostLockedError means another process kept the host lock for the whole wait.
type HostLockedError struct {
	Host, Lock string
	Waited     time.Duration
}

// Error names the host and the lock file.
func (e *HostLockedError) Error() string {
	return fmt.Sprintf("%s: lock %s is held by another kubesmith operation (waited %s)", e.Host, e.Lock, e.Waited)
}

// HostLockPath returns the lock file that WithHostLock uses for name.
func HostLockPath(name string) string {
	return HostLockDir + "/kubesmith-" + name + ".lock"
}

// HostLockCommand returns the command WithHostLock runs on the host: it waits up to wait for an exclusive flock
// on HostLockPath(name), prints "locked", and holds the lock until its stdin is closed.
func HostLockCommand(name string, wait time.Duration) string {
	// Whole seconds, rounded down, at least one.
	secs := max(int64(wait/time.Second), 1)
	return fmt.Sprintf("mkdir -p %s && exec flock -x -w %d -E %d %s -c 'echo locked && exec cat >/dev/null'",
		HostLockDir, secs, hostLockBusyExit, Quote(HostLockPath(name)))
}

// WithHostLock runs fn while holding an exclusive lock on the host, so that two processes (two terraform runs,
// or terraform and pulumi) never mutate one host at the same time. The lock is an flock on HostLockPath(name),
// held by a remote process whose stdin we keep open; it goes away with that process, so a crash or a dropped
// connection releases it. A busy lock is waited for until a second before ctx's deadline (DefaultHostLockWait
// without one), then *HostLockedError is returned.
// Within one process, serialise with HostMutex first: taking the same lock twice from one process blocks.
// r must implement StreamRunner.
func WithHostLock(ctx context.Context, r Runner, name string, fn func() error) error {
	if !hostLockNameRE.MatchString(name) {
		return fmt.Errorf("%s: host lock name %q: use letters, digits, '.', '_' and '-' only", r.Name(), name)
	}
	sr, ok := r.(StreamRunner)
	if !ok {
		return fmt.Errorf("%s: host lock: runner %T cannot stream commands", r.Name(), r)
	}
	wait := DefaultHostLockWait
	if deadline, ok := ctx.Deadline(); ok {
		// Leave a second so that flock reports a busy lock before ctx ends the wait less clearly.
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return fmt.Errorf("%s: host lock %s: %w", r.Name(), name, context.DeadlineExceeded)
		}
		wait = max(remaining-time.Second, time.Second)
	}
	// The holder outlives a ctx that ends while fn runs: the lock must stay until fn has returned.
	holderCtx, cancelHolder := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHolder()
	stdinR, stdinW := io.Pipe()
	locked := &lineWatcher{line: []byte("locked"), seen: make(chan struct{})}
	held := make(chan error, 1)
	start := time.Now()
	go func() {
		held <- sr.RunStream(holderCtx, HostLockCommand(name, wait), stdinR, locked, nil)
	}()
	select {
	case <-locked.seen:
	case err := <-held:
		_ = stdinW.Close()
		var exitErr *ExitError
		if errors.As(err, &exitErr) && exitErr.ExitCode == hostLockBusyExit {
			return &HostLockedError{Host: r.Name(), Lock: HostLockPath(name), Waited: time.Since(start).Round(time.Second)}
		}
		if err == nil {
			err = errors.New("the lock holder exited without taking the lock")
		}
		return fmt.Errorf("%s: take host lock %s: %w", r.Name(), name, err)
	case <-ctx.Done():
		_ = stdinW.Close()
		cancelHolder()
		<-held //nolint:errcheck // the holder was cancelled before taking the lock: its error says only that
		return fmt.Errorf("%s: wait for host lock %s: %w", r.Name(), name, ctx.Err())
	}

	fnErr := fn()

	// Release: closing stdin ends cat, then flock, which drops the lock.
	_ = stdinW.Close()
	timer := time.NewTimer(hostLockReleaseWait)
	defer timer.Stop()
	var holdErr error
	select {
	case holdErr = <-held:
	case <-timer.C:
		cancelHolder()
		holdErr = <-held
	}
	if holdErr != nil {
		holdErr = fmt.Errorf("%s: host lock %s was lost or not released cleanly: %w", r.Name(), name, holdErr)
	}
	return errors.Join(fnErr, holdErr)
}

// lineWatcher closes seen once a line equal to line has been written to it.
type lineWatcher struct {
	line []byte
	seen chan struct{}
	once sync.Once
	mu   sync.Mutex
	buf  []byte
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if bytes.Equal(bytes.TrimSpace(w.buf[:i]), w.line) {
			w.once.Do(func() { close(w.seen) })
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 4096 {
		w.buf = w.buf[len(w.buf)-4096:]
	}
	return len(p), nil
}

// HostMutex serialises work on a host within one process: one holder per address at a time. Its zero value is
// ready to use; share one per process (e.g. in the provider's configured client), never copy it.
type HostMutex struct {
	mu    sync.Mutex
	hosts map[string]*hostSlot
}

type hostSlot struct {
	token chan struct{} // holds one token while the host is free
	refs  int           // holders plus waiters; the slot is deleted at zero
}

// Lock blocks until addr is free and returns the function that frees it (safe to call more than once).
func (m *HostMutex) Lock(addr string) (unlock func()) {
	unlock, _ = m.LockContext(context.Background(), addr)
	return unlock
}

// LockContext is Lock that gives up when ctx is done.
func (m *HostMutex) LockContext(ctx context.Context, addr string) (unlock func(), err error) {
	m.mu.Lock()
	if m.hosts == nil {
		m.hosts = make(map[string]*hostSlot)
	}
	slot := m.hosts[addr]
	if slot == nil {
		slot = &hostSlot{token: make(chan struct{}, 1)}
		slot.token <- struct{}{}
		m.hosts[addr] = slot
	}
	slot.refs++
	m.mu.Unlock()

	release := func() {
		m.mu.Lock()
		slot.refs--
		if slot.refs == 0 {
			delete(m.hosts, addr)
		}
		m.mu.Unlock()
	}
	select {
	case <-slot.token:
	case <-ctx.Done():
		release()
		return func() {}, fmt.Errorf("wait for in-process lock on %s: %w", addr, ctx.Err())
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			slot.token <- struct{}{}
			release()
		})
	}, nil
}
