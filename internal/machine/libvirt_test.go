//go:build linux && cgo

package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/kdomanski/iso9660"
	"golang.org/x/crypto/ssh"
	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// These tests run the driver against libvirt's in-process test driver (test:///default): no daemon, no VMs.
// Its state lives while one connection is open, so every test keeps one. It has no guests to SSH to, no volume
// upload and no real memory figures; those steps are replaced by recorders (see the Libvirt fields).

const testURI = "test:///default"

// lvEnv is a test:///default connection with base image volumes, and a driver whose host-facing steps record.
type lvEnv struct {
	t    *testing.T
	conn *libvirt.Connect
	drv  *Libvirt

	mu        sync.Mutex
	uploads   map[string][]byte // volume name -> ISO
	waited    map[string]string // address -> pinned key
	probes    int
	failSeed  string // the seed volume whose upload fails
	freeBytes uint64
	answering map[netip.Addr]bool
}

func newLVEnv(t *testing.T) *lvEnv {
	t.Helper()
	conn, err := libvirt.NewConnect(testURI)
	if err != nil {
		t.Fatalf("test:///default: %v", err)
	}
	e := &lvEnv{t: t, conn: conn, uploads: map[string][]byte{}, waited: map[string]string{}, freeBytes: 24 << 30, answering: map[netip.Addr]bool{}}
	t.Cleanup(func() { _, _ = conn.Close() })
	pool := e.pool()
	defer func() { _ = pool.Free() }()
	for _, v := range []string{"kubesmith-debian12.qcow2", "kubesmith-debian12.vmlinuz", "kubesmith-debian12.initrd"} {
		if vol, err := pool.LookupStorageVolByName(v); err == nil {
			_ = vol.Free()
			continue
		}
		x, _ := volumeXML(v, "raw", 4<<30, "")
		vol, err := pool.StorageVolCreateXML(x, 0)
		if err != nil {
			t.Fatal(err)
		}
		_ = vol.Free()
	}
	d := newLibvirt(LibvirtOptions{URI: testURI, CacheDir: t.TempDir()})
	d.upload = func(_ *libvirt.Connect, vol *libvirt.StorageVol, data []byte) error {
		name, err := vol.GetName()
		if err != nil {
			return err
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if name == e.failSeed {
			return errors.New("injected upload failure")
		}
		e.uploads[name] = data
		return nil
	}
	d.waitSSH = func(_ context.Context, addr string, key ssh.PublicKey) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.waited[addr] = authorizedKey(key)
		return nil
	}
	d.answers = func(_ context.Context, a netip.Addr) bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.answering[a]
	}
	d.freeMemory = func(*libvirt.Connect) (uint64, error) { return e.freeBytes, nil }
	d.probeKVM = func(context.Context, *libvirt.Connect, *hostEnv) (bool, string, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.probes++
		return false, "test host", nil
	}
	e.drv = d
	return e
}

func (e *lvEnv) pool() *libvirt.StoragePool {
	p, err := e.conn.LookupStoragePoolByName("default-pool")
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// group is cluster's n machines of role "m" on test:///default's network (192.168.122.0/24), at
// 192.168.122.<first>, <first+1>, ...; tests use disjoint ranges because the test driver's state is shared.
func group(cluster, uid string, n, first int) Group {
	g := Group{
		Cluster: cluster, ClusterUID: uid, Role: "m", Network: "default", Pool: "default-pool",
		VCPU: 1, MemoryMiB: 512, DiskGiB: 10, Accelerator: AccelTCG,
		AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoldenOperatorKeyGoldenOperatorKeyGolden1 op"},
	}
	for i := 1; i <= n; i++ {
		g.Machines = append(g.Machines, Spec{Name: Name(cluster, "m", i), Address: fmt.Sprintf("192.168.122.%d", first+i-1)})
	}
	return g
}

func (e *lvEnv) domains() map[string]*vmState {
	e.t.Helper()
	doms, err := inventory(e.conn)
	if err != nil {
		e.t.Fatal(err)
	}
	return doms
}

func (e *lvEnv) volumes() map[string]libvirtxml.StorageVolume {
	e.t.Helper()
	p := e.pool()
	defer func() { _ = p.Free() }()
	vols, err := p.ListAllStorageVolumes(0)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]libvirtxml.StorageVolume{}
	for i := range vols {
		x, err := vols[i].GetXMLDesc(0)
		if err != nil {
			e.t.Fatal(err)
		}
		var v libvirtxml.StorageVolume
		if err := v.Unmarshal(x); err != nil {
			e.t.Fatal(err)
		}
		out[v.Name] = v
		_ = vols[i].Free()
	}
	return out
}

// assertGone checks that nothing of g is left.
func (e *lvEnv) assertGone(g Group) {
	e.t.Helper()
	doms, vols := e.domains(), e.volumes()
	for _, s := range g.Machines {
		if doms[s.Name] != nil {
			e.t.Errorf("domain %s is left", s.Name)
		}
		for _, v := range []string{overlayName(s.Name), seedName(s.Name)} {
			if _, ok := vols[v]; ok {
				e.t.Errorf("volume %s is left", v)
			}
		}
	}
}

func (e *lvEnv) cleanup(g Group) {
	e.t.Cleanup(func() {
		if err := e.drv.Delete(context.Background(), g, names(g)); err != nil {
			e.t.Errorf("cleanup: %v", err)
		}
	})
}

func names(g Group) []string {
	var out []string
	for _, s := range g.Machines {
		out = append(out, s.Name)
	}
	return out
}

func isoFiles(t *testing.T, data []byte) map[string]string {
	t.Helper()
	img, err := iso9660.OpenImage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(f *iso9660.File, prefix string)
	walk = func(f *iso9660.File, prefix string) {
		kids, err := f.GetChildren()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kids {
			n := strings.TrimSuffix(k.Name(), ";1")
			if k.IsDir() {
				walk(k, prefix+n+"/")
				continue
			}
			b, _ := io.ReadAll(k.Reader())
			out[prefix+n] = string(b)
		}
	}
	walk(root, "")
	return out
}

func TestLibvirtCreateLookupDelete(t *testing.T) {
	e := newLVEnv(t)
	g := group("crud", "uid-crud", 2, 11)
	e.cleanup(g)
	ctx := context.Background()
	ms, err := e.drv.Ensure(ctx, g)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if len(ms) != 2 {
		t.Fatalf("got %d machines, want 2", len(ms))
	}
	doms, vols := e.domains(), e.volumes()
	for i, m := range ms {
		s := g.Machines[i]
		if m.Name != s.Name || m.Address != s.Address || m.ID == "" || m.Accelerator != AccelTCG {
			t.Errorf("machine %d = %+v", i, m)
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(m.HostPublicKey)); err != nil {
			t.Errorf("%s: host key %q: %v", m.Name, m.HostPublicKey, err)
		}
		st := doms[m.Name]
		if st == nil || !st.active || st.meta == nil || st.meta.ClusterUID != g.ClusterUID || st.meta.HostPublicKey != m.HostPublicKey || st.uuid != m.ID {
			t.Errorf("%s: domain state %+v", m.Name, st)
		}
		// The domain: TCG, deterministic MAC, the overlay and the seed attached, direct kernel boot.
		d, err := e.conn.LookupDomainByName(m.Name)
		if err != nil {
			t.Fatal(err)
		}
		x, _ := d.GetXMLDesc(0)
		_ = d.Free()
		var dx libvirtxml.Domain
		if err := dx.Unmarshal(x); err != nil {
			t.Fatal(err)
		}
		if dx.Type != "qemu" || dx.Devices.Interfaces[0].MAC.Address != MAC(g.ClusterUID, m.Name).String() ||
			!strings.HasSuffix(dx.OS.Kernel, "kubesmith-debian12.vmlinuz") || !strings.HasSuffix(dx.OS.Initrd, "kubesmith-debian12.initrd") ||
			!strings.HasSuffix(dx.Devices.Disks[0].Source.File.File, overlayName(m.Name)) ||
			!strings.HasSuffix(dx.Devices.Disks[1].Source.File.File, seedName(m.Name)) {
			t.Errorf("%s: unexpected domain XML:\n%s", m.Name, x)
		}
		ov, ok := vols[overlayName(m.Name)]
		if !ok || ov.BackingStore == nil || !strings.HasSuffix(ov.BackingStore.Path, "kubesmith-debian12.qcow2") || ov.Capacity.Value != 10<<30 {
			t.Errorf("%s: overlay volume %+v", m.Name, ov)
		}
		if _, ok := vols[seedName(m.Name)]; !ok {
			t.Errorf("%s: no seed volume", m.Name)
		}
		// The seed carries the hostname, the operator's key and the host key that is pinned.
		files := isoFiles(t, e.uploads[seedName(m.Name)])
		if files["kubesmith/hostname"] != m.Name+"\n" || files["kubesmith/ssh_host_ed25519_key.pub"] != m.HostPublicKey+"\n" ||
			!strings.Contains(files["kubesmith/authorized_keys"], "op") || !strings.Contains(files["kubesmith/10-kubesmith.network"], "Address="+m.Address+"/24") ||
			!strings.Contains(files["kubesmith/10-kubesmith.network"], "Gateway=192.168.122.1") {
			t.Errorf("%s: seed files %v", m.Name, files)
		}
		if e.waited[m.Address+":22"] != m.HostPublicKey {
			t.Errorf("%s: SSH was not awaited with the pinned key (waited: %v)", m.Name, e.waited)
		}
	}
	got, err := e.drv.Lookup(ctx, g)
	if err != nil || len(got) != 2 || got[0] != ms[0] || got[1] != ms[1] {
		t.Errorf("Lookup = %+v, %v; want %+v", got, err, ms)
	}
	if err := e.drv.Delete(ctx, g, names(g)); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	e.assertGone(g)
	if err := e.drv.Delete(ctx, g, names(g)); err != nil {
		t.Errorf("Delete of gone VMs: %v", err)
	}
	if got, err := e.drv.Lookup(ctx, g); err != nil || len(got) != 0 {
		t.Errorf("Lookup after delete = %+v, %v", got, err)
	}
}

func TestLibvirtIdempotentAndReplace(t *testing.T) {
	e := newLVEnv(t)
	g := group("idem", "uid-idem", 2, 21)
	e.cleanup(g)
	ctx := context.Background()
	first, err := e.drv.Ensure(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	uploads := len(e.uploads)
	// A second run adopts: same IDs and host keys, nothing uploaded.
	second, err := e.drv.Ensure(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(second) != 2 || second[0] != first[0] || second[1] != first[1] || len(e.uploads) != uploads {
		t.Fatalf("re-run did not adopt: %+v vs %+v (uploads %d -> %d)", first, second, uploads, len(e.uploads))
	}
	// A stopped VM is started again, not replaced.
	d, _ := e.conn.LookupDomainByName(first[0].Name)
	_ = d.Destroy()
	_ = d.Free()
	third, err := e.drv.Ensure(ctx, g)
	if err != nil || third[0] != first[0] || !e.domains()[first[0].Name].active {
		t.Fatalf("stopped VM: %+v, %v", third, err)
	}
	// A change of shape replaces the VMs: new domains, new host keys.
	g.MemoryMiB = 1024
	fourth, err := e.drv.Ensure(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	for i := range fourth {
		if fourth[i].ID == first[i].ID || fourth[i].HostPublicKey == first[i].HostPublicKey {
			t.Errorf("%s was not replaced after a memory change", fourth[i].Name)
		}
	}
}

func TestLibvirtLeftoversOfAFailedRun(t *testing.T) {
	e := newLVEnv(t)
	g := group("left", "uid-left", 3, 31)
	e.cleanup(g)
	ctx := context.Background()
	// A crash left volumes without a domain for VM 1.
	pool := e.pool()
	for _, v := range []string{overlayName(g.Machines[0].Name), seedName(g.Machines[0].Name)} {
		x, _ := volumeXML(v, "raw", 1<<20, "")
		vol, err := pool.StorageVolCreateXML(x, 0)
		if err != nil {
			t.Fatal(err)
		}
		_ = vol.Free()
	}
	_ = pool.Free()
	// The upload of VM 3's seed fails: VMs 1 and 2 are returned with the error, VM 3 leaves nothing behind.
	e.failSeed = seedName(g.Machines[2].Name)
	ms, err := e.drv.Ensure(ctx, g)
	if err == nil || !strings.Contains(err.Error(), "injected upload failure") {
		t.Fatalf("Ensure: %v, want the upload failure", err)
	}
	if len(ms) != 2 || ms[0].Name != g.Machines[0].Name || ms[1].Name != g.Machines[1].Name {
		t.Fatalf("machines returned with the error: %+v", ms)
	}
	vols := e.volumes()
	if v := vols[overlayName(g.Machines[0].Name)]; v.BackingStore == nil {
		t.Error("the leftover overlay was not replaced by a real one")
	}
	for _, v := range []string{overlayName(g.Machines[2].Name), seedName(g.Machines[2].Name)} {
		if _, ok := vols[v]; ok {
			t.Errorf("failed VM left volume %s", v)
		}
	}
	// A domain whose seed vanished is replaced; the retry completes the group.
	if err := deleteVolume(e.pool(), seedName(g.Machines[1].Name)); err != nil {
		t.Fatal(err)
	}
	e.failSeed = ""
	again, err := e.drv.Ensure(ctx, g)
	if err != nil || len(again) != 3 {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	if again[0] != ms[0] {
		t.Errorf("a complete VM was not adopted: %+v vs %+v", again[0], ms[0])
	}
	if again[1].ID == ms[1].ID {
		t.Error("a VM without its seed volume was adopted instead of replaced")
	}
	if err := e.drv.Delete(ctx, g, names(g)); err != nil {
		t.Fatal(err)
	}
	e.assertGone(g)
}

func TestLibvirtRefusesForeignDomains(t *testing.T) {
	e := newLVEnv(t)
	ctx := context.Background()
	g := group("owned", "uid-a", 1, 41)
	e.cleanup(g)
	if _, err := e.drv.Ensure(ctx, g); err != nil {
		t.Fatal(err)
	}
	other := g
	other.ClusterUID = "uid-b"
	if _, err := e.drv.Ensure(ctx, other); err == nil || !strings.Contains(err.Error(), "belongs to another kubesmith cluster") {
		t.Errorf("Ensure by another cluster: %v", err)
	}
	if err := e.drv.Delete(ctx, other, names(other)); err == nil || !strings.Contains(err.Error(), "belongs to another kubesmith cluster") {
		t.Errorf("Delete by another cluster: %v", err)
	}
	if _, err := e.drv.Lookup(ctx, other); err == nil {
		t.Error("Lookup by another cluster succeeded")
	}
	if e.domains()[g.Machines[0].Name] == nil {
		t.Fatal("the other cluster's refused delete removed the domain")
	}
	if own, err := e.drv.Owners(ctx, []string{g.Machines[0].Name, "ks-nothing-m-1"}); err != nil || len(own) != 1 || own[g.Machines[0].Name] != "uid-a" {
		t.Errorf("Owners = %v, %v", own, err)
	}
	// A domain that kubesmith did not create is never touched.
	plain, err := e.conn.DomainDefineXML(`<domain type='test'><name>ks-plain-m-1</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = plain.Undefine(); _ = plain.Free() }()
	pg := group("plain", "uid-plain", 1, 42)
	if _, err := e.drv.Ensure(ctx, pg); err == nil || !strings.Contains(err.Error(), "not created by kubesmith") {
		t.Errorf("Ensure over a foreign domain: %v", err)
	}
	if err := e.drv.Delete(ctx, pg, names(pg)); err == nil {
		t.Error("Delete of a foreign domain succeeded")
	}
}

func TestLibvirtPreflight(t *testing.T) {
	e := newLVEnv(t)
	ctx := context.Background()
	taken := group("taken", "uid-taken", 1, 51)
	e.cleanup(taken)
	if _, err := e.drv.Ensure(ctx, taken); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func(g *Group)
		want   string
	}{
		{"network missing", func(g *Group) { g.Network = "nope" }, `libvirt network "nope" does not exist`},
		{"pool missing", func(g *Group) { g.Pool = "nope" }, "`make lab` creates it"},
		{"base image missing", func(g *Group) { g.BaseImage = "debian-13" }, "run `make lab`"},
		{"address outside", func(g *Group) { g.Machines[0].Address = "192.168.150.11" }, "outside network default's range 192.168.122.0/24"},
		{"gateway address", func(g *Group) { g.Machines[0].Address = "192.168.122.1" }, "libvirt host's own address"},
		{"broadcast", func(g *Group) { g.Machines[0].Address = "192.168.122.255" }, "network or broadcast"},
		{"used by another domain", func(g *Group) { g.Machines[0].Address = taken.Machines[0].Address }, "already used by domain ks-taken-m-1"},
		{"answering", func(g *Group) { e.answering[netip.MustParseAddr(g.Machines[0].Address)] = true }, "something answers there already"},
		{"memory", func(*Group) { e.freeBytes = 512 << 20 }, "not enough memory on the libvirt host"},
		{"disk smaller than base", func(g *Group) { g.DiskGiB = 2 }, "smaller than the base image"},
		{"bad name", func(g *Group) { g.Machines[0].Name = "Bad_Name" }, "not a valid VM name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.freeBytes, e.answering = 24<<30, map[netip.Addr]bool{}
			g := group("pre", "uid-pre", 1, 52)
			e.cleanup(g)
			c.change(&g)
			ms, err := e.drv.Ensure(ctx, g)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if len(ms) != 0 || e.domains()[g.Machines[0].Name] != nil {
				t.Fatalf("preflight failure created %+v", ms)
			}
		})
	}
	bad := newLibvirt(LibvirtOptions{URI: "qemu+unix:///system?socket=/nonexistent/libvirt-sock"})
	if _, err := bad.Ensure(ctx, group("down", "uid", 1, 53)); err == nil || !strings.Contains(err.Error(), "libvirtd -d") {
		t.Errorf("unreachable daemon: %v", err)
	}
}

func TestLibvirtAcceleratorAutoIsProbedOnceAndCached(t *testing.T) {
	e := newLVEnv(t)
	ctx := context.Background()
	g1, g2 := group("auto1", "uid-auto1", 1, 61), group("auto2", "uid-auto2", 1, 62)
	g1.Accelerator, g2.Accelerator = AccelAuto, AccelAuto
	e.cleanup(g1)
	e.cleanup(g2)
	for _, g := range []Group{g1, g2} {
		ms, err := e.drv.Ensure(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if ms[0].Accelerator != AccelTCG {
			t.Errorf("%s runs on %q, want tcg after a failed KVM probe", ms[0].Name, ms[0].Accelerator)
		}
	}
	if e.probes != 1 {
		t.Errorf("KVM probed %d times, want once (then cached)", e.probes)
	}
	// A forced accelerator skips the probe.
	g3 := group("forced", "uid-forced", 1, 63)
	g3.Accelerator = AccelKVM
	e.cleanup(g3)
	ms, err := e.drv.Ensure(ctx, g3)
	if err != nil || ms[0].Accelerator != AccelKVM || e.probes != 1 {
		t.Errorf("forced kvm: %+v, %v, probes %d", ms, err, e.probes)
	}
	d, _ := e.conn.LookupDomainByName(ms[0].Name)
	x, _ := d.GetXMLDesc(0)
	_ = d.Free()
	if !strings.Contains(x, "type='kvm'") || !strings.Contains(x, "host-passthrough") {
		t.Errorf("kvm domain XML:\n%s", x)
	}
}
