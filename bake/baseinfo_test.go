package bake

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// debianBase writes a Debian 12 root file system tarball whose packages
// are built for arch into root/base/debian-ARCH.tar.gz and returns its
// path relative to root and its sha256.
func debianBase(t *testing.T, root, arch string) (string, string) {
	t.Helper()
	files := map[string]string{
		"etc/os-release":      "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
		"var/lib/dpkg/status": "Package: libssl3\nStatus: install ok installed\nArchitecture: " + arch + "\nSource: openssl\nVersion: 3.0.11-1~deb12u1\n\nPackage: libstdc++6\nStatus: install ok installed\nArchitecture: " + arch + "\nVersion: 12.2.0-14\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n",
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"etc/os-release", "var/lib/dpkg/status"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[name]))
	}
	tw.Close()
	zw.Close()
	rel := filepath.Join("base", "debian-"+arch+".tar.gz")
	if err := os.WriteFile(filepath.Join(root, rel), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return rel, hex.EncodeToString(sum[:])
}

// useBase commits imagebake.toml with [base] rootfs = rel and tags release.
func useBase(t *testing.T, repo, rel, sum, release string) {
	t.Helper()
	p := filepath.Join(repo, "imagebake.toml")
	b, _ := os.ReadFile(p)
	s := regexp.MustCompile(`(?m)^rootfs = .*$`).ReplaceAllString(string(b), "rootfs = \""+rel+"\"")
	s = regexp.MustCompile(`(?m)^sha256 = .*$`).ReplaceAllString(s, "sha256 = \""+sum+"\"")
	os.WriteFile(p, []byte(s), 0o644)
	testutil.Git(t, repo, "commit", "-qam", "debian base")
	testutil.Git(t, repo, "tag", "v"+release)
}

// The case: one amd64 Debian root file system as [base] for
// amd64 and arm64 is refused, naming what was found; baked for amd64,
// the manifest records the OS and the packages and the SBOM lists them
// with package URLs.
func TestBaseOSAndPackages(t *testing.T) {
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
