//go:build linux

package registry

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// bakePart bakes arch alone, as a CI runner does (its own cache and out),
// and returns the per-arch release directory.
func (b *baked) bakePart(t *testing.T, arch string) string {
	t.Helper()
	runner := filepath.Join(b.root, "runner-"+arch)
	o := bake.Options{Repo: b.repo, Release: "1.0.0", Out: filepath.Join(runner, "dist"), Cache: filepath.Join(runner, "cache"), Context: b.root, Version: "test", Arches: []string{arch}}
	if _, err := bake.Bake(ctx, o); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(o.Out, "example-1.0.0")
}

// Per-arch bakes pushed to a registry and merged from it are byte for
// byte the release baked on one machine; the merged release then pushes
// with its images already there.
func TestMergeFromRegistry(t *testing.T) {
	t.Parallel()
	b := bakeExample(t)
	repo := served(t, nil) + "/golden/example"
	var refs, dirs []string
	for _, arch := range []string{"arm64", "amd64"} {
		pushed, err := Push(ctx, b.bakePart(t, arch), repo, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pushed) != 2 || pushed[0].Tag != "1.0.0-"+arch || !pushed[0].New || pushed[1].Name != "manifest.toml" {
			t.Errorf("push of the %s bake = %+v, want the image tagged 1.0.0-%s and its manifest", arch, pushed, arch)
		}
		again, err := Push(ctx, b.bakePart(t, arch), repo, nil, Options{})
		if err != nil || again[0].New || again[1].New {
			t.Errorf("a second push of the %s bake = %+v, %v; want nothing new", arch, again, err)
		}
		refs = append(refs, repo+":1.0.0-"+arch)
	}
	if _, err := crane.Digest(repo+":1.0.0", crane.Insecure); err == nil {
		t.Error("a per-arch bake pushed the tag 1.0.0, which names the merged release")
	}
	for _, ref := range refs {
		dir := t.TempDir()
		m, err := PullPartial(ctx, ref, dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Images) != 1 || len(m.PartialOf) != 2 {
			t.Errorf("the manifest pulled with %s: %d images, partial_of %v", ref, len(m.Images), m.PartialOf)
		}
		dirs = append(dirs, dir)
	}
	out := filepath.Join(b.root, "merged")
	m, err := bake.MergeNamed(ctx, bake.Options{Out: out}, dirs, refs)
	if err != nil {
		t.Fatal(err)
	}
	if m.IndexDigest != b.m.IndexDigest {
		t.Errorf("merged from the registry: index %s, one bake %s", m.IndexDigest, b.m.IndexDigest)
	}
	want, got := testutil.TreeFiles(t, b.dir), testutil.TreeFiles(t, filepath.Join(out, "example-1.0.0"))
	// a registry holds the images, not the release's sources: a merge of
	// parts pulled from one keeps none (store migrate adds them later)
	if src, err := manifest.ReadSources(filepath.Join(b.dir, manifest.SourcesFileName)); err == nil {
		for _, x := range src.Source {
			if !strings.HasPrefix(x.Kind, "base") {
				delete(want, "blobs/sha256/"+strings.TrimPrefix(x.Blob, "sha256:"))
			}
		}
		delete(want, manifest.SourcesFileName)
	}
	for name, content := range want {
		if got[name] != content {
			t.Errorf("%s differs between the merge from the registry and the one bake", name)
		}
	}
	if len(got) != len(want) {
		t.Errorf("merge wrote %d files, the one bake %d", len(got), len(want))
	}
	pushed, err := Push(ctx, filepath.Join(out, "example-1.0.0"), repo, b.sig(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pushed {
		if p.New != (p.Tag == "1.0.0" || p.Tag == "") {
			t.Errorf("push of the merged release: %+v (the images were there from the per-arch pushes)", p)
		}
	}
	if _, err := Verify(ctx, repo+":1.0.0", b.keys, Options{}); err != nil {
		t.Errorf("verify of the merged release = %v", err)
	}
	// the per-arch manifests are superseded by the release's
	for _, ref := range refs {
		if _, err := PullPartial(ctx, ref, t.TempDir(), Options{}); failure.Code(err) != failure.ExitNotFound {
			t.Errorf("the per-arch manifest of %s after the merged push: %v, want none left", ref, err)
		}
	}
	// what merge cannot take: the release's index, an image with no manifest
	if _, err := PullPartial(ctx, repo+":1.0.0", t.TempDir(), Options{}); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "image index") {
		t.Errorf("pull of the index as a part = %v, want exit 2", err)
	}
	_, imgs := testutil.BaseIndex(t, "amd64")
	if err := crane.Push(imgs["amd64"], repo+":stray", crane.Insecure); err != nil {
		t.Fatal(err)
	}
	if _, err := PullPartial(ctx, repo+":stray", t.TempDir(), Options{}); failure.Code(err) != failure.ExitNotFound || !strings.Contains(err.Error(), "no imagebake manifest") {
		t.Errorf("pull of an image pushed by another tool = %v, want exit 3", err)
	}
}

// A registry serving a layer of a per-arch image that is not what its
// digest says: the pull is refused (exit 4) naming the reference.
func TestPullPartialCorruptBlob(t *testing.T) {
	t.Parallel()
	b := bakeExample(t)
	repo, corrupt := corrupting(t)
	if _, err := Push(ctx, b.bakePart(t, "arm64"), repo, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	corrupt.Store(b.m.Images[1].Layers[len(b.m.Images[1].Layers)-1].Digest)
	ref := repo + ":1.0.0-arm64"
	if _, err := PullPartial(ctx, ref, t.TempDir(), Options{}); failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), ref) {
		t.Errorf("pull of a part with a corrupt layer = %v, want exit 4 naming %s", err, ref)
	}
}

// A per-arch bake pushed again with the same image and another manifest
// (the runner re-baked with --advisory) replaces the manifest it attached:
// merge finds the new one, not two.
// On go-containerregistry's registry (the referrers API: the old manifest
// is deleted) and on the Debian docker-registry (distribution 2.8, the
// referrers tag: the tag's index is rewritten).
func TestRepushedPartialSupersedesItsManifest(t *testing.T) {
	t.Parallel()
	t.Run("referrers API", func(t *testing.T) { repushPartial(t, served(t, nil)+"/golden/example") })
	t.Run("distribution 2.8", func(t *testing.T) { repushPartial(t, testutil.Registry(t)+"/golden/example") })
}

func repushPartial(t *testing.T, repo string) {
	b := bakeExample(t)
	if _, err := Push(ctx, b.bakePart(t, "amd64"), repo, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	runner := filepath.Join(b.root, "runner-again")
	o := bake.Options{Repo: b.repo, Release: "1.0.0", Out: filepath.Join(runner, "dist"), Cache: filepath.Join(runner, "cache"), Context: b.root, Version: "test",
		Arches: []string{"amd64"}, Advisories: []string{"CVE-2026-1"}}
	m, err := bake.Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := Push(ctx, filepath.Join(o.Out, "example-1.0.0"), repo, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pushed[0].New || !pushed[1].New {
		t.Errorf("the re-push = %+v; want the image already there and a new manifest", pushed)
	}
	got, err := PullPartial(ctx, repo+":1.0.0-amd64", t.TempDir(), Options{})
	if err != nil {
		t.Fatalf("pull after the re-push: %v (want the new manifest alone)", err)
	}
	if strings.Join(got.Advisories, ",") != "CVE-2026-1" || got.Images[0].Digest != m.Images[0].Digest {
		t.Errorf("the manifest merge finds: advisories %v; want the re-pushed one's", got.Advisories)
	}
}
