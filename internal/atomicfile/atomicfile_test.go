package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

func TestWriteKeepsOldContentOnFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	if err := WriteFile(name, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(name, 0o644, func(w io.Writer) error {
		w.Write([]byte("half"))
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("Write with a failing fill returned nil")
	}
	if b, _ := os.ReadFile(name); string(b) != "old" {
		t.Errorf("after a failed write the file holds %q, want %q", b, "old")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("a failed write left %d entries, want only the file", len(ents))
	}
}

func TestCopySharesNoInode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	testutil.Must(t, os.WriteFile(src, []byte("original"), 0o600))
	if err := Copy(src, dst, 0o644); err != nil {
		t.Fatal(err)
	}
	// rewriting the source in place leaves the copy alone
	f, _ := os.OpenFile(src, os.O_WRONLY, 0)
	f.WriteAt([]byte("CHANGED!"), 0)
	f.Close()
	b, _ := os.ReadFile(dst)
	fi, _ := os.Stat(dst)
	if string(b) != "original" || fi.Mode().Perm() != 0o644 {
		t.Errorf("copy = %q mode %v after the source was rewritten, want \"original\" 0644", b, fi.Mode().Perm())
	}
}
