package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

// fakeRelease writes a release directory dist/example-VERSION with a
// manifest, as bake leaves it, for the catalog commands.
func fakeRelease(t *testing.T, version string, edit ...func(*manifest.Manifest)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "example-"+version)
	testutil.Must(t, os.MkdirAll(dir, 0o755))
	digest := "sha256:" + strings.Repeat("1", 64)
	m := &manifest.Manifest{Family: "example", Release: version, Epoch: 1735732800, Builder: "oci",
		Repo:        manifest.Repo{URL: "file:///r", Tag: "v" + version, Commit: strings.Repeat("c", 40)},
		Puppetfile:  manifest.Puppetfile{SHA256: strings.Repeat("d", 64), Moduledir: "modules", Modules: []lockfile.Module{}},
		IndexDigest: digest,
		Images:      []manifest.Image{{Arch: "amd64", OS: "linux", Name: "example-" + version + "-amd64", Digest: digest, Agent: manifest.Agent{Name: "m", Version: "2.0.0", SHA256: strings.Repeat("e", 64)}}}}
	for _, e := range edit {
		e(m)
	}
	if err := m.Write(filepath.Join(dir, manifest.FileName)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// signingEnv makes a key pair in a new directory, which it returns, and
// sets the environment a publisher and its readers use: the key, the
// trusted key and a cache of their own.
func signingEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pub, key, err := signing.Generate(dir, "k", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("IMAGEBAKE_TRUSTED_KEYS", pub)
	t.Setenv("IMAGEBAKE_KEY", key)
	t.Setenv("IMAGEBAKE_CACHE", filepath.Join(dir, "cache"))
	return dir
}

// A catalog served over HTTP is swapped for an older, validly signed copy
// after a release was revoked: a reader that saw the newer catalog
// refuses the old one (exit 4, naming both serials), so the revocation
// cannot silently disappear. An expired catalog warns inside its notice
// window and fails after; catalog refresh re-signs it.
func TestCatalogRollbackAndExpiry(t *testing.T) {
	dir := signingEnv(t)
	store := filepath.Join(dir, "store")
	cli := func(args ...string) (string, error) {
		t.Helper()
		root := newRootCommand()
		var out, errOut strings.Builder
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String() + errOut.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("imagebake %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("publish", fakeRelease(t, "1.0.0"), "--store", store)
	catFile := filepath.Join(store, "catalog", "catalog.toml")
	oldCat, _ := os.ReadFile(catFile)
	oldSig, _ := os.ReadFile(catFile + ".minisig")
	if !strings.Contains(string(oldCat), "serial = 1\n") {
		t.Fatalf("the first catalog has no serial 1:\n%s", oldCat)
	}
	must("publish", fakeRelease(t, "1.0.0"), "--store", store) // identical: nothing written
	if b, _ := os.ReadFile(catFile); string(b) != string(oldCat) {
		t.Fatalf("an identical re-publish rewrote the catalog:\n%s", b)
	}
	must("catalog", "revoke", "example", "1.0.0", "--store", store, "--reason", "leaked key")

	srv := httptest.NewServer(http.FileServer(http.Dir(store)))
	defer srv.Close()
	df := filepath.Join(dir, "deploy.yaml")
	testutil.Must(t, os.WriteFile(df, []byte("catalog: "+srv.URL+"\nimages:\n  web:\n    image: example\n    version: 1.0.0\n"), 0o644))
	out, err := cli("check", df)
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(out, "revoked since") {
		t.Fatalf("deploy check of a revoked release: exit %d, %v\n%s", failure.Code(err), err, out)
	}

	// the older copy, validly signed, put back on the server
	testutil.Must(t, os.WriteFile(catFile, oldCat, 0o644))
	testutil.Must(t, os.WriteFile(catFile+".minisig", oldSig, 0o644))
	out, err = cli("check", df)
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "has serial 1, but serial 2") || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("deploy check of a rolled-back catalog: exit %d, %v\n%s\nwant exit 4 naming serials 1 and 2 and the URL", failure.Code(err), err, out)
	}
	// the publisher's side is guarded too: no write on top of the old copy
	if _, err := cli("catalog", "deprecate", "example", "1.0.0", "--store", store, "--reason", "r"); failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "older copy") {
		t.Fatalf("a write on a rolled-back store: %v, want exit 4", err)
	}
	// a reader with no memory of the store (another cache) accepts it: the
	// memory is per reader, as the issue asks
	t.Setenv("IMAGEBAKE_CACHE", filepath.Join(dir, "cache2"))
	if out, err := cli("check", df); err != nil {
		t.Fatalf("a new reader of the old copy: %v\n%s", err, out)
	}

	// expiry: refresh re-signs with the next serial
	t.Setenv("IMAGEBAKE_CACHE", filepath.Join(dir, "cache3"))
	store2 := filepath.Join(dir, "store2")
	must("publish", fakeRelease(t, "1.0.0"), "--store", store2)
	if _, err := cli("catalog", "refresh", "--store", store2, "--expires", "2020-01-01"); failure.Code(err) != failure.ExitUsage {
		t.Errorf("refresh with an expiry in the past: %v, want a usage error", err)
	}
	out = must("catalog", "refresh", "--store", store2, "--expires", "2099-01-31", "--notice-days", "10")
	if !strings.Contains(out, "serial 2, expires 2099-01-31T00:00:00Z") {
		t.Errorf("catalog refresh said:\n%s", out)
	}
	testutil.Must(t, os.WriteFile(df, []byte("catalog: "+store2+"\nimages:\n  web:\n    image: example\n    version: \"1\"\n"), 0o644))
	if out, err := cli("check", df, "--now", "2099-01-01"); err != nil || strings.Contains(out, "expires") {
		t.Errorf("deploy check a month before expiry: %v\n%s\nwant exit 0 and no warning", err, out)
	}
	// the notice goes to the command's stderr
	notice, err := cli("check", df, "--now", "2099-01-25")
	if err != nil || !strings.Contains(notice, "expires on 2099-01-31T00:00:00Z (in 6 days)") {
		t.Errorf("deploy check inside the notice window: %v; output:\n%s\nwant exit 0 and a warning naming the expiry", err, notice)
	}
	_, err = cli("check", df, "--now", "2099-02-01")
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "expired on 2099-01-31") || !strings.Contains(err.Error(), "catalog refresh") {
		t.Errorf("deploy check after expiry: exit %d, %v; want 4 naming the date and the refresh", failure.Code(err), err)
	}
}

// upgrade --major reads both releases' manifests from the store and lists
// what changes, with levels and reasons, as release plan does: the base
// OS, a major package, the agent major, modules.
func TestUpgradeMajorListsChanges(t *testing.T) {
	dir := signingEnv(t)
	store := filepath.Join(dir, "store")
	base := func(osv, codename, python string) func(*manifest.Manifest) {
		return func(m *manifest.Manifest) {
			m.Images[0].Base = manifest.Base{Ref: "bases/debian-" + osv + ".tar@sha256:" + strings.Repeat(osv[1:2], 64), OS: &manifest.OS{ID: "debian", VersionID: osv, Codename: codename},
				Packages: &manifest.Packages{Format: "dpkg", Count: 1, Digest: "sha256:" + strings.Repeat(osv[:1], 64),
					List: []manifest.Package{{Name: "python3", Version: python, Arch: "amd64"}}}}
		}
	}
	agent3 := func(m *manifest.Manifest) { m.Images[0].Agent.Version = "3.0.0" }
	for _, args := range [][]string{
		{"publish", fakeRelease(t, "1.0.0", base("12", "bookworm", "3.11.2-1")), "--store", store},
		{"publish", fakeRelease(t, "2.0.0", base("13", "trixie", "3.12.1-1"), agent3), "--store", store},
	} {
		if code := run(context.Background(), args); code != 0 {
			t.Fatalf("imagebake %v: exit %d", args, code)
		}
	}
	df := filepath.Join(dir, "deploy.yaml")
	testutil.Must(t, os.WriteFile(df, []byte("catalog: "+store+"\nimages:\n  web:\n    image: example\n    version: \"1\"\n"), 0o644))
	cli := func(args ...string) string {
		root := newRootCommand()
		var out strings.Builder
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("imagebake %v: %v", args, err)
		}
		return out.String()
	}
	out := cli("upgrade", df, "--major")
	for _, want := range []string{
		"example 1.0.0 -> 2.0.0",
		"what changes (from the manifests of both releases)",
		"MAJOR    base OS: debian 12 (bookworm) -> debian 13 (trixie): another OS release",
		"python3",
		"agent binaries m",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("upgrade --major output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "could not be compared") {
		t.Errorf("upgrade --major did not compare:\n%s", out)
	}
	var steps []struct {
		Changes  []string `json:"changes"`
		Compared bool     `json:"compared"`
	}
	if err := json.Unmarshal([]byte(cli("--json", "upgrade", df, "--major")), &steps); err != nil || len(steps) != 1 || !steps[0].Compared || len(steps[0].Changes) < 3 {
		t.Errorf("upgrade --major --json: %+v, %v; want the changes listed", steps, err)
	}
}

// publish checks the number against the release before it in the store:
// a number that skips, or that repeats the content of the one before, is
// refused (exit 4) before anything is written; --no-release-check
// publishes anyway.
func TestPublishChecksNumberAgainstCatalog(t *testing.T) {
	dir := signingEnv(t)
	store := filepath.Join(dir, "store")
	withModule := func(m *manifest.Manifest) {
		m.Puppetfile.Modules = []lockfile.Module{{Name: "ntp", Kind: "git", Source: "https://git.example/ntp.git", Ref: "v1.0.0", Commit: strings.Repeat("a", 40), SHA256: strings.Repeat("b", 64), Path: "modules/ntp"}}
	}
	publish := func(args ...string) error {
		root := newRootCommand()
		var out strings.Builder
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"publish", "--store", store}, args...))
		return root.ExecuteContext(context.Background())
	}
	if err := publish(fakeRelease(t, "1.0.0")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, version, want string
		edit                []func(*manifest.Manifest)
	}{
		{"skips 1.1.0", "1.2.0", "1.2.0 does not follow 1.0.0", []func(*manifest.Manifest){withModule}},
		{"repeats 1.0.0", "1.1.0", "would repeat the content of 1.0.0", nil},
		{"too small", "1.0.1", "module ntp: added (MINOR)", []func(*manifest.Manifest){withModule}},
	} {
		err := publish(fakeRelease(t, c.version, c.edit...))
		if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), c.want) {
			t.Errorf("publish %s (%s): exit %d, %v; want 4 saying %q", c.version, c.name, failure.Code(err), err, c.want)
		}
		if _, err := os.Stat(filepath.Join(store, "images", "example-"+c.version)); err == nil {
			t.Errorf("publish %s (%s) was refused but wrote the release", c.version, c.name)
		}
	}
	if err := publish(fakeRelease(t, "1.1.0", withModule)); err != nil {
		t.Errorf("publish 1.1.0 adding a module: %v", err)
	}
	if err := publish("--no-release-check", fakeRelease(t, "1.3.0", withModule)); err != nil {
		t.Errorf("publish --no-release-check: %v", err)
	}
}
