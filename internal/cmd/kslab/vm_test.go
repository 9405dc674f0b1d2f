package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestVMUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"vm"}, "no vm command"},
		{[]string{"vm", "frobnicate"}, `unknown vm command "frobnicate"`},
		{[]string{"vm", "setup", "extra"}, "want no arguments"},
		{[]string{"vm", "clean", "extra"}, "want no arguments"},
		{[]string{"vm", "check", "--accelerator", "xen"}, `accelerator "xen" is not one of`},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr)
		if code(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v (code %d), want exit 2 with %q", tc.args, err, code(err), tc.want)
		}
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"vm", "help"}, &stdout, &bytes.Buffer{}); err != nil ||
		!strings.Contains(stdout.String(), "kslab vm <command>") {
		t.Errorf("vm help: %v\n%s", err, stdout.String())
	}
}
