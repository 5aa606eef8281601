package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/signing"
)

// signedFixtureCatalog is deploy's test catalog and its signature by a key
// made in dir, which IMAGEBAKE_TRUSTED_KEYS then trusts.
func signedFixtureCatalog(t *testing.T, dir string) (data, sig []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "testdata", "catalog.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pub, key, err := signing.Generate(dir, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signing.LoadSigner(key, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("IMAGEBAKE_TRUSTED_KEYS", pub)
	return data, signer.Sign(data, "catalog.toml", "")
}

// fixtureCatalogIn writes deploy's test catalog, signed, into dir and
// returns its path.
func fixtureCatalogIn(t *testing.T, dir string) string {
	t.Helper()
	data, sig := signedFixtureCatalog(t, dir)
	cat := filepath.Join(dir, "catalog.toml")
	testutil.Must(t, os.WriteFile(cat, data, 0o644))
	testutil.Must(t, os.WriteFile(cat+".minisig", sig, 0o644))
	return cat
}

// check, select and upgrade report every selection's problem in one run
// and exit with the most severe code: the obsolete release (4) is not
// hidden by the selections that match nothing (3).
func TestDeployReportsEverySelection(t *testing.T) {
	dir := t.TempDir()
	cat := fixtureCatalogIn(t, dir)
	df := filepath.Join(dir, "deploy.yaml")
	src := "images:\n  gone:\n    image: nope\n    version: \"1\"\n  legacy:\n    image: refspec\n    version: 1.3.0\n  web:\n    image: refspec\n    version: \"1.4\"\n  typo:\n    image: refspec\n    version: \"7\"\n"
	testutil.Must(t, os.WriteFile(df, []byte(src), 0o644))
	for _, c := range []struct {
		verb string
		code int
		also []string
	}{
		{"check", failure.ExitVerify, []string{"1 of the selections"}},
		{"select", failure.ExitVerify, []string{"1.3.0"}},
		{"upgrade", failure.ExitNotFound, nil}, // an obsolete release can be upgraded from
	} {
		t.Run(c.verb, func(t *testing.T) {
			root := newRootCommand()
			var out strings.Builder
			root.SetOut(&out)
			args := []string{c.verb, df, "--catalog", cat}
			if c.verb == "check" {
				args = append(args, "--now", "2026-10-10")
			}
			root.SetArgs(args)
			err := root.ExecuteContext(context.Background())
			if got := failure.Code(err); got != c.code {
				t.Fatalf("imagebake %s: exit %d (%v), want %d", c.verb, got, err, c.code)
			}
			for _, want := range append([]string{"image nope is not in the catalog", `no release of refspec matches "7"`}, c.also...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("imagebake %s error:\n%v\nwant it to contain %q", c.verb, err, want)
				}
			}
			if c.verb == "upgrade" && !strings.Contains(out.String(), "web: refspec 1.4.2 -> 1.5.0") && !strings.Contains(out.String(), "web: refspec 1.4.2 is the newest") {
				t.Errorf("upgrade did not plan the selections that resolve:\n%s", out.String())
			}
		})
	}
}

// upgrade --write loses no write made while it resolves: the catalog is
// served over HTTP by a server that appends a selection to the deploy
// file while it answers (a slow catalog and a second writer).
func TestUpgradeWriteKeepsAConcurrentWrite(t *testing.T) {
	dir := t.TempDir()
	data, sig := signedFixtureCatalog(t, dir)
	t.Setenv("IMAGEBAKE_CACHE", filepath.Join(dir, "cache"))
	df := filepath.Join(dir, "deploy.yaml")
	src := "images:\n  web:\n    image: refspec\n    version: \"1.4\"\n"
	appended := src + "  db:\n    image: refspec\n    version: \"2\"\n"
	if err := os.WriteFile(df, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var meddle atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if meddle.Load() && strings.HasSuffix(r.URL.Path, "catalog.toml") {
			testutil.Must(t, os.WriteFile(df, []byte(appended), 0o644))
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "catalog.toml"):
			w.Write(data)
		case strings.HasSuffix(r.URL.Path, "catalog.toml.minisig"):
			w.Write(sig)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	upgrade := func() error {
		root := newRootCommand()
		root.SetOut(io.Discard)
		root.SetArgs([]string{"upgrade", df, "--catalog", srv.URL + "/catalog.toml", "--write"})
		return root.ExecuteContext(context.Background())
	}
	meddle.Store(true)
	err := upgrade()
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "changed while upgrading; nothing written") {
		t.Fatalf("upgrade --write with a concurrent write = %v (exit %d), want exit 4", err, failure.Code(err))
	}
	if b, _ := os.ReadFile(df); string(b) != appended {
		t.Fatalf("deploy file after the refused upgrade:\n%s\nwant the appended selection kept", b)
	}
	// run again with nobody meddling: both selections are upgraded
	meddle.Store(false)
	if err := upgrade(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(df); !strings.Contains(string(b), "db:") || !strings.Contains(string(b), "version: \"1.5\"") {
		t.Errorf("deploy file after the second upgrade:\n%s", b)
	}
}

// check counts selections, not findings: the obsolete 1.3.0 past its
// major's end of life has two errors and is one failing selection; a
// passing selection is named with the newest release it could move to.
func TestCheckCountsSelections(t *testing.T) {
	dir := t.TempDir()
	fixtureCatalogIn(t, dir)
	df := filepath.Join(dir, "deploy.yaml")
	testutil.Must(t, os.WriteFile(df, []byte("catalog: catalog.toml\nimages:\n  legacy:\n    image: refspec\n    version: 1.3.0\n  web:\n    image: refspec\n    version: \"2\"\n"), 0o644))
	root := newRootCommand()
	var out strings.Builder
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"check", df, "--now", "2027-02-01"})
	err := root.ExecuteContext(context.Background())
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "1 of the selections") {
		t.Errorf("check: exit %d, %v; want 4 and one failing selection", failure.Code(err), err)
	}
	if n := strings.Count(out.String(), ": error: "); n != 2 {
		t.Errorf("%d errors listed, want 2 (obsolete, end of life):\n%s", n, out.String())
	}
	for _, want := range []string{"web: refspec 2.0.0 passes", "2 selection(s): 1 pass, 0 with warnings, 1 fail, 0 match nothing"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check does not say %q:\n%s", want, out.String())
		}
	}
}

// select prints a header and store locations a user can open, and after
// a major's end of life warns (check fails on it) while still selecting.
func TestSelectHeaderAndEndOfLife(t *testing.T) {
	dir := t.TempDir()
	fixtureCatalogIn(t, dir)
	df := filepath.Join(dir, "deploy.yaml")
	testutil.Must(t, os.WriteFile(df, []byte("catalog: catalog.toml\nimages:\n  web:\n    image: refspec\n    version: 1.4.2\n"), 0o644))
	root := newRootCommand()
	var out, errOut strings.Builder
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"select", df, "--now", "2027-02-01"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "SELECTION") || !strings.Contains(out.String(), dir+"/images/refspec-1.4.2") {
		t.Errorf("select output has no header or no store location:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "major 1 of refspec reached end of life on 2027-01-31") || !strings.Contains(errOut.String(), "check fails on it") {
		t.Errorf("select after end of life does not warn:\n%s", errOut.String())
	}
}

// key generate writes no secret key in the clear unless told to: without
// a password (IMAGEBAKE_KEY_PASSWORD) and no terminal it refuses (exit 2)
// and writes nothing; --unencrypted writes it with a warning; a password
// encrypts it (loading it without the password fails).
func TestKeyGenerateEncryptsByDefault(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("IMAGEBAKE_KEY_PASSWORD", "")
	gen := func(args ...string) (string, error) {
		root := newRootCommand()
		var out strings.Builder
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"key", "generate", "--dir", dir}, args...))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	if _, err := gen("--name", "a"); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "--unencrypted") {
		t.Errorf("key generate without a password = %v, want exit 2 naming --unencrypted", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.key")); err == nil {
		t.Error("a refused key generate wrote a key")
	}
	if out, err := gen("--name", "b", "--unencrypted"); err != nil || !strings.Contains(out, "not encrypted") {
		t.Errorf("--unencrypted: %v\n%s", err, out)
	}
	t.Setenv("IMAGEBAKE_KEY_PASSWORD", "s3cret")
	if _, err := gen("--name", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := signing.LoadSigner(filepath.Join(dir, "c.key"), ""); err == nil {
		t.Error("the key made with a password loads without it")
	}
	// (that a sensitive key opens with its password is minisign's own
	// round trip, 3 s of scrypt: the interactive key below opens in ours)
	// --kdf interactive: the same password, opened in milliseconds
	if _, err := gen("--name", "d", "--kdf", "interactive"); err != nil {
		t.Fatal(err)
	}
	if _, err := signing.LoadSigner(filepath.Join(dir, "d.key"), "s3cret"); err != nil {
		t.Errorf("the interactive key does not load with its password: %v", err)
	}
	for name, want := range map[string]signing.KDF{"c": signing.Sensitive, "d": signing.Interactive} {
		b, _ := os.ReadFile(filepath.Join(dir, name+".key"))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		raw, _ := base64.StdEncoding.DecodeString(lines[len(lines)-1])
		if len(raw) != 158 || binary.LittleEndian.Uint64(raw[38:]) != want.Ops || binary.LittleEndian.Uint64(raw[46:]) != want.Mem {
			t.Errorf("%s.key does not record the %s limits (ops %d, mem %d)", name, want.Name, want.Ops, want.Mem)
		}
	}
	for _, args := range [][]string{{"--name", "e", "--kdf", "fast"}, {"--name", "f", "--cosign", "--kdf", "interactive"}} {
		if _, err := gen(args...); failure.Code(err) != failure.ExitUsage {
			t.Errorf("key generate %v = %v, want exit 2", args, err)
		}
	}
}

// select --lock writes the exact selection (lowercase keys, paths relative
// to the lock); check --lock passes while the file selects what is locked
// with the same digests, and fails (exit 4) on a stale lock or a digest
// the catalog no longer gives.
func TestDeployLockReadBack(t *testing.T) {
	dir := t.TempDir()
	fixtureCatalogIn(t, dir)
	df := filepath.Join(dir, "deploy.yaml")
	testutil.Must(t, os.WriteFile(df, []byte("catalog: catalog.toml\nimages:\n  web:\n    image: refspec\n    version: 1.4.2\n"), 0o644))
	lock := filepath.Join(dir, "locks", "deploy.lock")
	testutil.Must(t, os.MkdirAll(filepath.Dir(lock), 0o755))
	cli := func(args ...string) (string, error) {
		root := newRootCommand()
		var out strings.Builder
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(args, "--now", "2026-06-15"))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	if out, err := cli("select", df, "--lock", lock); err != nil {
		t.Fatalf("select --lock: %v\n%s", err, out)
	}
	b, err := os.ReadFile(lock)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`deploy_file = "../deploy.yaml"`, `catalog = "../catalog.toml"`, "[[selection]]", `name = "web"`, `family = "refspec"`, `release = "1.4.2"`, "[[selection.image]]", `arch = "amd64"`, `digest = "sha256:`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the lock lacks %s:\n%s", want, b)
		}
	}
	if out, err := cli("check", df, "--lock", lock); err != nil || !strings.Contains(out, "web: refspec 1.4.2, 2 image(s) as locked") {
		t.Errorf("check --lock of a fresh lock = %v\n%s", err, out)
	}
	// the file moves on: the lock is stale
	testutil.Must(t, os.WriteFile(df, []byte("catalog: catalog.toml\nimages:\n  web:\n    image: refspec\n    version: 1.5.0\n"), 0o644))
	if out, err := cli("check", df, "--lock", lock); failure.Code(err) != failure.ExitVerify || !strings.Contains(out, "locked at refspec 1.4.2, the deploy file now selects refspec 1.5.0") {
		t.Errorf("check --lock of a stale lock = %v, want exit 4 naming both\n%s", err, out)
	}
	// a selection the lock has and the file no longer does
	testutil.Must(t, os.WriteFile(df, []byte("catalog: catalog.toml\nimages:\n  api:\n    image: refspec\n    version: 1.4.2\n"), 0o644))
	if out, err := cli("check", df, "--lock", lock); failure.Code(err) != failure.ExitVerify || !strings.Contains(out, "web: locked at refspec 1.4.2, but the deploy file no longer has this selection") {
		t.Errorf("check --lock after the selection was removed = %v\n%s", err, out)
	}
	// a locked digest the catalog no longer gives
	testutil.Must(t, os.WriteFile(df, []byte("catalog: catalog.toml\nimages:\n  web:\n    image: refspec\n    version: 1.4.2\n"), 0o644))
	edited := regexp.MustCompile(`digest = "sha256:[0-9a-f]{64}"`).ReplaceAllString(string(b), `digest = "sha256:`+strings.Repeat("0", 64)+`"`)
	testutil.Must(t, os.WriteFile(lock, []byte(edited), 0o644))
	if out, err := cli("check", df, "--lock", lock); failure.Code(err) != failure.ExitVerify || !strings.Contains(out, "the catalog gives sha256:") {
		t.Errorf("check --lock with an edited digest = %v, want exit 4 naming it\n%s", err, out)
	}
	testutil.Must(t, os.WriteFile(lock, []byte("version = 1\nDeployFile = \"x\"\n"), 0o644))
	if _, err := cli("check", df, "--lock", lock); failure.Code(err) != failure.ExitUsage {
		t.Errorf("check --lock of a lock with an unknown key = %v, want exit 2", err)
	}
}
