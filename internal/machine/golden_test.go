package machine

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdomanski/iso9660"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current code")

const sampleUID = "3f1c2a9e-6b7d-4e21-9c55-0d8e4b7a1f20"

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run `go test ./internal/machine -run Golden -update` to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the golden file (rerun with -update if the change is intended)\n--- want\n%s\n--- got\n%s", name, want, got)
	}
}

// testHostKey is a fixed key from testdata, so that the golden files are stable.
func testHostKey(t *testing.T) HostKey {
	t.Helper()
	priv, err := os.ReadFile("testdata/test-hostkey.pem")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile("testdata/test-hostkey.pub")
	if err != nil {
		t.Fatal(err)
	}
	return HostKey{PrivatePEM: priv, Public: strings.TrimSpace(string(pub))}
}

func sampleSeed(t *testing.T) Seed {
	return Seed{
		Hostname: "ks-demo-m-1", MAC: MAC(sampleUID, "ks-demo-m-1"),
		Address: netip.MustParsePrefix("192.168.150.11/24"), Gateway: netip.MustParseAddr("192.168.150.1"),
		AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoldenOperatorKeyGoldenOperatorKeyGolden1 operator@example", ""},
		HostKey:        testHostKey(t),
	}
}

func TestGoldenNamesAndMACs(t *testing.T) {
	var b strings.Builder
	for _, c := range []struct {
		cluster, role string
		i             int
	}{{"demo", "m", 1}, {"demo", "m", 2}, {"demo", "m", 3}, {"demo", "general", 1}, {"demo", "general", 2}, {"e2e-libvirt", "w", 1}} {
		n := Name(c.cluster, c.role, c.i)
		if !ValidName(n) {
			t.Errorf("%s is not a valid name", n)
		}
		fmt.Fprintf(&b, "%s %s %s\n", n, MAC(sampleUID, n), MAC("other-uid", n))
	}
	golden(t, "names-macs.txt", []byte(b.String()))
	if MAC(sampleUID, "a").String() == MAC(sampleUID, "b").String() {
		t.Error("different names gave the same MAC")
	}
	if m := MAC(sampleUID, "x"); m[0]&1 != 0 || m[0]&2 == 0 {
		t.Errorf("MAC %s is not a locally administered unicast address", m)
	}
	if ValidName(Name("a-cluster-name-that-is-thirty-two", "a-pool-name-that-is-very-long-too", 1)) {
		t.Error("a name over 63 characters was accepted")
	}
}

func TestGoldenSeed(t *testing.T) {
	s := sampleSeed(t)
	for _, f := range s.Files() {
		golden(t, "seed/"+f.Path, f.Data)
	}
	// The instance ID follows the content.
	s2 := s
	s2.Address = netip.MustParsePrefix("192.168.150.12/24")
	if s.InstanceID() == s2.InstanceID() {
		t.Error("instance-id did not change with the address")
	}
	if s.InstanceID() != sampleSeed(t).InstanceID() {
		t.Error("instance-id is not deterministic")
	}
}

// TestSeedISO reads the ISO back: the label and every file (as Linux shows ISO9660 names) must be there.
func TestSeedISO(t *testing.T) {
	s := sampleSeed(t)
	iso, err := s.ISO()
	if err != nil {
		t.Fatal(err)
	}
	img, err := iso9660.OpenImage(bytes.NewReader(iso))
	if err != nil {
		t.Fatal(err)
	}
	label, err := img.Label()
	if err != nil || label != SeedLabel {
		t.Fatalf("label %q, %v; want %q", label, err, SeedLabel)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	var walk func(dir *iso9660.File, prefix string)
	walk = func(dir *iso9660.File, prefix string) {
		kids, err := dir.GetChildren()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kids {
			// Linux's isofs (map=normal) shows lower-case names without the ";1" version.
			name := strings.TrimSuffix(strings.ToLower(k.Name()), ";1")
			if k.IsDir() {
				walk(k, prefix+name+"/")
				continue
			}
			b, err := io.ReadAll(k.Reader())
			if err != nil {
				t.Fatal(err)
			}
			got[prefix+name] = b
		}
	}
	walk(root, "")
	files := s.Files()
	if len(got) != len(files) {
		t.Errorf("ISO has %d files, the seed %d: %v", len(got), len(files), keys(got))
	}
	for _, f := range files {
		if !bytes.Equal(got[f.Path], f.Data) {
			t.Errorf("%s: ISO content %q, want %q", f.Path, got[f.Path], f.Data)
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestGoldenDomainXML(t *testing.T) {
	for _, a := range []Accelerator{AccelTCG, AccelKVM} {
		name := "ks-demo-m-1"
		g := Group{Cluster: "demo", ClusterUID: sampleUID, Role: "m", Network: "kubesmith"}.withDefaults()
		s := Spec{Name: name, Address: "192.168.150.11"}
		x, err := domainXML(domainParams{
			Name: name, Accelerator: a, VCPU: 2, MemoryMiB: 2048,
			Kernel:  "/var/lib/kubesmith/libvirt/pool/kubesmith-debian12.vmlinuz",
			Initrd:  "/var/lib/kubesmith/libvirt/pool/kubesmith-debian12.initrd",
			Cmdline: KernelCmdline,
			Overlay: "/var/lib/kubesmith/libvirt/pool/" + overlayName(name),
			Seed:    "/var/lib/kubesmith/libvirt/pool/" + seedName(name),
			Network: "kubesmith", MAC: MAC(sampleUID, name), SerialLog: serialLogPath(name),
			Meta: Metadata{
				Cluster: "demo", ClusterUID: sampleUID, Role: "m", Address: s.Address,
				HostPublicKey: testHostKey(t).Public, SpecHash: specHash(g, s), Accelerator: string(a),
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "domain-"+string(a)+".xml", []byte(x+"\n"))
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	m := Metadata{Cluster: "demo", ClusterUID: sampleUID, Role: "m", Address: "192.168.150.11", HostPublicKey: "ssh-ed25519 AAAA", SpecHash: "ab", Accelerator: "tcg"}
	x, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	// libvirt returns the element with its own prefix; both forms must parse.
	for _, s := range []string{x, strings.ReplaceAll(x, "kubesmith:", "ks:"), strings.NewReplacer("kubesmith:", "", ` xmlns:kubesmith="`+MetadataNS+`"`, "").Replace(x)} {
		got, err := ParseMetadata(s)
		if err != nil {
			t.Fatal(err)
		}
		got.XMLName = m.XMLName
		if got != m {
			t.Errorf("parsed %+v from %s, want %+v", got, s, m)
		}
	}
}

func TestSpecHash(t *testing.T) {
	g := Group{Network: "kubesmith"}.withDefaults()
	s := Spec{Name: "ks-demo-m-1", Address: "192.168.150.11"}
	h := specHash(g, s)
	g2 := g
	g2.MemoryMiB = 4096
	g3 := g
	g3.AuthorizedKeys = []string{"ssh-ed25519 AAAA new"}
	switch {
	case specHash(g2, s) == h:
		t.Error("memory change did not change the spec hash")
	case specHash(g3, s) != h:
		t.Error("a new authorized key would replace the VM")
	case specHash(g, Spec{Name: s.Name, Address: "192.168.150.12"}) == h:
		t.Error("address change did not change the spec hash")
	}
}

func TestParseAccelerator(t *testing.T) {
	for in, want := range map[string]Accelerator{"": AccelAuto, "auto": AccelAuto, "KVM": AccelKVM, " tcg ": AccelTCG} {
		if got, err := ParseAccelerator(in); err != nil || got != want {
			t.Errorf("ParseAccelerator(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseAccelerator("hvf"); err == nil {
		t.Error("hvf accepted")
	}
}

func TestAcceleratorCache(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
	if _, ok := loadAccel(dir, "qemu:///system", "h", now); ok {
		t.Fatal("empty cache hit")
	}
	r := accelRecord{URI: "qemu:///system", Hostname: "h", Accelerator: AccelTCG, Reason: "PVM", ProbedAt: now}
	if err := storeAccel(dir, r); err != nil {
		t.Fatal(err)
	}
	if got, ok := loadAccel(dir, "qemu:///system", "h", now.Add(time.Hour)); !ok || got.Accelerator != AccelTCG {
		t.Errorf("cache = %+v, %v", got, ok)
	}
	if _, ok := loadAccel(dir, "qemu:///system", "other-host", now); ok {
		t.Error("another host hit the cache")
	}
	if _, ok := loadAccel(dir, "qemu+ssh://h/system", "h", now); ok {
		t.Error("another URI hit the cache")
	}
	if _, ok := loadAccel(dir, "qemu:///system", "h", now.Add(accelCacheTTL+time.Hour)); ok {
		t.Error("a stale result was used")
	}
}
