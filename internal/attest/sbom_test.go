package attest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// Package URLs of Debian, apk and rpm bases, as the purl spec (and syft)
// write them: the distribution as namespace; arch, distro and upstream
// (the source package, when it is another) qualifiers, sorted; a Debian
// epoch in the version, an rpm epoch as a qualifier.
func TestBasePackageURLs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		os       manifest.OS
		format   string
		pkg      manifest.Package
		want     string
		defaults int // 0: 3
	}{
		// defaults 4: Debian's point release and an epoch's colon encoded, as syft writes them
		{manifest.OS{ID: "debian", VersionID: "12", PointRelease: "12.15"}, "dpkg", manifest.Package{Name: "attr", Version: "1:2.5.1-4", Arch: "amd64"},
			"pkg:deb/debian/attr@1%3A2.5.1-4?arch=amd64&distro=debian-12.15", 4},
		{manifest.OS{ID: "debian", VersionID: "12", PointRelease: "12.15"}, "dpkg", manifest.Package{Name: "libcap2", Version: "1:2.66-4+deb12u3+b1", Arch: "amd64", Source: "libcap2", SourceVersion: "1:2.66-4+deb12u3"},
			"pkg:deb/debian/libcap2@1%3A2.66-4%2Bdeb12u3%2Bb1?arch=amd64&distro=debian-12.15&upstream=libcap2%401%3A2.66-4%2Bdeb12u3", 4},
		{manifest.OS{ID: "debian", VersionID: "12", PointRelease: "12.15"}, "dpkg", manifest.Package{Name: "attr", Version: "1:2.5.1-4", Arch: "amd64"},
			"pkg:deb/debian/attr@1:2.5.1-4?arch=amd64&distro=debian-12", 3},
		// defaults 4: the source's version where it differs, as syft writes it
		// (both percent-encode + and @ in purls)
		{manifest.OS{ID: "debian", VersionID: "12"}, "dpkg", manifest.Package{Name: "libblkid1", Version: "2.38.1-5+b1", Arch: "amd64", Source: "util-linux", SourceVersion: "2.38.1-5+deb12u3"},
			"pkg:deb/debian/libblkid1@2.38.1-5%2Bb1?arch=amd64&distro=debian-12&upstream=util-linux%402.38.1-5%2Bdeb12u3", 4},
		{manifest.OS{ID: "debian", VersionID: "12"}, "dpkg", manifest.Package{Name: "bash", Version: "5.2.15-2+b7", Arch: "amd64", Source: "bash", SourceVersion: "5.2.15-2"},
			"pkg:deb/debian/bash@5.2.15-2%2Bb7?arch=amd64&distro=debian-12&upstream=bash%405.2.15-2", 4},
		{manifest.OS{ID: "debian", VersionID: "12"}, "dpkg", manifest.Package{Name: "bash", Version: "5.2.15-2+b7", Arch: "amd64", Source: "bash", SourceVersion: "5.2.15-2"},
			"pkg:deb/debian/bash@5.2.15-2%2Bb7?arch=amd64&distro=debian-12", 3},
		{manifest.OS{ID: "debian", VersionID: "12"}, "dpkg", manifest.Package{Name: "libssl3", Version: "3.0.11-1~deb12u2", Arch: "amd64", Source: "openssl"},
			"pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl", 3},
		{manifest.OS{ID: "debian", VersionID: "12"}, "dpkg", manifest.Package{Name: "openssl", Version: "3.0.11-1~deb12u2", Arch: "amd64", Source: "openssl"},
			"pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12", 3},
		{manifest.OS{ID: "debian", VersionID: "12"}, "dpkg", manifest.Package{Name: "attr", Version: "1:2.5.1-4", Arch: "amd64"},
			"pkg:deb/debian/attr@1:2.5.1-4?arch=amd64&distro=debian-12", 3},
		{manifest.OS{ID: "alpine", VersionID: "3.19.1"}, "apk", manifest.Package{Name: "libssl3", Version: "3.1.4-r2", Arch: "x86_64"},
			"pkg:apk/alpine/libssl3@3.1.4-r2?arch=x86_64&distro=alpine-3.19.1", 3},
		{manifest.OS{ID: "rocky", VersionID: "9.3"}, "rpm", manifest.Package{Name: "openssl", Version: "1:3.0.7-24.el9", Arch: "x86_64"},
			"pkg:rpm/rocky/openssl@3.0.7-24.el9?arch=x86_64&distro=rocky-9.3&epoch=1", 3},
		{manifest.OS{ID: "fedora", VersionID: "39"}, "rpm", manifest.Package{Name: "tzdata", Version: "2023c-2.fc39", Arch: "noarch"},
			"pkg:rpm/fedora/tzdata@2023c-2.fc39?arch=noarch&distro=fedora-39", 3},
	} {
		im := manifest.Image{Arch: "amd64", Name: "x-1.0.0-amd64", Base: manifest.Base{Ref: "rootfs:b@sha256:1", OS: &tt.os,
			Packages: &manifest.Packages{Format: tt.format, Count: 1, List: []manifest.Package{tt.pkg}}}}
		var doc spdxDoc
		d := tt.defaults
		if d == 0 {
			d = 3
		}
		basePackages(&doc, im, d)
		var got []string
		for _, p := range doc.Packages {
			for _, r := range p.ExternalRefs {
				got = append(got, r.Locator)
			}
		}
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("package URLs %q, want %q", got, tt.want)
		}
	}
}

// Each module has a package URL: GitHub remotes by owner, repository and
// tag; others generic with the metadata version; the pinned commit as the
// vcs_url; Forge modules with their download URL and sha256.
func TestModulePURL(t *testing.T) {
	t.Parallel()
	c := strings.Repeat("a", 40)
	for _, tc := range []struct {
		mod  lockfile.Module
		want string
	}{
		{lockfile.Module{Name: "concat", Kind: "git", Source: "https://github.com/puppetlabs/puppetlabs-concat.git", RefType: "tag", Ref: "v9.0.1", Commit: c, ModuleName: "puppetlabs-concat", ModuleVersion: "9.0.1"},
			"pkg:github/puppetlabs/puppetlabs-concat@v9.0.1?vcs_url=git%2Bhttps:%2F%2Fgithub.com%2Fpuppetlabs%2Fpuppetlabs-concat.git%40" + c},
		{lockfile.Module{Name: "ntp", Kind: "git", Source: "git://git.example.org/ntp.git", RefType: "branch", Ref: "main", Commit: c, ModuleName: "example-ntp", ModuleVersion: "1.1.0"},
			"pkg:generic/example/ntp@1.1.0?vcs_url=git%2Bgit:%2F%2Fgit.example.org%2Fntp.git%40" + c},
		{lockfile.Module{Name: "puppetlabs/stdlib", Kind: "forge", Version: "9.6.0", URL: "https://forge.example.org/v3/files/puppetlabs-stdlib-9.6.0.tar.gz", SHA256: strings.Repeat("b", 64)},
			"pkg:generic/puppetlabs/stdlib@9.6.0?checksum=sha256:" + strings.Repeat("b", 64) + "&download_url=https:%2F%2Fforge.example.org%2Fv3%2Ffiles%2Fpuppetlabs-stdlib-9.6.0.tar.gz"},
		{lockfile.Module{Name: "mine", Kind: "local"}, ""},
	} {
		if got := modulePURL(tc.mod); got != tc.want {
			t.Errorf("modulePURL(%s) =\n%s\nwant\n%s", tc.mod.Name, got, tc.want)
		}
	}
}

// A release keeps the SBOM rules of its defaults: one of defaults 2 (made
// before upstream= and URIs) is written, and verified, as it was made.
func TestSBOMFollowsTheReleaseDefaults(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		defaults       int
		purl, location string
	}{
		{2, "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12", "git+/srv/git/control@" + strings.Repeat("a", 40)},
		{3, "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl", "git+file:///srv/git/control@" + strings.Repeat("a", 40)},
	} {
		m := &manifest.Manifest{Family: "x", Release: "1.0.0", Imagebake: manifest.Tool{Defaults: c.defaults},
			Repo: manifest.Repo{URL: "/srv/git/control", Commit: strings.Repeat("a", 40)},
			Images: []manifest.Image{{Arch: "amd64", Name: "x-1.0.0-amd64", Base: manifest.Base{Ref: "rootfs:b", OS: &manifest.OS{ID: "debian", VersionID: "12"},
				Packages: &manifest.Packages{Format: "dpkg", Count: 1, List: []manifest.Package{{Name: "libssl3", Version: "3.0.11-1~deb12u2", Arch: "amd64", Source: "openssl"}}}}}}}
		s := strings.ReplaceAll(sbomOf(t, m), `\u0026`, "&") // encoding/json escapes &
		if !strings.Contains(s, `"`+c.purl+`"`) || !strings.Contains(s, `"`+c.location+`"`) {
			t.Errorf("defaults %d: the SBOM lacks %s or %s:\n%s", c.defaults, c.purl, c.location, s)
		}
	}
}

// An agent that is a Go binary is listed with what it is built from, as
// syft lists it: the standard library at its Go version, the main module
// and each module linked in, contained in the agent package.
func TestAgentGoPackages(t *testing.T) {
	t.Parallel()
	m := &manifest.Manifest{Family: "x", Release: "1.0.0", Imagebake: manifest.Tool{Defaults: 3},
		Images: []manifest.Image{{Arch: "amd64", Name: "x-1.0.0-amd64", Agent: manifest.Agent{Name: "mozagent", Version: "2.4.1", SHA256: strings.Repeat("a", 64),
			GoBuild: &manifest.GoBuild{Go: "go1.26.8", Main: "example.com/mozagent@(devel)", Deps: []string{"golang.org/x/sys@v0.50.0"}}}}}}
	s := sbomOf(t, m)
	for _, want := range []string{`"pkg:golang/stdlib@1.26.8"`, `"pkg:golang/example.com/mozagent"`, `"pkg:golang/golang.org/x/sys@v0.50.0"`, `"relationshipType": "CONTAINS"`} {
		if !strings.Contains(s, want) {
			t.Errorf("the SBOM lacks %s", want)
		}
	}
}

// sbomOf writes m's SBOM and returns it.
func sbomOf(t *testing.T, m *manifest.Manifest) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), SBOMName)
	if err := WriteSBOM(m, name); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
