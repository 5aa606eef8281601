package release

import (
	"errors"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/osv"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// The story: 1.0.0 and 1.1.0 on deb12u1, then a backport 1.0.2
// fixing openssl (DSA-9999-1, deb12u3). 1.1.0 lacks the fix; a 1.2.0 that
// brings the old openssl back lacks it; a 1.1.1 on deb12u3 (or newer)
// carries it; a release without openssl is not affected.
func TestFixesAndLacks(t *testing.T) {
	t.Parallel()
	old := []string{"libc6 2.36-9+deb12u4 glibc", "openssl 3.0.11-1~deb12u1", "libssl3 3.0.11-1~deb12u1 openssl"}
	fixed := []string{"libc6 2.36-9+deb12u4 glibc", "openssl 3.0.11-1~deb12u3", "libssl3 3.0.11-1~deb12u3 openssl"}
	mk := func(release string, b manifest.Base) *manifest.Manifest {
		m := withBase(b)
		m.Family, m.Release = "example", release
		return m
	}
	v100 := mk("1.0.0", debian(t, "rootfs:a@sha256:1", bookworm, old...))
	v102 := mk("1.0.2", debian(t, "rootfs:a@sha256:3", bookworm, fixed...))
	v102.Puppetfile.Modules[0].Version = "9.6.1" // and a module fix

	fixes := FixesOf(v100, v102, Rules{Advisories: []string{"DSA-9999-1", "CVE-2026-1"}})
	if len(fixes) != 2 || fixes[0].Advisory != "DSA-9999-1" || fixes[1].Advisory != "CVE-2026-1" {
		t.Fatalf("fixes = %+v, want one per advisory", fixes)
	}
	f := fixes[0]
	if len(f.Packages) != 2 || f.Packages[0] != (manifest.PackageFix{Name: "libssl3", Source: "openssl", Format: "dpkg", Old: "3.0.11-1~deb12u1", New: "3.0.11-1~deb12u3"}) ||
		f.Packages[1].Name != "openssl" {
		t.Errorf("package fixes = %+v", f.Packages)
	}
	if len(f.Modules) != 1 || f.Modules[0].Name != "puppetlabs/stdlib" || f.Modules[0].Old != "9.6.0" || f.Modules[0].New != "9.6.1" {
		t.Errorf("module fixes = %+v", f.Modules)
	}
	if err := manifest.CheckFixes(v102.Advisories, fixes); err == nil {
		t.Error("fixes of advisories the manifest does not declare were accepted")
	}
	if err := manifest.CheckFixes([]string{"DSA-9999-1", "CVE-2026-1"}, fixes); err != nil {
		t.Error(err)
	}

	// 1.1.0: the old openssl and the old module
	v110 := mk("1.1.0", debian(t, "rootfs:b@sha256:1", bookworm, old...))
	got := Lacks(v110, f)
	var lines []string
	for _, l := range got {
		lines = append(lines, l.String())
	}
	want := "libssl3 3.0.11-1~deb12u1 < 3.0.11-1~deb12u3; openssl 3.0.11-1~deb12u1 < 3.0.11-1~deb12u3; module puppetlabs/stdlib 9.6.0 < 9.6.1"
	if strings.Join(lines, "; ") != want {
		t.Errorf("1.1.0 lacks %q, want %q", strings.Join(lines, "; "), want)
	}
	// a newer revision carries it, whatever the string order says
	// (deb12u10 > deb12u3), and so does a newer module
	v111 := mk("1.1.1", debian(t, "rootfs:b@sha256:2", bookworm, "openssl 3.0.11-1~deb12u10", "libssl3 3.0.11-1~deb12u10 openssl"))
	v111.Puppetfile.Modules[0].Version = "9.7.0"
	if l := Lacks(v111, f); len(l) != 0 {
		t.Errorf("1.1.1 on deb12u10 lacks %v, want nothing", l)
	}
	// a package built from the same source, under another name, is the
	// same fix; a base without openssl at all is not affected
	v120 := mk("1.2.0", debian(t, "rootfs:c@sha256:1", bookworm, "libssl3t64 3.0.11-1~deb12u2 openssl"))
	v120.Puppetfile.Modules = v120.Puppetfile.Modules[1:]
	if l := Lacks(v120, f); len(l) != 1 || l[0].Name != "libssl3t64" || l[0].Have != "3.0.11-1~deb12u2" {
		t.Errorf("a package of the same source: lacks %v, want libssl3t64", l)
	}
	v130 := mk("1.3.0", debian(t, "rootfs:d@sha256:1", bookworm, "libc6 2.36-9+deb12u4 glibc"))
	v130.Puppetfile.Modules = v130.Puppetfile.Modules[1:]
	if l := Lacks(v130, f); len(l) != 0 {
		t.Errorf("a base without openssl lacks %v, want nothing (not affected)", l)
	}
	// a release whose only change is the control repo records no fix
	cr := mk("1.0.3", debian(t, "rootfs:a@sha256:3", bookworm, fixed...))
	cr.Puppetfile.Modules[0].Version = "9.6.1"
	cr.Repo.Commit = strings.Repeat("c", 40)
	if fx := FixesOf(v102, cr, Rules{Advisories: []string{"CVE-2026-2"}}); fx != nil {
		t.Errorf("a control-repo-only security release: fixes %+v, want none", fx)
	}
}

// release plan --osv: the advisories that affect the previous release's
// base and not the candidate's are what the security release fixes.
func TestOSVFixes(t *testing.T) {
	t.Parallel()
	db, err := osv.Load([]string{"../internal/osv/testdata/DSA-9999-1.json"})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(b manifest.Base) *manifest.Manifest {
		m := withBase(b)
		m.Family = "example"
		return m
	}
	prev := mk(debian(t, "rootfs:a@sha256:1", bookworm, "openssl 3.0.11-1~deb12u1", "libssl3 3.0.11-1~deb12u1 openssl", "curl 7.88.1-10+deb12u5"))
	cand := mk(debian(t, "rootfs:a@sha256:2", bookworm, "openssl 3.0.11-1~deb12u3", "libssl3 3.0.11-1~deb12u3 openssl", "curl 7.88.1-10+deb12u5"))
	var got []string
	for _, f := range OSVFixes(prev, cand, db) {
		got = append(got, f.String())
	}
	want := "DSA-9999-1 (CVE-2026-9999): libssl3 3.0.11-1~deb12u1 -> 3.0.11-1~deb12u3; DSA-9999-1 (CVE-2026-9999): openssl 3.0.11-1~deb12u1 -> 3.0.11-1~deb12u3"
	if strings.Join(got, "; ") != want {
		t.Errorf("OSVFixes = %q, want %q", strings.Join(got, "; "), want)
	}
	// a candidate still on the old openssl fixes nothing
	if f := OSVFixes(prev, prev, db); len(f) != 0 {
		t.Errorf("the same base fixes %v", f)
	}
	if e := ManifestEcosystems(prev, cand); strings.Join(e, ",") != "Debian:12" {
		t.Errorf("ecosystems = %v", e)
	}
}

// StillFollows refuses a candidate whose neighbour below changed since its
// number was checked (exit 4, naming both), and passes one whose did not.
func TestStillFollows(t *testing.T) {
	t.Parallel()
	cand := &manifest.Manifest{Family: "example", Release: "1.2.0"}
	c := &Candidate{Manifest: cand, Follows: "1.0.0"}
	parsed := func(versions ...string) *catalog.Catalog {
		t.Helper()
		src := &catalog.Catalog{}
		f := src.Family("example", true)
		for _, v := range versions {
			f.Releases = append(f.Releases, catalog.Release{Version: v, State: "active", ManifestDigest: "sha256:" + strings.Repeat("a", 64)})
		}
		b, err := src.Encode()
		if err != nil {
			t.Fatal(err)
		}
		c, err := catalog.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := c.StillFollows()(parsed("1.0.0")); err != nil {
		t.Errorf("unchanged neighbour: %v", err)
	}
	err := c.StillFollows()(parsed("1.0.0", "1.1.0"))
	if !errors.Is(err, ErrNumber) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "checked against 1.0.0, but the catalog now has 1.1.0") {
		t.Errorf("a release published in between = %v", err)
	}
}
