//go:build linux

package bake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
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
)

// Two releases with the same agents share the agents layer byte for
// byte (defaults 2): release.toml, which names the release, is in a
// layer of its own, and the agents layer has its archive's time.
func TestAgentsLayerRepeats(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches, o.Release = []string{"amd64"}, "1.1.0"
	testutil.Git(t, repo, "tag", "v1.1.0")
	first, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, os.WriteFile(filepath.Join(repo, "manifests", "site.pp"), []byte("# 1.2.0\nnode default { include role::base }\n"), 0o644))
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

// A Forge module's tarball is kept from the cache, else downloaded from
// its pinned URL; restored into a fresh cache under the name the Forge
// client reads it by, checked against its pinned sha256.
func TestForgeSourceKeptAndRestored(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "puppet", "testdata", "forge", "acme-hello-1.1.0.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	hexsum := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(b) }))
	defer srv.Close()
	root := t.TempDir()
	blobs := filepath.Join(root, "rel", "blobs", "sha256")
	testutil.Must(t, os.MkdirAll(blobs, 0o755))
	s := &manifest.Sources{Version: 1}
	mod := lockfile.Module{Name: "acme/hello", Kind: "forge", Version: "1.1.0", URL: srv.URL + "/v3/files/acme-hello-1.1.0.tar.gz", SHA256: hexsum}
	// not in the cache: downloaded from the pinned URL
	if err := keepForge(ctx, s, mod, filepath.Join(root, "cache", "forge"), blobs, Options{}); err != nil {
		t.Fatal(err)
	}
	if len(s.Source) != 1 || s.Source[0].File != "acme-hello-1.1.0.tar.gz" || s.Source[0].Blob != "sha256:"+hexsum {
		t.Fatalf("kept: %+v", s.Source)
	}
	st := &Stored{Sources: s, Where: "the test", Read: func(_ context.Context, blob string) (io.ReadCloser, error) {
		return os.Open(filepath.Join(blobs, strings.TrimPrefix(blob, "sha256:")))
	}}
	fresh := filepath.Join(root, "fresh")
	want := &manifest.Manifest{Family: "example", Release: "1.0.0"}
	if err := st.restore(ctx, want, Options{Cache: fresh}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(fresh, "forge", "acme-hello-1.1.0.tar.gz")); err != nil || string(got) != string(b) {
		t.Fatalf("restored tarball: %v", err)
	}
	// a blob edited in the store is refused, naming the module
	testutil.Must(t, os.WriteFile(filepath.Join(blobs, hexsum), append(b, 0), 0o644))
	err = st.restore(ctx, want, Options{Cache: filepath.Join(root, "fresh2")})
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "module acme/hello of example-1.0.0") {
		t.Errorf("restore of an edited blob = %v", err)
	}
}

// A release baked with defaults 1 is rebuilt by its own rules: release.toml
// in its agents layer, no release layer.
func TestDefaultsOneRebuildsItsOwnWay(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches, o.Release = []string{"amd64"}, "1.1.0"
	testutil.Git(t, repo, "tag", "v1.1.0")
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if roles := layerRoles(m.Images[0].Layers); roles != "base environment agents release" {
		t.Fatalf("a defaults 2 bake's layers: %s", roles)
	}
	m.Imagebake.Defaults = 1
	o.Out, o.Pinned = filepath.Join(root, "old"), m
	old, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if roles := layerRoles(old.Images[0].Layers); roles != "base environment agents" || old.Imagebake.Defaults != 1 {
		t.Fatalf("a defaults 1 rebuild's layers: %s (defaults %d)", roles, old.Imagebake.Defaults)
	}
	if _, err := CheckArtifacts(ctx, filepath.Join(o.Out, "example-1.1.0", manifest.FileName)); err != nil {
		t.Errorf("the defaults 1 release (release.toml in its agents layer) does not check: %v", err)
	}
}

func layerRoles(ls []manifest.Layer) string {
	var r []string
	for _, l := range ls {
		r = append(r, l.Role)
	}
	return strings.Join(r, " ")
}
