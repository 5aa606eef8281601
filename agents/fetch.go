package agents

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/tarball"
)

// ErrChecksum marks agent binaries whose size or sha256 is not the index's.
var ErrChecksum = fmt.Errorf("agent binaries checksum mismatch: %w", failure.ErrVerify)

// LocalStore is a store whose files are on this machine: Fetch verifies
// them where they are instead of copying them into the cache.
type LocalStore interface {
	Store
	// LocalPath is the file at path (relative to tools/) on the local disk.
	LocalPath(path string) string
}

// Fetch returns a local path of s's tarball, verified against the index's
// size and sha256. A directory store's file is verified in place; other
// stores' files are downloaded into cacheDir (named by sha256) and are
// only ever there whole and verified.
func Fetch(ctx context.Context, s Selection, cacheDir string) (string, error) {
	if d, ok := s.Store.(LocalStore); ok {
		p := d.LocalPath(s.Path)
		if err := verifyFile(p, s.Entry, s.URL); err != nil {
			return "", err
		}
		return p, nil
	}
	dir := filepath.Join(cacheDir, "agents")
	dst := filepath.Join(dir, s.SHA256+".tar.gz")
	if err := verifyFile(dst, s.Entry, dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := atomicfile.CreateTemp(dir, ".download-*")
	if err != nil {
		return "", err
	}
	defer tmp.Cleanup()
	r, err := s.Store.Open(ctx, s.Path, 0)
	if err != nil {
		return "", fmt.Errorf("agent binaries %s %s for %s: %w", s.Name, s.Version, s.Platform(), err)
	}
	n, sum, err := copyHash(tmp, r)
	r.Close()
	if err != nil {
		return "", fmt.Errorf("agent binaries %s %s for %s: downloading %s: %w", s.Name, s.Version, s.Platform(), s.URL, err)
	}
	if err := s.Entry.match(n, sum, s.URL); err != nil {
		return "", err
	}
	if err := tmp.Commit(dst, 0o644); err != nil {
		return "", err
	}
	return dst, nil
}

// Unpack extracts a verified tarball into dst (which must not exist),
// refusing hostile content (see tarball.Extract). maxBytes bounds the
// unpacked size; 0 means 4 GiB.
func Unpack(file, dst string, maxBytes int64) error {
	return tarball.ExtractFile(file, dst, tarball.ExtractOptions{MaxBytes: maxBytes})
}

func (e Entry) match(n int64, sum, where string) error {
	if n != e.Size {
		return fmt.Errorf("%w: %s %s for %s: %s has %d bytes, the index says %d (truncated or replaced?)", ErrChecksum, e.Name, e.Version, e.Platform(), where, n, e.Size)
	}
	if sum != e.SHA256 {
		return fmt.Errorf("%w: %s %s for %s: %s has sha256 %s, the index says %s", ErrChecksum, e.Name, e.Version, e.Platform(), where, sum, e.SHA256)
	}
	return nil
}

func verifyFile(p string, e Entry, where string) error {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("agent binaries %s %s for %s: %s is listed in the index but missing: %w", e.Name, e.Version, e.Platform(), where, failure.ErrNotFound)
		}
		return err
	}
	defer f.Close()
	n, sum, err := copyHash(io.Discard, f)
	if err != nil {
		return err
	}
	return e.match(n, sum, where)
}

// copyHash copies r to w and returns the byte count and sha256.
func copyHash(w io.Writer, r io.Reader) (int64, string, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), r, make([]byte, 1<<20))
	return n, hex.EncodeToString(h.Sum(nil)), err
}
