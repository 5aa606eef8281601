package filehash

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSHA256Context(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := SHA256Context(context.Background(), p)
	if err != nil || got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("sha256 of %q = %s, %v", "abc", got, err)
	}
	if _, err := SHA256Context(context.Background(), dir); !errors.Is(err, ErrNotRegular) {
		t.Errorf("a directory hashed: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := SHA256Context(ctx, p); err == nil {
		t.Error("a cancelled context still hashed the file")
	}
}
