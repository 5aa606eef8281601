package bake

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/confine"
)

// gitIn runs git in dir with a fixed identity.
func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x.invalid")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// hostDir makes a directory standing in for a host directory, holding one
// file the bake must not touch.
func hostDir(t *testing.T, sub ...string) string {
	t.Helper()
	d := filepath.Join(append([]string{t.TempDir(), "host"}, sub...)...)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "precious"), []byte("host data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func hostIntact(t *testing.T, name, d string, wantEntries int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d, "precious"))
	if err != nil || string(b) != "host data\n" {
		t.Errorf("%s: host file %s/precious = %q, %v; the bake wrote outside its tree", name, d, b, err)
	}
	if ents, _ := os.ReadDir(d); len(ents) != wantEntries {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s: host dir %s holds %v, want %d entries as before the bake", name, d, names, wantEntries)
	}
}

// TestBakeNeverWritesThroughCommittedSymlinks: a control repo (or a module)
// that commits a symlink cannot make a bake write or delete outside the
// tree it builds. Each case is a real commit and tag of the example repo.
func TestBakeNeverWritesThroughCommittedSymlinks(t *testing.T) {
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	pfPath := filepath.Join(repo, "Puppetfile")
	orig, _ := os.ReadFile(pfPath)
	release := func(tag string, change func()) {
		t.Helper()
		os.Remove(filepath.Join(repo, "modules"))
		os.Remove(filepath.Join(repo, "site"))
		os.WriteFile(pfPath, orig, 0o644)
		change()
		gitIn(t, repo, "add", "-A")
		gitIn(t, repo, "commit", "-qm", tag)
		gitIn(t, repo, "tag", "v"+tag)
	}
	bake := func(rel string) error {
		o := opts(root, repo, filepath.Join(root, "dist"))
		o.Release = rel
		_, err := Bake(ctx, o)
		return err
	}
	want := func(name string, err error, contains ...string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: bake succeeded, want a refusal", name)
			return
		}
		for _, c := range contains {
			if !strings.Contains(err.Error(), c) {
				t.Errorf("%s: error %q does not name %q", name, err, c)
			}
		}
	}

	// 1. modules -> /host/dir
	h1 := hostDir(t, "dir")
	release("1.1.0", func() {
		os.RemoveAll(filepath.Join(repo, "modules"))
		if err := os.Symlink(h1, filepath.Join(repo, "modules")); err != nil {
			t.Fatal(err)
		}
	})
	err := bake("1.1.0")
	want("modules symlink", err, "modules is a symlink to", h1)
	if !errors.Is(err, confine.ErrSymlink) {
		t.Errorf("modules symlink: error %v is not ErrSymlink", err)
	}
	hostIntact(t, "modules symlink", h1, 1)

	// 2. site -> ../../../../host/dir2 and a module with :install_path => 'site'
	h2 := hostDir(t, "dir2")
	os.MkdirAll(filepath.Join(h2, "extra"), 0o755)
	up := strings.Repeat("../", 40) + strings.TrimPrefix(h2, "/")
	release("1.2.0", func() {
		os.Symlink(up, filepath.Join(repo, "site"))
		os.WriteFile(pfPath, append(append([]byte(nil), orig...),
			[]byte("\nmod 'extra', :git => 'file://"+root+"/remotes/ntp.git', :tag => 'v1.0.0', :install_path => 'site'\n")...), 0o644)
	})
	want("install_path through a symlink", bake("1.2.0"), "site is a symlink to")
	hostIntact(t, "install_path through a symlink", h2, 2)
	if ents, _ := os.ReadDir(filepath.Join(h2, "extra")); len(ents) != 0 {
		t.Errorf("install_path through a symlink: the host's extra dir was replaced (%d entries)", len(ents))
	}

	// 3. a module holding outdir -> /host/dir3, another installed into it
	h3 := hostDir(t, "dir3")
	sym := filepath.Join(root, "src", "symmod")
	os.MkdirAll(filepath.Join(sym, "manifests"), 0o755)
	os.WriteFile(filepath.Join(sym, "manifests", "init.pp"), []byte("class symmod { }\n"), 0o644)
	os.Symlink(h3, filepath.Join(sym, "outdir"))
	gitIn(t, root, "init", "-q", "-b", "main", sym)
	gitIn(t, sym, "add", "-A")
	gitIn(t, sym, "commit", "-qm", "symmod")
	gitIn(t, sym, "tag", "v1.0.0")
	release("1.3.0", func() {
		os.WriteFile(pfPath, append(append([]byte(nil), orig...), []byte("\nmod 'symmod', :git => 'file://"+sym+"', :tag => 'v1.0.0'\n"+
			"mod 'inner', :git => 'file://"+root+"/remotes/ntp.git', :tag => 'v1.0.0', :install_path => 'modules/symmod/outdir'\n")...), 0o644)
	})
	for i := 0; i < 3; i++ { // it used to depend on the order modules were written in
		want("module inside a module", bake("1.3.0"), "inner", "inside the directory of module symmod")
	}
	hostIntact(t, "module inside a module", h3, 1)

	// the symlink itself, with nothing nested: shipped as a symlink, not followed
	release("1.4.0", func() {
		os.WriteFile(pfPath, append(append([]byte(nil), orig...), []byte("\nmod 'symmod', :git => 'file://"+sym+"', :tag => 'v1.0.0'\n")...), 0o644)
	})
	if err := bake("1.4.0"); err != nil {
		t.Fatalf("a module holding a symlink: %v", err)
	}
	hostIntact(t, "module with a symlink", h3, 1)
	if ents, _ := os.ReadDir(filepath.Join(root, "dist")); len(ents) != 1 {
		t.Errorf("dist holds %d entries, want only example-1.4.0 (refused bakes leave nothing)", len(ents))
	}
}
