package bake

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ctrl-C during a bake of a real Debian base (140 MB) ends it, at
// whatever step it is in, with the context's error and nothing written:
// no release, no staging directory. Both builders; the time from the
// cancel to the return is logged (the issue asks for under a second).
func TestBakeCancelled(t *testing.T) {
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
				os.RemoveAll(o.Out)
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
