package containerhosts

import (
	"slices"
	"testing"
)

func TestParseCapBnd(t *testing.T) {
	status := "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n"
	got, err := ParseCapBnd(status)
	if err != nil {
		t.Fatal(err)
	}
	if got != 0x000001fffeffffff {
		t.Fatalf("CapBnd = %#x", got)
	}
	if _, err := ParseCapBnd("Name:\tcat\n"); err == nil {
		t.Fatal("no CapBnd line: want an error")
	}
	if _, err := ParseCapBnd("CapBnd:\tzz\n"); err == nil {
		t.Fatal("bad CapBnd: want an error")
	}
}

func TestCapfixDecision(t *testing.T) {
	for _, tc := range []struct {
		name    string
		capBnd  uint64
		lastCap int
		want    []string
	}{
		// The Firecracker CI micro-VM: everything up to CHECKPOINT_RESTORE (40) except SYS_RESOURCE (24).
		{"micro-vm without CAP_SYS_RESOURCE", 0x000001fffeffffff, 40, []string{"CAP_SYS_RESOURCE"}},
		{"full set, kernel 6.x", 0x000001ffffffffff, 40, nil},
		// An older kernel knows fewer caps: bits above cap_last_cap are not "missing".
		{"full set, kernel with cap_last_cap 37", 0x0000003fffffffff, 37, nil},
		{"docker default set", 0x00000000a80425fb, 40, nil},
		{"unknown future cap", 0x000001ffffffffff, 41, []string{"CAP_41"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MissingCaps(tc.capBnd, tc.lastCap)
			if tc.name == "docker default set" {
				// 14 caps in docker's default set: 27 of 41 missing, SYS_ADMIN among them.
				if len(got) != 41-14 || !slices.Contains(got, "CAP_SYS_ADMIN") || slices.Contains(got, "CAP_CHOWN") {
					t.Fatalf("MissingCaps = %v", got)
				}
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("MissingCaps = %v, want %v", got, tc.want)
			}
			if q := (Quirks{MissingCaps: got}); q.NeedsCapfix() != (len(tc.want) > 0) {
				t.Fatalf("NeedsCapfix = %v", q.NeedsCapfix())
			}
		})
	}
}

func TestCgroupModeOf(t *testing.T) {
	const cgroup2, tmpfs = 0x63677270, 0x01021994
	if m := cgroupModeOf(cgroup2, 0); m != CgroupV2 {
		t.Errorf("cgroup2 root: %s", m)
	}
	if m := cgroupModeOf(tmpfs, cgroup2); m != CgroupHybrid {
		t.Errorf("tmpfs root + unified: %s", m)
	}
	if m := cgroupModeOf(tmpfs, 0); m != CgroupV1 {
		t.Errorf("tmpfs root only: %s", m)
	}
}
