//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// A new user's road: a Puppet control repo with no imagebake.toml (the
// example's, with its own, removed), the base copied in and ignored.
// init writes the file, the dry bake passes, and the commands it prints
// (commit, tag, bake) give a release that verify rebuilds. Bad input is
// refused with exit 2, naming what and where, every problem in one run.
func TestInitThenBake(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	ctl := testutil.Example(t, root)
	testutil.Git(t, ctl, "rm", "-q", "imagebake.toml")
	testutil.Must(t, os.MkdirAll(filepath.Join(ctl, "base"), 0o755))
	b, err := os.ReadFile(filepath.Join(root, "base", "rootfs.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, os.WriteFile(filepath.Join(ctl, "base", "rootfs.tar.gz"), b, 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(ctl, ".gitignore"), []byte("base/\ndist/\n"), 0o644))
	testutil.Git(t, ctl, "add", ".gitignore")
	testutil.Git(t, ctl, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "a control repo without imagebake")
	cache := filepath.Join(root, "cache")

	out, err := runCmd("init", ctl, "--base", filepath.Join(ctl, "base", "rootfs.tar.gz"), "--arches", "amd64,arm64", "--cache", cache)
	t.Logf("init:\n%s", out)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	for _, want := range []string{"family:  control", "arches:  amd64, arm64", "agents:  none", "Puppetfile: 3 modules (3 git) into modules/",
		"environment.conf: modulepath = site-modules:modules:$basemodulepath", "hiera.yaml: version 5",
		"images control-1.0.0-amd64, control-1.0.0-arm64: ok", "imagebake bake --repo " + ctl + " --release 1.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("init did not say %q", want)
		}
	}
	if out, err := runCmd("init", ctl, "--cache", cache); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "exists; --force") {
		t.Errorf("init over an imagebake.toml = %v, want exit 2 naming --force\n%s", err, out)
	}
	// a Puppetfile changed and not committed: the dry bake says it read HEAD's
	pf := filepath.Join(ctl, "Puppetfile")
	pb, err := os.ReadFile(pf)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, os.WriteFile(pf, append(pb, []byte("\n# a comment not committed\n")...), 0o644))
	out, err = runCmd("init", ctl, "--force", "--base", filepath.Join(ctl, "base", "rootfs.tar.gz"), "--arches", "amd64,arm64", "--cache", cache)
	if err != nil || !strings.Contains(out, "note: Puppetfile changed since HEAD") {
		t.Errorf("init with a Puppetfile not committed = %v, want a note that the dry bake read HEAD's:\n%s", err, out)
	}
	testutil.Must(t, os.WriteFile(pf, pb, 0o644))

	// the printed road: commit, tag, bake, verify
	testutil.Git(t, ctl, "add", "imagebake.toml")
	testutil.Git(t, ctl, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "imagebake: bake this control repo")
	testutil.Git(t, ctl, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "tag", "-a", "v2.0.0", "-m", "release 2.0.0")
	dist := filepath.Join(ctl, "dist")
	if out, err := runCmd("bake", "--repo", ctl, "--release", "2.0.0", "--context", ctl, "--out", dist, "--cache", cache); err != nil {
		t.Fatalf("bake after init: %v\n%s", err, out)
	}
	if out, err := runCmd("verify", filepath.Join(dist, "control-2.0.0", "manifest.toml"), "--cache", cache); err != nil {
		t.Fatalf("verify after init: %v\n%s", err, out)
	}
	if out, err := runCmd("version", "--manifest", filepath.Join(dist, "control-2.0.0", "manifest.toml")); err != nil || !strings.Contains(out, "none (no agent binaries)") {
		t.Errorf("version of an image without agent binaries = %v:\n%s", err, out)
	}
}

func TestInitRefusals(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plain := filepath.Join(root, "plain")
	testutil.Must(t, os.MkdirAll(plain, 0o755))
	repo := filepath.Join(root, "repo")
	testutil.Git(t, root, "init", "-q", repo)
	testutil.Must(t, os.WriteFile(filepath.Join(repo, "Puppetfile"), []byte("mod 'a', :git => 'https://example.invalid/a.git', :tga => 'v1'\n"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(repo, "environment.conf"), []byte("modulepath = site:modules\nthis is not a setting\n[other]\n"), 0o644))
	outside := filepath.Join(root, "base.tar")
	testutil.Must(t, os.WriteFile(outside, []byte("x"), 0o644))
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"not a git repo", []string{"init", plain}, []string{plain + " is not the work tree of a git repository", filepath.Join(plain, ".git")}},
		{"every problem at once", []string{"init", repo, "--base", outside},
			[]string{"Puppetfile:1", "tga", "environment.conf:2", "environment.conf:3", "base " + outside + " is outside the control repo"}},
		{"bad family", []string{"init", repo, "--family", "Web Servers", "--no-check"}, []string{"family"}},
	} {
		out, err := runCmd(append(c.args, "--cache", filepath.Join(root, "cache"))...)
		if failure.Code(err) != failure.ExitUsage {
			t.Errorf("%s: init = %v (exit %d), want exit 2\n%s", c.name, err, failure.Code(err), out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: the error does not name %q: %v", c.name, w, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "imagebake.toml")); err == nil {
		t.Error("a refused init wrote imagebake.toml")
	}
}
