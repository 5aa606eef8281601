package deploy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// linesCatalog is the story: 1.0.0 (revoked, replaced by 1.0.2),
// 1.0.1 fixing DSA-6001-1 (openssl), 1.0.2 fixing DSA-6002-1 (libc-bin),
// 1.1.0 (a minor cut before them, lacking both), and with fixed111 1.1.1
// carrying both. Its manifests hold each release's packages.
func linesCatalog(t *testing.T, fixed111 bool) (*catalog.Catalog, func(context.Context, string, string) (*manifest.Manifest, error)) {
	t.Helper()
	type rel struct {
		v, state, extra string
		security        bool
		openssl, libc   string
	}
	rels := []rel{
		{"1.0.0", "revoked", "reason = \"a broken agent\"\n  replacement = \"1.0.2\"\n  state_date = 2026-11-01T00:00:00Z\n", false, "3.0.11-1~deb12u2", "2.36-9+deb12u3"},
		{"1.0.1", "active", "advisories = [\"DSA-6001-1\"]\n  [[family.release.fix]]\n  advisory = \"DSA-6001-1\"\n    [[family.release.fix.package]]\n    name = \"openssl\"\n    format = \"dpkg\"\n    old = \"3.0.11-1~deb12u2\"\n    new = \"3.0.13-1~deb12u1\"\n", true, "3.0.13-1~deb12u1", "2.36-9+deb12u3"},
		{"1.0.2", "active", "advisories = [\"DSA-6002-1\"]\n  [[family.release.fix]]\n  advisory = \"DSA-6002-1\"\n    [[family.release.fix.package]]\n    name = \"libc-bin\"\n    source = \"glibc\"\n    format = \"dpkg\"\n    old = \"2.36-9+deb12u3\"\n    new = \"2.36-9+deb12u4\"\n", true, "3.0.13-1~deb12u1", "2.36-9+deb12u4"},
		{"1.1.0", "active", "", false, "3.0.11-1~deb12u2", "2.36-9+deb12u3"},
	}
	if fixed111 {
		rels = append(rels, rel{"1.1.1", "active", "advisories = [\"DSA-6001-1\", \"DSA-6002-1\"]\n", true, "3.0.13-1~deb12u1", "2.36-9+deb12u4"})
	}
	var b strings.Builder
	b.WriteString("format = 1\n[[family]]\nname = \"example\"\ngrace_days = 14\n  [[family.support]]\n  major = 1\n  eol = 2028-01-31T00:00:00Z\n  notice_days = 60\n")
	ms := map[string]*manifest.Manifest{}
	for i, r := range rels {
		fmt.Fprintf(&b, "  [[family.release]]\n  version = %q\n  date = 2026-10-%02dT00:00:00Z\n  security = %v\n  state = %q\n  manifest_digest = \"sha256:%064d\"\n  %s    [[family.release.image]]\n    arch = \"amd64\"\n    name = \"example-%s-amd64\"\n    digest = \"sha256:%064d\"\n    location = \"images/example-%s\"\n",
			r.v, i+1, r.security, r.state, i+1, r.extra, r.v, i+100, r.v)
		ms[r.v] = &manifest.Manifest{Family: "example", Release: r.v, Images: []manifest.Image{{Arch: "amd64", Base: manifest.Base{Packages: &manifest.Packages{Format: "dpkg", List: []manifest.Package{
			{Name: "openssl", Version: r.openssl, Source: "openssl"}, {Name: "libc-bin", Version: r.libc, Source: "glibc"}}}}}}}
	}
	c, err := catalog.Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	return c, func(_ context.Context, family, version string) (*manifest.Manifest, error) {
		if m := ms[version]; m != nil {
			return m, nil
		}
		return nil, fmt.Errorf("no manifest of %s %s", family, version)
	}
}

// Upgrade follows security lines: a revoked pin moves to its replacement
// (1.0.0 -> 1.0.2), not to the newest minor (1.1.0) that lacks the fixes
// its line has; a range on the patched 1.0.2 stays, naming what 1.1.0
// lacks; "fixing" lists only advisories the target carries; check's note
// points only where a user can safely go; once 1.1.1 carries the fixes,
// both move there.
func TestUpgradeFollowsSecurityLines(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, read := linesCatalog(t, false)
	f, err := Parse("deploy.yaml", []byte("images:\n  pinned:\n    image: example\n    version: \"1.0.0\"\n  ranged:\n    image: example\n    version: \"1.0\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := Upgrade(ctx, c, "catalog.toml", f, Minor, read)
	if err != nil {
		t.Fatal(err)
	}
	if s := steps[0]; s.To != "1.0.2" || !strings.Contains(s.Withdrawn, "revoked") || strings.Join(s.Advisories, ",") != "DSA-6001-1,DSA-6002-1" {
		t.Errorf("the revoked pin: %+v, want 1.0.2 fixing DSA-6001-1, DSA-6002-1", s)
	}
	if s := steps[1]; s.To != "1.0.2" || !strings.Contains(s.Note, "1.1.0 lacks DSA-6001-1, DSA-6002-1, which 1.0 has") {
		t.Errorf("the range on 1.0.2: %+v, want it to stay, naming what 1.1.0 lacks", s)
	}
	r, err := Resolve(c, "catalog.toml", f.Selections[1])
	if err != nil {
		t.Fatal(err)
	}
	if n := NewestNote(ctx, c, r, read); strings.Contains(n, "1.1.0") {
		t.Errorf("check's note for 1.0.2 = %q: it points at 1.1.0, which lacks the fixes", n)
	}

	c, read = linesCatalog(t, true)
	steps, err = Upgrade(ctx, c, "catalog.toml", f, Minor, read)
	if err != nil {
		t.Fatal(err)
	}
	// the revoked pin: its replacement; the range: the newest that carries both
	if steps[0].To != "1.0.2" || steps[1].To != "1.1.1" || steps[1].Note != "" {
		t.Errorf("with 1.1.1: %+v", steps)
	}
	if n := NewestNote(ctx, c, r, read); !strings.Contains(n, "1.1.1") {
		t.Errorf("check's note for 1.0.2 with 1.1.1 out = %q", n)
	}
}

// A revoked release whose replacement lacks a fix its line has (1.0.2
// fixed more after 1.0.0 was revoked for 1.0.1) moves to the release that
// carries every fix of the line, not to the named replacement.
func TestUpgradeReplacementLackingLineFix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, read := linesCatalog(t, false)
	f := c.Family("example", false)
	r := f.Release("1.0.0")
	r.Replacement = "1.0.1"
	df, err := Parse("deploy.yaml", []byte("images:\n  pinned:\n    image: example\n    version: \"1.0.0\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := Upgrade(ctx, c, "catalog.toml", df, Patch, read)
	if err != nil {
		t.Fatal(err)
	}
	if steps[0].To != "1.0.2" {
		t.Errorf("the revoked pin replaced by 1.0.1 (which lacks DSA-6002-1) moved to %s, want 1.0.2", steps[0].To)
	}
}
