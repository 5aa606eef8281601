package distro

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	// the pure-Go sqlite driver go-rpmdb reads rpmdb.sqlite with
	_ "github.com/glebarez/go-sqlite"
	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
)

// Rpm is the rpm database format.
const Rpm = "rpm"

// rpmFiles are where rpm keeps its database, newest layout first: sqlite
// (rpm 4.16+: Fedora 33+, RHEL 9), ndb (SUSE), Berkeley DB (RHEL 7, 8).
// /usr/lib/sysimage/rpm is where Fedora 36+ and openSUSE keep it
// (/var/lib/rpm links there).
var rpmFiles = []string{
	"usr/lib/sysimage/rpm/rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite",
	"usr/lib/sysimage/rpm/Packages.db", "var/lib/rpm/Packages.db",
	"usr/lib/sysimage/rpm/Packages", "var/lib/rpm/Packages",
}

func rpmFile(p string) bool {
	for _, f := range rpmFiles {
		if p == f || p == f+"-wal" && strings.HasSuffix(f, ".sqlite") {
			return true
		}
	}
	return false
}

// ParseRpmdb reads an rpm database (sqlite, ndb or Berkeley DB, told by
// its name: rpmdb.sqlite, Packages.db, Packages) with go-rpmdb. wal is a
// sqlite database's write-ahead log, or nil. The bytes are written to a
// private temporary directory, since the readers open files; nothing of
// the base is run. A database that cannot be read is a note naming it.
func ParseRpmdb(name string, db, wal []byte) (ps []Package, notes []string) {
	note := func(err error) []string {
		return []string{fmt.Sprintf("%s: not a readable rpm database: %v", name, err)}
	}
	dir, err := os.MkdirTemp("", "imagebake-rpmdb-")
	if err != nil {
		return nil, note(err)
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, path.Base(name))
	if err := os.WriteFile(p, db, 0o600); err != nil {
		return nil, note(err)
	}
	if len(wal) > 0 {
		if err := os.WriteFile(p+"-wal", wal, 0o600); err != nil {
			return nil, note(err)
		}
	}
	defer func() {
		// the readers parse hostile bytes: a panic in them is a note, not a crash
		if r := recover(); r != nil {
			ps, notes = nil, note(fmt.Errorf("the reader failed: %v", r))
		}
	}()
	d, err := rpmdb.Open(p)
	if err != nil {
		return nil, note(err)
	}
	defer d.Close()
	list, err := d.ListPackages()
	if err != nil {
		return nil, note(err)
	}
	for _, x := range list {
		if x.Name == "gpg-pubkey" { // imported signing keys, not packages
			continue
		}
		v := x.Version
		if x.Release != "" {
			v += "-" + x.Release
		}
		if x.EpochNum() > 0 {
			v = fmt.Sprintf("%d:%s", x.EpochNum(), v)
		}
		ps = append(ps, Package{Name: x.Name, Version: v, Arch: x.Arch, Source: srpmName(x.SourceRpm), License: x.License})
	}
	return ps, nil
}

// srpmName is the package name of a source rpm file name
// (openssl-3.0.7-24.el9.src.rpm: openssl).
func srpmName(s string) string {
	s = strings.TrimSuffix(strings.TrimSuffix(s, ".rpm"), ".src")
	for range 2 { // drop -RELEASE, then -VERSION
		i := strings.LastIndex(s, "-")
		if i <= 0 {
			return ""
		}
		s = s[:i]
	}
	return s
}
