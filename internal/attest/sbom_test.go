package attest

import (
	"strings"
	"testing"

	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// Package URLs of apk and rpm bases, as the purl spec writes them: the
// distribution as namespace, arch and distro qualifiers, an rpm epoch as
// a qualifier.
func TestBasePackageURLs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		os     manifest.OS
		format string
		pkg    manifest.Package
		want   string
	}{
		{manifest.OS{ID: "alpine", VersionID: "3.19.1"}, "apk", manifest.Package{Name: "libssl3", Version: "3.1.4-r2", Arch: "x86_64"},
			"pkg:apk/alpine/libssl3@3.1.4-r2?arch=x86_64&distro=alpine-3.19.1"},
		{manifest.OS{ID: "rocky", VersionID: "9.3"}, "rpm", manifest.Package{Name: "openssl", Version: "1:3.0.7-24.el9", Arch: "x86_64"},
			"pkg:rpm/rocky/openssl@3.0.7-24.el9?arch=x86_64&distro=rocky-9.3&epoch=1"},
		{manifest.OS{ID: "fedora", VersionID: "39"}, "rpm", manifest.Package{Name: "tzdata", Version: "2023c-2.fc39", Arch: "noarch"},
			"pkg:rpm/fedora/tzdata@2023c-2.fc39?arch=noarch&distro=fedora-39"},
	} {
		im := manifest.Image{Arch: "amd64", Name: "x-1.0.0-amd64", Base: manifest.Base{Ref: "rootfs:b@sha256:1", OS: &tt.os,
			Packages: &manifest.Packages{Format: tt.format, Count: 1, List: []manifest.Package{tt.pkg}}}}
		var doc spdxDoc
		basePackages(&doc, im)
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
