package distro

import (
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

const rockyRelease = "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n"

// rpmRoot makes a real rpm database with rpmbuild and rpm and returns its
// files, as layer contents, under prefix.
func rpmRoot(t *testing.T, prefix string, pkgs ...testutil.RPM) map[string]string {
	files := map[string]string{}
	for f, b := range testutil.RpmDB(t, pkgs...) {
		files[prefix+strings.TrimPrefix(f, "var/lib/rpm/")] = b
	}
	return files
}

// An rpm database made by the real rpm (sqlite, rpm 4.16+) is read with
// go-rpmdb: names, VERSION-RELEASE, arch, source package, license; the
// arch check counts x86_64 and ignores noarch.
func TestRpmDatabase(t *testing.T) {
	t.Parallel()
	files := rpmRoot(t, "var/lib/rpm/",
		testutil.RPM{Name: "openssl-libs", Version: "3.0.7", Release: "24.el9", Arch: "x86_64", License: "ASL 2.0"},
		testutil.RPM{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "x86_64", License: "GPLv3+"},
		testutil.RPM{Name: "tzdata", Version: "2023c", Release: "1.el9", Arch: "noarch", License: "Public Domain"})
	files["etc/os-release"] = rockyRelease
	info := collect(t, files)
	if info.Format != Rpm || len(info.Packages) != 3 {
		t.Fatalf("format %q, packages %+v, notes %q", info.Format, info.Packages, info.Notes)
	}
	if p := info.Packages[1]; p != (Package{Name: "openssl-libs", Version: "3.0.7-24.el9", Arch: "x86_64", Source: "openssl-libs", License: "ASL 2.0"}) {
		t.Errorf("openssl-libs = %+v", p)
	}
	if a, others := info.Arch(); a != "amd64" || len(others) != 0 {
		t.Errorf("arch %q, others %v", a, others)
	}
	if info.OS == nil || info.OS.ID != "rocky" || len(info.Notes) != 0 {
		t.Errorf("os %+v, notes %q", info.OS, info.Notes)
	}

	// Fedora 36+ and openSUSE: the database in /usr/lib/sysimage/rpm,
	// /var/lib/rpm a symlink to it
	moved := rpmRoot(t, "usr/lib/sysimage/rpm/", testutil.RPM{Name: "glibc", Version: "2.38", Release: "7.fc39", Arch: "aarch64"})
	moved["var/lib/rpm"] = "-> ../../usr/lib/sysimage/rpm"
	info = collect(t, moved)
	if info.Format != Rpm || len(info.Packages) != 1 || info.Packages[0].Version != "2.38-7.fc39" {
		t.Errorf("sysimage database: %+v %q", info.Packages, info.Notes)
	}
	if a, _ := info.Arch(); a != "arm64" {
		t.Errorf("an aarch64 database reads as %q", a)
	}

	// garbage where the database should be: a note naming it, no packages
	info = collect(t, map[string]string{"var/lib/rpm/rpmdb.sqlite": "not a database", "etc/os-release": rockyRelease})
	if info.Format != Rpm || len(info.Packages) != 0 || len(info.Notes) != 1 || !strings.Contains(info.Notes[0], "/var/lib/rpm/rpmdb.sqlite: not a readable rpm database") {
		t.Errorf("a corrupt database: %+v %q", info.Packages, info.Notes)
	}
}

func TestSrpmName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"openssl-3.0.7-24.el9.src.rpm": "openssl", "python3.11-3.11.5-1.el9_3.src.rpm": "python3.11",
		"gcc-toolset-12-12.0-5.el9.src.rpm": "gcc-toolset-12", "": "", "x.src.rpm": "",
	} {
		if got := srpmName(in); got != want {
			t.Errorf("srpmName(%q) = %q, want %q", in, got, want)
		}
	}
}

// The rpm readers parse what a base holds: hostile bytes are a note,
// never a crash or a hang.
func FuzzParseRpmdb(f *testing.F) {
	f.Add("rpmdb.sqlite", []byte("SQLite format 3\x00"))
	f.Add("Packages", []byte{0, 0, 0, 0, 0x61, 0x15, 0x06, 0})
	f.Add("Packages.db", []byte("RpmP\x00\x00\x00\x00"))
	f.Add("rpmdb.sqlite", rpmSqlite(f, header(0x7fffffff, 16, 64)))
	f.Add("rpmdb.sqlite", rpmSqlite(f, header(2, 8, 40)))
	f.Fuzz(func(t *testing.T, kind string, b []byte) {
		name := map[int]string{0: "rpmdb.sqlite", 1: "Packages", 2: "Packages.db"}[len(kind)%3]
		ps, notes := ParseRpmdb("/var/lib/rpm/"+name, b, nil)
		if len(ps) > 0 && len(notes) > 0 {
			t.Errorf("packages and a note for one database")
		}
	})
}
