//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// A release proves and rebuilds itself with every upstream gone: 1.0.0
// of the example is published into a directory store, then the control
// repo, the module remotes, the agent store, the base file and the cache
// are all removed. verify of the published manifest rebuilds every image
// from the store's sources alone, and bake --catalog rebuilds the release
// to its published digests. A source blob edited in the store is refused
// (exit 4), naming it.
func TestReleaseRebuildsWithUpstreamsGone(t *testing.T) {
	t.Run("directory store", func(t *testing.T) { upstreamsGone(t, "") })
	t.Run("S3 store", func(t *testing.T) {
		testutil.S3(t, "golden").Setenv(t)
		upstreamsGone(t, "s3://golden/releases")
	})
}

// upstreamsGone is the story on the store at s3 (a directory store when
// empty).
func upstreamsGone(t *testing.T, s3 string) {
	root, ctl := exampleWithAgents(t)
	releases := filepath.Join(root, "releases")
	if s3 != "" {
		releases = s3
	}
	cache := filepath.Join(root, "cache")
	if out, err := runCmd("bake", "--repo", ctl, "--release", "1.0.0", "--context", root, "--out", filepath.Join(root, "dist"), "--cache", cache); err != nil {
		t.Fatalf("bake: %v\n%s", err, out)
	}
	if _, err := runCmd("publish", filepath.Join(root, "dist", "example-1.0.0"), "--store", releases); err != nil {
		t.Fatalf("publish: %v", err)
	}
	dist := filepath.Join(root, "dist", "example-1.0.0")
	src, err := manifest.ReadSources(filepath.Join(dist, manifest.SourcesFileName))
	if err != nil {
		t.Fatalf("the release keeps no sources: %v", err)
	}
	kinds := map[string]int{}
	for _, s := range src.Source {
		kinds[s.Kind]++
	}
	if kinds["control"] != 1 || kinds["git"] != 3 || kinds["agent"] != 2 || kinds["base"] != 2 {
		t.Errorf("sources kept: %v", kinds)
	}
	published, err := manifest.Read(filepath.Join(dist, manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	// every upstream goes
	for _, p := range []string{ctl, filepath.Join(root, "remotes"), filepath.Join(root, "store"), filepath.Join(root, "base"), cache, filepath.Join(root, "dist"), filepath.Join(root, "src")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	rel := filepath.Join(releases, "images", "example-1.0.0")
	if s3 == "" {
		out, err := runCmd("verify", filepath.Join(rel, manifest.FileName), "--context", root, "--cache", filepath.Join(root, "cache2"))
		if err != nil {
			t.Fatalf("verify with every upstream gone: %v\n%s", err, out)
		}
	}
	if _, err := runCmd("bake", "--catalog", releases, "--release", "1.0.0", "--context", root, "--out", filepath.Join(root, "rebuilt"), "--cache", filepath.Join(root, "cache3")); err != nil {
		t.Fatalf("bake --catalog with every upstream gone: %v", err)
	}
	got, err := manifest.Read(filepath.Join(root, "rebuilt", "example-1.0.0", manifest.FileName))
	if err != nil || got.IndexDigest != published.IndexDigest {
		t.Fatalf("the rebuild's index %s, published %s (%v)", got.IndexDigest, published.IndexDigest, err)
	}

	if s3 != "" {
		return
	}
	// a source blob edited in the store is refused, naming it
	var ntp manifest.Source
	for _, s := range src.Source {
		if s.Name == "ntp" {
			ntp = s
		}
	}
	blob := filepath.Join(releases, "blobs", "sha256", strings.TrimPrefix(ntp.Blob, "sha256:"))
	b, _ := os.ReadFile(blob)
	os.Remove(blob) // a hard link shared with the release directory
	b[len(b)/2] ^= 0xff
	testutil.Must(t, os.WriteFile(blob, b, 0o644))
	testutil.Must(t, os.Remove(filepath.Join(rel, "blobs", "sha256", strings.TrimPrefix(ntp.Blob, "sha256:"))))
	testutil.Must(t, os.Link(blob, filepath.Join(rel, "blobs", "sha256", strings.TrimPrefix(ntp.Blob, "sha256:"))))
	_, err = runCmd("verify", filepath.Join(rel, manifest.FileName), "--context", root, "--cache", filepath.Join(root, "cache4"))
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "module ntp of example-1.0.0") || !strings.Contains(err.Error(), "example-1.0.0") {
		t.Errorf("verify with an edited source = %v (exit %d)", err, failure.Code(err))
	}
}

// A release baked before releases kept sources still verifies while its
// upstreams are there, and says what it lacks when they are not (exit 3).
func TestReleaseWithoutSources(t *testing.T) {
	root, ctl := exampleWithAgents(t)
	rel := bakeWithoutSources(t, root, ctl)
	if _, err := runCmd("verify", filepath.Join(rel, manifest.FileName), "--context", root, "--cache", filepath.Join(root, "c1")); err != nil {
		t.Fatalf("verify of a release without sources, upstreams there: %v", err)
	}
	testutil.Must(t, os.RemoveAll(ctl))
	_, err := runCmd("verify", filepath.Join(rel, manifest.FileName), "--context", root, "--cache", filepath.Join(root, "c2"))
	if failure.Code(err) != failure.ExitNotFound || !strings.Contains(err.Error(), "keeps no sources") {
		t.Errorf("verify of a release without sources, its control repo gone = %v (exit %d)", err, failure.Code(err))
	}
}

// --remap points moved remotes at their new home: a release without
// sources verifies once its control repo and module remotes have moved,
// given where; a remap onto a repository that lacks the pinned commit is
// exit 4.
func TestRemapMovedRemotes(t *testing.T) {
	root, ctl := exampleWithAgents(t)
	rel := bakeWithoutSources(t, root, ctl) // its upstreams are needed
	moved := filepath.Join(root, "moved")
	testutil.Must(t, os.MkdirAll(moved, 0o755))
	for _, d := range []string{"control", "remotes"} {
		if err := os.Rename(filepath.Join(root, d), filepath.Join(moved, d)); err != nil {
			t.Fatal(err)
		}
	}
	m := filepath.Join(rel, manifest.FileName)
	remotes := "file://" + filepath.Join(root, "remotes")
	_, err := runCmd("verify", m, "--context", root, "--cache", filepath.Join(root, "c1"),
		"--remap", ctl+"="+filepath.Join(moved, "control"), "--remap", remotes+"="+"file://"+filepath.Join(moved, "remotes"))
	if err != nil {
		t.Fatalf("verify with the moved remotes remapped: %v", err)
	}
	// ntp's remote remapped onto motd's: not the pinned commit
	t.Setenv("IMAGEBAKE_REMAP", ctl+"="+filepath.Join(moved, "control")+","+remotes+"/ntp.git="+"file://"+filepath.Join(moved, "remotes", "motd.git")+","+remotes+"="+"file://"+filepath.Join(moved, "remotes"))
	_, err = runCmd("verify", m, "--context", root, "--cache", filepath.Join(root, "c2"))
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "motd.git, where --remap moves") {
		t.Errorf("verify with ntp remapped onto motd = %v (exit %d)", err, failure.Code(err))
	}
	if _, err := runCmd("verify", m, "--remap", "nonsense", "--cache", filepath.Join(root, "c3")); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), `"nonsense" is not OLD=NEW`) {
		t.Errorf("--remap nonsense = %v", err)
	}
}

// exampleWithAgents is the example control repo with a signing key and
// its agents store (amd64, arm64) set up.
func exampleWithAgents(t *testing.T) (root, ctl string) {
	t.Helper()
	signingEnv(t)
	root = t.TempDir()
	ctl = testutil.Example(t, root)
	store := agentstest.Store(t, filepath.Join(root, "store"))
	for _, a := range []string{"amd64", "arm64"} {
		agentstest.Publish(t, store, agents.PublishOptions{Name: "mozagent", Version: "2.4.1", OS: "linux", Arch: a}, "")
	}
	return root, ctl
}

// bakeWithoutSources bakes 1.0.0 and removes its sources.toml, as in a
// release baked before releases kept them; it returns the release dir.
func bakeWithoutSources(t *testing.T, root, ctl string) string {
	t.Helper()
	dist := filepath.Join(root, "dist")
	if _, err := runCmd("bake", "--repo", ctl, "--release", "1.0.0", "--context", root, "--out", dist); err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join(dist, "example-1.0.0")
	testutil.Must(t, os.Remove(filepath.Join(rel, manifest.SourcesFileName)))
	return rel
}

// store migrate adds sources to a release published before stores kept
// them, from its upstreams; then it rebuilds with every upstream gone. A
// release whose upstreams are gone too is named (exit 3).
func TestStoreMigrateAddsSources(t *testing.T) {
	root, ctl := exampleWithAgents(t)
	rel := bakeWithoutSources(t, root, ctl)
	releases := filepath.Join(root, "releases")
	if _, err := runCmd("publish", rel, "--store", releases); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(releases, "images", "example-1.0.0")
	if _, err := os.Stat(filepath.Join(pub, manifest.SourcesFileName)); err == nil {
		t.Fatal("the release keeps sources already")
	}
	out, err := runCmd("store", "migrate", "--store", releases, "--cache", filepath.Join(root, "mc"))
	if err != nil || !strings.Contains(out, "sources added to 1 releases") {
		t.Fatalf("store migrate = %v\n%s", err, out)
	}
	for _, p := range []string{ctl, filepath.Join(root, "remotes"), filepath.Join(root, "store"), filepath.Join(root, "base")} {
		testutil.Must(t, os.RemoveAll(p))
	}
	if _, err := runCmd("verify", filepath.Join(pub, manifest.FileName), "--context", root, "--cache", filepath.Join(root, "vc")); err != nil {
		t.Fatalf("verify after migrate, every upstream gone: %v", err)
	}
	// a second release of before, whose upstreams are gone
	testutil.Must(t, os.RemoveAll(filepath.Join(pub, manifest.SourcesFileName)))
	_, err = runCmd("store", "migrate", "--store", releases, "--cache", filepath.Join(root, "mc2"))
	if failure.Code(err) != failure.ExitNotFound || !strings.Contains(err.Error(), "example-1.0.0: ") || !strings.Contains(err.Error(), "keep no sources") {
		t.Errorf("store migrate with the upstreams gone = %v", err)
	}
}

// A command's --cache holds the catalog serials it saw (rollback
// protection), not the default cache: store gc of an S3 store reads its
// catalog.
func TestCatalogGuardUsesCache(t *testing.T) {
	testutil.S3(t, "golden").Setenv(t)
	root, ctl := exampleWithAgents(t)
	if _, err := runCmd("bake", "--repo", ctl, "--release", "1.0.0", "--context", root, "--out", filepath.Join(root, "dist")); err != nil {
		t.Fatal(err)
	}
	releases := "s3://golden/releases"
	if _, err := runCmd("publish", filepath.Join(root, "dist", "example-1.0.0"), "--store", releases); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(root, "my-cache")
	if _, err := runCmd("store", "gc", "--store", releases, "--cache", mine); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mine, catalog.StateFile)); err != nil {
		t.Errorf("store gc --cache %s kept no catalog serials there: %v", mine, err)
	}
}
