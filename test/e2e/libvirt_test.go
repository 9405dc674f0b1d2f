//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/machine"
)

// The libvirt scenarios run on the lab from `make lab`: network and pool "kubesmith", base image
// kubesmith-debian12, network 192.168.150.0/24 (the host is .1).
const (
	lvURI     = "qemu:///system"
	lvNetwork = "kubesmith"
	lvPool    = "kubesmith"
)

// TestLibvirt is `make e2e-libvirt`: terraform apply of one master and one worker, both libvirt VMs created by
// kubesmith, the checks that apply to two nodes, terraform destroy, and nothing of the VMs left in libvirt.
func TestLibvirt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Minute)
	defer cancel()
	tm := newTimings(t, "e2e-libvirt")
	lvPreflight(t)
	runLibvirtCluster(ctx, t, tm, "e2elv", []string{"192.168.150.11"}, []string{"192.168.150.21"})
}

// TestLibvirtHA is `make e2e-libvirt-ha`: five VMs (three masters, two workers) created in parallel, root login
// over SSH with the pinned host key on all of them, and a clean destroy. The full 3+2 install follows only
// where KVM really works; under TCG it is reported as skipped (2 cores cannot hold it, see tcg-capacity.md).
func TestLibvirtHA(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Minute)
	defer cancel()
	tm := newTimings(t, "e2e-libvirt-ha")
	lvPreflight(t)
	dir := t.TempDir()
	keyPath, pub := lvSSHKey(t, dir)
	uid := randomUID(t)
	var mu sync.Mutex
	steps := map[string][]time.Duration{}
	drv, err := machine.NewLibvirt(machine.LibvirtOptions{
		URI: lvURI, CacheDir: engine.DefaultCacheDir(),
		Progress: func(name, step string, took time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			steps[step] = append(steps[step], took)
			t.Logf("  %s %s: %s %v", step, name, took.Round(100*time.Millisecond), errOrEmpty(err))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	group := func(role string, addrs []string) machine.Group {
		g := machine.Group{
			Cluster: "e2eha", ClusterUID: uid, Role: role, Network: lvNetwork, VCPU: 1, MemoryMiB: 1536, DiskGiB: 10,
			Accelerator: machine.AccelAuto, AuthorizedKeys: []string{pub}, SSHTimeout: 40 * time.Minute,
		}
		for i, a := range addrs {
			g.Machines = append(g.Machines, machine.Spec{Name: machine.Name("e2eha", role, i+1), Address: a})
		}
		return g
	}
	groups := []machine.Group{
		// Addresses apart from e2e-libvirt's, so that both scenarios can run side by side.
		group("m", []string{"192.168.150.31", "192.168.150.32", "192.168.150.33"}),
		group("w", []string{"192.168.150.41", "192.168.150.42"}),
	}
	lvRemoveLeftovers(t, ctx, "ks-e2eha-")
	destroyed := false
	destroy := func(ctx context.Context) error {
		var errs []error
		for _, g := range groups {
			var names []string
			for _, s := range g.Machines {
				names = append(names, s.Name)
			}
			errs = append(errs, drv.Delete(ctx, g, names))
		}
		return errors.Join(errs...)
	}
	t.Cleanup(func() {
		if !destroyed && os.Getenv("KUBESMITH_E2E_KEEP") == "" {
			c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if err := destroy(c); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})

	var machines []machine.Machine
	tm.measure(t, "5 VMs created in parallel, all answer SSH with their pinned key", func() error {
		var wg sync.WaitGroup
		errs := make([]error, len(groups))
		got := make([][]machine.Machine, len(groups))
		for i, g := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = drv.Ensure(ctx, g)
			}()
		}
		wg.Wait()
		machines = append(got[0], got[1]...)
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if len(machines) != 5 {
			return fmt.Errorf("%d VMs, want 5", len(machines))
		}
		return nil
	})
	mu.Lock()
	tm.Phases = append(tm.Phases,
		phaseTiming{Name: "  VM create (slowest of 5: volumes, seed, define, start)", Seconds: maxSeconds(steps["vm-create"]), OK: true},
		phaseTiming{Name: "  boot to SSH (slowest of 5, from the last start)", Seconds: maxSeconds(steps["vm-ssh"]), OK: true})
	mu.Unlock()
	tm.measure(t, "root login on every VM: hostname, address, key from the seed", func() error {
		return lvCheckLogins(ctx, keyPath, machines)
	})
	accel := machines[0].Accelerator
	t.Logf("accelerator chosen by the probe (cached per libvirt host): %s", accel)
	tm.measure(t, "destroy the 5 VMs", func() error {
		err := destroy(ctx)
		destroyed = err == nil
		return err
	})
	tm.measure(t, "nothing of the VMs left in libvirt", func() error { return lvNoLeftovers(ctx, "ks-e2eha-") })

	if accel != machine.AccelKVM {
		t.Logf("INSTALL SKIPPED: no usable KVM on this host (the probe chose %s). 3 masters + 2 workers under TCG do "+
			"not fit 2 cores (tcg-capacity.md); the install runs where KVM works, and make e2e-libvirt covers the VM "+
			"path with 1 master + 1 worker here.", accel)
		tm.Phases = append(tm.Phases, phaseTiming{Name: "install 3 masters + 2 workers: SKIPPED (no KVM, " + string(accel) + ")", OK: true})
		return
	}
	runLibvirtCluster(ctx, t, tm, "e2elv",
		[]string{"192.168.150.11", "192.168.150.12", "192.168.150.13"}, []string{"192.168.150.21", "192.168.150.22"})
}

// runLibvirtCluster applies test/e2e/testdata/libvirt with the given master and worker addresses, checks the
// cluster, destroys it and checks that nothing is left.
func runLibvirtCluster(ctx context.Context, t *testing.T, tm *timings, cluster string, masters, workers []string) {
	t.Helper()
	prefix := "ks-" + cluster + "-"
	lvRemoveLeftovers(t, ctx, prefix)
	dir := t.TempDir()
	if os.Getenv("KUBESMITH_E2E_KEEP") != "" { // keep the state and the SSH key with the VMs
		var err error
		if dir, err = os.MkdirTemp("", "kubesmith-e2e-libvirt-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("KUBESMITH_E2E_KEEP: state, SSH key and kubeconfig stay in %s", dir)
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "test", "e2e", "testdata", "libvirt", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	keyPath, _ := lvSSHKey(t, dir)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	// Under TCG a 1-vCPU master saturates once the worker joins: its apiserver answered TLS handshakes and
	// requests too late for the worker's CSR to be signed within 10 min (load 15 in the guest). 2-vCPU guests
	// locked up once here (both vCPUs spinning with interrupts off in the kernel, QEMU 7.2), so only the master
	// gets 2, and the worker, mostly idle while the master installs, 1.
	masterVCPU, workerVCPU := 2, 2
	if accel := lvLabAccelerator(t); accel != "kvm" {
		workerVCPU = 1
		t.Logf("the lab's accelerator is %q: %d vCPU for the master, %d per worker", accel, masterVCPU, workerVCPU)
	}
	if v := os.Getenv("KUBESMITH_E2E_VCPU"); v != "" { // "N" or "MASTER,WORKER", to compare guest sizes
		m, w, _ := strings.Cut(v, ",")
		if w == "" {
			w = m
		}
		mn, err1 := strconv.Atoi(m)
		wn, err2 := strconv.Atoi(w)
		if err1 != nil || err2 != nil || mn < 1 || wn < 1 {
			t.Fatalf("KUBESMITH_E2E_VCPU=%q: want N or MASTER,WORKER, positive numbers", v)
		}
		masterVCPU, workerVCPU = mn, wn
		t.Logf("KUBESMITH_E2E_VCPU: %d vCPU for the master, %d per worker", masterVCPU, workerVCPU)
	}
	vj, _ := json.MarshalIndent(map[string]any{
		"libvirt_uri": lvURI, "ssh_private_key_path": keyPath, "bundle": bundleDir(), "kubeconfig_path": kubeconfig,
		"masters": masters, "workers": workers, "master_vcpu": masterVCPU, "worker_vcpu": workerVCPU,
	}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "terraform.tfvars.json"), vj, 0o600); err != nil {
		t.Fatal(err)
	}
	tf := newTF(t, dir)
	logPath := filepath.Join(reportDir(t), t.Name()+"-provider.log") // newTF's provider log, kept after the run
	applied := false
	t.Cleanup(func() {
		if applied && os.Getenv("KUBESMITH_E2E_KEEP") == "" {
			c, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			if out, err := tf.run(c, "destroy", "-auto-approve", "-input=false", "-no-color"); err != nil {
				t.Errorf("cleanup destroy failed: %v\n%s", err, tail(out, 30))
			}
			// The cluster may be unreachable (no drain possible), or a killed provider may have created a VM that
			// no state records: still leave no VM behind.
			lvRemoveLeftovers(t, c, prefix)
		}
	})
	n := len(masters) + len(workers)
	tm.measure(t, "terraform init", func() error { _, err := tf.run(ctx, "init", "-input=false", "-no-color"); return err })
	var applyStart time.Time
	tm.measure(t, fmt.Sprintf("terraform apply: %d master + %d worker VMs, installed", len(masters), len(workers)), func() error {
		applied = true
		applyStart = time.Now()
		out, err := tf.run(ctx, "apply", "-auto-approve", "-input=false", "-no-color")
		t.Log(tail(out, 12))
		return err
	})
	applyEnd := time.Now()
	tm.Phases = append(tm.Phases, applyBreakdown(t, logPath, applyStart, applyEnd)...)

	k := newKubectl(t, kubeconfig)
	k.requestTimeout = "2m" // a TCG master answers slowly while it is busy
	k.retryTransient = 10 * time.Minute
	workerName := machine.Name(cluster, "w", 1)
	tm.measure(t, fmt.Sprintf("%d nodes Ready", n), func() error {
		return eventually(ctx, 10*time.Minute, 5*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "get", "nodes", "--no-headers")
			if err != nil {
				return err
			}
			if c := strings.Count(out, " Ready "); c != n {
				return fmt.Errorf("%d Ready nodes:\n%s", c, out)
			}
			return nil
		})
	})
	tm.measure(t, "pod on the worker: Running, logs and exec", func() error {
		pod := `apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: default}
spec:
  nodeName: ` + workerName + `
  containers:
  - name: echo
    image: ` + echoImage(t) + `
    imagePullPolicy: Never
`
		if err := eventually(ctx, 5*time.Minute, 5*time.Second, func(ctx context.Context) error {
			_, err := k.stdin(ctx, pod, "apply", "-f", "-")
			return err
		}); err != nil {
			return err
		}
		if _, err := k.run(ctx, "wait", "--for=condition=Ready", "pod/probe", "--timeout=600s"); err != nil {
			return err
		}
		if _, err := k.run(ctx, "logs", "probe"); err != nil {
			return err
		}
		out, err := k.run(ctx, "exec", "probe", "--", "/echo", "get", "http://127.0.0.1:8080/exec-check")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "path=/exec-check") {
			return fmt.Errorf("unexpected exec output: %s", out)
		}
		return nil
	})
	tm.measure(t, "CoreDNS resolves kubernetes.default", func() error {
		return eventually(ctx, 10*time.Minute, 5*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "exec", "probe", "--", "/echo", "resolve", "kubernetes.default.svc.cluster.local")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "10.96.0.1") {
				return fmt.Errorf("unexpected answer: %s", out)
			}
			return nil
		})
	})
	tm.measure(t, "state records the VMs (domain UUIDs, pinned keys)", func() error {
		out, err := tf.run(ctx, "output", "-json", "machines")
		if err != nil {
			return err
		}
		var ms []struct {
			Name, ID, Address string
			HostPublicKey     string `json:"host_public_key"`
		}
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		if len(ms) != n {
			return fmt.Errorf("%d machines in state, want %d: %s", len(ms), n, out)
		}
		for _, m := range ms {
			uuid, err := exec.CommandContext(ctx, "virsh", "-c", lvURI, "domuuid", m.Name).Output()
			if err != nil || strings.TrimSpace(string(uuid)) != m.ID || !strings.HasPrefix(m.HostPublicKey, "ssh-ed25519 ") {
				return fmt.Errorf("%s: state ID %s, libvirt %q (%v), key %q", m.Name, m.ID, strings.TrimSpace(string(uuid)), err, m.HostPublicKey)
			}
		}
		return nil
	})
	tm.measure(t, "no-change plan is empty", func() error {
		empty, out, err := tf.planIsEmpty(ctx)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("plan is not empty:\n%s", tail(out, 40))
		}
		return nil
	})
	tm.measure(t, "terraform destroy: drain, delete the Node, destroy the VMs", func() error {
		out, err := tf.run(ctx, "destroy", "-auto-approve", "-input=false", "-no-color")
		if err == nil {
			applied = false
		} else {
			t.Log(tail(out, 20))
		}
		return err
	})
	tm.measure(t, "virsh list --all and vol-list: nothing of the VMs left", func() error { return lvNoLeftovers(ctx, prefix) })
}

// lvLabAccelerator is the accelerator of the lab's self-check (`kslab vm check`, cached; make lab runs it).
func lvLabAccelerator(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "run", "-tags", "libvirt_dlopen", "./internal/cmd/kslab", "vm", "check")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kslab vm check: %v (run make lab)", err)
	}
	var res struct {
		Accelerator string `json:"accelerator"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("kslab vm check: %v: %s", err, out)
	}
	return res.Accelerator
}

// applyBreakdown splits the apply into its phases from the provider's progress log (TF_LOG_PROVIDER=INFO).
func applyBreakdown(t *testing.T, logPath string, start, end time.Time) []phaseTiming {
	t.Helper()
	all, err := readProgress(logPath)
	if err != nil {
		t.Logf("no phase breakdown: %v", err)
		return nil
	}
	// The log file is appended to by every run: only this apply's events count.
	var evs []progressEvent
	for _, e := range all {
		if !e.at.Before(start) && !e.at.After(end) {
			evs = append(evs, e)
		}
	}
	var out []phaseTiming
	add := func(name string, d time.Duration) {
		out = append(out, phaseTiming{Name: "  " + name, Seconds: d.Seconds(), OK: true})
	}
	slowest := func(phase, role string) time.Duration {
		var m time.Duration
		for _, e := range evs {
			if e.phase == phase && strings.Contains(e.host, "-"+role+"-") && e.dur > m {
				m = e.dur
			}
		}
		return m
	}
	machinesEv := func(role string) (progressEvent, bool) {
		for _, e := range evs {
			if e.phase == "machines" && strings.HasSuffix(e.msg, "/"+role) {
				return e, true
			}
		}
		return progressEvent{}, false
	}
	if m, ok := machinesEv("m"); ok {
		add("masters: VM create (slowest)", slowest("vm-create", "m"))
		add("masters: boot to SSH (slowest, after the last start)", slowest("vm-ssh", "m"))
		if w, ok := machinesEv("w"); ok {
			add("masters: install to a ready control plane", w.at.Add(-w.dur).Sub(m.at))
			add("workers: VM create (slowest)", slowest("vm-create", "w"))
			add("workers: boot to SSH (slowest, after the last start)", slowest("vm-ssh", "w"))
			add("workers: join until Ready", end.Sub(w.at))
			for _, e := range evs {
				if e.phase == "workers-ready" {
					add("workers: wait for Ready (part of the join)", e.dur)
				}
			}
		}
	}
	return out
}

type progressEvent struct {
	at         time.Time
	phase      string
	host, msg  string
	dur        time.Duration
	failed     bool
	rawMessage string
}

var (
	kvRe  = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S+)`)
	tsRe  = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[Z+\-][\d:]*)`)
	vmsRe = regexp.MustCompile(`: \d+ VM\(s\) of (\S+/[a-z0-9-]+):`)
)

// readProgress reads the kubesmith progress events from a terraform log file.
func readProgress(path string) ([]progressEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []progressEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "phase=") || !strings.Contains(line, "operation=") {
			continue
		}
		e := progressEvent{rawMessage: line}
		if m := tsRe.FindStringSubmatch(line); m != nil {
			e.at, _ = time.Parse(time.RFC3339Nano, m[1])
		}
		for _, kv := range kvRe.FindAllStringSubmatch(line, -1) {
			v := kv[2]
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			}
			switch kv[1] {
			case "phase":
				e.phase = v
			case "host":
				e.host = v
			case "duration_ms":
				ms, _ := strconv.Atoi(v)
				e.dur = time.Duration(ms) * time.Millisecond
			case "error":
				e.failed = true
			}
		}
		if m := vmsRe.FindStringSubmatch(line); m != nil {
			// The machines event's message is "N VM(s) of <cluster>/<role>".
			e.msg = m[1]
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no progress events in %s", path)
	}
	return out, sc.Err()
}

func maxSeconds(ds []time.Duration) float64 {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m.Seconds()
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return "error: " + err.Error()
}

// lvPreflight stops early with the fix when the lab is missing.
func lvPreflight(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{
		{"net-info", lvNetwork},
		{"vol-info", "--pool", lvPool, machine.DefaultBaseImage + ".qcow2"},
	} {
		if out, err := exec.Command("virsh", append([]string{"-c", lvURI}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("the VM lab is missing (virsh %s: %v: %s); run `make lab`", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
}

// lvSSHKey writes a new ed25519 key to dir and returns its path and authorized_keys line.
func lvSSHKey(t *testing.T, dir string) (string, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return p, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

func randomUID(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// lvCheckLogins logs in as root on every VM with the pinned host key and checks what the seed set up.
func lvCheckLogins(ctx context.Context, keyPath string, ms []machine.Machine) error {
	pem, err := os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range ms {
		hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(m.HostPublicKey))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
			continue
		}
		cfg := &ssh.ClientConfig{
			User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: 30 * time.Second,
		}
		c, err := ssh.Dial("tcp", net.JoinHostPort(m.Address, "22"), cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
			continue
		}
		s, err := c.NewSession()
		if err != nil {
			_ = c.Close()
			errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
			continue
		}
		out, err := s.Output("hostname; ip -o -4 addr show eth0; ip route show default; ls /etc/ssh/ssh_host_*_key")
		_ = s.Close()
		_ = c.Close()
		got := string(out)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
		case !strings.HasPrefix(got, m.Name+"\n"), !strings.Contains(got, " "+m.Address+"/24 "),
			!strings.Contains(got, "default via 192.168.150.1"), strings.Count(got, "ssh_host_") != 1:
			errs = append(errs, fmt.Errorf("%s: unexpected guest state:\n%s", m.Name, got))
		}
	}
	return errors.Join(errs...)
}

// lvOurs lists the domains and pool volumes whose names start with prefix.
func lvOurs(ctx context.Context, prefix string) (doms, vols []string, err error) {
	d, err := exec.CommandContext(ctx, "virsh", "-c", lvURI, "list", "--all", "--name").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("virsh list: %w", err)
	}
	v, err := exec.CommandContext(ctx, "virsh", "-c", lvURI, "vol-list", lvPool).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("virsh vol-list: %w", err)
	}
	for _, l := range strings.Split(string(d), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) {
			doms = append(doms, l)
		}
	}
	for _, l := range strings.Split(string(v), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			vols = append(vols, f[0])
		}
	}
	return doms, vols, nil
}

func lvNoLeftovers(ctx context.Context, prefix string) error {
	doms, vols, err := lvOurs(ctx, prefix)
	if err != nil {
		return err
	}
	if len(doms)+len(vols) > 0 {
		return fmt.Errorf("left in libvirt: domains %v, volumes %v", doms, vols)
	}
	return nil
}

// lvRemoveLeftovers removes what an aborted earlier run of the same scenario left (its names are the
// scenario's own).
func lvRemoveLeftovers(t *testing.T, ctx context.Context, prefix string) {
	t.Helper()
	doms, vols, err := lvOurs(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range doms {
		t.Logf("removing domain %s left by an earlier run", d)
		_ = exec.CommandContext(ctx, "virsh", "-c", lvURI, "destroy", d).Run()
		if out, err := exec.CommandContext(ctx, "virsh", "-c", lvURI, "undefine", d).CombinedOutput(); err != nil {
			t.Fatalf("undefine %s: %v: %s", d, err, out)
		}
	}
	for _, v := range vols {
		t.Logf("removing volume %s left by an earlier run", v)
		if out, err := exec.CommandContext(ctx, "virsh", "-c", lvURI, "vol-delete", "--pool", lvPool, v).CombinedOutput(); err != nil {
			t.Fatalf("vol-delete %s: %v: %s", v, err, out)
		}
	}
}
