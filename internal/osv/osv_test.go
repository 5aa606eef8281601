package osv

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/distro"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/pkgversion"
	"github.com/imagebake/imagebake/internal/testutil"
)

func TestEcosystems(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		os   distro.OS
		want string
	}{
		{distro.OS{ID: "debian", VersionID: "12"}, "Debian:12"},
		{distro.OS{ID: "alpine", VersionID: "3.19.1"}, "Alpine:v3.19"},
		{distro.OS{ID: "rocky", VersionID: "9.3"}, "Rocky Linux:9"},
		{distro.OS{ID: "ubuntu", VersionID: "22.04"}, "Ubuntu:22.04"},
		{distro.OS{ID: "debian", Codename: "trixie"}, ""}, // testing: no VERSION_ID
		{distro.OS{ID: "plan9", VersionID: "4"}, ""},
	} {
		if got := EcosystemOf(&c.os); got != c.want {
			t.Errorf("EcosystemOf(%v) = %q, want %q", c.os, got, c.want)
		}
	}
}

// Records in the format osv.dev publishes: a Debian DSA naming the source
// package, an Alpine record naming the origin, a Rocky record with an
// epoch; other ecosystems and GIT ranges are skipped and counted.
func TestAffecting(t *testing.T) {
	t.Parallel()
	db, err := Load([]string{"testdata"})
	if err != nil {
		t.Fatal(err)
	}
	if len(db.Notes) != 0 || db.Records != 4 || db.Files != 4 {
		t.Fatalf("read %d records of %d files, notes %v; want 4 and 4, none", db.Records, db.Files, db.Notes)
	}
	if db.Skipped != 2 { // the Go package, the GIT range
		t.Errorf("skipped %d, want 2 (the Go ecosystem, the GIT range)", db.Skipped)
	}
	for _, c := range []struct {
		eco   string
		p     distro.Package
		want  string // "ID fixed", or "" for none
		label string
	}{
		{"Debian:12", distro.Package{Name: "libssl3", Version: "3.0.11-1~deb12u1", Source: "openssl"}, "DSA-9999-1 3.0.11-1~deb12u3", "a binary package by its source"},
		{"Debian:12", distro.Package{Name: "openssl", Version: "3.0.11-1~deb12u2"}, "DSA-9999-1 3.0.11-1~deb12u3", "listed in versions and in the range"},
		{"Debian:12", distro.Package{Name: "openssl", Version: "3.0.11-1~deb12u3"}, "", "the fixed version"},
		{"Debian:12", distro.Package{Name: "openssl", Version: "3.0.11-1~deb12u10"}, "", "newer than fixed (not by string order)"},
		{"Debian:12", distro.Package{Name: "openssl", Version: "1:1.0-1"}, "", "an epoch beats it"},
		{"Debian:11", distro.Package{Name: "openssl", Version: "1.1.1w-0+deb11u1"}, "DSA-9999-1 1.1.1w-0+deb11u2", "another release's entry"},
		{"Debian:13", distro.Package{Name: "openssl", Version: "3.0.11-1~deb12u1"}, "", "another ecosystem"},
		{"Alpine:v3.19", distro.Package{Name: "libssl3", Version: "3.1.4-r9", Source: "openssl"}, "ALPINE-CVE-2026-9998 3.1.4-r10", "apk -r9 < -r10"},
		{"Alpine:v3.19", distro.Package{Name: "libssl3", Version: "3.1.4-r10", Source: "openssl"}, "", "apk fixed"},
		{"Rocky Linux:9", distro.Package{Name: "openssl", Version: "1:3.0.7-24.el9"}, "RLSA-2026:9997 1:3.0.7-25.el9_3", "rpm with epochs"},
		{"Rocky Linux:9", distro.Package{Name: "openssl", Version: "3.0.8-1.el9"}, "RLSA-2026:9997 1:3.0.7-25.el9_3", "no epoch is epoch 0, older"},
		{"Debian:12", distro.Package{Name: "curl", Version: "7.88.1-10+deb12u5"}, "", "a GIT range is not judged"},
	} {
		hits := db.Affecting(c.eco, c.p)
		got := ""
		if len(hits) > 0 {
			got = hits[0].ID + " " + hits[0].Fixed
		}
		if len(hits) > 1 || got != c.want {
			t.Errorf("%s (%s %s %s): %v; want %q", c.label, c.eco, c.p.Name, c.p.Version, hits, c.want)
		}
	}
	if h := db.Affecting("Alpine:v3.19", distro.Package{Name: "libssl3", Version: "3.1.4-r9", Source: "openssl"}); len(h) != 1 || strings.Join(h[0].Aliases, ",") != "CVE-2026-9998" {
		t.Errorf("aliases = %v, want CVE-2026-9998", h)
	}
}

// Bad records are notes naming the file and the field; the rest is read.
// A missing path is not found (exit 3). A zip as osv.dev publishes one
// (all.zip per ecosystem) is read like a directory.
func TestBadRecordsAndZip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good, _ := os.ReadFile("testdata/DSA-9999-1.json")
	bad := map[string]string{
		"not-json.json":   "{\"id\": ",
		"schema.json":     `{"id": "DSA-1-1", "modified": "yesterday"}`,
		"order.json":      `{"schema_version":"1.6.0","id":"DSA-2-1","modified":"2026-11-30T10:12:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.11-1~deb12u3"},{"introduced":"3.0.11-1~deb12u1"}]}]}]}`,
		"event.json":      `{"schema_version":"1.6.0","id":"DSA-3-1","modified":"2026-11-30T10:12:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"removed":"3.0.11-1~deb12u3"}]}]}]}`,
		"badversion.json": `{"schema_version":"1.6.0","id":"DSA-4-1","modified":"2026-11-30T10:12:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"a:b"}]}]}]}`,
	}
	for n, b := range bad {
		testutil.Must(t, os.WriteFile(filepath.Join(dir, n), []byte(b), 0o644))
	}
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "good.json"), good, 0o644))
	db, err := Load([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(db.Notes, "\n")
	for _, want := range []string{
		"not-json.json: not JSON",
		"schema.json: /modified: does not follow the OSV schema",
		"order.json: affected[0].ranges[0].events[2]: 3.0.11-1~deb12u1 is below 3.0.11-1~deb12u3, an event before it",
		"event.json: /affected/0/ranges/0/events/1: does not follow the OSV schema",
		"badversion.json: affected[0].ranges[0].events[1]: \"a:b\" is not a dpkg version",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes do not say %q:\n%s", want, notes)
		}
	}
	t.Log(notes)
	if len(db.Notes) != 5 {
		t.Errorf("%d notes, want 5:\n%s", len(db.Notes), notes)
	}
	if h := db.Affecting("Debian:12", distro.Package{Name: "openssl", Version: "3.0.11-1~deb12u1"}); len(h) != 1 || h[0].ID != "DSA-9999-1" {
		t.Errorf("the good record beside the bad ones: %v", h)
	}

	zp := filepath.Join(t.TempDir(), "all.zip")
	f, _ := os.Create(zp)
	zw := zip.NewWriter(f)
	for _, n := range []string{"DSA-9999-1.json", "ALPINE-CVE-2026-9998.json"} {
		b, _ := os.ReadFile("testdata/" + n)
		w, _ := zw.Create(n)
		w.Write(b)
	}
	zw.Close()
	f.Close()
	if db, err = Load([]string{zp}); err != nil || db.Records != 2 {
		t.Fatalf("zip: %v, %d records", err, db.Records)
	}
	if _, err := Load([]string{filepath.Join(dir, "missing")}); !errors.Is(err, failure.ErrNotFound) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a missing path = %v, want not found naming it", err)
	}
	if _, err := Load([]string{"testdata/DSA-9999-1.json", filepath.Join(dir, "x.zip")}); err == nil {
		t.Error("a missing zip was accepted")
	}
}

// The committed schema is the pinned upstream one (scripts/ensure-osv-schema
// fetches it into .cache; make test sets IMAGEBAKE_OSV_SCHEMA).
func TestSchemaIsPinned(t *testing.T) {
	t.Parallel()
	p := os.Getenv("IMAGEBAKE_OSV_SCHEMA")
	if p == "" {
		if os.Getenv("IMAGEBAKE_NO_SKIP") != "" {
			t.Fatal("IMAGEBAKE_OSV_SCHEMA is not set; make test sets it")
		}
		t.Skip("IMAGEBAKE_OSV_SCHEMA is not set (make test fetches the schema and sets it)")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(schemaJSON) {
		t.Error("internal/osv/schema.json differs from the pinned upstream schema")
	}
}

// Any bytes: no panic; a record either indexes or is a note.
func FuzzRecord(f *testing.F) {
	for _, n := range []string{"DSA-9999-1.json", "ALPINE-CVE-2026-9998.json", "RLSA-2026-9997.json", "GHSA-go.json"} {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	sch, err := schema()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		db := &DB{byPkg: map[string][]entry{}}
		db.merge(parse(sch, "fuzz.json", b))
		if db.Records == 0 && len(db.Notes) == 0 && !strings.Contains(string(b), "withdrawn") {
			t.Fatalf("a record neither read nor noted: %q", b)
		}
		for _, es := range db.byPkg {
			for _, e := range es {
				if v, err := pkgversion.Parse(e.format, "1.0-1"); err == nil {
					e.affects(v)
				}
			}
		}
	})
}

// A record is read only when it may bear on the scope: one of its
// ecosystems and one of its package names; where it cannot tell (an
// escape), it reads the record.
func TestMayConcern(t *testing.T) {
	t.Parallel()
	scope := Scope{Ecosystems: []string{"Debian:12"}, Packages: map[string]bool{"openssl": true, "libssl3": true}}
	for _, c := range []struct {
		rec  string
		want bool
	}{
		{`{"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"}}]}`, true},
		{`{"affected":[{"package":{"name" :  "libssl3", "ecosystem":"Debian:12:LTS"}}]}`, true},
		{`{"affected":[{"package":{"ecosystem":"Debian:12","name":"curl"}}]}`, false},
		{`{"affected":[{"package":{"ecosystem":"Alpine:v3.19","name":"openssl"}}]}`, false},
		{`{"summary":"name","affected":[{"package":{"ecosystem":"Debian:12","name":"curl"},"x":"name"}]}`, false},
		{`{"affected":[{"package":{"ecosystem":"Debian:12","name":"open\"ssl"}}]}`, true},
		{`{"affected":[{"package":{"ecosystem":"Debian:12","name":"open\u0073sl"}}]}`, true},
		{`{"affected":[{"package":{"ecosystem":"Debian:12","name":"curl"}},{"package":{"ecosystem":"Debian:12","name":"openssl"}}]}`, true},
		{`{"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl`, true},
	} {
		if got := mayConcern([]byte(c.rec), scope); got != c.want {
			t.Errorf("mayConcern(%s) = %v, want %v", c.rec, got, c.want)
		}
	}
	if !mayConcern([]byte(`{"affected":[{"package":{"ecosystem":"Debian:12","name":"curl"}}]}`), Scope{Ecosystems: []string{"Debian:12"}}) {
		t.Error("with no package names in the scope, a record of its ecosystem is not read")
	}
}

func FuzzMayConcern(f *testing.F) {
	f.Add([]byte(`{"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"}}]}`))
	f.Add([]byte(`"name":"name": "openssl"`))
	f.Add([]byte(`"name":"name":"openssl"`))
	scope := Scope{Packages: map[string]bool{"openssl": true}}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := mayConcern(b, scope)
		if bytes.Contains(b, []byte(`"name":"openssl"`)) && !got {
			t.Errorf("a record naming openssl is passed over: %q", b)
		}
	})
}
