package engine

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/machine"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/machine/machinetest"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase/phasetest"
)

// vmFixture is an engineFixture whose masters are libvirt VMs from the machinetest fake; the simulated hosts
// stand at the VMs' addresses under the VMs' names.
func newVMFixture(t *testing.T) (*engineFixture, *machinetest.Driver) {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	fx := &engineFixture{t: t, bundleDir: t.TempDir(), down: map[string]error{}}
	phasetest.WriteBundle(t, fx.bundleDir, phasetest.BundleEntries())
	fx.sim = phasetest.NewSim(t, "172.30.0.250", "ks-demo-m-1", "172.30.0.11", "ks-demo-m-2", "172.30.0.12", "ks-demo-m-3", "172.30.0.13")
	drv := machinetest.New(func(string) string { return testHostKey })
	fx.eng = New(Options{Dial: fx.dial, NewLibvirt: func(machine.LibvirtOptions) (machine.Driver, error) { return drv, nil }, StartGrace: 2 * time.Second})
	return fx, drv
}

func testPrivateKey(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(b))
}

func vmSpec(t *testing.T, fx *engineFixture) ClusterSpec {
	s := fx.spec()
	s.ControlPlane = nil
	s.Libvirt = &LibvirtMachines{Count: 3, Network: "kubesmith", Addresses: []string{"172.30.0.11", "172.30.0.12", "172.30.0.13"}, Accelerator: "tcg"}
	s.SSH = SSH{PrivateKey: testPrivateKey(t)}
	return s
}

func TestApplyClusterOnVMs(t *testing.T) {
	fx, drv := newVMFixture(t)
	ctx := context.Background()
	spec := vmSpec(t, fx)
	// As the provider passes it: the slow-host tuning it plans (without the engine's own API check timeout),
	// and no optional add-ons.
	spec.Libvirt.Accelerator = "auto"
	spec.Tuning = TCGTuning()
	spec.Tuning.APICheckTimeout = 0
	spec.Addons = []string{}
	var phases []string
	st, err := fx.eng.ApplyCluster(ctx, spec, nil, func(e Event) { phases = append(phases, e.Phase) })
	if err != nil {
		t.Fatalf("ApplyCluster: %v", err)
	}
	if got := drv.Names(); strings.Join(got, " ") != "ks-demo-m-1 ks-demo-m-2 ks-demo-m-3" {
		t.Fatalf("VMs %v", got)
	}
	if len(st.Machines) != 3 || st.Machines[0].ID != "fake-ks-demo-m-1" || st.Machines[0].HostPublicKey != testHostKey || !st.Installed {
		t.Fatalf("state machines %+v, installed %v", st.Machines, st.Installed)
	}
	if phases[0] != "machines" {
		t.Errorf("the VMs were not ensured first: %v", phases)
	}
	// Every connection went to root with the pinned host key of the VM.
	for _, d := range fx.dials {
		if d.User != "root" || d.HostPublicKey != testHostKey || !strings.HasPrefix(d.Name, "ks-demo-m-") {
			t.Errorf("dial %s@%s (%s) key %q", d.User, d.Address, d.Name, d.HostPublicKey)
		}
	}
	// The VMs may be emulated, so the slow-host tuning applies.
	unit, err := fx.sim.HostAt("172.30.0.11").Fake.ReadFile(ctx, "/etc/systemd/system/etcd.service")
	if err != nil || !strings.Contains(string(unit), "--heartbeat-interval=500") || !strings.Contains(string(unit), "--election-timeout=5000") {
		t.Errorf("etcd unit without TCG timings (%v):\n%s", err, unit)
	}

	// A lost state adopts the VMs' cluster UID.
	again, err := fx.eng.ApplyCluster(ctx, spec, nil, nil)
	if err != nil || again.UID != st.UID {
		t.Fatalf("re-create without state: UID %s (was %s), %v", again.UID, st.UID, err)
	}

	res, err := fx.eng.ReadCluster(ctx, spec, st)
	if err != nil || res.Gone || len(res.State.Machines) != 3 {
		t.Fatalf("ReadCluster: %+v, %v", res, err)
	}
	// No drift right after an apply: what Read observes, what the state says and what a plan computes agree.
	want, err := fx.eng.DesiredClusterHash(spec, st.UID)
	if err != nil {
		t.Fatal(err)
	}
	if res.State.ConfigHash != st.ConfigHash || want != st.ConfigHash || len(res.Warnings) > 0 {
		t.Errorf("config hash: applied %s, read %s, planned %s; warnings %q", st.ConfigHash, res.State.ConfigHash, want, res.Warnings)
	}
	dials := len(fx.dials)
	if err := fx.eng.DeleteCluster(ctx, spec, st, nil); err != nil {
		t.Fatalf("DeleteCluster: %v", err)
	}
	if len(drv.Names()) != 0 {
		t.Fatalf("VMs left after delete: %v", drv.Names())
	}
	if len(fx.dials) != dials {
		t.Errorf("deleting VMs connected to them (%d dials); destroyed VMs need no reset", len(fx.dials)-dials)
	}
	res, err = fx.eng.ReadCluster(ctx, spec, st)
	if err != nil || !res.Gone {
		t.Fatalf("ReadCluster after delete: gone=%v, %v", res.Gone, err)
	}
}

func TestApplyClusterOnVMsKeepsMachinesOnFailure(t *testing.T) {
	fx, drv := newVMFixture(t)
	drv.FailEnsure = "ks-demo-m-3"
	st, err := fx.eng.ApplyCluster(context.Background(), vmSpec(t, fx), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("ApplyCluster: %v", err)
	}
	if st.UID == "" || len(st.Machines) != 2 {
		t.Fatalf("the state lost what exists: UID %q, machines %+v", st.UID, st.Machines)
	}
	if len(fx.dials) != 0 {
		t.Errorf("connected to hosts although the VMs failed: %v", fx.dials)
	}
}

// TestWithDefaultsIsIdempotent: the apply normalizes a spec that the config hash normalizes again, while a plan
// normalizes it once; a second pass must change nothing (an empty add-on list once became the defaults).
func TestWithDefaultsIsIdempotent(t *testing.T) {
	fx, _ := newVMFixture(t)
	for name, edit := range map[string]func(*ClusterSpec){
		"hosts":             func(*ClusterSpec) {},
		"libvirt":           func(s *ClusterSpec) { *s = vmSpec(t, fx) },
		"no add-ons":        func(s *ClusterSpec) { s.Addons = []string{} },
		"unsorted add-ons":  func(s *ClusterSpec) { s.Addons = []string{"metrics-server", "metallb"} },
		"libvirt, no addon": func(s *ClusterSpec) { *s = vmSpec(t, fx); s.Addons = []string{}; s.Tuning = TCGTuning() },
	} {
		s := fx.spec()
		edit(&s)
		once := withDefaults(s)
		twice := withDefaults(once)
		if !reflect.DeepEqual(once, twice) {
			t.Errorf("%s: a second withDefaults changed the spec:\n%+v\n%+v", name, once, twice)
		}
	}
}

func TestValidateMachineSpecs(t *testing.T) {
	versions := []string{"v1.37.2"}
	base := func() ClusterSpec {
		s := validSpec()
		s.ControlPlane = nil
		s.Libvirt = &LibvirtMachines{Count: 3, Network: "kubesmith", Addresses: []string{"172.30.0.11", "172.30.0.12", "172.30.0.13"}}
		return withDefaults(s)
	}
	if errs := ValidateClusterSpec(base(), versions); len(errs) != 0 {
		t.Fatalf("valid libvirt spec rejected: %v", errs)
	}
	cases := []struct {
		name   string
		mutate func(*LibvirtMachines)
		path   string
		want   string
	}{
		{"two masters", func(l *LibvirtMachines) { l.Count, l.Addresses = 2, l.Addresses[:2] }, "control_plane.libvirt.count", "Got 2 masters"},
		{"missing address", func(l *LibvirtMachines) { l.Addresses = l.Addresses[:2] }, "control_plane.libvirt.addresses", "2 addresses for 3 VMs"},
		{"address outside", func(l *LibvirtMachines) { l.Addresses[1] = "10.9.9.9" }, "control_plane.libvirt.addresses[1]", "not inside"},
		{"accelerator", func(l *LibvirtMachines) { l.Accelerator = "xen" }, "control_plane.libvirt.accelerator", "not one of auto, kvm, tcg"},
		{"memory", func(l *LibvirtMachines) { l.MemoryMiB = 256 }, "control_plane.libvirt.memory_mib", "at least 1024"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := base()
			c.mutate(s.Libvirt)
			s = withDefaults(s)
			errs := ValidateClusterSpec(s, versions)
			found := false
			for _, e := range errs {
				if strings.HasSuffix(e.Path, "host_public_key") {
					t.Errorf("a generated host key was required: %v", e)
				}
				if e.Path == c.path && strings.Contains(e.Detail, c.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no %s error containing %q in %v", c.path, c.want, errs)
			}
		})
	}
	// Names too long for DNS labels: a 32-character cluster and pool.
	p := NodePoolSpec{
		Name: strings.Repeat("p", 32), Cluster: Join{ClusterName: strings.Repeat("c", 32)},
		Libvirt: &LibvirtMachines{Count: 1, Network: "kubesmith", Addresses: []string{"172.30.0.21"}},
	}
	errs := ValidateNodePoolSpec(poolDefaults(p), nil)
	if !strings.Contains(joinFieldErrors(errs).Error(), "VM names too long") {
		t.Errorf("long VM names accepted: %v", errs)
	}
}

func TestSlowMachinesTuning(t *testing.T) {
	for acc, slow := range map[string]bool{"": true, "auto": true, "tcg": true, "kvm": false, "KVM": false} {
		if SlowMachines(&LibvirtMachines{Accelerator: acc}) != slow {
			t.Errorf("accelerator %q: slow = %v", acc, !slow)
		}
	}
	s := withDefaults(ClusterSpec{Name: "demo", Libvirt: &LibvirtMachines{Count: 1, Addresses: []string{"10.0.0.2"}, Accelerator: "kvm"}})
	if s.Tuning.EtcdHeartbeatMS != 100 {
		t.Errorf("kvm VMs got heartbeat %d", s.Tuning.EtcdHeartbeatMS)
	}
	s = withDefaults(ClusterSpec{Name: "demo", Libvirt: &LibvirtMachines{Count: 1, Addresses: []string{"10.0.0.2"}}, Tuning: Tuning{EtcdHeartbeatMS: 250}})
	if s.Tuning.EtcdHeartbeatMS != 250 || s.Tuning.EtcdElectionMS != 5000 || s.Tuning.RenewDeadline != tcgRenewDeadline {
		t.Errorf("tuning %+v", s.Tuning)
	}
}
