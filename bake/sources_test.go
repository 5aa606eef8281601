package bake

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

// Two releases with the same agents share the agents layer byte for
// byte (defaults 2): release.toml, which names the release, is in a
// layer of its own, and the agents layer has its archive's time.
func TestAgentsLayerRepeats(t *testing.T) {
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches, o.Release = []string{"amd64"}, "1.1.0"
	testutil.Git(t, repo, "tag", "v1.1.0")
	first, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(repo, "manifests", "site.pp"), []byte("# 1.2.0\nnode default { include role::base }\n"), 0o644)
	testutil.Git(t, repo, "commit", "-qam", "1.2.0")
	testutil.Git(t, repo, "tag", "v1.2.0")
	o.Release = "1.2.0"
	second, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	for _, l := range first.Images[0].Layers {
		got[l.Role] = [2]string{l.Digest, ""}
	}
	for _, l := range second.Images[0].Layers {
		g := got[l.Role]
		g[1] = l.Digest
		got[l.Role] = g
	}
	if d := got["agents"]; d[0] == "" || d[0] != d[1] {
		t.Errorf("the agents layers of 1.1.0 and 1.2.0 differ: %v", d)
	}
	for _, r := range []string{"environment", "release"} {
		if d := got[r]; d[0] == "" || d[0] == d[1] {
			t.Errorf("the %s layers of 1.1.0 and 1.2.0: %v, want two", r, d)
		}
	}
}
