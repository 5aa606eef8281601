package pkgversion

import (
	"testing"

	"github.com/imagebake/imagebake/internal/distro"
)

// The corner cases of each format's order, each pair a < b.
func TestOrder(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ format, a, b string }{
		// dpkg: an epoch beats any version; '~' sorts before the empty
		// string; the Debian revision counts after the upstream version
		{distro.Dpkg, "2.0-1", "1:2.0-1"},
		{distro.Dpkg, "9.9-9", "1:0.1-1"},
		{distro.Dpkg, "1.0~rc1", "1.0"},
		{distro.Dpkg, "1.0~rc1-1", "1.0-1"},
		{distro.Dpkg, "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"},
		{distro.Dpkg, "3.0.11-1~deb12u2", "3.0.11-1"},
		{distro.Dpkg, "3.0.11-1~deb12u9", "3.0.11-1~deb12u10"},
		{distro.Dpkg, "2.36-9+deb12u4", "2.36-9+deb12u10"},
		{distro.Dpkg, "1.0a", "1.0b"},
		// apk: -rN is numeric; _rc before the release, _p after
		{distro.Apk, "1.2.3-r9", "1.2.3-r10"},
		{distro.Apk, "1.2.3_rc1-r0", "1.2.3-r0"},
		{distro.Apk, "1.2.3-r0", "1.2.3_p1-r0"},
		{distro.Apk, "3.1.4-r5", "3.1.5-r0"},
		{distro.Apk, "1.2.9", "1.2.10"},
		// rpm: epoch first, then version, then release; numbers numerically
		{distro.Rpm, "1:1.0-1", "2:0.1-1"},
		{distro.Rpm, "9.9-1", "1:1.0-1"},
		{distro.Rpm, "3.0.7-24.el9", "3.0.7-25.el9"},
		{distro.Rpm, "3.0.7-9.el9", "3.0.7-10.el9"},
		{distro.Rpm, "1.0~rc1-1", "1.0-1"},
		{distro.Rpm, "2.34-60.el9", "2.34-100.el9"},
	} {
		if got, err := Compare(c.format, c.a, c.b); err != nil || got != -1 {
			t.Errorf("%s: Compare(%q, %q) = %d, %v; want -1", c.format, c.a, c.b, got, err)
		}
		if got, err := Compare(c.format, c.b, c.a); err != nil || got != 1 {
			t.Errorf("%s: Compare(%q, %q) = %d, %v; want 1", c.format, c.b, c.a, got, err)
		}
		if got, err := Compare(c.format, c.a, c.a); err != nil || got != 0 {
			t.Errorf("%s: Compare(%q, %q) = %d, %v; want 0", c.format, c.a, c.a, got, err)
		}
	}
	// the same version written two ways
	for _, c := range []struct{ format, a, b string }{
		{distro.Dpkg, "0:1.0-1", "1.0-1"},
		{distro.Dpkg, "1.2.3", "1.2.3-0"}, // no revision is revision 0
		{distro.Rpm, "0:1.0-1", "1.0-1"},
	} {
		if got, err := Compare(c.format, c.a, c.b); err != nil || got != 0 {
			t.Errorf("%s: Compare(%q, %q) = %d, %v; want 0", c.format, c.a, c.b, got, err)
		}
	}
}

func TestBadVersions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ format, v string }{
		{distro.Dpkg, "a:1.0"},
		{distro.Dpkg, ""},
		{distro.Apk, "not a version"},
		{distro.Rpm, ""},
		{"msi", "1.0"},
	} {
		if _, err := Compare(c.format, c.v, "1.0"); err == nil {
			t.Errorf("%s: Compare(%q, 1.0) accepted it", c.format, c.v)
		}
	}
}

// Any input: no panic, and the order is antisymmetric.
func FuzzCompare(f *testing.F) {
	f.Add("dpkg", "1:2.0~rc1-1+deb12u1", "2.0-1")
	f.Add("apk", "1.2.3_rc1-r10", "1.2.3-r9")
	f.Add("rpm", "1:3.0.7-24.el9", "3.0.7-25.el9")
	f.Fuzz(func(t *testing.T, format, a, b string) {
		ab, err1 := Compare(format, a, b)
		ba, err2 := Compare(format, b, a)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("Compare(%q, %q) and the reverse disagree on validity: %v, %v", a, b, err1, err2)
		}
		if err1 == nil && ab != -ba {
			t.Fatalf("%s: Compare(%q, %q) = %d but the reverse is %d", format, a, b, ab, ba)
		}
	})
}
