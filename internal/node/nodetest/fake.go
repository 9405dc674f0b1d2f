// Package nodetest provides Fake, a scripted node.Runner for unit tests of phases: it records every command and
// file operation in order, answers commands from handlers matched by regexp or exact text, and keeps files in
// memory. It never touches the network or the local filesystem (except to read the source of an Upload).
package nodetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sync"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
)

// Kind says what a recorded Event was.
type Kind string

// Event kinds.
const (
	KindCommand Kind = "command" // Run, RunInput or RunStream
	KindWrite   Kind = "write"   // WriteFile
	KindUpload  Kind = "upload"  // Upload
	KindRead    Kind = "read"    // ReadFile
)

// Event is one recorded operation.
type Event struct {
	Kind Kind
	// Cmd is the command (KindCommand) and Stdin what it read from its stdin, if any.
	Cmd   string
	Stdin []byte
	// Path is the remote file (KindWrite, KindUpload, KindRead); Data and Mode what was written.
	Path string
	Data []byte
	Mode fs.FileMode
	// LocalPath is the source of an upload.
	LocalPath string
}

// File is a file in the fake's in-memory filesystem.
type File struct {
	Data []byte
	Mode fs.FileMode
}

type handler struct {
	exact string
	re    *regexp.Regexp
	fn    func(cmd string) (node.Result, error)
}

func (h handler) matches(cmd string) bool {
	if h.re != nil {
		return h.re.MatchString(cmd)
	}
	return h.exact == cmd
}

type fileFailure struct {
	re  *regexp.Regexp
	err error
}

// Fake is a node.StreamRunner for tests. Commands get the answer of the most recently added handler that matches
// them; without one they succeed with empty output. Host lock holders started by node.WithHostLock succeed by
// default, so phase tests need not script them (add a handler to simulate a busy host). A Fake is safe for
// concurrent use.
type Fake struct {
	name, address string

	mu       sync.Mutex
	events   []Event
	files    map[string]File
	handlers []handler
	failures []fileFailure
	closed   bool
}

var _ node.StreamRunner = (*Fake)(nil)

// New returns a Fake for the host name at address.
func New(name, address string) *Fake {
	f := &Fake{name: name, address: address, files: make(map[string]File)}
	f.On(regexp.QuoteMeta("exec flock ")+".*"+regexp.QuoteMeta(node.HostLockDir+"/kubesmith-"), node.Result{Stdout: "locked\n"}, nil)
	return f
}

// On answers commands matching the regular expression pattern with res and err. A non-zero res.ExitCode with a
// nil err makes the command fail with *node.ExitError, as on a real host.
func (f *Fake) On(pattern string, res node.Result, err error) *Fake {
	return f.add(handler{re: regexp.MustCompile(pattern), fn: constant(res, err)})
}

// OnExact answers exactly the command cmd with res and err.
func (f *Fake) OnExact(cmd string, res node.Result, err error) *Fake {
	return f.add(handler{exact: cmd, fn: constant(res, err)})
}

// OnFunc answers commands matching pattern by calling fn, which may also change the fake's state (SetFile) to
// simulate what the command does on a host.
func (f *Fake) OnFunc(pattern string, fn func(cmd string) (node.Result, error)) *Fake {
	return f.add(handler{re: regexp.MustCompile(pattern), fn: fn})
}

// FailFiles makes WriteFile, Upload and ReadFile of remote paths matching pattern fail with err.
func (f *Fake) FailFiles(pattern string, err error) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, fileFailure{re: regexp.MustCompile(pattern), err: err})
	return f
}

func constant(res node.Result, err error) func(string) (node.Result, error) {
	return func(string) (node.Result, error) { return res, err }
}

func (f *Fake) add(h handler) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers = append(f.handlers, h)
	return f
}

// Name implements node.Runner.
func (f *Fake) Name() string { return f.name }

// Address implements node.Runner.
func (f *Fake) Address() string { return f.address }

// Run implements node.Runner.
func (f *Fake) Run(ctx context.Context, cmd string) (node.Result, error) {
	return f.RunInput(ctx, cmd, nil)
}

// RunInput implements node.Runner. stdin is read completely before the command is answered.
func (f *Fake) RunInput(ctx context.Context, cmd string, stdin io.Reader) (node.Result, error) {
	if err := ctx.Err(); err != nil {
		return node.Result{}, fmt.Errorf("%s: run %q: %w", f.name, cmd, err)
	}
	var in []byte
	if stdin != nil {
		var err error
		if in, err = io.ReadAll(stdin); err != nil {
			return node.Result{}, fmt.Errorf("%s: run %q: read stdin: %w", f.name, cmd, err)
		}
	}
	f.record(Event{Kind: KindCommand, Cmd: cmd, Stdin: in})
	return f.answer(cmd)
}

// RunStream implements node.StreamRunner. The scripted output is written to stdout and stderr; then, if the
// command succeeds, stdin is read to its end (as `cat` would), which is how a host lock holder keeps running
// until it is released.
func (f *Fake) RunStream(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: run %q: %w", f.name, cmd, err)
	}
	i := f.record(Event{Kind: KindCommand, Cmd: cmd})
	res, err := f.answer(cmd)
	if stdout != nil && res.Stdout != "" {
		_, _ = io.WriteString(stdout, res.Stdout)
	}
	if stderr != nil && res.Stderr != "" {
		_, _ = io.WriteString(stderr, res.Stderr)
	}
	if err != nil || stdin == nil {
		return err
	}
	read := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(stdin)
		read <- data
	}()
	select {
	case data := <-read:
		f.mu.Lock()
		f.events[i].Stdin = data
		f.mu.Unlock()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: run %q: %w", f.name, cmd, ctx.Err())
	}
}

func (f *Fake) answer(cmd string) (node.Result, error) {
	f.mu.Lock()
	var fn func(string) (node.Result, error)
	for i := len(f.handlers) - 1; i >= 0; i-- {
		if f.handlers[i].matches(cmd) {
			fn = f.handlers[i].fn
			break
		}
	}
	f.mu.Unlock()
	if fn == nil {
		return node.Result{}, nil
	}
	res, err := fn(cmd)
	var exitErr *node.ExitError
	if errors.As(err, &exitErr) && res.ExitCode == 0 {
		res.ExitCode = exitErr.ExitCode
	}
	if err == nil && res.ExitCode != 0 {
		err = &node.ExitError{Host: f.name, Cmd: cmd, ExitCode: res.ExitCode, Stderr: res.Stderr}
	}
	return res, err
}

// WriteFile implements node.Runner.
func (f *Fake) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	if err := f.fileOp(ctx, "write", p); err != nil {
		return err
	}
	data = bytes.Clone(data)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[p] = File{Data: data, Mode: mode}
	f.events = append(f.events, Event{Kind: KindWrite, Path: p, Data: data, Mode: mode})
	return nil
}

// Upload implements node.Runner: it reads localPath and stores it at p.
func (f *Fake) Upload(ctx context.Context, localPath, p string, mode fs.FileMode) error {
	if err := f.fileOp(ctx, "upload", p); err != nil {
		return err
	}
	data, err := os.ReadFile(localPath)
	if err != nil {
		return fmt.Errorf("%s: upload %s to %s: %w", f.name, localPath, p, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[p] = File{Data: data, Mode: mode}
	f.events = append(f.events, Event{Kind: KindUpload, Path: p, Data: data, Mode: mode, LocalPath: localPath})
	return nil
}

// ReadFile implements node.Runner. A missing file gives an error matching fs.ErrNotExist.
func (f *Fake) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := f.fileOp(ctx, "read", p); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, Event{Kind: KindRead, Path: p})
	file, ok := f.files[p]
	if !ok {
		return nil, fmt.Errorf("%s: read %s: %w", f.name, p, fs.ErrNotExist)
	}
	return bytes.Clone(file.Data), nil
}

// fileOp checks ctx, the path (clean and absolute, as the SSH runner requires) and scripted failures.
func (f *Fake) fileOp(ctx context.Context, op, p string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %s %s: %w", f.name, op, p, err)
	}
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("%s: %s: remote path %q must be a clean absolute file path", f.name, op, p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.failures) - 1; i >= 0; i-- {
		if f.failures[i].re.MatchString(p) {
			return fmt.Errorf("%s: %s %s: %w", f.name, op, p, f.failures[i].err)
		}
	}
	return nil
}

// Close implements node.Runner.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *Fake) record(e Event) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	return len(f.events) - 1
}

// Commands returns the commands run so far, in order.
func (f *Fake) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var cmds []string
	for _, e := range f.events {
		if e.Kind == KindCommand {
			cmds = append(cmds, e.Cmd)
		}
	}
	return cmds
}

// Events returns every recorded operation, in order.
func (f *Fake) Events() []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Event(nil), f.events...)
}

// Files returns the content of every file in the in-memory filesystem (written, uploaded or set).
func (f *Fake) Files() map[string][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]byte, len(f.files))
	for p, file := range f.files {
		out[p] = bytes.Clone(file.Data)
	}
	return out
}

// File returns one file of the in-memory filesystem.
func (f *Fake) File(p string) (File, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, ok := f.files[p]
	return File{Data: bytes.Clone(file.Data), Mode: file.Mode}, ok
}

// SetFile puts a file into the in-memory filesystem without recording an event, to set up a host's state or
// to simulate a command's effect from an OnFunc handler.
func (f *Fake) SetFile(p string, data []byte, mode fs.FileMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[p] = File{Data: bytes.Clone(data), Mode: mode}
}

// RemoveFile deletes a file from the in-memory filesystem without recording an event.
func (f *Fake) RemoveFile(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.files, p)
}

// Reset forgets the recorded events, so a test can check what a second run does. The in-memory filesystem,
// which stands for the host's state, and the handlers stay.
func (f *Fake) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = nil
}

// Closed reports whether Close was called.
func (f *Fake) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}
