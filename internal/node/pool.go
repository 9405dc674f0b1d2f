package node

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
)

// ForEach calls fn for every runner, at most limit at a time (all at once if limit <= 0), and waits for all of
// them. A failure does not stop the others. The error joins every failure, each prefixed with its host name,
// in the order of runners; hosts not started because ctx ended report ctx.Err(). A panic in fn becomes an error.
func ForEach(ctx context.Context, runners []Runner, limit int, fn func(ctx context.Context, r Runner) error) error {
	if limit <= 0 || limit > len(runners) {
		limit = len(runners)
	}
	errs := make([]error, len(runners))
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i, r := range runners {
		if err := ctx.Err(); err != nil {
			errs[i] = fmt.Errorf("%s: not started: %w", hostName(r), err)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = fmt.Errorf("%s: not started: %w", hostName(r), ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer func() {
				if p := recover(); p != nil {
					errs[i] = fmt.Errorf("%s: panic: %v\n%s", hostName(r), p, debug.Stack())
				}
			}()
			if err := fn(ctx, r); err != nil {
				errs[i] = nameErr(hostName(r), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// nameErr prefixes err with the host name unless the message already starts with it (Runner errors do).
func nameErr(name string, err error) error {
	if strings.HasPrefix(err.Error(), name+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

func hostName(r Runner) string {
	if n := r.Name(); n != "" {
		return n
	}
	return r.Address()
}
