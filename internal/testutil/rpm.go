package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RPM is a package for RpmDB: NAME VERSION-RELEASE ARCH, with an optional
// source rpm name and license.
type RPM struct {
	Name, Version, Release, Arch, License string
}

const rpmSpec = `Name: %{pname}
Version: %{pver}
Release: %{prel}
Summary: a package for imagebake's tests
License: %{plic}
%{?pnoarch:BuildArch: noarch}
%description
a package for imagebake's tests
%files
`

// RpmDB builds each package with the real rpmbuild (empty payloads) and
// registers it with the real rpm in root's rpm database
// (root/var/lib/rpm/rpmdb.sqlite, rpm 4.16+'s sqlite format), as a Fedora
// or RHEL 9 base has it. It returns the database's files, by path relative
// to the root, with their contents: what a base layer would carry.
func RpmDB(t testing.TB, pkgs ...RPM) map[string]string {
	t.Helper()
	work, root := t.TempDir(), t.TempDir()
	spec := filepath.Join(work, "p.spec")
	if err := os.WriteFile(spec, []byte(rpmSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	Run(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "--initdb")
	var files []string
	for _, p := range pkgs {
		lic := p.License
		if lic == "" {
			lic = "MIT"
		}
		args := []string{"--quiet", "--define", "_topdir " + filepath.Join(work, "top"),
			"--define", "pname " + p.Name, "--define", "pver " + p.Version, "--define", "prel " + p.Release, "--define", "plic " + lic}
		if p.Arch == "noarch" {
			args = append(args, "--define", "pnoarch 1")
		} else {
			args = append(args, "--target", p.Arch) // built for any arch on any machine: the payload is empty
		}
		Run(t, "rpmbuild", append(args, "-bb", spec)...)
		files = append(files, filepath.Join(work, "top", "RPMS", p.Arch, fmt.Sprintf("%s-%s-%s.%s.rpm", p.Name, p.Version, p.Release, p.Arch)))
	}
	if len(files) > 0 {
		Run(t, "rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm", "-i", "--justdb", "--nodeps", "--ignorearch", "--ignoreos", "--nosignature"}, files...)...)
	}
	// what a base image carries: the database checkpointed, no lock
	os.Remove(filepath.Join(root, "var", "lib", "rpm", ".rpm.lock"))
	out := map[string]string{}
	entries, _ := os.ReadDir(filepath.Join(root, "var", "lib", "rpm"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), "-shm") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, "var", "lib", "rpm", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out["var/lib/rpm/"+e.Name()] = string(b)
	}
	return out
}
