package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

// docs/reference is what `imagebake docs` writes: a command or flag
// changed without regenerating it fails here (go run ./cmd/imagebake docs
// --out docs/reference).
func TestReferenceIsFresh(t *testing.T) {
	got := t.TempDir()
	if err := writeReference(newRootCommand(), got); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(testutil.ModuleRoot(t), "docs", "reference")
	gotFiles, _ := filepath.Glob(filepath.Join(got, "*.md"))
	wantFiles, _ := filepath.Glob(filepath.Join(want, "*.md"))
	if len(gotFiles) != len(wantFiles) {
		t.Errorf("docs/reference has %d pages, the commands make %d: regenerate it (go run ./cmd/imagebake docs --out docs/reference)", len(wantFiles), len(gotFiles))
	}
	for _, f := range gotFiles {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join(want, filepath.Base(f)))
		if err != nil || string(a) != string(b) {
			t.Errorf("docs/reference/%s is stale: regenerate it (go run ./cmd/imagebake docs --out docs/reference)", filepath.Base(f))
		}
	}
}
