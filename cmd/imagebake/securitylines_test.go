//go:build linux

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/distro"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

// The story through the commands: 1.0.0 and 1.1.0 published, then
// a backport 1.0.1 fixing openssl (DSA-9999-1, deb12u1 -> deb12u3). publish
// names 1.1.0 as lacking the fix; catalog audit lists it (exit 4); a 1.2.0
// that keeps the old openssl is refused (exit 4) naming the advisory, the
// package and both versions; 1.1.1 with the fix publishes and the audit
// is clean. With --osv, an advisory no release fixes yet is listed for
// every supported release's line.
func TestSecurityFixesReachEveryLine(t *testing.T) {
	t.Run("dir", func(t *testing.T) { securityLines(t, "") })
	t.Run("s3", func(t *testing.T) {
		testutil.S3(t, "golden").Setenv(t)
		securityLines(t, "s3://golden/releases")
	})
}

func securityLines(t *testing.T, store string) {
	dir := signingEnv(t)
	if store == "" {
		store = filepath.Join(dir, "store")
	}
	cli := func(args ...string) (string, string, error) {
		t.Helper()
		root := newRootCommand()
		var out, errOut strings.Builder
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String(), errOut.String(), err
	}
	base := func(n string, openssl string) func(*manifest.Manifest) {
		return func(m *manifest.Manifest) {
			m.Images[0].Base = manifest.Base{Ref: "rootfs:debian-12@sha256:" + strings.Repeat(n, 64), OS: &distro.OS{ID: "debian", VersionID: "12", Codename: "bookworm"},
				Packages: &manifest.Packages{Format: distro.Dpkg, List: []distro.Package{
					{Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64", Source: "glibc"},
					{Name: "libssl3", Version: openssl, Arch: "amd64", Source: "openssl"},
					{Name: "openssl", Version: openssl, Arch: "amd64"},
				}}}
		}
	}
	modules := func(names ...string) func(*manifest.Manifest) {
		return func(m *manifest.Manifest) {
			for _, n := range names {
				m.Puppetfile.Modules = append(m.Puppetfile.Modules, lockfile.Module{Name: n, Kind: "git", Source: "https://git.example/" + n + ".git", Ref: "v1.0.0", Commit: strings.Repeat("a", 40), SHA256: strings.Repeat("b", 64), Path: "modules/" + n})
			}
		}
	}
	advisory := func(m *manifest.Manifest) { m.Advisories = []string{"DSA-9999-1"} }
	const old, fixed = "3.0.11-1~deb12u1", "3.0.11-1~deb12u3"

	for _, r := range []string{fakeRelease(t, "1.0.0", base("1", old)), fakeRelease(t, "1.1.0", base("1", old), modules("ntp"))} {
		if _, e, err := cli("publish", "--store", store, r); err != nil {
			t.Fatalf("publish %s: %v\n%s", r, err, e)
		}
	}
	// the backport: its manifest records no fixes (baked without
	// --previous), so publish derives them from 1.0.0
	out, e, err := cli("publish", "--store", store, fakeRelease(t, "1.0.1", base("3", fixed), advisory))
	if err != nil {
		t.Fatalf("publish 1.0.1: %v\n%s", err, e)
	}
	for _, want := range []string{
		"example 1.1.0 lacks DSA-9999-1 (openssl 3.0.11-1~deb12u1 < 3.0.11-1~deb12u3): cut 1.1.1",
		"example 1.1.0 lacks DSA-9999-1 (libssl3 3.0.11-1~deb12u1 < 3.0.11-1~deb12u3): cut 1.1.1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("publish 1.0.1 does not say %q:\n%s", want, out)
		}
	}
	kr, err := signing.LoadKeyring(os.Getenv("IMAGEBAKE_TRUSTED_KEYS"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Open(context.Background(), store, kr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Family("example", false).Release("1.0.1"); r == nil || len(r.Fixes) != 1 || len(r.Fixes[0].Packages) != 2 || r.Fixes[0].Packages[1] != (manifest.PackageFix{Name: "openssl", Format: "dpkg", Old: old, New: fixed}) {
		t.Fatalf("the catalog entry of 1.0.1 records fixes %+v", r)
	}

	out, _, err = cli("catalog", "audit", "--store", store)
	t.Log(out)
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(out, "1.1.0") || !strings.Contains(out, "DSA-9999-1") || !strings.Contains(out, "1.1.1") || strings.Contains(out, "1.0.0 ") {
		t.Errorf("catalog audit: exit %d, %v; want 4 listing 1.1.0 (cut 1.1.1), not 1.0.0 (1.0.1 carries the fix):\n%s", failure.Code(err), err, out)
	}

	// a deploy file selecting the 1.1 line: check names the fix 1.1.0
	// lacks, at the selection's line and column; no release above it
	// carries it yet, so it warns (exit 0)
	df := filepath.Join(dir, "deploy.yaml")
	testutil.Must(t, os.WriteFile(df, []byte("catalog: "+store+"\nimages:\n  web:\n    image: example\n    version: \"1.1\"\n"), 0o644))
	out, _, err = cli("check", df, "--now", "2025-01-02")
	if err != nil || !strings.Contains(out, df+":5:14: warning: example 1.1.0 lacks DSA-9999-1 (libssl3, openssl 3.0.11-1~deb12u1 < 3.0.11-1~deb12u3), fixed in 1.0.1; no release of example above 1.1.0 carries the fix yet") {
		t.Errorf("check of a selection lacking a backported fix: %v\n%s", err, out)
	}

	// a 1.2.0 that brings the old openssl back is refused
	_, _, err = cli("publish", "--store", store, fakeRelease(t, "1.2.0", base("1", old), modules("ntp", "apache")))
	if failure.Code(err) != failure.ExitVerify || err == nil || !strings.Contains(err.Error(), "DSA-9999-1 (openssl 3.0.11-1~deb12u1 < 3.0.11-1~deb12u3), fixed in 1.0.1") || !strings.Contains(err.Error(), "--no-release-check") {
		t.Errorf("publish 1.2.0 with the old openssl: exit %d, %v; want 4 naming DSA-9999-1, openssl and both versions", failure.Code(err), err)
	}
	if c, err := catalog.Open(context.Background(), store, kr, nil, nil); err != nil || c.Family("example", false).Release("1.2.0") != nil {
		t.Errorf("the refused 1.2.0 was published: %v", err)
	}

	// the forward port: 1.1.1 on the fixed base
	if _, e, err := cli("publish", "--store", store, fakeRelease(t, "1.1.1", base("3", fixed), modules("ntp"), advisory)); err != nil {
		t.Fatalf("publish 1.1.1: %v\n%s", err, e)
	}
	if out, _, err := cli("catalog", "audit", "--store", store); err != nil || out != "" {
		t.Errorf("catalog audit after 1.1.1: %v\n%s; want clean (exit 0)", err, out)
	}
	// the selection now resolves to 1.1.1: clean; one pinned to 1.1.0 is
	// told to move to 1.1.1 (the lifecycle check of its line), and fails
	// after the grace days
	if out, _, err := cli("check", df, "--now", "2025-01-02"); err != nil || strings.Contains(out, ": warning:") || !strings.Contains(out, "web: example 1.1.1 passes (the newest of example)") || !strings.Contains(out, "1 selection(s): 1 pass, 0 with warnings, 0 fail") {
		t.Errorf("check after 1.1.1: %v\n%s; want it to pass, saying so", err, out)
	}
	pinned := filepath.Join(dir, "pinned.yaml")
	testutil.Must(t, os.WriteFile(pinned, []byte("catalog: "+store+"\nimages:\n  web:\n    image: example\n    version: 1.1.0\n"), 0o644))
	if out, _, err := cli("check", pinned, "--now", "2026-12-02"); failure.Code(err) != failure.ExitVerify || !strings.Contains(out, "lacks security release 1.1.1") || !strings.Contains(out, "DSA-9999-1") {
		t.Errorf("check of 1.1.0 after the grace days: exit %d, %v\n%s", failure.Code(err), err, out)
	}

	// an OSV advisory fixed in deb12u4: no release has it, so each
	// supported release's line needs one
	rec, err := os.ReadFile("../../internal/osv/testdata/DSA-9999-1.json")
	if err != nil {
		t.Fatal(err)
	}
	osvFile := filepath.Join(dir, "DSA-9999-2.json")
	testutil.Must(t, os.WriteFile(osvFile, []byte(strings.NewReplacer("DSA-9999-1", "DSA-9999-2", "deb12u3", "deb12u4").Replace(string(rec))), 0o644))
	out, e, err = cli("catalog", "audit", "--store", store, "--osv", osvFile, "--osv", "../../internal/osv/testdata/ALPINE-CVE-2026-9998.json")
	if failure.Code(err) != failure.ExitVerify {
		t.Fatalf("catalog audit --osv: exit %d, %v\n%s\n%s", failure.Code(err), err, out, e)
	}
	t.Log(out)
	for _, want := range []string{"1.0.0", "1.0.1", "1.1.0", "1.1.1", "DSA-9999-2", "3.0.11-1~deb12u4", "1.0.2", "1.1.2", "libssl3"} {
		if !strings.Contains(out, want) {
			t.Errorf("catalog audit --osv does not list %q:\n%s", want, out)
		}
	}
	if !strings.Contains(e, "read 1 OSV records of Debian:12 from 2 files; 1 records of other ecosystems or of packages no base has passed over") {
		t.Errorf("catalog audit --osv does not say what it read:\n%s", e)
	}
	// check --osv: the selection (1.1.1) is affected and nothing carries
	// the fix: a warning naming the advisory and its CVE
	// the check says it once, its packages folded
	if out, e, err := cli("check", df, "--now", "2025-01-02", "--osv", osvFile); err != nil || strings.Count(out, ": warning:") != 1 ||
		!strings.Contains(out, df+":5:14: warning: example 1.1.1 lacks DSA-9999-2 (CVE-2026-9999) (libssl3, openssl 3.0.11-1~deb12u3 < 3.0.11-1~deb12u4); no release of example above 1.1.1 carries the fix yet") {
		t.Errorf("check --osv: %v\n%s\n%s", err, out, e)
	}
	if _, _, err := cli("catalog", "audit", "--store", store, "--osv", filepath.Join(dir, "nowhere")); failure.Code(err) != failure.ExitNotFound {
		t.Errorf("catalog audit --osv of a missing path: exit %d, %v; want 3", failure.Code(err), err)
	}
	nostore := filepath.Join(dir, "nostore")
	if strings.HasPrefix(store, "s3://") {
		nostore = "s3://golden/nostore"
	}
	if _, _, err := cli("catalog", "audit", "--store", nostore); failure.Code(err) != failure.ExitNotFound {
		t.Errorf("catalog audit of a missing store: exit %d, %v; want 3", failure.Code(err), err)
	}
}
