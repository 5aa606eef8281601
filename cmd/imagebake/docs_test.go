package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

// docs/reference is what `imagebake docs` writes: a command or flag
// changed without regenerating it fails here (go run ./cmd/imagebake docs
// --out docs/reference).
func TestReferenceIsFresh(t *testing.T) {
	t.Parallel()
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

// Writing the reference into a directory that holds other files (docs
// --out .) replaces the pages and leaves the rest alone.
func TestReferenceKeepsOtherFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keep := filepath.Join(dir, "README.md")
	stale := filepath.Join(dir, "imagebake_removed-command.md")
	for _, p := range []string{keep, stale} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeReference(newRootCommand(), dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "x" {
		t.Errorf("docs --out removed or changed %s: %v", keep, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a page no command writes was kept: %s", stale)
	}
	if _, err := os.Stat(filepath.Join(dir, "imagebake.md")); err != nil {
		t.Errorf("the root page was not written: %v", err)
	}
}

// The CI examples install a version of imagebake that exists: latest, or
// a tag of this repository.
func TestExamplesPinAnExistingVersion(t *testing.T) {
	t.Parallel()
	root := testutil.ModuleRoot(t)
	tags, _ := exec.Command("git", "-C", root, "tag", "--list", "v*").Output()
	known := map[string]bool{"latest": true}
	for _, tag := range strings.Fields(string(tags)) {
		known[tag] = true
	}
	re := regexp.MustCompile(`(?m)^\s*IMAGEBAKE_VERSION:\s*(\S+)`)
	for _, f := range []string{"github-actions.yml", "gitlab-ci.yml"} {
		b, err := os.ReadFile(filepath.Join(root, "examples", "ci", f))
		if err != nil {
			t.Fatal(err)
		}
		m := re.FindSubmatch(b)
		if m == nil {
			t.Errorf("%s sets no IMAGEBAKE_VERSION", f)
		} else if !known[string(m[1])] {
			t.Errorf("%s pins imagebake %s, which is not a tag of the repository (tags: %s)", f, m[1], strings.Fields(string(tags)))
		}
	}
}
