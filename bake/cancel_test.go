//go:build linux

package bake

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/testutil"
)

// Ctrl-C during a bake of a real Debian base (140 MB) ends it, at
// whatever step it is in, with the context's error and nothing written:
// no release, no staging directory. Both builders; the time from the
// cancel to the return is logged (the issue asks for under a second).
func TestBakeCancelled(t *testing.T) {
	t.Parallel()
	src := debianTarball(t)
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	rel := filepath.Join("base", "bookworm.tar")
	copyFile(t, src, filepath.Join(root, rel))
	useBase(t, repo, rel, strings.TrimPrefix(sha256File(t, filepath.Join(root, rel)), "sha256:"), "1.1.0")
	for _, builder := range []string{"oci", "rootfs"} {
		for _, after := range []time.Duration{200 * time.Millisecond, 800 * time.Millisecond} {
			o := opts(root, repo, filepath.Join(root, "dist-"+builder))
			o.Arches, o.Release, o.Builder = []string{"amd64"}, "1.1.0", builder
			cctx, cancel := context.WithCancel(ctx)
			var cancelled time.Time
			timer := time.AfterFunc(after, func() { cancelled = time.Now(); cancel() })
			_, err := Bake(cctx, o)
			returned := time.Now()
			timer.Stop()
			cancel()
			if cancelled.IsZero() {
				t.Logf("%s: the bake finished before the cancel at %s", builder, after)
				testutil.Must(t, os.RemoveAll(o.Out))
				continue
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s, cancelled after %s: Bake = %v, want context.Canceled", builder, after, err)
			}
			t.Logf("%s, cancelled after %s: returned %s later", builder, after, returned.Sub(cancelled).Round(time.Millisecond))
			ents, _ := os.ReadDir(o.Out)
			for _, e := range ents {
				t.Errorf("%s: %s left in the out dir after a cancelled bake", builder, e.Name())
			}
		}
	}
}

// The manifest records the compressor; when a rebuild differs from the
// manifest only in compressed bytes (every diff_id the same), verify says
// so and names both compressors.
func TestVerifyNamesTheCompressor(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches = []string{"amd64"}
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Imagebake.Compressor, "github.com/klauspost/compress/gzip v") {
		t.Fatalf("manifest compressor = %q", m.Imagebake.Compressor)
	}
	// as if another compressor had made the same content into other bytes
	name := filepath.Join(o.Out, "example-1.0.0", "manifest.toml")
	m.Imagebake.Compressor = "github.com/klauspost/compress/gzip v1.0.0, default level"
	m.Images[0].Digest = "sha256:" + strings.Repeat("0", 64)
	if err := m.Write(name); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(ctx, name, Options{Cache: o.Cache, Context: root, Version: "test"})
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "only the compressed bytes differ: the release was compressed by github.com/klauspost/compress/gzip v1.0.0, default level, this imagebake uses github.com/klauspost/compress/gzip v") {
		t.Errorf("Verify = %v", err)
	}
}
