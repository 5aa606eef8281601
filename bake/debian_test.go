//go:build linux

package bake

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// debianTarball is the real Debian 12 base mmdebstrap built
// (IMAGEBAKE_DEBIAN_BASE, else .cache/debian/bookworm-essential.tar).
func debianTarball(t *testing.T) string {
	t.Helper()
	p := os.Getenv("IMAGEBAKE_DEBIAN_BASE")
	if p == "" {
		p = filepath.Join(testutil.ModuleRoot(t), ".cache", "debian", "bookworm-essential.tar")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("a real Debian base is needed: make test builds it (scripts/ensure-debian-base): %v", err)
	}
	return p
}

// On a real Debian base (mmdebstrap --variant=essential bookworm), the
// packages imagebake reads are exactly those dpkg-query lists from the
// same database; a bake records them in the manifest and the SBOM, and
// refuses the amd64 base for arm64.
func TestRealDebianBase(t *testing.T) {
	t.Parallel()
	src := debianTarball(t)
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	rel := filepath.Join("base", "bookworm.tar")
	copyFile(t, src, filepath.Join(root, rel))

	found, err := builders.Inspect(ctx, builders.Base{Rootfs: filepath.Join(root, rel)}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	info := found.Info
	if info.OS == nil || info.OS.String() != "debian 12 (bookworm)" || info.Format != "dpkg" || len(info.Notes) != 0 {
		t.Fatalf("the Debian base reads as %+v (notes %q)", info.OS, info.Notes)
	}
	if a, others := info.Arch(); a != "amd64" || len(others) != 0 {
		t.Errorf("arch %s, others %v", a, others)
	}

	// dpkg-query on the same database
	admin := t.TempDir()
	testutil.Run(t, "tar", "-xf", filepath.Join(root, rel), "-C", admin, "./var/lib/dpkg")
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(admin, "var", "lib", "dpkg"), "-W", "-f", "${db:Status-Abbrev} ${Package} ${Version} ${Architecture}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[0] == "ii" { // installed
			want = append(want, strings.Join(f[1:], " "))
		}
	}
	for _, p := range info.Packages {
		got = append(got, p.Name+" "+p.Version+" "+p.Arch)
	}
	sort.Strings(want)
	sort.Strings(got)
	if len(want) < 50 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("imagebake reads %d packages, dpkg-query lists %d installed:\nimagebake: %v\ndpkg-query: %v", len(got), len(want), got, want)
	}

	sum := strings.TrimPrefix(sha256File(t, filepath.Join(root, rel)), "sha256:")
	if found.Digest != "sha256:"+sum {
		t.Errorf("Inspect's digest %s, the tarball's sha256 %s", found.Digest, sum)
	}
	useBase(t, repo, rel, sum, "1.1.0")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release = "1.1.0"
	if _, err := Bake(ctx, o); !errors.Is(err, builders.ErrBaseArch) || !strings.Contains(err.Error(), "the image is for arm64") {
		t.Errorf("the amd64 Debian base for arm64 = %v, want it refused", err)
	}
	o.Arches = []string{"amd64"}
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if b := m.Images[0].Base; b.Packages == nil || b.Packages.Count != len(want) || b.OS == nil || b.OS.VersionID != "12" {
		t.Errorf("manifest base = %+v", b)
	}
	sbom, err := os.ReadFile(filepath.Join(o.Out, "example-1.1.0", SBOMName))
	if err != nil {
		t.Fatal(err)
	}
	validSPDX(t, filepath.Join(o.Out, "example-1.1.0", SBOMName))
	if info.OS == nil || !strings.HasPrefix(info.OS.PointRelease, "12.") || m.Images[0].Base.OS.PointRelease != info.OS.PointRelease {
		t.Errorf("Debian's point release: %+v in the base, %+v in the manifest", info.OS, m.Images[0].Base.OS)
	}
	for _, p := range info.Packages {
		// distro= names the point release, as syft writes it (defaults 4)
		if p.Name == "dpkg" && !strings.Contains(string(sbom), `"pkg:deb/debian/dpkg@`+p.Version+`?arch=amd64\u0026distro=debian-`+info.OS.PointRelease+`"`) {
			t.Errorf("the SBOM has no package URL for dpkg %s", p.Version)
		}
	}

	// the same release as one of defaults 3 records it: no point release,
	// no source versions; rebuilt, it checks against its own images
	m.Imagebake.Defaults = 3
	o.Out, o.Pinned = filepath.Join(root, "old"), m
	old, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if b := old.Images[0].Base; b.OS.PointRelease != "" || slices.ContainsFunc(b.Packages.List, func(p manifest.Package) bool { return p.SourceVersion != "" }) {
		t.Errorf("a defaults 3 rebuild records what defaults 4 added: %+v", b.OS)
	}
	if _, err := CheckArtifacts(ctx, filepath.Join(o.Out, "example-1.1.0", manifest.FileName)); err != nil {
		t.Errorf("the defaults 3 release does not check against its images: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
