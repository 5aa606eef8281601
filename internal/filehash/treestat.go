package filehash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path/filepath"
)

// TreeStat is a digest of what the file system says of every entry under
// root, without reading any file: its path, mode, size, inode, and change
// and modification times (nanoseconds). Any write, rename, chmod or
// replacement changes an entry's ctime, which no unprivileged process can
// set back, so an equal TreeStat means the tree was not changed since; a
// different one means it may have been (check Tree). It costs a walk.
func TreeStat(ctx context.Context, root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line, err := statLine(fi)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%q %s\n", filepath.ToSlash(rel), line)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
