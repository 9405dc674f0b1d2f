package nodetest_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/node/nodetest"
)

func TestScriptedCommands(t *testing.T) {
	ctx := context.Background()
	f := nodetest.New("m1", "10.0.0.11")
	f.On(`^systemctl is-active `, node.Result{Stdout: "inactive\n", ExitCode: 3}, nil)
	f.OnExact("systemctl is-active web", node.Result{Stdout: "active\n"}, nil) // newer wins
	started := false
	f.OnFunc(`^systemctl start worker$`, func(string) (node.Result, error) {
		started = true
		return node.Result{}, nil
	})
	f.OnFunc(`^systemctl is-active worker$`, func(string) (node.Result, error) {
		if started {
			return node.Result{Stdout: "active\n"}, nil
		}
		return node.Result{Stdout: "inactive\n", ExitCode: 3}, nil
	})
	network := errors.New("connection reset")
	f.On(`^uname`, node.Result{}, network)

	if res, err := f.Run(ctx, "systemctl is-active web"); err != nil || res.Stdout != "active\n" {
		t.Errorf("exact handler: %+v, %v", res, err)
	}
	res, err := f.Run(ctx, "systemctl is-active db")
	var exitErr *node.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode != 3 || exitErr.Host != "m1" || res.ExitCode != 3 || res.Stdout != "inactive\n" {
		t.Errorf("non-zero exit: %+v, %v", res, err)
	}
	if _, err := f.Run(ctx, "systemctl is-active worker"); err == nil {
		t.Error("worker active before start")
	}
	if _, err := f.Run(ctx, "systemctl start worker"); err != nil {
		t.Error(err)
	}
	if _, err := f.Run(ctx, "systemctl is-active worker"); err != nil {
		t.Errorf("worker not active after start: %v", err)
	}
	if _, err := f.Run(ctx, "uname -r"); !errors.Is(err, network) {
		t.Errorf("scripted error: %v", err)
	}
	if res, err := f.Run(ctx, "anything else"); err != nil || res != (node.Result{}) {
		t.Errorf("default: %+v, %v", res, err)
	}
	if res, err := f.RunInput(ctx, "cat > /x", strings.NewReader("in")); err != nil || res.ExitCode != 0 {
		t.Errorf("RunInput: %+v, %v", res, err)
	}
	want := []string{
		"systemctl is-active web", "systemctl is-active db", "systemctl is-active worker",
		"systemctl start worker", "systemctl is-active worker", "uname -r", "anything else", "cat > /x",
	}
	if got := f.Commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("Commands() = %q, want %q", got, want)
	}
	if ev := f.Events(); string(ev[len(ev)-1].Stdin) != "in" {
		t.Errorf("stdin not recorded: %+v", ev[len(ev)-1])
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Run(cancelled, "late"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a done ctx: %v", err)
	}
}

func TestFiles(t *testing.T) {
	ctx := context.Background()
	f := nodetest.New("w1", "10.0.0.21")
	f.SetFile("/etc/os-release", []byte("ID=debian\n"), 0o644)
	if err := f.WriteFile(ctx, "/etc/app/app.conf", []byte("conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(local, []byte("ELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Upload(ctx, local, "/usr/local/bin/app", 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := f.ReadFile(ctx, "/etc/os-release"); err != nil || string(got) != "ID=debian\n" {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
	if _, err := f.ReadFile(ctx, "/etc/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile of a missing file = %v, want fs.ErrNotExist", err)
	}
	if err := f.WriteFile(ctx, "etc/relative", nil, 0o644); err == nil {
		t.Error("relative path accepted")
	}
	wantFiles := map[string][]byte{
		"/etc/os-release": []byte("ID=debian\n"), "/etc/app/app.conf": []byte("conf"),
		"/usr/local/bin/app": []byte("ELF"),
	}
	if got := f.Files(); !reflect.DeepEqual(got, wantFiles) {
		t.Errorf("Files() = %q", got)
	}
	if file, ok := f.File("/usr/local/bin/app"); !ok || file.Mode != 0o755 {
		t.Errorf("File = %+v, %v", file, ok)
	}
	var kinds []nodetest.Kind
	for _, e := range f.Events() {
		kinds = append(kinds, e.Kind)
	}
	if want := []nodetest.Kind{nodetest.KindWrite, nodetest.KindUpload, nodetest.KindRead, nodetest.KindRead}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("event kinds = %v, want %v", kinds, want)
	}

	full := errors.New("no space left on device")
	f.FailFiles(`^/var/`, full)
	if err := f.WriteFile(ctx, "/var/lib/x", []byte("x"), 0o644); !errors.Is(err, full) {
		t.Errorf("FailFiles: %v", err)
	}

	f.Reset()
	if len(f.Events()) != 0 || len(f.Commands()) != 0 {
		t.Error("Reset kept events")
	}
	if len(f.Files()) != 3 {
		t.Error("Reset dropped the host's files")
	}
	f.RemoveFile("/etc/os-release")
	if _, ok := f.File("/etc/os-release"); ok {
		t.Error("RemoveFile kept the file")
	}
	if err := f.Close(); err != nil || !f.Closed() {
		t.Error("Close not recorded")
	}
}

func TestRunStream(t *testing.T) {
	f := nodetest.New("m1", "10.0.0.11")
	f.On("^journalctl", node.Result{Stdout: "line 1\nline 2\n", Stderr: "warn\n"}, nil)
	var out, errOut strings.Builder
	if err := f.RunStream(context.Background(), "journalctl -u app", strings.NewReader("stdin data"), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != "line 1\nline 2\n" || errOut.String() != "warn\n" {
		t.Errorf("streamed %q, %q", out.String(), errOut.String())
	}
	if ev := f.Events()[0]; string(ev.Stdin) != "stdin data" {
		t.Errorf("stdin = %q", ev.Stdin)
	}
}
