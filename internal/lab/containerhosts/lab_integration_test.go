//go:build labhosts

package containerhosts

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// This test really runs the lab: Setup, Up 3 nodes, SSH checks, snapshots, restart, stop/start, Down,
// Up 5, Teardown, and checks that the host ends as it started. It needs root and takes minutes (a cold
// Setup builds the image). Run: go test -tags labhosts -run TestLabHosts -v -timeout 40m ./internal/lab/containerhosts/

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// hostState is what must be the same before the lab starts and after Teardown.
func hostState(t *testing.T) map[string][]string {
	t.Helper()
	st := map[string][]string{}
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	st["iptables"] = normIptablesSave(strings.Split(string(out), "\n"))
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	st["links"] = normIPOneline(strings.Split(string(links), "\n"))
	for _, k := range []string{
		"net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "kernel/panic", "kernel/panic_on_oops",
		"vm/overcommit_memory", "vm/panic_on_oom", "kernel/pid_max", "fs/protected_regular", "kernel/keys/root_maxkeys",
	} {
		v, err := os.ReadFile("/proc/sys/" + k)
		st["sysctl"] = append(st["sysctl"], fmt.Sprintf("%s=%s (%v)", k, strings.TrimSpace(string(v)), err))
	}
	for _, p := range []string{"/run/containerd", "/etc/docker/key.json", "/var/lib/docker", "/run/docker", "/run/mount"} {
		_, err := os.Lstat(p)
		st["paths"] = append(st["paths"], fmt.Sprintf("%s exists=%t", p, err == nil))
	}
	ents, err := os.ReadDir("/run")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "kubesmith-lab" {
			st["run"] = append(st["run"], e.Name())
		}
	}
	return st
}

func TestLabHosts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	before := hostState(t)
	l, err := New(Config{Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	var timings []string
	timed := func(what string, f func() error) {
		t.Helper()
		t0 := time.Now()
		err := f()
		timings = append(timings, fmt.Sprintf("%-40s %6.1fs", what, time.Since(t0).Seconds()))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, imgErr := exec.Command("test", "-e", l.paths.images).Output()
	cold := imgErr != nil
	t.Cleanup(func() {
		t0 := time.Now()
		if err := l.Teardown(context.Background()); err != nil {
			t.Errorf("teardown: %v", err)
		}
		timings = append(timings, fmt.Sprintf("%-40s %6.1fs", "teardown (destroy-all)", time.Since(t0).Seconds()))
		after := hostState(t)
		for _, k := range []string{"iptables", "links", "sysctl", "paths", "run"} {
			if !slices.Equal(before[k], after[k]) {
				t.Errorf("host %s changed:\nbefore %q\nafter  %q", k, before[k], after[k])
			}
		}
		t.Logf("timings (cold setup: %t):\n%s", cold, strings.Join(timings, "\n"))
	})

	timed("setup", func() error { _, err := l.Setup(ctx); return err })
	timed("setup again (everything present)", func() error { _, err := l.Setup(ctx); return err })

	var nodes []Node
	timed("up 3 nodes to SSH", func() error { nodes, err = l.Up(ctx, Spec{Prefix: "itest", Count: 3}); return err })
	if len(nodes) != 3 || nodes[0].Name != "itest-1" || nodes[0].Address != "172.30.0.11" || nodes[2].Address != "172.30.0.13" {
		t.Fatalf("nodes: %+v", nodes)
	}
	listed, err := l.Nodes(ctx, "itest")
	if err != nil || len(listed) != 3 || listed[1] != nodes[1] {
		t.Fatalf("Nodes = %+v, %v; want %+v", listed, err, nodes)
	}

	ssh := func(n Node, cmd string) string {
		t.Helper()
		c, err := l.DialSSH(ctx, n)
		if err != nil {
			t.Fatalf("ssh %s: %v", n.Name, err)
		}
		defer func() { _ = c.Close() }()
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Close() }() // io.EOF after CombinedOutput
		out, err := s.CombinedOutput(cmd)
		if err != nil {
			t.Fatalf("ssh %s %q: %v: %s", n.Name, cmd, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, n := range nodes {
		if got := ssh(n, "hostname"); got != n.Name {
			t.Errorf("%s: hostname %q", n.Name, got)
		}
		if got := ssh(n, "systemctl is-system-running --wait; systemctl --failed --no-legend"); got != "running" {
			t.Errorf("%s: system state %q", n.Name, got)
		}
	}
	n1 := nodes[0]
	checks := []struct{ cmd, want string }{
		{"findmnt -no PROPAGATION /", "shared"},                                      // make-rshared
		{"cat /proc/sys/kernel/panic /proc/sys/vm/overcommit_memory", "10\n1"},       // sysctl-shadow
		{"cat /proc/1/cgroup | grep -c ':/init.scope$' >/dev/null && echo ok", "ok"}, // private cgroupns
		{"printf '#!/bin/sh\\necho ran\\n' >/tmp/x.sh && chmod +x /tmp/x.sh && /tmp/x.sh", "ran"},
		{"getent hosts itest-2 | cut -d' ' -f1", "172.30.0.12"},
		{"ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=3 itest-2 true 2>&1 | grep -c 'Permission denied'", "1"},
		{"modprobe br_netfilter && modprobe overlay && echo ok", "ok"},
		{"systemctl is-enabled haproxy keepalived | tr '\\n' ' '", "disabled disabled"},
		{"command -v containerd runc || echo none", "none"},
		{"ip route get 8.8.8.8 >/dev/null && timeout 3 getent hosts deb.debian.org || echo no-dns", "no-dns"},
	}
	for _, c := range checks {
		out, err := l.Exec(ctx, n1.Name, c.cmd)
		if err != nil && c.want != "none" {
			t.Errorf("exec %q: %v (%+v)", c.cmd, err, out)
			continue
		}
		if got := strings.TrimSpace(out.Stdout); !strings.HasPrefix(got, c.want) {
			t.Errorf("exec %q = %q, want %q", c.cmd, got, c.want)
		}
	}
	if _, err := l.Exec(ctx, n1.Name, "exit 3"); err == nil {
		t.Error("exit 3: want an ExitError")
	} else if ee, ok := err.(*ExitError); !ok || ee.ExitCode != 3 {
		t.Errorf("exit 3: %v", err)
	}

	var s1, s2, s3 Snapshot
	timed("snapshot", func() error { s1, err = l.Snapshot(ctx, n1.Name); return err })
	ssh(n1, "systemctl list-units >/dev/null; hostnamectl >/dev/null; true") // a login and a D-Bus-activated daemon
	if s2, err = l.Snapshot(ctx, n1.Name); err != nil {
		t.Fatal(err)
	}
	if d := Diff(s1, s2); d != nil {
		t.Errorf("snapshot not stable:\n%s", strings.Join(d, "\n"))
	}
	for _, sec := range []string{"unit-files", "units", "files", "hashes", "mounts", "links", "addrs", "routes"} {
		if len(s1.Sections[sec]) == 0 {
			t.Errorf("snapshot section %s is empty", sec)
		}
	}
	ssh(n1, `mkdir -p /etc/kubernetes && printf '[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n' >/etc/systemd/system/ks-probe.service && systemctl enable --now ks-probe.service 2>/dev/null && iptables -t nat -N KS-PROBE`)
	if s3, err = l.Snapshot(ctx, n1.Name); err != nil {
		t.Fatal(err)
	}
	d := strings.Join(Diff(s1, s3), "\n")
	for _, want := range []string{
		"files: + d 0755 0:0 /etc/kubernetes", "unit-files: + ks-probe.service enabled", "units: + ks-probe.service loaded active running",
		"iptables: + nat :KS-PROBE -",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	ssh(n1, "systemctl disable --now ks-probe.service 2>/dev/null && rm /etc/systemd/system/ks-probe.service && systemctl daemon-reload && rmdir /etc/kubernetes && iptables -t nat -X KS-PROBE")
	s4, err := l.Snapshot(ctx, n1.Name)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(s1, s4); d != nil {
		t.Errorf("after undoing the changes the snapshot differs:\n%s", strings.Join(d, "\n"))
	}

	timed("restart 1 node to SSH", func() error { return l.Restart(ctx, n1.Name) })
	if got := ssh(n1, "hostname; test -e /tmp/x.sh || echo tmp-clean"); got != "itest-1\ntmp-clean" {
		t.Errorf("after restart: %q", got)
	}
	s5, err := l.Snapshot(ctx, n1.Name)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(s1, s5); d != nil {
		t.Errorf("a restart changes the snapshot:\n%s", strings.Join(d, "\n"))
	}
	timed("stop 1 node", func() error { return l.Stop(ctx, n1.Name) })
	if n, err := l.Node(ctx, n1.Name); err != nil || n.Running {
		t.Errorf("after stop: %+v %v", n, err)
	}
	timed("start 1 node to SSH", func() error { return l.Start(ctx, n1.Name) })
	timed("down 3 nodes", func() error { return l.Down(ctx, "itest") })
	if left, err := l.Nodes(ctx, "itest"); err != nil || len(left) != 0 {
		t.Fatalf("after down: %+v %v", left, err)
	}
	timed("up 5 nodes to SSH", func() error { nodes, err = l.Up(ctx, Spec{Prefix: "itest5", Count: 5}); return err })
	if len(nodes) != 5 || nodes[4].Address != "172.30.0.15" {
		t.Fatalf("5 nodes: %+v", nodes)
	}
	timed("up 3 more nodes (another prefix) to SSH", func() error { nodes, err = l.Up(ctx, Spec{Prefix: "itestb", Count: 3}); return err })
	if nodes[0].Address != "172.30.0.16" {
		t.Errorf("second group starts at %s, want the next free address 172.30.0.16", nodes[0].Address)
	}
}
