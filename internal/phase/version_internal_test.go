package phase

import "testing"

func TestVersionLess(t *testing.T) {
	cases := []struct {
		a, b string
		less bool
	}{
		{"v1.36.3", "v1.37.2", true},
		{"v1.37.2", "v1.36.3", false},
		{"1.37.2", "v1.37.10", true},
		{"v1.37.10", "1.37.2", false},
		{"3.5.21", "3.6.4", true},
		{"3.10.0", "3.9.9", false},
		{"3.9.9", "3.10.0", true},
		{"1.2", "1.2.1", true},
		{"1.2.1", "1.2", false},
		{"v2.1.4", "v2.1.4", false},
	}
	for _, c := range cases {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v, want %v", c.a, c.b, got, c.less)
		}
	}
	// The same version spelled with and without "v" has equal fields; the spelling only breaks the tie, so that
	// the order stays total (exactly one of the two sorts first) and a sort of the bundle's versions is stable.
	if versionLess("v1.37.2", "1.37.2") == versionLess("1.37.2", "v1.37.2") {
		t.Error(`versionLess does not order "v1.37.2" and "1.37.2" one way`)
	}
	for _, v := range []string{"v1.37.2", "1.37.2"} {
		if !versionLess("v1.37.1", v) || !versionLess(v, "1.37.3") {
			t.Errorf("%s does not sort between v1.37.1 and 1.37.3", v)
		}
	}
}

// TestVersionLessPreRelease checks that versionLess orders a release after its own pre-releases, as
// artifacts.CompareVersions does, so that a bundle with v1.2.0 and v1.2.0-rc.1 installs the release.
func TestVersionLessPreRelease(t *testing.T) {
	if versionLess("v1.2.0", "v1.2.0-rc.1") {
		t.Error("v1.2.0 sorts before v1.2.0-rc.1")
	}
	if !versionLess("v1.2.0-rc.1", "v1.2.0") {
		t.Error("v1.2.0-rc.1 does not sort before v1.2.0")
	}
}
