package manifest

import "testing"

// [payload] exclude reads as a .gitignore at the control repo's root.
func TestExcludedAsGitignore(t *testing.T) {
	t.Parallel()
	globs := []string{"README.md", "/ci", "docs/**/*.md", "build/", "*.orig", "!keep.orig"}
	for _, c := range []struct {
		path  string
		isDir bool
		by    string
	}{
		{"README.md", false, "README.md"},
		{"site/profile/README.md", false, "README.md"}, // a name at any depth
		{"ci", true, "/ci"},
		{"site/ci", true, ""}, // "/ci" is anchored at the root
		{"docs/a/b/c.md", false, "docs/**/*.md"},
		{"docs/c.md", false, "docs/**/*.md"},
		{"docs/c.txt", false, ""},
		{"build", true, "build/"},
		{"build", false, ""}, // a trailing "/": directories only
		{"data/x.orig", false, "*.orig"},
		{"data/keep.orig", false, ""}, // kept again by "!keep.orig"
		{"manifests/site.pp", false, ""},
	} {
		if got := ExcludedBy(globs, c.path, c.isDir); got != c.by {
			t.Errorf("ExcludedBy(%q, dir %v) = %q, want %q", c.path, c.isDir, got, c.by)
		}
		if Excluded(globs, c.path, c.isDir) != (c.by != "") {
			t.Errorf("Excluded(%q) disagrees with ExcludedBy", c.path)
		}
	}
}

func TestCheckExclude(t *testing.T) {
	t.Parallel()
	if err := CheckExclude([]string{"ci", ".github/", "docs/**/*.md", "/README.md", "!keep"}); err != nil {
		t.Errorf("good patterns refused: %v", err)
	}
	for _, bad := range []string{"", "/", "..", "../x", "a/../../b", "[x"} {
		if err := CheckExclude([]string{"ok", bad}); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}
