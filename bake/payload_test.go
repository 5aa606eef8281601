//go:build linux

package bake

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// [payload] exclude leaves CI files and docs of the control repo out of
// the image; the manifest records the globs, so a rebuild from it leaves
// out the same and matches.
func TestPayloadExclude(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	for name, content := range map[string]string{
		"ci/steps.sh":                 "#!/bin/sh\n",
		".github/workflows/image.yml": "on: push\n",
		"README.md":                   "# control repo\n",
		"site-modules/role/README.md": "# kept: not at the root, and README.md is excluded by its path only\n",
		"docs/guide.md":               "# kept\n",
	} {
		p := filepath.Join(repo, filepath.FromSlash(name))
		testutil.Must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		testutil.Must(t, os.WriteFile(p, []byte(content), 0o644))
	}
	cfg := filepath.Join(repo, "imagebake.toml")
	b, _ := os.ReadFile(cfg)
	testutil.Must(t, os.WriteFile(cfg, append(b, "\n[payload]\nexclude = [\"ci\", \".github\", \"/README.md\"]\n"...), 0o644))
	testutil.Git(t, repo, "add", "-A")
	testutil.Git(t, repo, "commit", "-qm", "ci, docs")
	testutil.Git(t, repo, "tag", "v1.1.0")

	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches, o.Release, o.Builder = []string{"amd64"}, "1.1.0", "rootfs"
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.PayloadExclude, ",") != "ci,.github,/README.md" {
		t.Errorf("manifest payload_exclude = %v", m.PayloadExclude)
	}
	raw, err := os.ReadFile(filepath.Join(o.Out, "example-1.1.0", m.Images[0].Name+".rootfs.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	files := testutil.Untar(t, raw)
	env := strings.TrimPrefix(m.Environment, "/")
	for name, want := range map[string]bool{
		"ci/steps.sh": false, ".github/workflows/image.yml": false, "README.md": false,
		"site-modules/role/README.md": true, "docs/guide.md": true, "manifests/site.pp": true, "imagebake.toml": true,
	} {
		if _, ok := files[env+"/"+name]; ok != want {
			t.Errorf("%s in the image: %v, want %v", name, ok, want)
		}
	}
	// a rebuild from the manifest alone leaves out the same
	if _, err := Verify(ctx, filepath.Join(o.Out, "example-1.1.0", manifest.FileName), o); err != nil {
		t.Errorf("verify of a release with payload_exclude: %v", err)
	}
	// a glob that is not one is refused with the file named
	testutil.Must(t, os.WriteFile(cfg, append(b, "\n[payload]\nexclude = [\"[\"]\n"...), 0o644))
	testutil.Git(t, repo, "commit", "-qam", "bad glob")
	testutil.Git(t, repo, "tag", "v1.2.0")
	o.Release = "1.2.0"
	if _, err := Bake(ctx, o); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `[payload] exclude: "["`) {
		t.Errorf("a bad exclude glob = %v", err)
	}
	// patterns that leave out what Puppet reads are refused, each named
	for i, c := range []struct{ globs, want string }{
		{`"*"`, `"*" leaves out environment.conf; "*" leaves out hiera.yaml; "*" leaves out manifests/`},
		{`"manifests/*.pp"`, `"manifests/*.pp" leaves out every file of manifests/`},
		{`"*.conf"`, `"*.conf" leaves out environment.conf`},
	} {
		testutil.Must(t, os.WriteFile(cfg, append(b, "\n[payload]\nexclude = ["+c.globs+"]\n"...), 0o644))
		testutil.Git(t, repo, "commit", "-qam", "exclude "+c.globs)
		o.Release = fmt.Sprintf("1.3.%d", i)
		testutil.Git(t, repo, "tag", "v"+o.Release)
		if _, err := Bake(ctx, o); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("exclude = [%s]: %v, want exit 2 saying %s", c.globs, err, c.want)
		}
	}
}
