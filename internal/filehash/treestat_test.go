package filehash

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/testutil"
)

// A file rewritten with the same size and its old modification time put
// back still changes TreeStat (its change time moved); an untouched tree
// keeps it.
func TestTreeStatSeesRewrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	p := filepath.Join(root, "usr", "bin", "puppet")
	testutil.Must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	testutil.Must(t, os.WriteFile(p, []byte("#!/usr/bin/ruby\n"), 0o755))
	old := time.Unix(1700000000, 0)
	testutil.Must(t, os.Chtimes(p, old, old))
	a, err := TreeStat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := TreeStat(ctx, root); b != a {
		t.Fatalf("an untouched tree: %s, then %s", a, b)
	}
	time.Sleep(10 * time.Millisecond)
	testutil.Must(t, os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"[:16]), 0o755))
	testutil.Must(t, os.Chtimes(p, old, old))
	if c, _ := TreeStat(ctx, root); c == a {
		t.Error("a rewrite with the same size and mtime kept the TreeStat")
	}
}
