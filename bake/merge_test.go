//go:build linux

package bake

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// Each arch baked on its own "runner" (own cache, own out), then merged,
// is byte for byte the release baked with every arch on one machine.
func TestMergeEqualsOneBake(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	whole, err := Bake(ctx, opts(root, repo, filepath.Join(root, "whole")))
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, a := range []string{"arm64", "amd64"} {
		o := opts(root, repo, filepath.Join(root, "runner-"+a, "dist"))
		o.Cache, o.Arches = filepath.Join(root, "runner-"+a, "cache"), []string{a}
		m, err := Bake(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(m.PartialOf, ",") != "amd64,arm64" || len(m.Images) != 1 {
			t.Errorf("a bake of %s alone: partial_of %v, %d images; want [amd64 arm64] and 1", a, m.PartialOf, len(m.Images))
		}
		parts = append(parts, filepath.Join(o.Out, "example-1.0.0"))
	}
	merged, err := Merge(ctx, Options{Out: filepath.Join(root, "merged")}, parts)
	if err != nil {
		t.Fatal(err)
	}
	if merged.IndexDigest != whole.IndexDigest || len(merged.PartialOf) != 0 {
		t.Errorf("merged index %s (partial_of %v), one bake %s", merged.IndexDigest, merged.PartialOf, whole.IndexDigest)
	}
	want, got := testutil.TreeFiles(t, filepath.Join(root, "whole", "example-1.0.0")), testutil.TreeFiles(t, filepath.Join(root, "merged", "example-1.0.0"))
	for name, b := range want {
		if got[name] != b {
			t.Errorf("%s differs between the merge and the one bake", name)
		}
	}
	if len(got) != len(want) {
		t.Errorf("merge wrote %d files, the one bake %d", len(got), len(want))
	}
	// merging again changes nothing; merging a part of itself is a merge too
	if again, err := Merge(ctx, Options{Out: filepath.Join(root, "merged")}, parts); err != nil || again.IndexDigest != whole.IndexDigest {
		t.Errorf("merging again = %v", err)
	}
}

// Parts that disagree are refused, naming each input and both values;
// nothing is written.
func TestMergeRefusesDisagreeingParts(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	bakeArch := func(a, out string, epoch time.Time, release string) string {
		o := opts(root, repo, filepath.Join(root, out))
		o.Arches, o.Epoch = []string{a}, epoch
		if release != "" {
			o.Release = release
		}
		m, err := Bake(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(o.Out, m.Family+"-"+m.Release)
	}
	amd := bakeArch("amd64", "a", time.Time{}, "")
	arm := bakeArch("arm64", "b", time.Unix(1700000000, 0), "")
	_, err := Merge(ctx, Options{Out: filepath.Join(root, "merged")}, []string{amd, arm})
	if !errors.Is(err, ErrPartsDisagree) || failure.Code(err) != 4 || !strings.Contains(err.Error(), "epoch: ") || !strings.Contains(err.Error(), "-> 1700000000") {
		t.Errorf("merge of parts with two epochs = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "merged", "example-1.0.0")); err == nil {
		t.Error("a refused merge wrote a release")
	}
	testutil.Git(t, repo, "tag", "v1.0.1")
	other := bakeArch("arm64", "c", time.Time{}, "1.0.1")
	if _, err := Merge(ctx, Options{Out: filepath.Join(root, "merged")}, []string{amd, other}); !errors.Is(err, ErrPartsDisagree) || !strings.Contains(err.Error(), "example-1.0.1") {
		t.Errorf("merge of parts of two releases = %v", err)
	}
	if _, err := Merge(ctx, Options{Out: filepath.Join(root, "merged")}, []string{amd, t.TempDir()}); failure.Code(err) != 3 {
		t.Errorf("merge of a directory without a release = %v, want exit 3", err)
	}
	// one part alone is merged, and still says it is partial
	m, err := Merge(ctx, Options{Out: filepath.Join(root, "merged")}, []string{amd})
	if err != nil || len(m.PartialOf) != 2 {
		t.Errorf("merge of one part = %v, partial_of %v", err, m)
	}
	if m, err := manifest.Read(filepath.Join(root, "merged", "example-1.0.0", manifest.FileName)); err != nil || len(m.Images) != 1 {
		t.Errorf("merged one part: %v", err)
	}
}

// A part whose layout holds a blob that is not what its digest says is
// refused before anything is copied, naming the part and the image.
func TestMergeRefusesCorruptPart(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "a"))
	o.Arches = []string{"arm64"}
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(o.Out, "example-1.0.0")
	l := m.Images[0].Layers[len(m.Images[0].Layers)-1].Digest
	blob := filepath.Join(part, "blobs", "sha256", strings.TrimPrefix(l, "sha256:"))
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	testutil.Must(t, os.Chmod(blob, 0o644))
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Merge(ctx, Options{Out: filepath.Join(root, "merged")}, []string{part})
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), part) || !strings.Contains(err.Error(), "example-1.0.0-arm64") {
		t.Errorf("merge of a part with a flipped byte = %v, want exit 4 naming %s", err, part)
	}
	if _, err := os.Stat(filepath.Join(root, "merged", "example-1.0.0")); err == nil {
		t.Error("a refused merge wrote a release")
	}
}

// A partial's manifest.toml edited to claim other agent binaries or
// another base, blobs untouched, is refused by merge (exit 4) naming the
// part and the field, whether or not the editor also recomputed the
// content digest; nothing is written.
func TestMergeRefusesEditedPartial(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	bakeArch := func(a string) string {
		o := opts(root, repo, filepath.Join(root, "runner-"+a))
		o.Arches = []string{a}
		m, err := Bake(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(o.Out, m.Family+"-"+m.Release)
	}
	amd, arm := bakeArch("amd64"), bakeArch("arm64")
	orig, err := os.ReadFile(filepath.Join(arm, manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		edit      func(m *manifest.Manifest)
		recompute bool
		want      []string
	}{
		{"agent, digest kept", func(m *manifest.Manifest) {
			m.Images[0].Agent.Version, m.Images[0].Agent.SHA256 = "2.9.9", strings.Repeat("e", 64)
		}, false, []string{"content_digest is", "agent.version: 2.9.9 in the manifest, 2.4.1 in the image's /etc/imagebake/release.toml"}},
		{"agent, digest recomputed", func(m *manifest.Manifest) {
			m.Images[0].Agent.Version, m.Images[0].Agent.SHA256 = "2.9.9", strings.Repeat("e", 64)
		}, true, []string{"content_digest: sha256:", "in the image's /etc/imagebake/release.toml", "agent.version: 2.9.9"}},
		{"base OS", func(m *manifest.Manifest) {
			if m.Images[0].Base.OS == nil {
				m.Images[0].Base.OS = &manifest.OS{}
			}
			m.Images[0].Base.OS.ID = "evilos"
		}, true, []string{"base.os: evilos"}},
		{"layer record", func(m *manifest.Manifest) {
			m.Images[0].Layers[len(m.Images[0].Layers)-1].Size++
		}, true, []string{"(release): size is"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifest.Parse(orig)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(m)
			if tc.recompute {
				if err := m.SetContentDigests(); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Write(filepath.Join(arm, manifest.FileName)); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(root, "merged-"+strings.ReplaceAll(tc.name, " ", "-"))
			_, err = Merge(ctx, Options{Out: out}, []string{amd, arm})
			if failure.Code(err) != 4 || !errors.Is(err, ErrManifestEdited) {
				t.Fatalf("merge of an edited part = %v (exit %d), want exit 4", err, failure.Code(err))
			}
			for _, w := range append(tc.want, "example-1.0.0-arm64 in "+arm) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("merge error does not say %q:\n%v", w, err)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "example-1.0.0")); err == nil {
				t.Error("merge wrote the release")
			}
			// verify --artifacts-only refuses the edited release too
			if _, err := CheckArtifacts(ctx, filepath.Join(arm, manifest.FileName)); failure.Code(err) != 4 || !strings.Contains(err.Error(), tc.want[len(tc.want)-1]) {
				t.Errorf("CheckArtifacts of the edited part = %v, want exit 4 saying %q", err, tc.want[len(tc.want)-1])
			}
		})
	}
	// the untouched parts still merge
	if err := os.WriteFile(filepath.Join(arm, manifest.FileName), orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(ctx, Options{Out: filepath.Join(root, "merged")}, []string{amd, arm}); err != nil {
		t.Fatalf("merge of the untouched parts: %v", err)
	}
	// a merge of one part names only the arch still missing
	var log strings.Builder
	if _, err := Merge(ctx, Options{Out: filepath.Join(root, "merged-amd64"), Log: &log}, []string{amd}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "example-1.0.0 still lacks arm64 of its arches amd64, arm64") {
		t.Errorf("merge of amd64 alone said:\n%s", log.String())
	}
}
