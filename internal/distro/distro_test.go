package distro

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
)

const debianRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`

const dpkgStatus = `Package: libssl3
Status: install ok installed
Priority: optional
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u1
Description: Secure Sockets Layer toolkit
 This package is part of the OpenSSL project.

Package: python3.11
Status: install ok installed
Architecture: amd64
Version: 3.11.2-6
Source: python3.11 (3.11.2-6+deb12u1)

Package: old-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
`

func TestParseOSRelease(t *testing.T) {
	t.Parallel()
	o, notes := ParseOSRelease("/etc/os-release", []byte(debianRelease))
	if len(notes) != 0 || *o != (OS{ID: "debian", VersionID: "12", Codename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}) {
		t.Errorf("debian os-release = %+v, %v", o, notes)
	}
	if o.String() != "debian 12 (bookworm)" {
		t.Errorf("String = %q", o.String())
	}
	o, notes = ParseOSRelease("/etc/os-release", []byte("NAME=\"x\nPRETTY_NAME='Alpine \\ Linux'\nbroken line\nVERSION_ID=3.19.1\n"))
	if o.ID != "linux" || o.VersionID != "3.19.1" || o.PrettyName != `Alpine \ Linux` || len(notes) != 3 {
		t.Errorf("odd os-release = %+v, notes %q", o, notes)
	}
	for _, n := range notes[:2] {
		if !strings.HasPrefix(n, "/etc/os-release:") {
			t.Errorf("note does not name the file and line: %q", n)
		}
	}
}

func TestParseDpkgStatus(t *testing.T) {
	t.Parallel()
	ps, notes := ParseDpkgStatus("/var/lib/dpkg/status", []byte(dpkgStatus))
	want := []Package{
		{Name: "libssl3", Version: "3.0.11-1~deb12u1", Arch: "amd64", Source: "openssl"},
		{Name: "python3.11", Version: "3.11.2-6", Arch: "amd64", Source: "python3.11", SourceVersion: "3.11.2-6+deb12u1"},
		{Name: "tzdata", Version: "2024a-0+deb12u1", Arch: "all"},
	}
	if len(notes) != 0 || len(ps) != len(want) {
		t.Fatalf("packages %+v, notes %v", ps, notes)
	}
	for i := range want {
		if ps[i] != want[i] {
			t.Errorf("package %d = %+v, want %+v", i, ps[i], want[i])
		}
	}
	_, notes = ParseDpkgStatus("/var/lib/dpkg/status", []byte("Package: a\nStatus: install ok installed\nVersion: 1\nVersion: 2\n\nPackage: b\ngarbage here\n"))
	if len(notes) != 3 || !strings.Contains(notes[0], "status:4: field version given twice") || !strings.Contains(notes[1], "status:7:") {
		t.Errorf("notes = %q", notes)
	}
}

func TestParseApkInstalled(t *testing.T) {
	t.Parallel()
	db := "C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\no:musl\nL:MIT\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\n\nP:broken\n"
	ps, notes := ParseApkInstalled("/lib/apk/db/installed", []byte(db))
	if len(ps) != 2 || ps[0] != (Package{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Source: "musl", License: "MIT"}) {
		t.Errorf("packages = %+v", ps)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "installed:12: a package without") {
		t.Errorf("notes = %q", notes)
	}
}

// layer builds a tar layer of files (content), symlinks ("-> target") and
// whiteouts (names given with .wh.).
func layer(t *testing.T, files map[string]string) *tar.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, c := range files {
		if target, ok := strings.CutPrefix(c, "-> "); ok {
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(len(c)), Mode: 0o644})
		tw.Write([]byte(c))
	}
	tw.Close()
	return tar.NewReader(&buf)
}

func collect(t *testing.T, layers ...map[string]string) *Info {
	c := NewCollector()
	for i, l := range layers {
		if i > 0 {
			c.NextLayer()
		}
		tr := layer(t, l)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if err := c.Add(h, tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c.Info()
}

// elfHeader is the first 20 bytes of an ELF executable for machine m.
func elfHeader(m byte) string {
	return "\x7fELF\x02\x01\x01" + strings.Repeat("\x00", 9) + "\x02\x00" + string([]byte{m, 0})
}

func TestCollectorLayers(t *testing.T) {
	t.Parallel()
	// usrmerge: /bin -> usr/bin, /bin/sh -> dash; os-release a symlink
	info := collect(t, map[string]string{
		"bin":                 "-> usr/bin",
		"usr/bin/dash":        elfHeader(183), // aarch64
		"usr/bin/sh":          "-> dash",
		"etc/os-release":      "-> ../usr/lib/os-release",
		"usr/lib/os-release":  debianRelease,
		"var/lib/dpkg/status": dpkgStatus,
		"etc/debian_version":  "12.14\n",
	}, map[string]string{
		"etc/debian_version": "12.15\n", // a point release upgrade
		// the next layer removes python and replaces the status file
		"var/lib/dpkg/.wh.status": "",
	}, map[string]string{
		"var/lib/dpkg/status": strings.Replace(dpkgStatus, "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", 1),
	})
	if info.OS == nil || info.OS.VersionID != "12" || info.Format != Dpkg || info.Machine != "arm64" {
		t.Fatalf("info = %+v", info)
	}
	if info.OS.PointRelease != "12.15" {
		t.Errorf("Debian's point release = %q, want the upper layer's 12.15", info.OS.PointRelease)
	}
	if info := collect(t, map[string]string{"etc/os-release": debianRelease, "etc/debian_version": "trixie/sid\n"}); info.OS.PointRelease != "" {
		t.Errorf("a testing release's debian_version gave point release %q", info.OS.PointRelease)
	}
	if len(info.Packages) != 3 || info.Packages[0].Version != "3.0.11-1~deb12u2" {
		t.Errorf("packages after the upper layers = %+v", info.Packages)
	}
	if a, others := info.Arch(); a != "amd64" || len(others) != 0 {
		t.Errorf("Arch = %s %v; the packages say amd64 (the ELF says arm64, the packages win)", a, others)
	}
	// an opaque directory hides the lower layers' status.d
	info = collect(t, map[string]string{
		"var/lib/dpkg/status.d/base":         "Package: base-files\nVersion: 12.4\nArchitecture: arm64\n",
		"var/lib/dpkg/status.d/base.md5sums": "x",
	}, map[string]string{
		"var/lib/dpkg/status.d/.wh..wh..opq": "",
		"var/lib/dpkg/status.d/libc6":        "Package: libc6\nVersion: 2.36-9\nArchitecture: arm64\n",
	})
	if len(info.Packages) != 1 || info.Packages[0].Name != "libc6" || info.OS != nil {
		t.Errorf("distroless status.d under an opaque whiteout = %+v", info)
	}
	if a, _ := info.Arch(); a != "arm64" {
		t.Errorf("Arch = %s", a)
	}
	// a package listed twice, no os-release, nothing else: noted
	info = collect(t, map[string]string{
		"lib/apk/db/installed": "P:musl\nV:1\nA:x86_64\n\nP:musl\nV:2\nA:x86_64\n",
	})
	if info.Format != Apk || len(info.Packages) != 1 || len(info.Notes) != 2 || !strings.Contains(info.Notes[0], "musl (x86_64) twice") || !strings.Contains(info.Notes[1], "no /etc/os-release") {
		t.Errorf("apk with a duplicate = %+v", info)
	}
}

func TestPackagesDigest(t *testing.T) {
	t.Parallel()
	a := []Package{{Name: "a", Version: "1", Arch: "amd64"}, {Name: "b", Version: "2", Arch: "all"}}
	b := []Package{a[1], a[0]}
	if PackagesDigest(a) != PackagesDigest(b) {
		t.Error("the digest depends on the order")
	}
	b[0].Version = "3"
	if PackagesDigest(a) == PackagesDigest(b) {
		t.Error("the digest does not change with a version")
	}
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte(debianRelease))
	f.Add([]byte("ID=\"a\\\"b\"\nX='\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, notes := ParseOSRelease("f", b)
		if o == nil || o.ID == "" {
			t.Fatalf("no OS: %v", notes)
		}
	})
}

func FuzzParseDpkgStatus(f *testing.F) {
	f.Add([]byte(dpkgStatus))
	f.Add([]byte(" continuation\nPackage: a\n\tmore\nVersion: 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, _ := ParseDpkgStatus("f", b)
		for _, p := range ps {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("a package without name or version: %+v", p)
			}
		}
	})
}

func FuzzParseApkInstalled(f *testing.F) {
	f.Add([]byte("P:musl\nV:1\nA:x86_64\n\nP:x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, _ := ParseApkInstalled("f", b)
		for _, p := range ps {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("a package without name or version: %+v", p)
			}
		}
	})
}
