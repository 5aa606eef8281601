package gitcache

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

// A local remote that holds both packs and loose objects is mirrored as
// packs only: its packs copied, its loose objects written into one new
// pack. git itself finds the mirror whole, every branch and tag is there,
// and a second fetch packs only the objects the mirror lacks.
func TestLocalFetchPacksLooseObjects(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	testutil.Git(t, root, "init", "-q", "-b", "main", work)
	commit := func(name, text string) {
		if err := os.WriteFile(filepath.Join(work, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		testutil.Git(t, work, "add", "-A")
		testutil.Git(t, work, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", name)
	}
	commit("a.txt", "one\n")
	testutil.Git(t, work, "tag", "-a", "v1", "-m", "v1")
	testutil.Git(t, work, "repack", "-a", "-d", "-q") // history so far in a pack
	commit("b.txt", "two\n")                          // the rest loose
	testutil.Git(t, work, "tag", "v2")
	testutil.Git(t, work, "branch", "develop")

	c, err := Open(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Mirror(context.Background(), "file://"+work)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fsckNoLoose(t, m.path)
	for _, ref := range []string{"v1^{commit}", "v2", "develop", "main"} {
		if got, want := testutil.Git(t, m.path, "rev-parse", ref), testutil.Git(t, work, "rev-parse", ref); got != want {
			t.Errorf("%s in the mirror is %s, in the remote %s", ref, got, want)
		}
	}
	packs := packFiles(t, m.path)
	if len(packs) != 2 {
		t.Errorf("the mirror holds packs %v, want the remote's one and one of its loose objects", packs)
	}

	commit("c.txt", "three\n")
	if err := m.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	fsckNoLoose(t, m.path)
	if got, want := testutil.Git(t, m.path, "rev-parse", "main"), testutil.Git(t, work, "rev-parse", "main"); got != want {
		t.Errorf("main after the second fetch is %s, want %s", got, want)
	}
	newPacks := packFiles(t, m.path)
	if len(newPacks) != 3 {
		t.Fatalf("after the second fetch the mirror holds packs %v, want one more", newPacks)
	}
	// the new pack holds the new commit, its tree and its blob: 3 objects
	for _, p := range newPacks {
		if strings.Contains(strings.Join(packs, " "), p) {
			continue
		}
		out := testutil.Git(t, m.path, "verify-pack", "-v", filepath.Join(m.path, "objects", "pack", p))
		if !strings.Contains(out, "non delta: 3 objects") {
			t.Errorf("the second fetch's pack %s holds more than the 3 new objects:\n%s", p, out)
		}
	}
}

// fsckNoLoose checks with git that the repository is whole and holds its
// objects in packs only.
func fsckNoLoose(t *testing.T, gitDir string) {
	t.Helper()
	testutil.Git(t, gitDir, "fsck", "--strict", "--no-dangling")
	out := testutil.Git(t, gitDir, "count-objects", "-v")
	if !strings.HasPrefix(out, "count: 0\n") {
		t.Errorf("the mirror holds loose objects:\n%s", out)
	}
}

func packFiles(t *testing.T, gitDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "*.idx"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range m {
		out = append(out, filepath.Base(p))
	}
	entries, _ := os.ReadDir(filepath.Join(gitDir, "objects", "pack"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "tmp_") {
			t.Errorf("a temporary file was left in the mirror: %s", e.Name())
		}
	}
	return out
}

// A copy a crash left half-written in a mirror's pack directory is removed
// the next time the mirror is opened.
func TestStaleCopyRemoved(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	testutil.Git(t, root, "init", "-q", "-b", "main", work)
	if err := os.WriteFile(filepath.Join(work, "a"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Git(t, work, "add", "-A")
	testutil.Git(t, work, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "a")
	c, err := Open(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Mirror(context.Background(), "file://"+work)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(m.path, "objects", "pack", ".pack-0123.pack.tmp-42")
	if err := os.WriteFile(stale, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if m, err = c.Mirror(context.Background(), "file://"+work); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := os.Stat(stale); err == nil {
		t.Error("a half-written pack copy survived the next open of the mirror")
	}
}
