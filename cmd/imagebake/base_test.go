package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// base pin --write puts the index digest of a tag into imagebake.toml,
// in place of the old base, keeping the comments; an arch the index lacks
// leaves the file as it was.
func TestBasePinWrite(t *testing.T) {
	t.Parallel()
	_, host := testutil.MemRegistry(t, nil)
	idx, _ := testutil.BaseIndex(t, "amd64", "arm64")
	tag, _ := name.NewTag(host + "/library/debian:12")
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	cfg := filepath.Join(t.TempDir(), "imagebake.toml")
	src := "# the golden image\nfamily = \"example\"\narches = [\"amd64\", \"arm64\"]\n\n[base]  # what we build on\nrootfs = \"base/rootfs.tar.gz\" # old\nsha256 = \"" + strings.Repeat("a", 64) + "\"\n\n[agents]\nname = \"mozagent\"\nmajor = \"2\"\n"
	testutil.Must(t, os.WriteFile(cfg, []byte(src), 0o644))
	if code := run(context.Background(), []string{"base", "pin", host + "/library/debian:12", "--write", "--config", cfg}); code != failure.ExitOK {
		t.Fatalf("base pin --write exit %d", code)
	}
	got, _ := os.ReadFile(cfg)
	want := strings.Replace(src, "rootfs = \"base/rootfs.tar.gz\" # old\nsha256 = \""+strings.Repeat("a", 64)+"\"\n", "image = \""+host+"/library/debian@"+d.String()+"\"\n", 1)
	if string(got) != want {
		t.Errorf("imagebake.toml after base pin --write:\n%s\nwant:\n%s", got, want)
	}
	// an arch the index lacks: exit 3, the file untouched
	testutil.Must(t, os.WriteFile(cfg, []byte(strings.Replace(src, `"arm64"]`, `"arm64", "riscv64"]`, 1)), 0o644))
	before, _ := os.ReadFile(cfg)
	if code := run(context.Background(), []string{"base", "pin", host + "/library/debian:12", "--write", "--config", cfg}); code != failure.ExitNotFound {
		t.Errorf("base pin --write with an arch the index lacks: exit %d, want %d", code, failure.ExitNotFound)
	}
	if after, _ := os.ReadFile(cfg); string(after) != string(before) {
		t.Errorf("a refused base pin --write changed imagebake.toml")
	}
}

// base show reads a Debian tree (os-release, dpkg status) from a rootfs
// tarball and prints its OS, arch and packages, as text and as JSON.
func TestBaseShow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	testutil.Must(t, os.MkdirAll(filepath.Join(tree, "etc"), 0o755))
	testutil.Must(t, os.MkdirAll(filepath.Join(tree, "var", "lib", "dpkg"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(tree, "etc", "os-release"), []byte("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(tree, "var", "lib", "dpkg", "status"), []byte("Package: libssl3\nStatus: install ok installed\nArchitecture: arm64\nVersion: 3.0.11-1~deb12u1\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n"), 0o644))
	tarball := filepath.Join(dir, "base.tar.gz")
	testutil.Run(t, "tar", "-czf", tarball, "-C", tree, ".")
	out := capture(t, "base", "show", tarball)
	for _, want := range []string{"os\tdebian 12 (bookworm)", "arch\tarm64", "packages\t2 (dpkg)", "  libssl3\t3.0.11-1~deb12u1\tarm64"} {
		if !strings.Contains(out, want) {
			t.Errorf("base show does not say %q:\n%s", want, out)
		}
	}
	var js struct {
		OS       struct{ ID string }
		Arch     string
		Packages []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(capture(t, "--json", "base", "show", tarball)), &js); err != nil || js.OS.ID != "debian" || js.Arch != "arm64" || len(js.Packages) != 2 {
		t.Errorf("base show --json = %+v, %v", js, err)
	}
	if code := run(context.Background(), []string{"base", "show", filepath.Join(dir, "missing.tar")}); code == failure.ExitOK {
		t.Error("base show of a missing path succeeded")
	}
}

// capture runs imagebake with args and returns what it printed on stdout.
func capture(t *testing.T, args ...string) string {
	t.Helper()
	root := newRootCommand()
	var buf strings.Builder
	root.SetOut(&buf)
	root.SetArgs(args)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("imagebake %s: %v", strings.Join(args, " "), err)
	}
	return buf.String()
}

// puppetfile check: a summary and exit 0 for a valid file, every error and
// exit 2 for an invalid one; nothing is fetched.
func TestPuppetfileCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "Puppetfile")
	testutil.Must(t, os.WriteFile(good, []byte("forge 'https://forge.invalid'\nmod 'puppetlabs/stdlib', '9.6.0'\nmod 'x', :git => 'https://git.invalid/x.git', :tag => 'v1'\nexclusion 'y'\n"), 0o644))
	out := capture(t, "puppetfile", "check", "--puppetfile", good)
	if !strings.Contains(out, good+": valid, 2 modules (1 git, 1 forge, 0 local)") || !strings.Contains(out, "exclusion \"y\" does nothing") {
		t.Errorf("check of a valid file:\n%s", out)
	}
	bad := filepath.Join(dir, "Bad")
	testutil.Must(t, os.WriteFile(bad, []byte("mod 'a', :svn => 'u'\nmod 'B', :git => 'u', :tag => 'v'\nmod 'c', :git => 'u'\n"), 0o644))
	if code := run(context.Background(), []string{"puppetfile", "check", "--puppetfile", bad}); code != failure.ExitUsage {
		t.Errorf("check of a file with three errors: exit %d, want %d", code, failure.ExitUsage)
	}
}
