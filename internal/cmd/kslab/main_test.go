package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/lab/containerhosts"
)

func code(err error) int {
	if err == nil {
		return 0
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	return 1
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no substrate"},
		{[]string{"vms"}, `unknown substrate "vms"`},
		{[]string{"hosts"}, "no hosts command"},
		{[]string{"hosts", "frobnicate"}, `unknown hosts command "frobnicate"`},
		{[]string{"hosts", "up", "--count", "2"}, "--prefix is required"},
		{[]string{"hosts", "down"}, "--prefix is required"},
		{[]string{"hosts", "stop"}, "want one node NAME"},
		{[]string{"hosts", "restart", "a", "b"}, "want one node NAME"},
		{[]string{"hosts", "snapshot"}, "want one node NAME"},
		{[]string{"hosts", "diff", "a.json"}, "want two snapshot files"},
		{[]string{"hosts", "exec", "ks-1"}, "want NAME -- CMD"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr)
		if code(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("kslab %q: err %v (code %d), want code 2 and %q", tc.args, err, code(err), tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"hosts", "help"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "destroy-all") {
		t.Errorf("hosts help: %v %q", err, stdout.String())
	}
}

func TestDiffCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, s containerhosts.Snapshot) string {
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.json", containerhosts.Snapshot{Node: "ks-1", Sections: map[string][]string{"files": {"d 0755 0:0 /etc"}}})
	b := write("b.json", containerhosts.Snapshot{Node: "ks-1", Sections: map[string][]string{"files": {"d 0755 0:0 /etc", "d 0755 0:0 /etc/kubernetes"}}})
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"hosts", "diff", a, a}, &stdout, &stderr); err != nil || stdout.Len() != 0 {
		t.Fatalf("same snapshot: %v %q", err, stdout.String())
	}
	err := run(context.Background(), []string{"hosts", "diff", a, b}, &stdout, &stderr)
	if code(err) != 1 || stdout.String() != "files: + d 0755 0:0 /etc/kubernetes\n" {
		t.Fatalf("different snapshots: code %d, output %q", code(err), stdout.String())
	}
}
