package gitcache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// A pinned tree packed by PackTree is added to another mirror whole; bytes
// that are no pack, and a pack without the commit, are refused as
// verification failures and add nothing.
func TestAddPackChecksWhatItAdds(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	repo := func(name, text string) string {
		w := filepath.Join(root, name)
		testutil.Git(t, root, "init", "-q", "-b", "main", w)
		testutil.Must(t, os.WriteFile(filepath.Join(w, "f.txt"), []byte(text), 0o644))
		testutil.Git(t, w, "add", "-A")
		testutil.Git(t, w, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", name)
		return w
	}
	a, b := repo("a", "one\n"), repo("b", "two\n")
	sha := strings.TrimSpace(testutil.Git(t, a, "rev-parse", "HEAD"))
	c, err := Open(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ma, err := c.Mirror(ctx, "file://"+a)
	if err != nil {
		t.Fatal(err)
	}
	var pack bytes.Buffer
	tree, err := ma.PackTree(ctx, sha, &pack)
	ma.Close()
	if err != nil {
		t.Fatal(err)
	}
	mb, err := c.Mirror(ctx, "file://"+b)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	for _, bad := range []struct {
		what  string
		bytes []byte
		sha   string
		want  string
	}{
		{"bytes that are no pack", []byte("PACK but not really"), sha, "not a whole git pack"},
		{"a pack without the commit", pack.Bytes(), strings.Repeat("1", 40), "holds no commit"},
	} {
		err := mb.AddPack(ctx, bytes.NewReader(bad.bytes), bad.sha, tree)
		if !errors.Is(err, failure.ErrVerify) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s = %v, want a verification failure saying %q", bad.what, err, bad.want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(mb.root, "objects", "pack", "tmp_*")); len(left) != 0 {
		t.Errorf("a refused pack left %v", left)
	}
	if err := mb.AddPack(ctx, bytes.NewReader(pack.Bytes()), sha, tree); err != nil {
		t.Fatalf("adding the pinned tree: %v", err)
	}
	if got, err := mb.Tree(sha); err != nil || got.Hash.String() != tree {
		t.Errorf("the mirror's tree of %s = %v, %v, want %s", sha, got, err, tree)
	}
}
