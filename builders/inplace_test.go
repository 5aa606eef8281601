package builders

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/imagebake/imagebake/internal/testutil"
)

// A base read in place (the rootfs builder) is read through the one
// descriptor its pin was checked on: a file renamed over its path
// meanwhile is never what the build reads, and a rewrite in place fails
// the build's read (ErrBaseChanged) instead of passing other bytes under
// the pinned digest.
func TestBaseReadInPlace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := tarOf(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "etc/os-release", Typeflag: tar.TypeReg, Size: 64, Mode: 0o644})
	sum := sha256.Sum256(data)
	name := filepath.Join(dir, "base.tar")
	testutil.Must(t, os.WriteFile(name, data, 0o644))
	load := func() Base {
		return Base{Rootfs: name, SHA256: hex.EncodeToString(sum[:]), ReadInPlace: true}
	}
	readAll := func(b Base) error {
		img, _, err := rootfsBase(context.Background(), b, filepath.Join(dir, "blobs"), time.Unix(0, 0), nil)
		if err != nil {
			return err
		}
		rc := mutate.Extract(img)
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err
	}
	if err := readAll(load()); err != nil {
		t.Fatalf("an untouched base: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "blobs")); len(entries) != 0 {
		t.Errorf("a base read in place was copied into the blob dir: %v", entries)
	}

	// renamed over after the pin was checked: the first file is still read
	img, _, err := rootfsBase(context.Background(), load(), filepath.Join(dir, "blobs"), time.Unix(0, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.tar")
	testutil.Must(t, os.WriteFile(other, tarOf(&tar.Header{Name: "evil", Typeflag: tar.TypeReg, Size: 64, Mode: 0o644}), 0o644))
	testutil.Must(t, os.Rename(other, name))
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	_, err = io.Copy(h, rc)
	rc.Close()
	// the old file lost its name (its change time moved): the read stops,
	// or it gives the pinned bytes; never the other file's
	if err == nil && hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(sum[:]) {
		t.Errorf("after a rename over the path the build read other bytes")
	}
	if err != nil && !errors.Is(err, ErrBaseChanged) {
		t.Errorf("after a rename over the path: %v, want the pinned bytes or ErrBaseChanged", err)
	}

	// rewritten in place (same inode) after the pin was checked
	testutil.Must(t, os.WriteFile(name, data, 0o644))
	img, _, err = rootfsBase(context.Background(), load(), filepath.Join(dir, "blobs"), time.Unix(0, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // past the clock's tick, as any later write is
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 1030); err != nil { // in etc/os-release: the tar stays valid
		t.Fatal(err)
	}
	f.Close()
	rc = mutate.Extract(img)
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if !errors.Is(err, ErrBaseChanged) {
		t.Errorf("a base rewritten in place while the build read it = %v, want ErrBaseChanged", err)
	}
}
