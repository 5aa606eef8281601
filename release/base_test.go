package release

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/distro"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// osRelease files of the bases in the tests.
const (
	wheezy   = "PRETTY_NAME=\"Debian GNU/Linux 7 (wheezy)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"7\"\nVERSION=\"7 (wheezy)\"\nID=debian\n"
	bookworm = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n"
	trixie   = "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\nID=debian\n"
	alpine   = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=%s\nPRETTY_NAME=\"Alpine Linux v3.19\"\n"
)

// dpkgStatus is a dpkg status file of installed packages, each "NAME
// VERSION" (or "NAME VERSION SOURCE"), for arch.
func dpkgStatus(arch string, pkgs ...string) string {
	var b strings.Builder
	for _, p := range pkgs {
		f := strings.Fields(p)
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nPriority: optional\nArchitecture: %s\nVersion: %s\n", f[0], arch, f[1])
		if len(f) > 2 {
			fmt.Fprintf(&b, "Source: %s\n", f[2])
		}
		b.WriteString("Description: a package\n a longer description\n\n")
	}
	return b.String()
}

// apkInstalled is an apk database of packages "NAME VERSION", for arch.
func apkInstalled(arch string, pkgs ...string) string {
	var b strings.Builder
	for _, p := range pkgs {
		f := strings.Fields(p)
		fmt.Fprintf(&b, "C:Q1abc=\nP:%s\nV:%s\nA:%s\nS:1000\nI:2000\nT:a package\nL:MIT\n\n", f[0], f[1], arch)
	}
	return b.String()
}

// pipe feeds files to a base reader as one tar layer and returns what a
// manifest records of the base.
func readBase(t *testing.T, ref string, files map[string]string) manifest.Base {
	t.Helper()
	c := distro.NewCollector()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := c.Add(&tar.Header{Name: n, Typeflag: tar.TypeReg, Size: int64(len(files[n])), Mode: 0o644}, strings.NewReader(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	info := c.Info()
	b := manifest.Base{Ref: ref, OS: info.OS}
	if info.Format != "" {
		b.Packages = &manifest.Packages{Format: info.Format, Count: len(info.Packages), Digest: distro.PackagesDigest(info.Packages), List: info.Packages}
	}
	return b
}

func debian(t *testing.T, ref, osr string, pkgs ...string) manifest.Base {
	return readBase(t, ref, map[string]string{"etc/os-release": osr, "var/lib/dpkg/status": dpkgStatus("amd64", pkgs...)})
}

func withBase(b manifest.Base) *manifest.Manifest {
	m := base()
	m.Images[0].Base = b
	return m
}

// TestBaseRules judges base changes by what is inside the bases, read
// from os-release and package databases as a bake reads them.
func TestBaseRules(t *testing.T) {
	t.Parallel()
	sec := []string{"CVE-2014-0160"}
	pkgs12 := []string{"libc6 2.36-9+deb12u4 glibc", "curl 7.88.1-10+deb12u5", "python3 3.11.2-1+b1", "openssl 3.0.11-1~deb12u1"}
	tests := []struct {
		name       string
		prev, cand manifest.Base
		rules      Rules
		level      Level
		next       string
		reasons    []string // each in some change's "WHAT: REASON"
	}{
		{"heartbleed", debian(t, "rootfs:wheezy@sha256:1", wheezy, "openssl 1.0.1e-2+deb7u4", "libssl1.0.0 1.0.1e-2+deb7u4 openssl"),
			debian(t, "rootfs:wheezy@sha256:2", wheezy, "openssl 1.0.1e-2+deb7u5", "libssl1.0.0 1.0.1e-2+deb7u5 openssl"),
			Rules{Advisories: sec}, Security, "1.4.3",
			[]string{"package openssl: 1.0.1e-2+deb7u4 -> 1.0.1e-2+deb7u5: same upstream version, patched", "package libssl1.0.0: 1.0.1e-2+deb7u4 -> 1.0.1e-2+deb7u5: same upstream version, patched"}},
		{"heartbleed without an advisory is proposed as MINOR", debian(t, "rootfs:wheezy@sha256:1", wheezy, "openssl 1.0.1e-2+deb7u4"),
			debian(t, "rootfs:wheezy@sha256:2", wheezy, "openssl 1.0.1e-2+deb7u5"),
			Rules{}, Minor, "1.5.0", []string{"same upstream version, patched"}},
		{"python 3.11 -> 3.12", debian(t, "rootfs:a@sha256:1", bookworm, pkgs12...),
			debian(t, "rootfs:a@sha256:2", bookworm, "libc6 2.36-9+deb12u4 glibc", "curl 7.88.1-10+deb12u5", "python3 3.12.1-1", "openssl 3.0.11-1~deb12u1"),
			Rules{}, Major, "2.0.0", []string{"package python3: 3.11.2-1+b1 -> 3.12.1-1: major package, 3.11 -> 3.12"}},
		{"debian 12 -> 13", debian(t, "rootfs:a@sha256:1", bookworm, pkgs12...), debian(t, "rootfs:a@sha256:2", trixie, pkgs12...),
			Rules{}, Major, "2.0.0", []string{"base OS: debian 12 (bookworm) -> debian 13 (trixie): another OS release"}},
		{"a package added", debian(t, "rootfs:a@sha256:1", bookworm, pkgs12...), debian(t, "rootfs:a@sha256:2", bookworm, append(pkgs12, "jq 1.6-2.1")...),
			Rules{}, Minor, "1.5.0", []string{"package jq: 1.6-2.1 added"}},
		{"a package removed", debian(t, "rootfs:a@sha256:1", bookworm, pkgs12...), debian(t, "rootfs:a@sha256:2", bookworm, pkgs12[:3]...),
			Rules{Advisories: sec}, Major, "2.0.0", []string{"package openssl: 3.0.11-1~deb12u1 removed"}},
		{"a new upstream version of a package that is not major", debian(t, "rootfs:a@sha256:1", bookworm, pkgs12...),
			debian(t, "rootfs:a@sha256:2", bookworm, "libc6 2.36-9+deb12u4 glibc", "curl 8.5.0-2", "python3 3.11.2-1+b1", "openssl 3.0.11-1~deb12u1"),
			Rules{}, Minor, "1.5.0", []string{"package curl: 7.88.1-10+deb12u5 -> 8.5.0-2: new upstream version"}},
		{"the same line of a major package", debian(t, "rootfs:a@sha256:1", bookworm, pkgs12...),
			debian(t, "rootfs:a@sha256:2", bookworm, "libc6 2.36-9+deb12u4 glibc", "curl 7.88.1-10+deb12u5", "python3 3.11.9-1", "openssl 3.0.11-1~deb12u1"),
			Rules{}, Minor, "1.5.0", []string{"3.11.2-1+b1 -> 3.11.9-1: new upstream version"}},
		{"major by source package", debian(t, "rootfs:a@sha256:1", bookworm, pkgs12...),
			debian(t, "rootfs:a@sha256:2", bookworm, "libc6 2.41-6 glibc", "curl 7.88.1-10+deb12u5", "python3 3.11.2-1+b1", "openssl 3.0.11-1~deb12u1"),
			Rules{}, Major, "2.0.0", []string{"package libc6: 2.36-9+deb12u4 -> 2.41-6: major package, 2.36 -> 2.41"}},
		{"major_packages configured", debian(t, "rootfs:a@sha256:1", bookworm, pkgs12...),
			debian(t, "rootfs:a@sha256:2", bookworm, "libc6 2.36-9+deb12u4 glibc", "curl 8.5.0-2", "python3 3.12.1-1", "openssl 3.0.11-1~deb12u1"),
			Rules{MajorPackages: []string{"cu*"}}, Major, "2.0.0", []string{"curl: 7.88.1-10+deb12u5 -> 8.5.0-2: major package, 7.88 -> 8.5", "python3: 3.11.2-1+b1 -> 3.12.1-1: new upstream version"}},
		{"the same packages, other files", debian(t, "rootfs:a@sha256:1", bookworm, pkgs12...), debian(t, "rootfs:a@sha256:2", bookworm, pkgs12...),
			Rules{Advisories: sec}, Minor, "1.5.0", []string{"same OS and packages, other files differ"}},
		{"alpine -rN", readBase(t, "rootfs:alp@sha256:1", map[string]string{"etc/os-release": fmt.Sprintf(alpine, "3.19.1"), "lib/apk/db/installed": apkInstalled("x86_64", "musl 1.2.4_git20230717-r4", "libssl3 3.1.4-r1")}),
			readBase(t, "rootfs:alp@sha256:2", map[string]string{"etc/os-release": fmt.Sprintf(alpine, "3.19.1"), "lib/apk/db/installed": apkInstalled("x86_64", "musl 1.2.4_git20230717-r4", "libssl3 3.1.4-r2")}),
			Rules{Advisories: []string{"CVE-2023-6129"}}, Security, "1.4.3", []string{"package libssl3: 3.1.4-r1 -> 3.1.4-r2: same upstream version, patched"}},
		{"alpine point release", readBase(t, "rootfs:alp@sha256:1", map[string]string{"etc/os-release": fmt.Sprintf(alpine, "3.19.0"), "lib/apk/db/installed": apkInstalled("x86_64", "musl 1.2.4_git20230717-r4")}),
			readBase(t, "rootfs:alp@sha256:2", map[string]string{"etc/os-release": fmt.Sprintf(alpine, "3.19.1"), "lib/apk/db/installed": apkInstalled("x86_64", "musl 1.2.4_git20230717-r4")}),
			Rules{}, Minor, "1.5.0", []string{"base OS: alpine 3.19.0 -> alpine 3.19.1: point release"}},
		{"alpine 3.19 -> 3.20", readBase(t, "rootfs:alp@sha256:1", map[string]string{"etc/os-release": fmt.Sprintf(alpine, "3.19.1"), "lib/apk/db/installed": apkInstalled("x86_64", "musl 1.2.4_git20230717-r4")}),
			readBase(t, "rootfs:alp@sha256:2", map[string]string{"etc/os-release": fmt.Sprintf(alpine, "3.20.0"), "lib/apk/db/installed": apkInstalled("x86_64", "musl 1.2.5-r0")}),
			Rules{}, Major, "2.0.0", []string{"alpine 3.19.1 -> alpine 3.20.0: another OS release", "musl: 1.2.4_git20230717-r4 -> 1.2.5-r0: new upstream version"}},
		{"a base without a package database", readBase(t, "rootfs:b@sha256:1", map[string]string{"etc/os-release": bookworm}), readBase(t, "rootfs:b@sha256:2", map[string]string{"etc/os-release": bookworm}),
			Rules{}, Major, "2.0.0", []string{"neither has a package database imagebake reads"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Propose(withBase(tt.prev), withBase(tt.cand), tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			if p.Level != tt.level.String() || p.Next != tt.next {
				t.Errorf("Propose = %s %s, want %s %s (%+v)", p.Level, p.Next, tt.level, tt.next, p.Changes)
			}
			var got []string
			for _, c := range p.Changes {
				got = append(got, c.What+": "+c.Reason)
			}
			for _, want := range tt.reasons {
				if !strings.Contains(strings.Join(got, "\n"), want) {
					t.Errorf("changes\n  %s\nlack %q", strings.Join(got, "\n  "), want)
				}
			}
			if err := Check(withBase(tt.prev), withBase(tt.cand), tt.next, tt.rules); err != nil {
				t.Errorf("Check(%s) = %v", tt.next, err)
			}
		})
	}
}

// TestSecurityReleaseRefusals: a security release is declared, carries
// only security fixes, and a MINOR number never hides an OS change.
func TestSecurityReleaseRefusals(t *testing.T) {
	t.Parallel()
	prev := withBase(debian(t, "rootfs:a@sha256:1", bookworm, "openssl 3.0.11-1~deb12u1", "curl 7.88.1-10+deb12u5"))
	patched := withBase(debian(t, "rootfs:a@sha256:2", bookworm, "openssl 3.0.11-1~deb12u2", "curl 7.88.1-10+deb12u5"))
	sec := Rules{Advisories: []string{"CVE-2023-5678", "DSA-5532-1"}}

	err := Check(prev, patched, "1.4.3", Rules{})
	if !errors.Is(err, ErrNumber) || !strings.Contains(err.Error(), "no advisory declares it") || !strings.Contains(err.Error(), "--advisory") || !strings.Contains(err.Error(), "1.5.0 (MINOR)") {
		t.Errorf("a SECURITY number without an advisory = %v", err)
	}
	if err := Check(prev, patched, "1.5.0", Rules{}); err != nil {
		t.Errorf("the same changes as MINOR = %v", err)
	}
	p, _ := Propose(prev, patched, Rules{})
	if p.Next != "1.5.0" || !strings.Contains(p.Note, "--advisory") {
		t.Errorf("plan without an advisory = %s, note %q; want 1.5.0 and how to declare a security release", p.Next, p.Note)
	}

	// a declared security release that also adds a package and moves curl
	more := withBase(debian(t, "rootfs:a@sha256:3", bookworm, "openssl 3.0.11-1~deb12u2", "curl 8.5.0-2", "jq 1.6-2.1"))
	err = Check(prev, more, "1.4.3", sec)
	for _, want := range []string{"1.4.3 is a SECURITY release after 1.4.2 (CVE-2023-5678, DSA-5532-1)", "package jq: 1.6-2.1 added (MINOR)",
		"package curl: 7.88.1-10+deb12u5 -> 8.5.0-2: new upstream version; no declared advisory says it fixes curl: if one does, say so (--advisory CVE-2023-5678=curl"} {
		if !errors.Is(err, ErrNumber) || !strings.Contains(err.Error(), want) {
			t.Errorf("a security release with more = %v\nwant %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "openssl") {
		t.Errorf("the security fix itself is named as breaking: %v", err)
	}

	// an OS change under MINOR
	next := withBase(debian(t, "rootfs:a@sha256:4", trixie, "openssl 3.0.11-1~deb12u1", "curl 7.88.1-10+deb12u5"))
	if err := Check(prev, next, "1.5.0", Rules{}); !errors.Is(err, ErrNumber) || !strings.Contains(err.Error(), "debian 12 (bookworm) -> debian 13 (trixie)") {
		t.Errorf("an OS change under MINOR = %v, want both OS named", err)
	}

	for _, bad := range [][]string{{"heartbleed"}, {"CVE-2014-0160", "CVE-2014-0160"}, {""}} {
		if err := Check(prev, patched, "1.4.3", Rules{Advisories: bad}); err == nil || !strings.Contains(err.Error(), "--advisory") {
			t.Errorf("advisories %q = %v, want a usage error", bad, err)
		}
	}
}

// TestPackageChangesByArch names the arch of a change on some arches only.
func TestPackageChangesByArch(t *testing.T) {
	t.Parallel()
	prev, cand := base(), base()
	a := debian(t, "rootfs:a@sha256:1", bookworm, "openssl 3.0.11-1~deb12u1")
	b := debian(t, "rootfs:a@sha256:2", bookworm, "openssl 3.0.11-1~deb12u2")
	arm := readBase(t, "rootfs:arm@sha256:1", map[string]string{"etc/os-release": bookworm, "var/lib/dpkg/status": dpkgStatus("arm64", "openssl 3.0.11-1~deb12u1")})
	arm2 := readBase(t, "rootfs:arm@sha256:2", map[string]string{"etc/os-release": bookworm, "var/lib/dpkg/status": dpkgStatus("arm64", "openssl 3.0.11-1~deb12u2", "jq 1.6-2.1")})
	prev.Images = []manifest.Image{{Arch: "amd64", Base: a}, {Arch: "arm64", Base: arm}}
	cand.Images = []manifest.Image{{Arch: "amd64", Base: b}, {Arch: "arm64", Base: arm2}}
	var got []string
	for _, c := range Compare(prev, cand, Rules{}) {
		got = append(got, c.What)
	}
	if strings.Join(got, "|") != "package jq on arm64|package openssl" {
		t.Errorf("changes = %q, want jq on arm64 only and openssl on both", got)
	}
	// dpkg multiarch: one name for two arches is named with its arch
	multi := func(v string) string { return dpkgStatus("amd64", "libc6 2.36-9") + dpkgStatus("i386", "libc6 "+v) }
	m1 := readBase(t, "rootfs:m@sha256:1", map[string]string{"etc/os-release": bookworm, "var/lib/dpkg/status": multi("2.36-9")})
	m2 := readBase(t, "rootfs:m@sha256:2", map[string]string{"etc/os-release": bookworm, "var/lib/dpkg/status": multi("2.36-9+deb12u1")})
	ch := Compare(withBase(m1), withBase(m2), Rules{})
	if len(ch) != 1 || ch[0].What != "package libc6:i386" || ch[0].Level != Security {
		t.Errorf("multiarch changes = %+v", ch)
	}
}

// The release guide (docs/releases.md) lists the default major packages as the code has them.
func TestDefaultMajorPackagesDocumented(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/releases.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(string(b)), " ")
	if want := "The default: `" + strings.Join(DefaultMajorPackages, " ") + "`"; !strings.Contains(readme, want) {
		t.Errorf("docs/releases.md does not say %q", want)
	}
}

// rpmBase reads a base whose rpm database the real rpm wrote.
func rpmBase(t *testing.T, ref string, pkgs ...testutil.RPM) manifest.Base {
	files := testutil.RpmDB(t, pkgs...)
	files["etc/os-release"] = "ID=\"rocky\"\nVERSION_ID=\"9.3\"\n"
	return readBase(t, ref, files)
}

// The rules on an rpm base: a new release of the same upstream version is
// security-eligible, a new upstream version of a major package's line MAJOR.
func TestRpmBaseRules(t *testing.T) {
	t.Parallel()
	ssl := func(v, r string) testutil.RPM {
		return testutil.RPM{Name: "openssl", Version: v, Release: r, Arch: "x86_64"}
	}
	bash := testutil.RPM{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "x86_64"}
	prev := withBase(rpmBase(t, "rootfs:r@sha256:1", ssl("3.0.7", "24.el9"), bash))
	patched := withBase(rpmBase(t, "rootfs:r@sha256:2", ssl("3.0.7", "25.el9"), bash))
	p, err := Propose(prev, patched, Rules{Advisories: []string{"RHSA-2024:1234"}})
	if err != nil || p.Next != "1.4.3" || len(p.Changes) != 1 || p.Changes[0].Reason != "3.0.7-24.el9 -> 3.0.7-25.el9: same upstream version, patched" {
		t.Errorf("a patched rpm = %+v, %v", p, err)
	}
	moved := withBase(rpmBase(t, "rootfs:r@sha256:3", ssl("3.2.2", "1.el9"), bash))
	if p, _ := Propose(prev, moved, Rules{}); p.Next != "2.0.0" || !strings.Contains(p.Changes[0].Reason, "major package, 3.0 -> 3.2") {
		t.Errorf("openssl 3.0 -> 3.2 = %+v", p)
	}
}

// Debian's point release (/etc/debian_version, recorded from defaults 4)
// names the SBOM's distro, and changes no release level: two bases with
// the same packages are judged alike with 12.14 and 12.15 recorded or not.
func TestDebianPointReleaseChangesNoLevel(t *testing.T) {
	t.Parallel()
	pkgs := []string{"libc6 2.36-9+deb12u4 glibc"}
	p := debian(t, "rootfs:a@sha256:1", bookworm, pkgs...)
	c := debian(t, "rootfs:a@sha256:2", bookworm, pkgs...)
	without := Compare(withBase(p), withBase(c), Rules{})
	pp, cp := *p.OS, *c.OS
	pp.PointRelease, cp.PointRelease = "12.14", "12.15"
	p.OS, c.OS = &pp, &cp
	with := Compare(withBase(p), withBase(c), Rules{})
	if len(with) != len(without) || Needed(with) != Needed(without) || Needed(with) > Minor {
		t.Errorf("with point releases %v (%+v); without %v (%+v): want the same, at most MINOR (other files differ)", Needed(with), with, Needed(without), without)
	}
}
