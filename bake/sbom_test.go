package bake

import (
	"testing"

	"github.com/imagebake/imagebake/manifests/manifest"
)

// Package URLs of apk and rpm bases, as the purl spec writes them: the
// distribution as namespace, arch and distro qualifiers, an rpm epoch as
// a qualifier.
func TestBasePackageURLs(t *testing.T) {
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
