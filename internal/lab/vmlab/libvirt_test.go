//go:build linux && cgo

package vmlab

import (
	"strings"
	"testing"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// testConn opens libvirt's in-process test driver (no daemon). Its state lives as long as the connection.
func testConn(t *testing.T) *libvirt.Connect {
	t.Helper()
	conn, err := libvirt.NewConnect("test:///default")
	if err != nil {
		t.Skipf("libvirt test driver unavailable: %v", err)
	}
	t.Cleanup(func() { closeConn(conn) })
	return conn
}

func networkNames(t *testing.T, conn *libvirt.Connect) []string {
	t.Helper()
	nets, err := conn.ListAllNetworks(0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range nets {
		n, _ := nets[i].GetName()
		names = append(names, n)
		_ = nets[i].Free()
	}
	return names
}

func TestEnsureAndCleanOnTestDriver(t *testing.T) {
	conn := testConn(t)
	before := networkNames(t, conn)
	logf := func(string, ...any) {}

	if err := ensureNetwork(conn, logf); err != nil {
		t.Fatal(err)
	}
	net, err := conn.LookupNetworkByName(NetworkName)
	if err != nil {
		t.Fatal(err)
	}
	uuid, _ := net.GetUUIDString()
	desc, _ := net.GetXMLDesc(0)
	var got libvirtxml.Network
	if err := got.Unmarshal(desc); err != nil {
		t.Fatal(err)
	}
	if got.Forward != nil || got.Bridge == nil || got.Bridge.Name != BridgeName || len(got.IPs) != 1 ||
		got.IPs[0].Address != HostAddress || got.IPs[0].DHCP != nil || got.Domain == nil || got.Domain.LocalOnly != "yes" {
		t.Errorf("network as libvirt stores it:\n%s", desc)
	}
	active, _ := net.IsActive()
	auto, _ := net.GetAutostart()
	if !active || !auto {
		t.Errorf("network active=%v autostart=%v", active, auto)
	}
	_ = net.Free()

	pool, err := ensurePool(conn, logf, false)
	if err != nil {
		t.Fatal(err)
	}
	pdesc, _ := pool.GetXMLDesc(0)
	if err := checkPool(pdesc); err != nil {
		t.Errorf("pool as stored: %v\n%s", err, pdesc)
	}
	active, _ = pool.IsActive()
	auto, _ = pool.GetAutostart()
	if !active || !auto {
		t.Errorf("pool active=%v autostart=%v", active, auto)
	}
	vx, err := volumeXML("kubesmith-debian12.vmlinuz", "raw", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	vol, err := pool.StorageVolCreateXML(vx, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = vol.Free()
	_ = pool.Free()

	// Idempotent: a second run changes nothing.
	if err := ensureNetwork(conn, logf); err != nil {
		t.Fatalf("second ensureNetwork: %v", err)
	}
	p2, err := ensurePool(conn, logf, false)
	if err != nil {
		t.Fatalf("second ensurePool: %v", err)
	}
	_ = p2.Free()
	net, _ = conn.LookupNetworkByName(NetworkName)
	if u, _ := net.GetUUIDString(); u != uuid {
		t.Errorf("network was redefined: uuid %s -> %s", uuid, u)
	}
	_ = net.Free()

	// A domain on the lab network blocks clean; nothing is removed.
	dom, err := conn.DomainDefineXML(`<domain type='test'><name>ks-user</name><memory>65536</memory>
<os><type>hvm</type></os><devices><interface type='network'><source network='kubesmith'/></interface></devices></domain>`)
	if err != nil {
		t.Fatal(err)
	}
	if err := cleanLibvirt(conn, logf, false); err == nil || !strings.Contains(err.Error(), "ks-user") {
		t.Errorf("clean with a domain on the network: %v", err)
	}
	if _, err := conn.LookupNetworkByName(NetworkName); err != nil {
		t.Errorf("refused clean removed the network: %v", err)
	}
	if err := dom.Undefine(); err != nil {
		t.Fatal(err)
	}
	_ = dom.Free()

	if err := cleanLibvirt(conn, logf, false); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.LookupNetworkByName(NetworkName); !isCode(err, libvirt.ERR_NO_NETWORK) {
		t.Errorf("network still there: %v", err)
	}
	if _, err := conn.LookupStoragePoolByName(PoolName); !isCode(err, libvirt.ERR_NO_STORAGE_POOL) {
		t.Errorf("pool still there: %v", err)
	}
	if after := networkNames(t, conn); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("networks before %v, after clean %v (the driver's own must stay)", before, after)
	}
	// Clean of a clean system is a no-op.
	if err := cleanLibvirt(conn, logf, false); err != nil {
		t.Errorf("second clean: %v", err)
	}
}

func TestForeignNetworkRefusedAndKept(t *testing.T) {
	conn := testConn(t)
	logf := func(string, ...any) {}
	net, err := conn.NetworkDefineXML(`<network><name>kubesmith</name><forward mode='nat'/><bridge name='virbr9'/>
<ip address='192.168.150.1' prefix='24'/></network>`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = net.Undefine(); _ = net.Free() })
	if err := ensureNetwork(conn, logf); err == nil || !strings.Contains(err.Error(), "isolated") {
		t.Errorf("ensureNetwork over a NAT network named kubesmith: %v", err)
	}
	if err := cleanNetwork(conn, logf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.LookupNetworkByName(NetworkName); err != nil {
		t.Errorf("clean removed a network that is not the lab's: %v", err)
	}
}
