package vmlab

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"testing/fstest"
)

const hostDeb822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no
`

func TestGuestSourcesFromHost(t *testing.T) {
	mirror, sources := guestSources(parseDeb822(hostDeb822), "")
	if mirror != "http://deb.debian.org/debian" {
		t.Errorf("mirror = %q", mirror)
	}
	want := `Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`
	if sources != want {
		t.Errorf("sources:\n%s\nwant:\n%s", sources, want)
	}
}

func TestGuestSourcesOneLineAndOverride(t *testing.T) {
	list := parseSourcesList(`# comment
deb [arch=amd64 signed-by=/x.gpg] http://mirror.example/debian bookworm main contrib
deb http://mirror.example/debian-security bookworm-security main
deb http://other.example/ubuntu jammy main
deb-src http://mirror.example/debian bookworm main
`)
	mirror, sources := guestSources(list, "")
	if mirror != "http://mirror.example/debian" {
		t.Errorf("mirror = %q", mirror)
	}
	if strings.Contains(sources, "ubuntu") || !strings.Contains(sources, "URIs: http://mirror.example/debian-security\nSuites: bookworm-security") {
		t.Errorf("sources:\n%s", sources)
	}
	mirror, sources = guestSources(list, "http://given.example/debian/")
	if mirror != "http://given.example/debian" || strings.Count(sources, "Types: deb") != 1 ||
		!strings.Contains(sources, "Suites: bookworm bookworm-updates") {
		t.Errorf("override: mirror %q sources:\n%s", mirror, sources)
	}
	mirror, _ = guestSources(nil, "")
	if mirror != fallbackMirror {
		t.Errorf("no host sources: mirror %q", mirror)
	}
}

func TestImageKey(t *testing.T) {
	fsys := fstest.MapFS{
		"assets/minbase.sh":        {Data: []byte("debootstrap")},
		"assets/build-image.sh":    {Data: []byte("apt-get install")},
		"assets/packages.txt":      {Data: []byte("systemd\n")},
		"assets/guest/etc/x.conf":  {Data: []byte("a=1\n")},
		"assets/guest/etc/y.unit":  {Data: []byte("[Unit]\n")},
		"assets/guest/usr/sbin/zz": {Data: []byte("#!/bin/sh\n")},
	}
	base := buildInputs{assets: fsys, mirror: "http://m/debian", sources: "Types: deb\n"}
	k0, err := base.Key()
	if err != nil {
		t.Fatal(err)
	}
	if len(k0) != 16 {
		t.Fatalf("key %q: want 16 hex digits", k0)
	}
	again, _ := base.Key()
	if again != k0 {
		t.Fatalf("key not stable: %s then %s", k0, again)
	}
	m0, _ := base.MinbaseKey()
	changed := func(name string, mutate func(in *buildInputs)) {
		t.Helper()
		in := buildInputs{assets: fstest.MapFS{}, mirror: base.mirror, sources: base.sources}
		for k, v := range fsys {
			in.assets.(fstest.MapFS)[k] = &fstest.MapFile{Data: bytes.Clone(v.Data)}
		}
		mutate(&in)
		k, err := in.Key()
		if err != nil {
			t.Fatal(err)
		}
		if k == k0 {
			t.Errorf("%s: key did not change", name)
		}
	}
	changed("unit file", func(in *buildInputs) {
		in.assets.(fstest.MapFS)["assets/guest/etc/y.unit"].Data = []byte("[Unit]\nAfter=x\n")
	})
	changed("package list", func(in *buildInputs) {
		in.assets.(fstest.MapFS)["assets/packages.txt"].Data = []byte("systemd\nsudo\n")
	})
	changed("script", func(in *buildInputs) {
		in.assets.(fstest.MapFS)["assets/build-image.sh"].Data = []byte("apt-get -y install")
	})
	changed("new guest file", func(in *buildInputs) { in.assets.(fstest.MapFS)["assets/guest/etc/new"] = &fstest.MapFile{} })
	changed("mirror", func(in *buildInputs) { in.mirror = "http://other/debian" })
	changed("sources", func(in *buildInputs) { in.sources = "Types: deb\nURIs: x\n" })

	// Moving content between files changes the key, too (names and lengths are hashed).
	moved := fstest.MapFS{}
	for k, v := range fsys {
		moved[k] = v
	}
	moved["assets/guest/etc/x.conf"] = &fstest.MapFile{Data: []byte("a=1\n[Unit]\n")}
	moved["assets/guest/etc/y.unit"] = &fstest.MapFile{Data: nil}
	if k, _ := (buildInputs{assets: moved, mirror: base.mirror, sources: base.sources}).Key(); k == k0 {
		t.Error("moving bytes between files kept the key")
	}
	// The minbase key depends on the minbase script and mirror only.
	other := buildInputs{assets: fsys, mirror: base.mirror, sources: "different"}
	if m, _ := other.MinbaseKey(); m != m0 {
		t.Error("minbase key changed with the guest sources")
	}
	if m, _ := (buildInputs{assets: fsys, mirror: "http://other/debian"}).MinbaseKey(); m == m0 {
		t.Error("minbase key ignores the mirror")
	}
}

func TestEmbeddedAssetsKey(t *testing.T) {
	names, err := assetNames(assetFS)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		minbaseAsset, buildAsset, packagesAsset,
		"assets/guest/etc/systemd/system/kubesmith-seed.service", "assets/guest/usr/local/sbin/kubesmith-seed",
	} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("embedded assets lack %s (have %v)", want, names)
		}
	}
}

func TestNetworkXMLIsIsolated(t *testing.T) {
	x, err := networkXML()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkNetwork(x); err != nil {
		t.Fatalf("own XML rejected: %v\n%s", err, x)
	}
	for _, s := range []string{"<forward", "<dhcp"} {
		if strings.Contains(x, s) {
			t.Errorf("network XML contains %s:\n%s", s, x)
		}
	}
	for _, s := range []string{
		"<name>kubesmith</name>", "name=\"ksvirbr0\"", "address=\"192.168.150.1\"", "prefix=\"24\"",
		"<domain name=\"kubesmith.test\" localOnly=\"yes\">",
	} {
		if !strings.Contains(x, s) {
			t.Errorf("network XML lacks %s:\n%s", s, x)
		}
	}
}

func TestCheckNetworkRejects(t *testing.T) {
	for name, x := range map[string]string{
		"nat":        `<network><name>kubesmith</name><forward mode='nat'/><bridge name='ksvirbr0'/><ip address='192.168.150.1' prefix='24'/></network>`,
		"bare fwd":   `<network><name>kubesmith</name><forward/><bridge name='ksvirbr0'/><ip address='192.168.150.1' prefix='24'/></network>`,
		"bridge":     `<network><name>kubesmith</name><bridge name='virbr0'/><ip address='192.168.150.1' prefix='24'/></network>`,
		"address":    `<network><name>kubesmith</name><bridge name='ksvirbr0'/><ip address='192.168.122.1' prefix='24'/></network>`,
		"dhcp":       `<network><name>kubesmith</name><bridge name='ksvirbr0'/><ip address='192.168.150.1' netmask='255.255.255.0'><dhcp><range start='192.168.150.100' end='192.168.150.200'/></dhcp></ip></network>`,
		"two ranges": `<network><name>kubesmith</name><bridge name='ksvirbr0'/><ip address='192.168.150.1' prefix='24'/><ip address='10.0.0.1' prefix='24'/></network>`,
	} {
		if err := checkNetwork(x); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := `<network><name>kubesmith</name><bridge name='ksvirbr0' stp='off'/><ip address='192.168.150.1' netmask='255.255.255.0'/></network>`
	if err := checkNetwork(ok); err != nil {
		t.Errorf("netmask form rejected: %v", err)
	}
}

func TestQcow2VirtualSize(t *testing.T) {
	hdr := make([]byte, 64)
	copy(hdr, "QFI\xfb")
	binary.BigEndian.PutUint32(hdr[4:], 3)
	binary.BigEndian.PutUint64(hdr[24:], 4<<30)
	n, err := qcow2VirtualSize(bytes.NewReader(hdr))
	if err != nil || n != 4<<30 {
		t.Fatalf("size %d, err %v", n, err)
	}
	if _, err := qcow2VirtualSize(bytes.NewReader(make([]byte, 64))); err == nil {
		t.Error("raw data accepted as qcow2")
	}
	if _, err := qcow2VirtualSize(bytes.NewReader(hdr[:10])); err == nil {
		t.Error("short header accepted")
	}
}

func TestMountPointsUnder(t *testing.T) {
	info := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
90 22 0:50 / /c/build/rootfs/proc rw - proc proc rw
91 22 0:51 / /c/build/my\040dir rw - tmpfs x rw
92 22 0:52 / /c/buildx rw - tmpfs x rw
`
	got := mountPointsUnder(info, "/c/build/")
	if len(got) != 2 || got[0] != "/c/build/rootfs/proc" || got[1] != "/c/build/my dir" {
		t.Errorf("got %q", got)
	}
}
