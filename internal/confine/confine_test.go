package confine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

func TestWritesStayInside(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	outside := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644))
	tree := filepath.Join(root, "tree")
	testutil.Must(t, os.MkdirAll(filepath.Join(tree, "real"), 0o755))
	testutil.Must(t, os.Symlink(outside, filepath.Join(tree, "abs")))
	testutil.Must(t, os.Symlink("../../"+filepath.Base(outside), filepath.Join(tree, "rel")))
	os.Symlink("real", filepath.Join(tree, "inner")) // inside, still refused
	d, err := Open(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, p := range []string{"abs/x", "rel/x", "inner/x", "real/../abs/y"} {
		if err := d.MkdirAll(p); !errors.Is(err, ErrSymlink) {
			t.Errorf("MkdirAll(%q) = %v, want ErrSymlink", p, err)
		}
		if err := d.RemoveAll(p); !errors.Is(err, ErrSymlink) && p != "real/../abs/y" {
			t.Errorf("RemoveAll(%q) = %v, want ErrSymlink", p, err)
		}
	}
	if _, err := d.MkdirTemp("abs", "t-"); !errors.Is(err, ErrSymlink) {
		t.Errorf("MkdirTemp(abs) = %v, want ErrSymlink", err)
	}
	if _, err := d.Sub("abs"); !errors.Is(err, ErrSymlink) {
		t.Errorf("Sub(abs) = %v, want ErrSymlink", err)
	}
	if err := d.MkdirAll("../escape"); err == nil {
		t.Error("MkdirAll(../escape) succeeded")
	}
	// removing the link itself removes the link, never the target
	if err := d.RemoveAll("abs"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("RemoveAll of a link removed its target's content: %v", err)
	}
	if err := d.MkdirAll("real/a/b"); err != nil {
		t.Errorf("MkdirAll(real/a/b) = %v", err)
	}
	if err := d.Rename("real/a", "real/c"); err != nil {
		t.Errorf("Rename inside = %v", err)
	}
	if err := d.Rename("real/c", "rel/c"); !errors.Is(err, ErrSymlink) {
		t.Errorf("Rename into a link = %v, want ErrSymlink", err)
	}
}
