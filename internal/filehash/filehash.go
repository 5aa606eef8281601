// Package filehash hashes files on disk, streaming.
package filehash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/imagebake/imagebake/internal/ctxio"
)

// ErrNotRegular is a path that names a directory, device or pipe.
var ErrNotRegular = errors.New("not a regular file")

// SHA256 returns the hex sha256 of the file at p.
func SHA256(p string) (string, error) { return SHA256Context(context.Background(), p) }

// SHA256Context returns the hex sha256 of the regular file at p, ending
// the read when ctx ends.
func SHA256Context(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s", ErrNotRegular, p)
	}
	h := sha256.New()
	if _, err := io.Copy(h, ctxio.Reader(ctx, f)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
