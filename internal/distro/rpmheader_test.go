package distro

import (
	"database/sql"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rpmSqlite is an rpmdb.sqlite (rpm 4.16's layout: table Packages, one
// header blob per row) holding the given blobs.
func rpmSqlite(t testing.TB, blobs ...[]byte) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rpmdb.sqlite")
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if _, err := db.Exec("INSERT INTO Packages (blob) VALUES (?)", b); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// header is a header blob's counts followed by pad bytes.
func header(il, dl uint32, pad int) []byte {
	b := make([]byte, 8+pad)
	binary.BigEndian.PutUint32(b[0:], il)
	binary.BigEndian.PutUint32(b[4:], dl)
	return b
}

// A crafted header whose counts are past rpm's limits is a note naming
// the database, not the end of the process (go-rpmdb allocated 32 GiB for
// an index count of 0x7fffffff: a fatal error recover cannot catch).
func TestCraftedRpmHeaderRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		blob []byte
		want string
	}{
		{"index count 0x7fffffff", header(0x7fffffff, 16, 64), "index count 0x7fffffff is outside rpm's 1..0xffff"},
		{"data length past the limit", header(1, 0x7fffffff, 64), "data length 0x7fffffff is past rpm's 0xfffffff"},
		{"counts past the blob", header(4000, 16, 64), "index count 4000 and data length 16 need 64024 bytes, the header has 72"},
		{"no counts", []byte{0, 0, 1}, "3 bytes, shorter than a header's counts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := rpmSqlite(t, tc.blob)
			ps, notes := ParseRpmdb("/var/lib/rpm/rpmdb.sqlite", db, nil)
			if len(ps) != 0 || len(notes) != 1 || !strings.Contains(notes[0], "/var/lib/rpm/rpmdb.sqlite: not a readable rpm database: package header 1: "+tc.want) {
				t.Errorf("ParseRpmdb = %v, %q; want a note saying %q", ps, notes, tc.want)
			}
		})
	}
}
