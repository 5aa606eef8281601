package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// bake --catalog needs no --repo for a published release: its signed
// manifest names the control repo, and the rebuild is byte for byte the
// published release.
func TestBakeFromCatalogWithoutRepo(t *testing.T) {
	root := bakedExample(t)
	run := func(args ...string) error {
		c := newRootCommand()
		c.SetArgs(append(args, "--quiet"))
		var out strings.Builder
		c.SetOut(&out)
		return c.ExecuteContext(context.Background())
	}
	releases := filepath.Join(root, "releases")
	if err := run("publish", filepath.Join(root, "dist", "example-1.0.0"), "--store", releases); err != nil {
		t.Fatal(err)
	}
	if err := run("bake", "--catalog", releases, "--release", "1.0.0", "--context", root, "--out", filepath.Join(root, "again")); err != nil {
		t.Fatalf("bake --catalog without --repo: %v", err)
	}
	a, _ := manifest.Read(filepath.Join(root, "dist", "example-1.0.0", manifest.FileName))
	b, err := manifest.Read(filepath.Join(root, "again", "example-1.0.0", manifest.FileName))
	if err != nil || a.IndexDigest != b.IndexDigest {
		t.Errorf("rebuilt index %v (%v), published %s", b, err, a.IndexDigest)
	}
	if err := run("bake", "--catalog", releases, "--release", "9.9.9", "--context", root, "--out", filepath.Join(root, "none")); failure.Code(err) != failure.ExitNotFound || !strings.Contains(err.Error(), "no release 9.9.9 in") {
		t.Errorf("bake --catalog of an unpublished release without --repo = %v", err)
	}
}
