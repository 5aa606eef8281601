//go:build linux

package bake

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/release"
)

// debianBase writes a Debian 12 root file system tarball whose packages
// are built for arch into root/base/debian-ARCH.tar.gz and returns its
// path relative to root and its sha256.
func debianBase(t *testing.T, root, arch string) (string, string) {
	t.Helper()
	return writeBase(t, root, "debian-"+arch, bookworm,
		"Package: libssl3\nStatus: install ok installed\nArchitecture: "+arch+"\nSource: openssl\nVersion: 3.0.11-1~deb12u1\n\nPackage: libstdc++6\nStatus: install ok installed\nArchitecture: "+arch+"\nVersion: 12.2.0-14\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n")
}

const bookworm = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"

// writeBase writes a root file system tarball with osRelease and a dpkg
// status into root/base/NAME.tar.gz and returns its path relative to root
// and its sha256.
func writeBase(t *testing.T, root, name, osRelease, status string) (string, string) {
	t.Helper()
	files := map[string]string{"etc/os-release": osRelease, "var/lib/dpkg/status": status}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"etc/os-release", "var/lib/dpkg/status"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[name]))
	}
	tw.Close()
	zw.Close()
	rel := filepath.Join("base", name+".tar.gz")
	if err := os.WriteFile(filepath.Join(root, rel), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return rel, hex.EncodeToString(sum[:])
}

// dpkg is a dpkg status of amd64 packages, each "NAME VERSION".
func dpkg(pkgs ...string) string {
	var b strings.Builder
	for _, p := range pkgs {
		f := strings.Fields(p)
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nArchitecture: amd64\nVersion: %s\n\n", f[0], f[1])
	}
	return b.String()
}

// useBase commits imagebake.toml with [base] rootfs = rel and tags release.
func useBase(t *testing.T, repo, rel, sum, release string) {
	t.Helper()
	p := filepath.Join(repo, "imagebake.toml")
	b, _ := os.ReadFile(p)
	s := regexp.MustCompile(`(?m)^rootfs = .*$`).ReplaceAllString(string(b), "rootfs = \""+rel+"\"")
	s = regexp.MustCompile(`(?m)^sha256 = .*$`).ReplaceAllString(s, "sha256 = \""+sum+"\"")
	testutil.Must(t, os.WriteFile(p, []byte(s), 0o644))
	testutil.Git(t, repo, "commit", "-qam", "debian base")
	testutil.Git(t, repo, "tag", "v"+release)
}

// The release rules on real bakes: a base patched at the same upstream
// version is a SECURITY release only when an advisory declares it, which
// the manifest then records; a major package configured in imagebake.toml
// moving its upstream MAJOR.MINOR needs MAJOR.
func TestReleaseRulesOnBases(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	rel, sum := writeBase(t, root, "deb-1", bookworm, dpkg("openssl 3.0.11-1~deb12u1", "curl 7.88.1-10+deb12u5"))
	useBase(t, repo, rel, sum, "1.1.0")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches, o.Release = []string{"amd64"}, "1.1.0"
	prev, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	rel, sum = writeBase(t, root, "deb-2", bookworm, dpkg("openssl 3.0.11-1~deb12u2", "curl 7.88.1-10+deb12u5"))
	useBase(t, repo, rel, sum, "1.1.1")

	p := opts(root, repo, o.Out)
	p.Arches, p.Ref, p.Release = o.Arches, "v1.1.1", prev.Release
	cand, rules, err := Plan(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := release.Propose(prev, cand, rules)
	if err != nil || plan.Next != "1.2.0" || !strings.Contains(plan.Note, "--advisory") {
		t.Errorf("plan without an advisory = %+v, %v; want 1.2.0 with how to declare a security release", plan, err)
	}
	rules.Advisories = []string{"CVE-2023-5678"}
	rules.RepoFiles = RepoChanges(ctx, p, prev.Repo.Commit, cand.Repo.Commit)
	plan, _ = release.Propose(prev, cand, rules)
	if plan.Next != "1.1.1" || len(plan.Changes) != 2 || plan.Changes[0].What+": "+plan.Changes[0].Reason != "package openssl: 3.0.11-1~deb12u1 -> 3.0.11-1~deb12u2: same upstream version, patched" ||
		plan.Changes[1].What != "control repo" || !strings.HasSuffix(plan.Changes[1].Reason, ": M imagebake.toml") {
		t.Errorf("plan with an advisory = %+v", plan)
	}

	o.Release, o.Previous = "1.1.1", prev
	if _, err := Bake(ctx, o); !errors.Is(err, release.ErrNumber) || !strings.Contains(err.Error(), "no advisory declares it") {
		t.Errorf("bake of a SECURITY number without an advisory = %v", err)
	}
	o.Advisories = []string{"CVE-2023-5678"}
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.Advisories, ",") != "CVE-2023-5678" {
		t.Errorf("manifest advisories = %v", m.Advisories)
	}
	if b, _ := os.ReadFile(filepath.Join(o.Out, "example-1.1.1", "manifest.toml")); !strings.Contains(string(b), `advisories = ["CVE-2023-5678"]`) {
		t.Errorf("manifest.toml does not record the advisory:\n%s", b)
	}
	// and what fixed it, read back from the file
	if rm, err := manifest.Read(filepath.Join(o.Out, "example-1.1.1", manifest.FileName)); err != nil || len(rm.Fixes) != 1 || rm.Fixes[0].Advisory != "CVE-2023-5678" ||
		len(rm.Fixes[0].Packages) != 1 || rm.Fixes[0].Packages[0] != (manifest.PackageFix{Name: "openssl", Format: "dpkg", Old: "3.0.11-1~deb12u1", New: "3.0.11-1~deb12u2"}) {
		t.Errorf("manifest.toml records fixes %+v (%v); want openssl deb12u1 -> deb12u2 for CVE-2023-5678", rm, err)
	}

	// curl as a major package: 7.88 -> 8.5 needs MAJOR
	cfg := filepath.Join(repo, "imagebake.toml")
	b, _ := os.ReadFile(cfg)
	testutil.Must(t, os.WriteFile(cfg, append(b, "\n[release]\nmajor_packages = [\"curl\", \"python3*\"]\n"...), 0o644))
	rel, sum = writeBase(t, root, "deb-3", bookworm, dpkg("openssl 3.0.11-1~deb12u2", "curl 8.5.0-2"))
	useBase(t, repo, rel, sum, "1.2.0")
	o.Release, o.Previous, o.Advisories = "1.2.0", m, nil
	if _, err := Bake(ctx, o); !errors.Is(err, release.ErrNumber) || !strings.Contains(err.Error(), "package curl: 7.88.1-10+deb12u5 -> 8.5.0-2: major package, 7.88 -> 8.5 (MAJOR)") {
		t.Errorf("MINOR bake moving a configured major package = %v", err)
	}
}

// The case: one amd64 Debian root file system as [base] for
// amd64 and arm64 is refused, naming what was found; baked for amd64,
// the manifest records the OS and the packages and the SBOM lists them
// with package URLs.
func TestBaseOSAndPackages(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	rel, sum := debianBase(t, root, "amd64")
	useBase(t, repo, rel, sum, "1.1.0")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release = "1.1.0"
	_, err := Bake(ctx, o)
	if !errors.Is(err, builders.ErrBaseArch) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "is for amd64") || !strings.Contains(err.Error(), "the image is for arm64") {
		t.Fatalf("an amd64 base for arm64 = %v, want ErrBaseArch naming both", err)
	}
	if _, err := os.Stat(filepath.Join(o.Out, "example-1.1.0")); err == nil {
		t.Error("a refused bake wrote a release")
	}
	o.Arches = []string{"amd64"}
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	b := m.Images[0].Base
	if b.OS == nil || b.OS.ID != "debian" || b.OS.VersionID != "12" || b.OS.Codename != "bookworm" {
		t.Errorf("base OS = %+v", b.OS)
	}
	if b.Packages == nil || b.Packages.Format != "dpkg" || b.Packages.Count != 3 || len(b.Packages.List) != 3 || !strings.HasPrefix(b.Packages.Digest, "sha256:") {
		t.Fatalf("base packages = %+v", b.Packages)
	}
	if p := b.Packages.List[0]; p.Name != "libssl3" || p.Version != "3.0.11-1~deb12u1" || p.Arch != "amd64" || p.Source != "openssl" {
		t.Errorf("first package = %+v", p)
	}
	sbom, err := os.ReadFile(filepath.Join(o.Out, "example-1.1.0", SBOMName))
	if err != nil {
		t.Fatal(err)
	}
	validSPDX(t, filepath.Join(o.Out, "example-1.1.0", SBOMName))
	for _, purl := range []string{
		"pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64\u0026distro=debian-12",
		"pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64\u0026distro=debian-12",
		"pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all\u0026distro=debian-12",
	} {
		if !strings.Contains(string(sbom), strings.ReplaceAll(purl, "\u0026", `\u0026`)) {
			t.Errorf("the SBOM has no %s:\n%s", purl, regexp.MustCompile(`"pkg:[^"]*"`).FindAllString(string(sbom), -1))
		}
	}
	// the same packages in another order: the same digest; a patched one: another
	rel2, sum2 := debianBase(t, root, "arm64")
	found, err := builders.Inspect(ctx, builders.Base{Rootfs: filepath.Join(root, rel2), SHA256: sum2}, "arm64")
	if err != nil || found.Info.Format != "dpkg" {
		t.Fatalf("Inspect = %v", err)
	}
	if a, _ := found.Info.Arch(); a != "arm64" {
		t.Errorf("an arm64 base reads as %s", a)
	}
}

// release plan and check verify the base pin as bake does: a candidate
// whose imagebake.toml pins a sha256 the base does not have is exit 4.
func TestPlanChecksBasePin(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	rel, _ := writeBase(t, root, "deb-1", bookworm, dpkg("openssl 3.0.11-1~deb12u1"))
	useBase(t, repo, rel, strings.Repeat("0", 64), "1.1.0")
	p := opts(root, repo, filepath.Join(root, "dist"))
	p.Arches, p.Ref, p.Release = []string{"amd64"}, "v1.1.0", "1.0.0"
	_, _, err := Plan(ctx, p)
	if !errors.Is(err, builders.ErrDigestMismatch) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "does not match the sha256 imagebake.toml pins (0000") {
		t.Errorf("Plan of a candidate with a wrong base pin = %v (exit %d), want exit 4", err, failure.Code(err))
	}
}

// A relative store that is not in --context is named as such, with what
// relative paths are resolved against, not as a store without agents.
func TestStoreOutsideContextNamed(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	p := opts(root, repo, filepath.Join(root, "dist"))
	p.Context = t.TempDir()
	_, _, err := Plan(ctx, p)
	if !errors.Is(err, failure.ErrNotFound) || !strings.Contains(err.Error(), `[agents] store "store" of imagebake.toml is not a directory in --context `+p.Context) || !strings.Contains(err.Error(), "pass --context DIR") {
		t.Errorf("Plan with the store outside --context = %v", err)
	}
}

// The DSA case on real bakes: a security release whose base moves openssl
// to a new upstream point release (3.0.11-1~deb12u2 -> 3.0.13-1~deb12u1)
// and patches libc-bin bakes as 1.1.1 with each advisory naming what it
// fixes; the manifest records the mapping and credits each fix to its own
// advisory; without the mapping the same bake is refused as MINOR.
func TestSecurityReleaseWithUpstreamPointRelease(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	rel, sum := writeBase(t, root, "deb-1", bookworm, dpkg("openssl 3.0.11-1~deb12u2", "libc-bin 2.36-9+deb12u3"))
	useBase(t, repo, rel, sum, "1.1.0")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches, o.Release = []string{"amd64"}, "1.1.0"
	prev, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	rel, sum = writeBase(t, root, "deb-2", bookworm, dpkg("openssl 3.0.13-1~deb12u1", "libc-bin 2.36-9+deb12u4"))
	useBase(t, repo, rel, sum, "1.1.1")
	o.Release, o.Previous = "1.1.1", prev
	o.Advisories = []string{"DSA-6001-1", "DSA-6002-1"}
	if _, err := Bake(ctx, o); !errors.Is(err, release.ErrNumber) || !strings.Contains(err.Error(), "new upstream version; no declared advisory says it fixes openssl: if one does, say so (--advisory DSA-6001-1=openssl") {
		t.Errorf("the bake with bare advisories = %v, want refused: the upstream move is MINOR", err)
	}
	o.AdvisoryFixes = map[string][]string{"DSA-6001-1": {"openssl"}, "DSA-6002-1": {"libc-bin"}}
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatalf("the bake with each advisory's package: %v", err)
	}
	rm, err := manifest.Read(filepath.Join(o.Out, "example-1.1.1", manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rm.AdvisoryFixes) != "map[DSA-6001-1:[openssl] DSA-6002-1:[libc-bin]]" {
		t.Errorf("manifest advisory_fixes = %v", rm.AdvisoryFixes)
	}
	got := map[string]string{}
	for _, f := range m.Fixes {
		for _, p := range f.Packages {
			got[f.Advisory] += p.Name + " " + p.Old + " -> " + p.New + ";"
		}
	}
	if got["DSA-6001-1"] != "openssl 3.0.11-1~deb12u2 -> 3.0.13-1~deb12u1;" || got["DSA-6002-1"] != "libc-bin 2.36-9+deb12u3 -> 2.36-9+deb12u4;" {
		t.Errorf("fixes = %v, want each advisory with its own package", got)
	}
}
