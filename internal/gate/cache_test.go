//go:build linux

package gate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/tarball"
)

// The gate's unpacked base is unpacked through a temporary directory,
// and its tree is checked before each use: a tree changed since (a
// rewritten puppet) is unpacked again with a note, and what a stopped
// unpack left is removed.
func TestCachedBaseChecked(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	fills := 0
	fill := func(dst string) error {
		fills++
		testutil.Must(t, os.MkdirAll(filepath.Join(dst, "usr", "bin"), 0o755))
		return os.WriteFile(filepath.Join(dst, "usr", "bin", "puppet"), []byte("#!/usr/bin/ruby\n"), 0o755)
	}
	var log strings.Builder
	o := Logf(func(format string, args ...any) { fmt.Fprintf(&log, format, args...) })
	root, held, err := CachedBase(context.Background(), cache, "k1", "img", o, fill)
	if err != nil || fills != 1 {
		t.Fatalf("cachedBase = %s, %v (%d fills)", root, err, fills)
	}
	// a second bake uses it while the first does
	_, held2, err := CachedBase(context.Background(), cache, "k1", "img", o, fill)
	if err != nil || fills != 1 {
		t.Fatalf("a second use unpacked again (%d fills): %v", fills, err)
	}
	// a prune leaves a base in use alone
	if gone, err := PruneDir(context.Background(), cache, 1, 0, ""); err != nil || len(gone) != 0 {
		t.Errorf("a prune removed a base in use: %v, %v", gone, err)
	}
	held.Close()
	held2.Close()
	testutil.Must(t, os.WriteFile(filepath.Join(root, "usr", "bin", "puppet"), []byte("#!/bin/sh\nexit 0\n"), 0o755))
	testutil.Must(t, os.MkdirAll(filepath.Join(cache, ".k1.tmp-123", "root"), 0o755))
	root, held, err = CachedBase(context.Background(), cache, "k1", "img", o, fill)
	if err == nil {
		held.Close()
	}
	if err != nil || fills != 2 || !strings.Contains(log.String(), "changed since it was unpacked") {
		t.Fatalf("a rewritten puppet: %v, %d fills, log %q", err, fills, log.String())
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr", "bin", "puppet")); string(b) != "#!/usr/bin/ruby\n" {
		t.Errorf("puppet after the new unpack: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, ".k1.tmp-*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	// a failed unpack leaves nothing to be used
	_, _, err = CachedBase(context.Background(), cache, "k2", "img", o, func(dst string) error { os.MkdirAll(dst, 0o755); return errors.New("broken layer") })
	if err == nil {
		t.Fatal("a failed unpack was taken")
	}
	if _, err := os.Stat(filepath.Join(cache, "k2")); err == nil {
		t.Error("a failed unpack left a base in place")
	}
}

// Ctrl-C during the gate's first unpack of a base is a cancel (the
// context's error), not an unsafe archive, and leaves no base behind.
func TestCachedBaseCancelled(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	cctx, cancel := context.WithCancel(context.Background())
	_, _, err := CachedBase(cctx, cache, "k", "img", nil, func(dst string) error {
		testutil.Must(t, os.MkdirAll(dst, 0o755))
		cancel()
		return fmt.Errorf("%w: verification failed", tarball.ErrUnsafe)
	})
	if !errors.Is(err, context.Canceled) || errors.Is(err, tarball.ErrUnsafe) || failure.Code(err) == failure.ExitVerify {
		t.Errorf("a cancelled unpack = %v (exit %d), want the cancel", err, failure.Code(err))
	}
	if left, _ := os.ReadDir(cache); len(left) > 1 { // the lock file only
		t.Errorf("left in the cache: %v", left)
	}
}

// The gate's cache stays under its cap: ten bases used one after another
// with a cap of three leave the three used last, the one in use always
// kept.
func TestCompileCacheCapped(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	fill := func(dst string) error {
		testutil.Must(t, os.MkdirAll(dst, 0o755))
		return os.WriteFile(filepath.Join(dst, "blob"), make([]byte, 1<<20), 0o644)
	}
	size := int64(0)
	for i := 0; i < 10; i++ {
		key := fmt.Sprintf("base%02d", i)
		_, held, err := CachedBase(context.Background(), cache, key, "img", nil, fill)
		if err != nil {
			t.Fatal(err)
		}
		if size == 0 {
			entries, _ := compileEntries(cache)
			size = entries[0].Size
		}
		held.Close()
		if _, err := PruneDir(context.Background(), cache, 3*size, 0, key); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // distinct last-use times
	}
	entries, err := compileEntries(cache)
	var total int64
	var keys []string
	for _, e := range entries {
		total += e.Size
		keys = append(keys, e.Key)
	}
	if err != nil || total > 3*size || strings.Join(keys, " ") != "base07 base08 base09" {
		t.Errorf("after 10 bases under a cap of 3: %v (%d bytes), %v", keys, total, err)
	}
	// by age: none used in the last hour goes
	gone, err := PruneDir(context.Background(), cache, 0, time.Nanosecond, "base09")
	if err != nil || len(gone) != 2 {
		t.Errorf("prune by age removed %d: %v", len(gone), err)
	}
}
