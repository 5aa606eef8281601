//go:build linux

package puppet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/puppet/forge"
	"github.com/imagebake/imagebake/puppet/puppetfile"
)

// upstream is a module repository: a work tree and the bare remote that
// Puppetfiles point at.
type upstream struct {
	work, bare, url string
}

func newUpstream(t *testing.T, root, name string) *upstream {
	t.Helper()
	u := &upstream{work: filepath.Join(root, "src", name), bare: filepath.Join(root, "remotes", name+".git")}
	u.url = "file://" + u.bare
	testutil.Must(t, os.MkdirAll(u.work, 0o755))
	testutil.Git(t, u.work, "init", "-q", "-b", "main")
	u.commit(t, map[string]string{"manifests/init.pp": "class " + name + " {}\n", "metadata.json": `{"version":"1.0.0"}`, "spec/init_spec.rb": "# spec\n", "files/run.sh#x": "#!/bin/sh\n"}, "v1")
	testutil.Must(t, os.Symlink("init.pp", filepath.Join(u.work, "manifests", "link.pp")))
	testutil.Git(t, u.work, "add", "-A")
	testutil.Git(t, u.work, "commit", "-q", "-m", "link")
	testutil.Git(t, u.work, "tag", "-a", "v1.0.0", "-m", "annotated")
	u.commit(t, map[string]string{"metadata.json": `{"version":"1.1.0"}`}, "v1.1")
	testutil.Git(t, u.work, "tag", "v1.1.0") // lightweight
	testutil.Git(t, u.work, "checkout", "-q", "-b", "feature#1")
	u.commit(t, map[string]string{"manifests/feature.pp": "class feature {}\n"}, "feature")
	testutil.Git(t, u.work, "checkout", "-q", "main")
	testutil.Must(t, os.MkdirAll(filepath.Dir(u.bare), 0o755))
	testutil.Git(t, root, "clone", "-q", "--bare", u.work, u.bare)
	return u
}

// commit writes files (a name ending in #x is made executable) and commits.
// protocols are the ways the tests reach upstreams: a path on this
// machine, git:// (git daemon) and smart HTTP (git http-backend).
var protocols = []string{"file", "git", "http"}

// serve makes the upstreams (all under one remotes dir) reachable over
// proto, rewriting their URLs.
func serve(t *testing.T, proto string, us ...*upstream) {
	t.Helper()
	dir := filepath.Dir(us[0].bare)
	var base string
	switch proto {
	case "file":
		return
	case "git":
		base = testutil.GitDaemon(t, dir)
	case "http":
		base = testutil.GitHTTP(t, dir, nil)
	}
	for _, u := range us {
		u.url = base + "/" + filepath.Base(u.bare)
	}
}

func (u *upstream) commit(t *testing.T, files map[string]string, msg string) string {
	t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "#x"); ok {
			name, mode = n, 0o755
		}
		p := filepath.Join(u.work, name)
		testutil.Must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Git(t, u.work, "add", "-A")
	testutil.Git(t, u.work, "commit", "-q", "-m", msg)
	return testutil.Git(t, u.work, "rev-parse", "HEAD")
}

func (u *upstream) push(t *testing.T, args ...string) {
	t.Helper()
	testutil.Git(t, u.work, append([]string{"push", "-q", "--force", u.bare}, args...)...)
}

func (u *upstream) rev(t *testing.T, rev string) string {
	return testutil.Git(t, u.bare, "rev-parse", rev+"^{commit}")
}

func writePuppetfile(t *testing.T, dir, src string) *puppetfile.Puppetfile {
	t.Helper()
	testutil.Must(t, os.MkdirAll(dir, 0o755))
	p := filepath.Join(dir, "Puppetfile")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	pf, err := puppetfile.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return pf
}

// archive extracts `git archive` of rev into a new dir.
func archive(t *testing.T, u *upstream, rev string) string {
	t.Helper()
	dst := t.TempDir()
	cmd := exec.Command("sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", u.bare, rev, dst))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git archive: %v\n%s", err, out)
	}
	return dst
}

// tree describes every entry under dir: path, type and mode, content hash or link target.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, _ := d.Info()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link " + l
		case fi.IsDir():
			out[rel] = "dir"
		default:
			b, _ := os.ReadFile(p)
			s := sha256.Sum256(b)
			out[rel] = fmt.Sprintf("%v %x", fi.Mode().Perm()&0o111 != 0, s[:8])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, got, want string) {
	t.Helper()
	g, w := tree(t, got), tree(t, want)
	for k, v := range w {
		if g[k] != v {
			t.Errorf("%s: installed %q, git archive %q", k, g[k], v)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("%s: installed, not in git archive", k)
		}
	}
}

func TestLockInstallMatchesGitArchive(t *testing.T) {
	t.Parallel()
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) { testLockInstallMatchesGitArchive(t, proto) })
	}
}

func testLockInstallMatchesGitArchive(t *testing.T, proto string) {
	root := t.TempDir()
	a := newUpstream(t, root, "alpha")
	b := newUpstream(t, root, "beta")
	serve(t, proto, a, b)
	env := filepath.Join(root, "env")
	pf := writePuppetfile(t, env, fmt.Sprintf(`
mod 'alpha', :git => '%s', :tag => 'v1.0.0'
mod 'beta',  git: '%s', branch: 'feature#1'
mod 'gamma', :git => '%s', :tag => 'v1.1.0', :install_path => 'site'
mod 'delta', :git => '%s', :ref => 'v1.0.0', :exclude_spec => true
`, a.url, b.url, b.url, a.url))
	cache := filepath.Join(root, "cache")
	lk, err := Lock(context.Background(), pf, WithCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"alpha": a.rev(t, "v1.0.0"), // annotated tag: peeled to the commit, not the tag object
		"beta":  b.rev(t, "feature#1"),
		"gamma": b.rev(t, "v1.1.0"),
		"delta": a.rev(t, "v1.0.0"),
	}
	for name, sha := range want {
		if m, _ := lk.Find(name); m.Commit != sha {
			t.Errorf("lock %s = %s, want %s", name, m.Commit, sha)
		}
	}
	if tagObj := testutil.Git(t, a.bare, "rev-parse", "v1.0.0"); tagObj == want["alpha"] {
		t.Fatal("fixture: v1.0.0 should be an annotated tag")
	}
	epoch := time.Unix(1700000000, 0)
	moddir := filepath.Join(env, "modules")
	rep, err := Install(context.Background(), pf, lk, env, moddir, WithCache(cache), WithEpoch(epoch))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Installed) != 4 {
		t.Errorf("installed %v, want 4 modules", rep.Installed)
	}
	sameTree(t, filepath.Join(moddir, "alpha"), archive(t, a, want["alpha"]))
	sameTree(t, filepath.Join(moddir, "beta"), archive(t, b, want["beta"]))
	sameTree(t, filepath.Join(env, "site", "gamma"), archive(t, b, want["gamma"]))
	deltaWant := archive(t, a, want["delta"])
	testutil.Must(t, os.RemoveAll(filepath.Join(deltaWant, "spec")))
	sameTree(t, filepath.Join(moddir, "delta"), deltaWant)

	// every entry has the epoch as mtime and a normalised mode
	filepath.WalkDir(moddir, func(p string, d fs.DirEntry, err error) error {
		fi, _ := os.Lstat(p)
		if p != moddir && !fi.ModTime().Equal(epoch) {
			t.Errorf("%s mtime %v, want %v", p, fi.ModTime(), epoch)
		}
		if m := fi.Mode().Perm(); fi.Mode().IsRegular() && m != 0o644 && m != 0o755 || fi.IsDir() && m != 0o755 {
			t.Errorf("%s mode %v, want 0644/0755", p, fi.Mode())
		}
		if d.Name() == ".git" {
			t.Errorf("%s: .git in the module tree", p)
		}
		return nil
	})

	// nothing changed: nothing done
	rep, err = Install(context.Background(), pf, lk, env, moddir, WithCache(cache), WithEpoch(epoch))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Installed) != 0 || len(rep.Unchanged) != 4 {
		t.Errorf("second install: installed %v unchanged %v, want none and 4", rep.Installed, rep.Unchanged)
	}
	// a hand-edited module is put right; a directory imagebake did not
	// install is kept (purging deletes only what imagebake made)
	testutil.Must(t, os.WriteFile(filepath.Join(moddir, "alpha", "metadata.json"), []byte("edited"), 0o644))
	testutil.Must(t, os.MkdirAll(filepath.Join(moddir, "stray", "x"), 0o755))
	rep, err = Install(context.Background(), pf, lk, env, moddir, WithCache(cache), WithEpoch(epoch))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Installed, ",") != "alpha" || len(rep.Removed) != 0 {
		t.Errorf("after edits: installed %v removed %v, want [alpha] []", rep.Installed, rep.Removed)
	}
	if _, err := os.Stat(filepath.Join(moddir, "stray", "x")); err != nil {
		t.Errorf("the hand-made stray dir was purged: %v", err)
	}
	sameTree(t, filepath.Join(moddir, "alpha"), archive(t, a, want["alpha"]))

	// a module dropped from the Puppetfile was installed by imagebake: purged
	pf2 := writePuppetfile(t, env, fmt.Sprintf(`
mod 'alpha', :git => '%s', :tag => 'v1.0.0'
mod 'gamma', :git => '%s', :tag => 'v1.1.0', :install_path => 'site'
mod 'delta', :git => '%s', :ref => 'v1.0.0', :exclude_spec => true
`, a.url, b.url, a.url))
	rep, err = Install(context.Background(), pf2, nil, env, moddir, WithCache(cache), WithEpoch(epoch))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Removed, ",") != "beta" {
		t.Errorf("after dropping beta: removed %v, want [beta]", rep.Removed)
	}
	if _, err := os.Stat(filepath.Join(moddir, "stray", "x")); err != nil {
		t.Errorf("the hand-made stray dir was purged: %v", err)
	}
}

func TestLockedInstallAndDrift(t *testing.T) {
	t.Parallel()
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) { testLockedInstallAndDrift(t, proto) })
	}
}

func testLockedInstallAndDrift(t *testing.T, proto string) {
	root := t.TempDir()
	a := newUpstream(t, root, "alpha")
	serve(t, proto, a)
	env := filepath.Join(root, "env")
	pf := writePuppetfile(t, env, fmt.Sprintf(`
mod 'alpha', :git => '%s', :tag => 'v1.0.0'
mod 'beta',  :git => '%s', :branch => 'feature#1'
mod 'gamma', :git => '%s', :branch => 'main'
`, a.url, a.url, a.url))
	cache := filepath.Join(root, "cache")
	ctx := context.Background()
	lk, err := Lock(ctx, pf, WithCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, pf, lk, WithCache(cache)); err != nil {
		t.Fatalf("Verify right after Lock: %v", err)
	}
	oldTag, oldMain, oldFeature := a.rev(t, "v1.0.0"), a.rev(t, "main"), a.rev(t, "feature#1")

	// upstream moves the tag, force-pushes main to a rewritten history, deletes the feature branch
	testutil.Git(t, a.work, "checkout", "-q", "--orphan", "rewrite")
	newMain := a.commit(t, map[string]string{"manifests/init.pp": "class rewritten {}\n"}, "rewrite")
	testutil.Git(t, a.work, "tag", "-f", "-a", "v1.0.0", "-m", "moved")
	a.push(t, "rewrite:main", "v1.0.0")
	a.push(t, ":feature#1")
	testutil.Git(t, a.bare, "reflog", "expire", "--expire=now", "--all")
	testutil.Git(t, a.bare, "gc", "-q", "--prune=now")
	if exec.Command("git", "-C", a.bare, "cat-file", "-e", oldFeature).Run() == nil {
		t.Fatal("fixture: the deleted branch's commit should be gone from the remote")
	}

	problems, err := Verify(ctx, pf, lk, WithCache(cache))
	if !errors.Is(err, ErrDrift) || !errors.Is(err, failure.ErrVerify) {
		t.Fatalf("Verify after upstream changes = %v, want ErrDrift", err)
	}
	joined := strings.Join(problems, "\n")
	for _, want := range []string{
		fmt.Sprintf(`module "alpha": tag v1.0.0 in %s moved: locked %s, now %s`, a.url, oldTag, a.rev(t, "v1.0.0")),
		fmt.Sprintf(`module "gamma": branch main in %s moved: locked %s, now %s`, a.url, oldMain, newMain),
		fmt.Sprintf(`module "beta": branch feature#1 is gone from %s`, a.url),
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("Verify problems:\n%s\nwant a line containing %q", joined, want)
		}
	}

	// install with the lock still builds exactly the locked commits, from the cache
	moddir := filepath.Join(env, "modules")
	if _, err := Install(ctx, pf, lk, env, moddir, WithCache(cache)); err != nil {
		t.Fatalf("Install with the lock after upstream changes: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(moddir, "gamma", "manifests", "init.pp"))
	if string(b) != "class alpha {}\n" {
		t.Errorf("gamma holds %q, want the locked (pre-rewrite) content", b)
	}

	// a fresh cache cannot find the gc'd commit: the error names module, commit and source
	_, err = Install(ctx, pf, lk, env, filepath.Join(root, "m2"), WithCache(filepath.Join(root, "cache2")))
	if err == nil || !errors.Is(err, failure.ErrNotFound) || !strings.Contains(err.Error(), oldFeature) || !strings.Contains(err.Error(), a.url) || !strings.Contains(err.Error(), `module "beta"`) {
		t.Errorf("Install from an empty cache of a gc'd commit = %v, want not-found naming module beta, %s and %s", err, oldFeature, a.url)
	}
}

func TestStaleLockRefused(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a := newUpstream(t, root, "alpha")
	env := filepath.Join(root, "env")
	cache := filepath.Join(root, "cache")
	pf := writePuppetfile(t, env, fmt.Sprintf("mod 'alpha', :git => '%s', :tag => 'v1.0.0'\n", a.url))
	lk, err := Lock(context.Background(), pf, WithCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	// a comment changes the file but not the pins: the lock still fits
	pf2 := writePuppetfile(t, env, fmt.Sprintf("# a comment\nmod 'alpha', :git => '%s', :tag => 'v1.0.0'\n", a.url))
	if d := Stale(pf2, lk); len(d) != 0 {
		t.Errorf("Stale after a comment = %v, want none", d)
	}
	pf3 := writePuppetfile(t, env, fmt.Sprintf("mod 'alpha', :git => '%s', :tag => 'v1.1.0'\nmod 'x/y', '1.0.0'\n", a.url))
	_, err = Install(context.Background(), pf3, lk, env, filepath.Join(env, "modules"), WithCache(cache))
	if !errors.Is(err, ErrLockStale) {
		t.Fatalf("Install with a stale lock = %v, want ErrLockStale", err)
	}
	for _, want := range []string{`module "alpha": ref "v1.1.0" in the Puppetfile`, `"v1.0.0" in the lock`, `module "x/y": in the Puppetfile`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("stale error %q does not contain %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(env, "modules")); err == nil {
		t.Error("a refused install created the module dir")
	}
}

func TestMissingTagNamesNearest(t *testing.T) {
	t.Parallel()
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) { testMissingTagNamesNearest(t, proto) })
	}
}

func testMissingTagNamesNearest(t *testing.T, proto string) {
	root := t.TempDir()
	a := newUpstream(t, root, "alpha")
	serve(t, proto, a)
	pf := writePuppetfile(t, filepath.Join(root, "env"), fmt.Sprintf("mod 'alpha', :git => '%s', :tag => 'v1.0.1'\n", a.url))
	_, err := Lock(context.Background(), pf, WithCache(filepath.Join(root, "cache")))
	if !errors.Is(err, failure.ErrNotFound) {
		t.Fatalf("Lock with a missing tag = %v, want not found", err)
	}
	for _, want := range []string{"Puppetfile:1:5", `module "alpha"`, `tag "v1.0.1"`, a.url, "nearest tags: v1.0.0, v1.1.0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// forgeServer serves a Forge v3 API from the fixture tarballs; corrupt
// names a release whose advertised sha256 is wrong.
func forgeServer(t *testing.T, corrupt string) *httptest.Server {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "forge", "*.tar.gz"))
	type rel struct {
		Version    string `json:"version"`
		FileURI    string `json:"file_uri"`
		FileSHA256 string `json:"file_sha256"`
	}
	rels := map[string]rel{}
	var order []rel
	for _, f := range files {
		b, _ := os.ReadFile(f)
		sum := sha256.Sum256(b)
		base := strings.TrimSuffix(filepath.Base(f), ".tar.gz")
		v := base[strings.LastIndex(base, "-")+1:]
		r := rel{Version: v, FileURI: "/v3/files/" + filepath.Base(f), FileSHA256: hex.EncodeToString(sum[:])}
		if v == corrupt {
			r.FileSHA256 = strings.Repeat("0", 64)
		}
		rels[base] = r
		order = append(order, r)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v3/modules/acme-hello", func(w http.ResponseWriter, r *http.Request) {
		cur := order[len(order)-1]
		json.NewEncoder(w).Encode(map[string]any{"slug": "acme-hello", "current_release": cur, "releases": order})
	})
	mux.HandleFunc("/v3/releases/", func(w http.ResponseWriter, r *http.Request) {
		rl, ok := rels[strings.TrimPrefix(r.URL.Path, "/v3/releases/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(rl)
	})
	mux.Handle("/v3/files/", http.StripPrefix("/v3/files/", http.FileServer(http.Dir(filepath.Join("testdata", "forge")))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestForgeModules(t *testing.T) {
	t.Parallel()
	srv := forgeServer(t, "")
	root := t.TempDir()
	env := filepath.Join(root, "env")
	cache := filepath.Join(root, "cache")
	pf := writePuppetfile(t, env, "forge '"+srv.URL+"'\nmod 'acme/hello', :latest\n")
	ctx := context.Background()
	lk, err := Lock(ctx, pf, WithCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := lk.Find("acme/hello")
	b, _ := os.ReadFile(filepath.Join("testdata", "forge", "acme-hello-1.1.0.tar.gz"))
	sum := sha256.Sum256(b)
	if m.Version != "1.1.0" || m.SHA256 != hex.EncodeToString(sum[:]) || m.URL != srv.URL+"/v3/files/acme-hello-1.1.0.tar.gz" {
		t.Errorf(":latest locked to %+v, want 1.1.0 with the tarball's sha256 and URL", m)
	}
	moddir := filepath.Join(env, "modules")
	if _, err := Install(ctx, pf, lk, env, moddir, WithCache(cache)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(moddir, "hello", "metadata.json"))
	if !strings.Contains(string(got), `"1.1.0"`) {
		t.Errorf("installed metadata.json = %q, want version 1.1.0", got)
	}
	if _, err := Verify(ctx, pf, lk, WithCache(cache)); err != nil {
		t.Errorf("Verify = %v", err)
	}

	// a version the Forge does not have: not found, with the nearest ones
	pf = writePuppetfile(t, env, "forge '"+srv.URL+"'\nmod 'acme/hello', '1.2.0'\n")
	_, err = Lock(ctx, pf, WithCache(cache))
	if !errors.Is(err, failure.ErrNotFound) || !strings.Contains(err.Error(), "nearest: 1.1.0, 1.0.0") {
		t.Errorf("Lock of a missing version = %v, want not found with nearest 1.1.0, 1.0.0", err)
	}
}

func TestForgeChecksumMismatchRefused(t *testing.T) {
	t.Parallel()
	srv := forgeServer(t, "1.0.0")
	root := t.TempDir()
	env := filepath.Join(root, "env")
	cache := filepath.Join(root, "cache")
	pf := writePuppetfile(t, env, "forge '"+srv.URL+"'\nmod 'acme-hello', '1.0.0'\n")
	ctx := context.Background()
	lk, err := Lock(ctx, pf, WithCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Install(ctx, pf, lk, env, filepath.Join(env, "modules"), WithCache(cache))
	if !errors.Is(err, forge.ErrChecksum) {
		t.Fatalf("Install of a tarball with the wrong sha256 = %v, want ErrChecksum", err)
	}
	b, _ := os.ReadFile(filepath.Join("testdata", "forge", "acme-hello-1.0.0.tar.gz"))
	sum := sha256.Sum256(b)
	for _, want := range []string{"acme-hello", "1.0.0", srv.URL + "/v3/files/acme-hello-1.0.0.tar.gz", strings.Repeat("0", 64), hex.EncodeToString(sum[:])} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(env, "modules", "hello")); err == nil {
		t.Error("the refused module was installed")
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "forge")); len(ents) != 0 {
		t.Errorf("the refused tarball stayed in the cache: %v", ents)
	}
}

// TestSharedCacheTwoProcesses runs two real processes (this test binary,
// re-executed) installing from one empty cache at once.
func TestSharedCacheTwoProcesses(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var mods []string
	for i := range 6 {
		u := newUpstream(t, root, fmt.Sprintf("m%d", i))
		mods = append(mods, fmt.Sprintf("mod 'm%d', :git => '%s', :tag => 'v1.1.0'", i, u.url))
	}
	env := filepath.Join(root, "env")
	writePuppetfile(t, env, strings.Join(mods, "\n")+"\n")
	cache := filepath.Join(root, "cache")
	var cmds []*exec.Cmd
	for i := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperInstall$")
		cmd.Env = append(os.Environ(), "IMAGEBAKE_HELPER=1", "HELPER_PF="+filepath.Join(env, "Puppetfile"),
			"HELPER_CACHE="+cache, fmt.Sprintf("HELPER_MODDIR=%s/mods%d", root, i))
		cmds = append(cmds, cmd)
	}
	outs := make([][]byte, 2)
	errs := make([]error, 2)
	done := make(chan int)
	for i, c := range cmds {
		go func() { outs[i], errs[i] = c.CombinedOutput(); done <- i }()
	}
	<-done
	<-done
	for i := range 2 {
		if errs[i] != nil {
			t.Errorf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	a, b := tree(t, filepath.Join(root, "mods0")), tree(t, filepath.Join(root, "mods1"))
	if len(a) == 0 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("the two processes installed different trees:\n%v\n%v", a, b)
	}
}

func TestHelperInstall(t *testing.T) {
	t.Parallel()
	if os.Getenv("IMAGEBAKE_HELPER") != "1" {
		t.Skip("helper process for TestSharedCacheTwoProcesses")
	}
	pf, err := puppetfile.ReadFile(os.Getenv("HELPER_PF"))
	if err != nil {
		t.Fatal(err)
	}
	var lk *lockfile.Lock
	if _, err := Install(context.Background(), pf, lk, filepath.Dir(pf.Path), os.Getenv("HELPER_MODDIR"), WithCache(os.Getenv("HELPER_CACHE"))); err != nil {
		t.Fatal(err)
	}
}
