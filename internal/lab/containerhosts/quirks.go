package containerhosts

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capNameList are the Linux capability names by number (linux/capability.h), without the CAP_ prefix.
const capNameList = "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE " +
	"NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE " +
	"SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL " +
	"SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"

// CgroupMode is the host's cgroup layout. Container hosts share the host kernel, so nodes get the same one,
// and kubelet ≥ 1.35 refuses cgroup v1 unless failCgroupV1 is false. The provider learns this itself in
// gather-facts; the lab only reports it.
type CgroupMode string

// Cgroup layouts.
const (
	// CgroupV2 is the unified hierarchy at /sys/fs/cgroup (current distributions, GitHub runners).
	CgroupV2 CgroupMode = "v2"
	// CgroupHybrid is v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified (systemd "hybrid").
	CgroupHybrid CgroupMode = "hybrid"
	// CgroupV1 is v1 controllers only.
	CgroupV1 CgroupMode = "v1"
)

// Quirks are facts about this machine that change how container hosts are run. Each one is detected;
// nothing is assumed from a machine name.
type Quirks struct {
	// MissingCaps are capabilities the kernel knows (0..cap_last_cap) that this process's bounding set lacks,
	// as CAP_* names. Some CI micro-VMs drop CAP_SYS_RESOURCE. runc then cannot give a --privileged container
	// every capability, so dockerd gets the capfix runtime wrapper (see NeedsCapfix).
	MissingCaps []string `json:"missing_caps"`
	// Cgroup is the host's cgroup layout, which the nodes inherit.
	Cgroup CgroupMode `json:"cgroup"`
	// SystemdPID1 is true when systemd is PID 1 on the host. Then installing docker.io would start the
	// distribution's dockerd (with docker0 and MASQUERADE), which InstallDeps prevents.
	SystemdPID1 bool `json:"systemd_pid1"`
	// HostModules is true when /lib/modules/<running kernel> exists. Then it is mounted read-only into the
	// nodes (as kind does) so modprobe works; otherwise the node image lists the built-in modules itself.
	HostModules bool `json:"host_modules"`
}

// NeedsCapfix reports whether dockerd needs the runc wrapper that drops capabilities we do not hold.
func (q Quirks) NeedsCapfix() bool { return len(q.MissingCaps) > 0 }

// String is a one-line summary for progress output.
func (q Quirks) String() string {
	caps := "all capabilities"
	if len(q.MissingCaps) > 0 {
		caps = "bounding set lacks " + strings.Join(q.MissingCaps, ",") + " (capfix runtime)"
	}
	mods := "no /lib/modules (built-in list in nodes)"
	if q.HostModules {
		mods = "/lib/modules mounted read-only"
	}
	return fmt.Sprintf("cgroup %s; %s; %s; systemd PID 1: %t", q.Cgroup, caps, mods, q.SystemdPID1)
}

// DetectQuirks inspects this machine: /proc/self/status (CapBnd), /proc/sys/kernel/cap_last_cap,
// the filesystem types of /sys/fs/cgroup{,/unified}, /proc/1/comm and /lib/modules.
func DetectQuirks() (Quirks, error) {
	var q Quirks
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return q, fmt.Errorf("capabilities: %w", err)
	}
	bnd, err := ParseCapBnd(string(status))
	if err != nil {
		return q, err
	}
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return q, fmt.Errorf("capabilities: %w", err)
	}
	lastCap, err := strconv.Atoi(strings.TrimSpace(string(last)))
	if err != nil {
		return q, fmt.Errorf("cap_last_cap %q: %w", last, err)
	}
	q.MissingCaps = MissingCaps(bnd, lastCap)
	if q.Cgroup, err = detectCgroupMode(); err != nil {
		return q, err
	}
	comm, err := os.ReadFile("/proc/1/comm")
	q.SystemdPID1 = err == nil && strings.TrimSpace(string(comm)) == "systemd"
	rel, err := kernelRelease()
	if err != nil {
		return q, err
	}
	if st, err := os.Stat("/lib/modules/" + rel); err == nil && st.IsDir() {
		q.HostModules = true
	}
	return q, nil
}

// ParseCapBnd returns the CapBnd mask from the text of /proc/<pid>/status.
func ParseCapBnd(status string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != "CapBnd" {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("CapBnd %q: %w", strings.TrimSpace(v), err)
		}
		return mask, nil
	}
	return 0, errors.New("no CapBnd line in process status")
}

// MissingCaps lists, as CAP_* names, the capabilities 0..lastCap (the kernel's cap_last_cap) whose bit is
// clear in the bounding set capBnd. Numbers without a known name are given as CAP_<n>.
func MissingCaps(capBnd uint64, lastCap int) []string {
	capNames := strings.Fields(capNameList)
	var missing []string
	for i := 0; i <= lastCap && i < 64; i++ {
		if capBnd&(1<<uint(i)) != 0 {
			continue
		}
		if i < len(capNames) {
			missing = append(missing, "CAP_"+capNames[i])
		} else {
			missing = append(missing, "CAP_"+strconv.Itoa(i))
		}
	}
	return missing
}

// cgroupModeOf maps the filesystem magic of /sys/fs/cgroup and of /sys/fs/cgroup/unified (0 when absent)
// to a layout.
func cgroupModeOf(rootMagic, unifiedMagic int64) CgroupMode {
	const cgroup2Magic = 0x63677270
	switch {
	case rootMagic == cgroup2Magic:
		return CgroupV2
	case unifiedMagic == cgroup2Magic:
		return CgroupHybrid
	default:
		return CgroupV1
	}
}
