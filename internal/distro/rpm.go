package distro

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	// the pure-Go sqlite driver go-rpmdb reads rpmdb.sqlite with
	_ "github.com/glebarez/go-sqlite"
	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
	"github.com/knqyf263/go-rpmdb/pkg/bdb"
	dbi "github.com/knqyf263/go-rpmdb/pkg/db"
	"github.com/knqyf263/go-rpmdb/pkg/ndb"
	"github.com/knqyf263/go-rpmdb/pkg/sqlite3"
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
	if err := checkRpmHeaders(p); err != nil {
		return nil, note(err)
	}
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

// rpm's own bounds on a header (lib/header_internal.h): the most index
// entries and data bytes one header may have.
const (
	headerTagsMax = 0x0000ffff
	headerDataMax = 0x0fffffff
)

// checkRpmHeaders reads every header blob of the database at p, with the
// backend go-rpmdb would pick, and refuses one whose index count or data
// length is past rpm's limits or past the blob itself. go-rpmdb allocates
// the index before it checks either: a count of 0x7fffffff asks for 32
// GiB and the runtime ends the process (recover cannot catch that).
func checkRpmHeaders(p string) error {
	var db dbi.RpmDBInterface
	if sq, err := sqlite3.Open(p); err == nil {
		db = sq
	} else if !errors.Is(err, sqlite3.ErrorInvalidSQLite3) {
		return err
	} else if nd, err := ndb.Open(p); err == nil {
		db = nd
	} else if !errors.Is(err, ndb.ErrorInvalidNDB) {
		return err
	} else if bd, err := bdb.Open(p); err == nil {
		db = bd
	} else {
		return err
	}
	defer db.Close()
	var first error
	n := 0
	for e := range db.Read() { // read to the end: the reader's goroutine ends with it
		n++
		if first != nil {
			continue
		}
		if e.Err != nil {
			first = e.Err
			continue
		}
		if err := checkHeaderBlob(e.Value); err != nil {
			first = fmt.Errorf("package header %d: %w", n, err)
		}
	}
	return first
}

// checkHeaderBlob checks a header blob's counts: il index entries of 16
// bytes and dl data bytes after the 8 bytes that give them.
func checkHeaderBlob(b []byte) error {
	if len(b) < 8 {
		return fmt.Errorf("%d bytes, shorter than a header's counts", len(b))
	}
	il, dl := binary.BigEndian.Uint32(b[0:4]), binary.BigEndian.Uint32(b[4:8])
	switch {
	case il < 1 || il > headerTagsMax:
		return fmt.Errorf("index count %#x is outside rpm's 1..%#x", il, headerTagsMax)
	case dl > headerDataMax:
		return fmt.Errorf("data length %#x is past rpm's %#x", dl, headerDataMax)
	case 8+16*int64(il)+int64(dl) > int64(len(b)):
		return fmt.Errorf("index count %d and data length %d need %d bytes, the header has %d", il, dl, 8+16*int64(il)+int64(dl), len(b))
	}
	return nil
}
