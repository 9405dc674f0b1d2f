//go:build linux && cgo

package machine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"
	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// Libvirt is the Driver for VMs that kubesmith creates through libvirt.
type Libvirt struct {
	opts LibvirtOptions
	now  func() time.Time

	// The steps below talk to the guest or the host rather than to libvirt. They are fields so that the driver
	// tests against libvirt's in-process test:///default driver (which has no guests, no streams and no real
	// memory figures) can observe them.
	upload     func(conn *libvirt.Connect, vol *libvirt.StorageVol, data []byte) error
	waitSSH    func(ctx context.Context, addr string, key ssh.PublicKey) error
	answers    func(ctx context.Context, addr netip.Addr) bool
	freeMemory func(conn *libvirt.Connect) (uint64, error)
	probeKVM   func(ctx context.Context, conn *libvirt.Connect, env *hostEnv) (bool, string, error)
}

var _ Driver = (*Libvirt)(nil)

// NewLibvirt returns the libvirt driver. It connects lazily, on every operation, so that a missing daemon is
// reported where it matters.
func NewLibvirt(opts LibvirtOptions) (Driver, error) {
	return newLibvirt(opts), nil
}

func newLibvirt(opts LibvirtOptions) *Libvirt {
	if opts.URI == "" {
		opts.URI = "qemu:///system"
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = 4
	}
	l := &Libvirt{opts: opts, now: time.Now}
	l.upload = uploadVolume
	l.waitSSH = func(ctx context.Context, addr string, key ssh.PublicKey) error {
		return WaitSSH(ctx, addr, key, 2*time.Second)
	}
	l.answers = addressAnswers
	l.freeMemory = hostAvailableMemory
	l.probeKVM = l.probeKVMBoot
	return l
}

// lvMessage is the message of a libvirt error without the virError(...) wrapping.
func lvMessage(err error) string {
	var le libvirt.Error
	if errors.As(err, &le) {
		return le.Message
	}
	return err.Error()
}

func lvCode(err error) libvirt.ErrorNumber {
	var le libvirt.Error
	if errors.As(err, &le) {
		return le.Code
	}
	return libvirt.ERR_OK
}

// connect opens a libvirt connection with an error that says how to fix it.
func (l *Libvirt) connect() (*libvirt.Connect, error) {
	conn, err := libvirt.NewConnect(l.opts.URI)
	if err != nil {
		msg := lvMessage(err)
		if strings.Contains(msg, "dlopen") || strings.Contains(msg, "libvirt.so") {
			return nil, fmt.Errorf("the libvirt client library is missing on this machine (install libvirt0): %s", msg)
		}
		return nil, fmt.Errorf("libvirtd is not reachable at %s: %s. Start it: `make lab` starts virtlogd and libvirtd "+
			"(or, as root without systemd: `virtlogd -d; libvirtd -d`; with systemd: `systemctl start libvirtd`)", l.opts.URI, msg)
	}
	return conn, nil
}

func closeConn(conn *libvirt.Connect) { _, _ = conn.Close() }

// hostEnv is what preflight found on the libvirt host.
type hostEnv struct {
	network netip.Prefix // the network's prefix
	gateway netip.Addr   // the host's address on it
	pool    *libvirt.StoragePool
	base    string // base disk volume path
	kernel  string
	initrd  string
	baseCap uint64
}

func (e *hostEnv) free() {
	if e.pool != nil {
		_ = e.pool.Free()
	}
}

// validateGroup checks what needs no libvirt.
func validateGroup(g Group) error {
	var errs []error
	if g.ClusterUID == "" {
		errs = append(errs, errors.New("the cluster UID is empty"))
	}
	if g.Network == "" {
		errs = append(errs, errors.New("no libvirt network given"))
	}
	seenName, seenAddr := map[string]bool{}, map[netip.Addr]bool{}
	for _, s := range g.Machines {
		if !ValidName(s.Name) {
			errs = append(errs, fmt.Errorf("%q is not a valid VM name (a DNS label of at most 63 characters)", s.Name))
		}
		a, err := netip.ParseAddr(s.Address)
		switch {
		case err != nil || !a.Is4():
			errs = append(errs, fmt.Errorf("%s: %q is not an IPv4 address", s.Name, s.Address))
		case seenAddr[a]:
			errs = append(errs, fmt.Errorf("%s: address %s is given twice", s.Name, a))
		}
		if seenName[s.Name] {
			errs = append(errs, fmt.Errorf("VM name %s is given twice", s.Name))
		}
		seenName[s.Name], seenAddr[a] = true, true
	}
	if _, err := ParseAccelerator(string(g.Accelerator)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// preflight checks the network, the pool and the base image.
func (l *Libvirt) preflight(conn *libvirt.Connect, g Group) (*hostEnv, error) {
	env := &hostEnv{}
	lvNet, err := conn.LookupNetworkByName(g.Network)
	if err != nil {
		if lvCode(err) == libvirt.ERR_NO_NETWORK {
			return nil, fmt.Errorf("libvirt network %q does not exist on %s; `make lab` creates the kubesmith network, or name an existing one", g.Network, l.opts.URI)
		}
		return nil, fmt.Errorf("looking up libvirt network %q: %s", g.Network, lvMessage(err))
	}
	defer func() { _ = lvNet.Free() }()
	if active, err := lvNet.IsActive(); err == nil && !active {
		return nil, fmt.Errorf("libvirt network %q exists but is not active; start it with `virsh -c %s net-start %s` (or `make lab`)", g.Network, l.opts.URI, g.Network)
	}
	raw, err := lvNet.GetXMLDesc(0)
	if err != nil {
		return nil, fmt.Errorf("reading libvirt network %q: %s", g.Network, lvMessage(err))
	}
	var nx libvirtxml.Network
	if err := nx.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("parsing libvirt network %q: %w", g.Network, err)
	}
	for _, ip := range nx.IPs {
		if ip.Family == "ipv6" {
			continue
		}
		a, err := netip.ParseAddr(ip.Address)
		if err != nil || !a.Is4() {
			continue
		}
		bits := int(ip.Prefix)
		if ip.Netmask != "" {
			m := net.IPMask(net.ParseIP(ip.Netmask).To4())
			bits, _ = m.Size()
		}
		if bits == 0 {
			bits = 24
		}
		env.network, env.gateway = netip.PrefixFrom(a, bits).Masked(), a
		break
	}
	if !env.gateway.IsValid() {
		return nil, fmt.Errorf("libvirt network %q has no IPv4 address for the host; the VMs' static addresses need one (the kubesmith network from `make lab` has 192.168.150.1/24)", g.Network)
	}
	var bad []string
	for _, s := range g.Machines {
		a, _ := netip.ParseAddr(s.Address)
		switch {
		case !env.network.Contains(a):
			bad = append(bad, fmt.Sprintf("%s (%s) is outside network %s's range %s", s.Address, s.Name, g.Network, env.network))
		case a == env.network.Addr() || isBroadcast(env.network, a):
			bad = append(bad, fmt.Sprintf("%s (%s) is the network or broadcast address of %s", s.Address, s.Name, env.network))
		case a == env.gateway:
			bad = append(bad, fmt.Sprintf("%s (%s) is the libvirt host's own address on %s", s.Address, s.Name, g.Network))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("addresses not usable: %s", strings.Join(bad, "; "))
	}

	pool, err := conn.LookupStoragePoolByName(g.Pool)
	if err != nil {
		if lvCode(err) == libvirt.ERR_NO_STORAGE_POOL {
			return nil, fmt.Errorf("libvirt storage pool %q does not exist on %s; `make lab` creates it with the base image", g.Pool, l.opts.URI)
		}
		return nil, fmt.Errorf("looking up storage pool %q: %s", g.Pool, lvMessage(err))
	}
	env.pool = pool
	if active, err := pool.IsActive(); err == nil && !active {
		env.free()
		return nil, fmt.Errorf("libvirt storage pool %q is not active; start it with `virsh -c %s pool-start %s` (or `make lab`)", g.Pool, l.opts.URI, g.Pool)
	}
	_ = pool.Refresh(0) // pick up files copied into the pool directory behind libvirt's back
	disk, kernel, initrd := baseVolumes(g.BaseImage)
	var missing []string
	for _, v := range []struct {
		name string
		dst  *string
	}{{disk, &env.base}, {kernel, &env.kernel}, {initrd, &env.initrd}} {
		vol, err := pool.LookupStorageVolByName(v.name)
		if err != nil {
			missing = append(missing, v.name)
			continue
		}
		*v.dst, err = vol.GetPath()
		if v.name == disk {
			if info, ierr := vol.GetInfo(); ierr == nil {
				env.baseCap = info.Capacity
			}
		}
		_ = vol.Free()
		if err != nil {
			env.free()
			return nil, fmt.Errorf("base image volume %s: %s", v.name, lvMessage(err))
		}
	}
	if len(missing) > 0 {
		env.free()
		return nil, fmt.Errorf("base image %q is missing from storage pool %q (no %s); run `make lab` to build it",
			g.BaseImage, g.Pool, strings.Join(missing, ", "))
	}
	if need := uint64(g.DiskGiB) << 30; env.baseCap > need {
		env.free()
		return nil, fmt.Errorf("disk_gib %d is smaller than the base image's %d GiB", g.DiskGiB, (env.baseCap+(1<<30)-1)>>30)
	}
	return env, nil
}

func isBroadcast(p netip.Prefix, a netip.Addr) bool {
	if !a.Is4() || p.Bits() >= 31 {
		return false
	}
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return a == netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// vmState is one existing domain.
type vmState struct {
	name   string
	uuid   string
	active bool
	meta   *Metadata // nil: not created by kubesmith
}

// inventory lists every domain with kubesmith's metadata where present.
func inventory(conn *libvirt.Connect) (map[string]*vmState, error) {
	doms, err := conn.ListAllDomains(0)
	if err != nil {
		return nil, fmt.Errorf("listing domains: %s", lvMessage(err))
	}
	out := map[string]*vmState{}
	for i := range doms {
		d := &doms[i]
		st, err := domainState(d)
		_ = d.Free()
		if err != nil {
			// A domain that vanished while listing is simply not there.
			if lvCode(err) == libvirt.ERR_NO_DOMAIN {
				continue
			}
			return nil, err
		}
		out[st.name] = st
	}
	return out, nil
}

func domainState(d *libvirt.Domain) (*vmState, error) {
	name, err := d.GetName()
	if err != nil {
		return nil, fmt.Errorf("reading a domain's name: %w", err)
	}
	st := &vmState{name: name}
	st.uuid, _ = d.GetUUIDString()
	st.active, _ = d.IsActive()
	raw, err := d.GetMetadata(libvirt.DOMAIN_METADATA_ELEMENT, MetadataNS, libvirt.DOMAIN_AFFECT_CONFIG)
	switch {
	case err == nil:
		m, perr := ParseMetadata(raw)
		if perr == nil {
			st.meta = &m
		}
	case lvCode(err) == libvirt.ERR_NO_DOMAIN_METADATA:
	default:
		return nil, fmt.Errorf("reading the metadata of domain %s: %w", name, err)
	}
	return st, nil
}

func (st *vmState) machine(port int) Machine {
	return Machine{
		Name: st.name, Address: st.meta.Address, Port: port, ID: st.uuid, HostPublicKey: st.meta.HostPublicKey,
		Accelerator: Accelerator(st.meta.Accelerator),
	}
}

// ownedBy says why a domain may not be touched by the cluster with uid, or "" when it may.
func (st *vmState) foreign(uid string) string {
	switch {
	case st.meta == nil:
		return fmt.Sprintf("domain %s exists but was not created by kubesmith; rename or remove it, or pick another cluster name", st.name)
	case st.meta.ClusterUID != uid:
		return fmt.Sprintf("domain %s belongs to another kubesmith cluster (UID %s, this cluster is %s); delete that cluster first or pick another cluster name", st.name, st.meta.ClusterUID, uid)
	}
	return ""
}

// Ensure implements Driver.
func (l *Libvirt) Ensure(ctx context.Context, g Group) ([]Machine, error) {
	g = g.withDefaults()
	if err := validateGroup(g); err != nil {
		return nil, fmt.Errorf("libvirt machines: %w", err)
	}
	conn, err := l.connect()
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	env, err := l.preflight(conn, g)
	if err != nil {
		return nil, err
	}
	defer env.free()
	doms, err := inventory(conn)
	if err != nil {
		return nil, err
	}

	// Classify: adopt what matches, replace what does not, create what is missing.
	var (
		have     []Machine
		toStart  []*vmState
		toCreate []Spec
		replace  []string
		problems []error
	)
	names := map[string]bool{}
	for _, s := range g.Machines {
		names[s.Name] = true
		st := doms[s.Name]
		switch {
		case st == nil:
			toCreate = append(toCreate, s)
		case st.foreign(g.ClusterUID) != "":
			problems = append(problems, errors.New(st.foreign(g.ClusterUID)))
		case st.meta.SpecHash != specHash(g, s) || st.meta.HostPublicKey == "" || !volumesPresent(env.pool, s.Name):
			replace = append(replace, s.Name)
			toCreate = append(toCreate, s)
		default:
			have = append(have, st.machine(s.Port))
			if !st.active {
				toStart = append(toStart, st)
			}
		}
	}
	// An address must not be claimed by another domain (of any cluster).
	for _, st := range doms {
		if names[st.name] || st.meta == nil {
			continue
		}
		for _, s := range g.Machines {
			if st.meta.Address == s.Address {
				problems = append(problems, fmt.Errorf("address %s of %s is already used by domain %s (cluster %s)", s.Address, s.Name, st.name, st.meta.Cluster))
			}
		}
	}
	if len(problems) > 0 {
		return have, errors.Join(problems...)
	}
	// A new VM's address must not answer already (checked only where the network is local, see addressAnswers).
	for _, s := range toCreate {
		if slices.Contains(replace, s.Name) {
			continue
		}
		a := netip.MustParseAddr(s.Address)
		if l.answers(ctx, a) {
			problems = append(problems, fmt.Errorf("address %s of %s is in use: something answers there already", s.Address, s.Name))
		}
	}
	if len(problems) > 0 {
		return have, errors.Join(problems...)
	}
	if len(toCreate) > 0 {
		if err := l.checkMemory(conn, g, len(toCreate)); err != nil {
			return have, err
		}
	}
	accel := g.Accelerator
	if len(toCreate) > 0 && accel == AccelAuto {
		if accel, err = l.resolveAccelerator(ctx, conn, env); err != nil {
			return have, err
		}
	}

	// Replace mismatches, then create in parallel (bounded).
	if len(replace) > 0 {
		if err := l.deleteNames(conn, env.pool, g.ClusterUID, doms, replace); err != nil {
			return have, err
		}
	}
	for _, st := range toStart {
		if err := l.startDomain(conn, st.name); err != nil {
			problems = append(problems, err)
		}
	}
	var mu sync.Mutex
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(l.opts.Parallelism)
	createErrs := make([]error, len(toCreate))
	for i, s := range toCreate {
		eg.Go(func() error {
			start := l.now()
			m, err := l.createVM(gctx, conn, env, g, s, accel)
			l.report(s.Name, "vm-create", l.now().Sub(start), err)
			if m != nil {
				mu.Lock()
				have = append(have, *m)
				mu.Unlock()
			}
			createErrs[i] = err
			return nil
		})
	}
	_ = eg.Wait()
	problems = append(problems, createErrs...)
	sortMachines(have, g)
	if err := errors.Join(problems...); err != nil {
		return have, err
	}
	return have, l.waitAll(ctx, g, have)
}

func (l *Libvirt) report(name, step string, d time.Duration, err error) {
	if l.opts.Progress != nil {
		l.opts.Progress(name, step, d, err)
	}
}

// waitAll waits until every machine answers SSH with its pinned key.
func (l *Libvirt) waitAll(ctx context.Context, g Group, ms []Machine) error {
	wctx, cancel := context.WithTimeout(ctx, g.SSHTimeout)
	defer cancel()
	start := l.now()
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(m.HostPublicKey))
			if err == nil {
				err = l.waitSSH(wctx, net.JoinHostPort(m.Address, fmt.Sprint(sshPort(m.Port))), key)
			}
			l.report(m.Name, "vm-ssh", l.now().Sub(start), err)
			if err != nil {
				errs[i] = fmt.Errorf("%s did not come up: %w (its serial console is logged on the libvirt host in %s)", m.Name, err, serialLogPath(m.Name))
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func sortMachines(ms []Machine, g Group) {
	idx := map[string]int{}
	for i, s := range g.Machines {
		idx[s.Name] = i
	}
	sort.SliceStable(ms, func(i, j int) bool { return idx[ms[i].Name] < idx[ms[j].Name] })
}

func volumesPresent(pool *libvirt.StoragePool, name string) bool {
	for _, v := range []string{overlayName(name), seedName(name)} {
		vol, err := pool.LookupStorageVolByName(v)
		if err != nil {
			return false
		}
		_ = vol.Free()
	}
	return true
}

func (l *Libvirt) startDomain(conn *libvirt.Connect, name string) error {
	d, err := conn.LookupDomainByName(name)
	if err != nil {
		return fmt.Errorf("starting %s: %s", name, lvMessage(err))
	}
	defer func() { _ = d.Free() }()
	if err := d.Create(); err != nil && lvCode(err) != libvirt.ERR_OPERATION_INVALID {
		return fmt.Errorf("starting %s: %s", name, lvMessage(err))
	}
	return nil
}

// checkMemory refuses to start VMs that the libvirt host cannot hold.
func (l *Libvirt) checkMemory(conn *libvirt.Connect, g Group, n int) error {
	avail, err := l.freeMemory(conn)
	if err != nil {
		return fmt.Errorf("reading the libvirt host's free memory: %w", err)
	}
	// Each VM needs its RAM plus QEMU's own (about 0.3-0.6 GiB with a 256 MiB TCG cache).
	need := uint64(n) * (uint64(g.MemoryMiB) + 384) << 20
	if need > avail {
		return fmt.Errorf("not enough memory on the libvirt host: %d VM(s) of %d MiB need about %d MiB with QEMU's overhead, but only %d MiB are available; lower memory_mib or count, or stop other VMs",
			n, g.MemoryMiB, need>>20, avail>>20)
	}
	return nil
}

// hostAvailableMemory is free + buffers + page cache (what the kernel can hand to new VMs), or the plain free
// memory when the driver has no node statistics.
func hostAvailableMemory(conn *libvirt.Connect) (uint64, error) {
	if st, err := conn.GetMemoryStats(libvirt.NODE_MEMORY_STATS_ALL_CELLS, 0); err == nil && st.FreeSet {
		return (st.Free + st.Buffers + st.Cached) << 10, nil
	}
	free, err := conn.GetFreeMemory()
	if err != nil {
		return 0, errors.New(lvMessage(err))
	}
	return free, nil
}

// addressAnswers reports whether something already answers at a (TCP 22 accepts or refuses). It only probes
// when a is on a network that this machine has an interface in, so that a remote libvirt host's network is
// never probed from here (and no packet leaves this machine).
func addressAnswers(ctx context.Context, a netip.Addr) bool {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	local := false
	for _, ia := range ifAddrs {
		if ipn, ok := ia.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(ipn.String()); err == nil && p.Masked().Contains(a) {
				local = true
				if p.Addr() == a {
					return true
				}
			}
		}
	}
	if !local {
		return false
	}
	dctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, "tcp", net.JoinHostPort(a.String(), "22"))
	if err == nil {
		_ = c.Close()
		return true
	}
	return strings.Contains(err.Error(), "connection refused")
}

// createVM creates the volumes and the domain of one VM and starts it. On error it removes what it created.
func (l *Libvirt) createVM(ctx context.Context, conn *libvirt.Connect, env *hostEnv, g Group, s Spec, accel Accelerator) (*Machine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Leftovers of a failed run (volumes without a domain) are ours by name: start clean.
	for _, v := range []string{overlayName(s.Name), seedName(s.Name)} {
		if err := deleteVolume(env.pool, v); err != nil {
			return nil, err
		}
	}
	key, err := NewHostKey()
	if err != nil {
		return nil, err
	}
	addr := netip.MustParseAddr(s.Address)
	mac := MAC(g.ClusterUID, s.Name)
	seed := Seed{
		Hostname: s.Name, MAC: mac, Address: netip.PrefixFrom(addr, env.network.Bits()), Gateway: env.gateway,
		AuthorizedKeys: g.AuthorizedKeys, HostKey: key,
	}
	iso, err := seed.ISO()
	if err != nil {
		return nil, err
	}
	cleanup := func() {
		_ = deleteVolume(env.pool, overlayName(s.Name))
		_ = deleteVolume(env.pool, seedName(s.Name))
	}
	ox, err := volumeXML(overlayName(s.Name), "qcow2", uint64(g.DiskGiB)<<30, env.base)
	if err != nil {
		return nil, err
	}
	ov, err := env.pool.StorageVolCreateXML(ox, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: creating the overlay volume: %s", s.Name, lvMessage(err))
	}
	overlayPath, err := ov.GetPath()
	_ = ov.Free()
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("%s: overlay volume path: %s", s.Name, lvMessage(err))
	}
	sx, err := volumeXML(seedName(s.Name), "raw", uint64(len(iso)), "")
	if err != nil {
		cleanup()
		return nil, err
	}
	sv, err := env.pool.StorageVolCreateXML(sx, 0)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("%s: creating the seed volume: %s", s.Name, lvMessage(err))
	}
	seedPath, perr := sv.GetPath()
	uerr := l.upload(conn, sv, iso)
	_ = sv.Free()
	if err := errors.Join(perr, uerr); err != nil {
		cleanup()
		return nil, fmt.Errorf("%s: uploading the seed ISO: %w", s.Name, err)
	}
	meta := Metadata{
		Cluster: g.Cluster, ClusterUID: g.ClusterUID, Role: g.Role, Address: s.Address,
		HostPublicKey: key.Public, SpecHash: specHash(g, s), Accelerator: string(accel),
	}
	x, err := domainXML(domainParams{
		Name: s.Name, Accelerator: accel, VCPU: g.VCPU, MemoryMiB: g.MemoryMiB,
		Kernel: env.kernel, Initrd: env.initrd, Cmdline: KernelCmdline,
		Overlay: overlayPath, Seed: seedPath, Network: g.Network, MAC: mac, SerialLog: serialLogPath(s.Name), Meta: meta,
	})
	if err != nil {
		cleanup()
		return nil, err
	}
	d, err := conn.DomainDefineXML(x)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("%s: defining the domain: %s", s.Name, lvMessage(err))
	}
	defer func() { _ = d.Free() }()
	uuid, _ := d.GetUUIDString()
	m := &Machine{Name: s.Name, Address: s.Address, Port: s.Port, ID: uuid, HostPublicKey: key.Public, Accelerator: accel}
	if err := d.Create(); err != nil {
		// The defined domain and its volumes stay and are returned, so that state records them and a retry
		// or a delete finds them.
		return m, fmt.Errorf("%s: starting the domain: %s", s.Name, lvMessage(err))
	}
	return m, nil
}

// uploadVolume writes data into vol through a libvirt stream, which works over remote URIs too.
func uploadVolume(conn *libvirt.Connect, vol *libvirt.StorageVol, data []byte) error {
	st, err := conn.NewStream(0)
	if err != nil {
		return fmt.Errorf("opening a stream: %s", lvMessage(err))
	}
	defer func() { _ = st.Free() }()
	if err := vol.Upload(st, 0, uint64(len(data)), 0); err != nil {
		return fmt.Errorf("starting the upload: %s", lvMessage(err))
	}
	for off := 0; off < len(data); {
		n, err := st.Send(data[off:])
		if err != nil {
			_ = st.Abort()
			return fmt.Errorf("sending: %s", lvMessage(err))
		}
		off += n
	}
	if err := st.Finish(); err != nil {
		return fmt.Errorf("finishing the upload: %s", lvMessage(err))
	}
	return nil
}

func deleteVolume(pool *libvirt.StoragePool, name string) error {
	vol, err := pool.LookupStorageVolByName(name)
	if err != nil {
		if lvCode(err) == libvirt.ERR_NO_STORAGE_VOL {
			return nil
		}
		return fmt.Errorf("looking up volume %s: %s", name, lvMessage(err))
	}
	defer func() { _ = vol.Free() }()
	if err := vol.Delete(0); err != nil && lvCode(err) != libvirt.ERR_NO_STORAGE_VOL {
		return fmt.Errorf("deleting volume %s: %s", name, lvMessage(err))
	}
	return nil
}

// deleteNames destroys and undefines the named domains (which must be this cluster's or absent) and deletes
// their volumes.
func (l *Libvirt) deleteNames(conn *libvirt.Connect, pool *libvirt.StoragePool, uid string, doms map[string]*vmState, names []string) error {
	var errs []error
	for _, name := range names {
		if st := doms[name]; st != nil {
			if why := st.foreign(uid); why != "" {
				errs = append(errs, errors.New(why))
				continue
			}
			if err := destroyDomain(conn, name); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		for _, v := range []string{overlayName(name), seedName(name)} {
			errs = append(errs, deleteVolume(pool, v))
		}
	}
	return errors.Join(errs...)
}

func destroyDomain(conn *libvirt.Connect, name string) error {
	d, err := conn.LookupDomainByName(name)
	if err != nil {
		if lvCode(err) == libvirt.ERR_NO_DOMAIN {
			return nil
		}
		return fmt.Errorf("looking up domain %s: %s", name, lvMessage(err))
	}
	defer func() { _ = d.Free() }()
	if active, _ := d.IsActive(); active {
		if err := d.Destroy(); err != nil && lvCode(err) != libvirt.ERR_OPERATION_INVALID && lvCode(err) != libvirt.ERR_NO_DOMAIN {
			return fmt.Errorf("destroying domain %s: %s", name, lvMessage(err))
		}
	}
	err = d.UndefineFlags(libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
		libvirt.DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | libvirt.DOMAIN_UNDEFINE_NVRAM)
	if c := lvCode(err); err != nil && (c == libvirt.ERR_NO_SUPPORT || c == libvirt.ERR_INVALID_ARG) {
		// Drivers without NVRAM or checkpoints refuse the flags.
		err = d.Undefine()
	}
	if err != nil && lvCode(err) != libvirt.ERR_NO_DOMAIN {
		return fmt.Errorf("undefining domain %s: %s", name, lvMessage(err))
	}
	return nil
}

// Lookup implements Driver.
func (l *Libvirt) Lookup(_ context.Context, g Group) ([]Machine, error) {
	g = g.withDefaults()
	conn, err := l.connect()
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	doms, err := inventory(conn)
	if err != nil {
		return nil, err
	}
	var out []Machine
	var errs []error
	for _, s := range g.Machines {
		st := doms[s.Name]
		switch {
		case st == nil:
		case st.foreign(g.ClusterUID) != "":
			errs = append(errs, errors.New(st.foreign(g.ClusterUID)))
		default:
			out = append(out, st.machine(s.Port))
		}
	}
	return out, errors.Join(errs...)
}

// Owners implements Driver.
func (l *Libvirt) Owners(_ context.Context, names []string) (map[string]string, error) {
	conn, err := l.connect()
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	doms, err := inventory(conn)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range names {
		if st := doms[n]; st != nil {
			out[n] = ""
			if st.meta != nil {
				out[n] = st.meta.ClusterUID
			}
		}
	}
	return out, nil
}

// Delete implements Driver.
func (l *Libvirt) Delete(_ context.Context, g Group, names []string) error {
	g = g.withDefaults()
	if len(names) == 0 {
		return nil
	}
	conn, err := l.connect()
	if err != nil {
		return err
	}
	defer closeConn(conn)
	doms, err := inventory(conn)
	if err != nil {
		return err
	}
	pool, err := conn.LookupStoragePoolByName(g.Pool)
	if err != nil {
		if lvCode(err) != libvirt.ERR_NO_STORAGE_POOL {
			return fmt.Errorf("looking up storage pool %q: %s", g.Pool, lvMessage(err))
		}
		// Without the pool there are no volumes left to delete; the domains still go.
		var errs []error
		for _, name := range names {
			if st := doms[name]; st != nil {
				if why := st.foreign(g.ClusterUID); why != "" {
					errs = append(errs, errors.New(why))
					continue
				}
				errs = append(errs, destroyDomain(conn, name))
			}
		}
		return errors.Join(errs...)
	}
	defer func() { _ = pool.Free() }()
	return l.deleteNames(conn, pool, g.ClusterUID, doms, names)
}
