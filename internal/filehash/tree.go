package filehash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/imagebake/imagebake/internal/failure"
)

// Tree returns a digest of the directory tree at root: every entry's path,
// type and permission bits, each symlink's target and each regular file's
// sha256, in lexical order. Two trees with the same digest hold the same
// bytes at the same paths. Files are hashed on every CPU.
func Tree(ctx context.Context, root string) (string, error) {
	type item struct {
		line string // "path mode" (+ " -> target" for a symlink)
		file string // a regular file to hash
		sum  string
	}
	var items []*item
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		it := &item{line: fmt.Sprintf("%q %v", filepath.ToSlash(rel), fi.Mode())}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			it.line += fmt.Sprintf(" -> %q", t)
		case fi.Mode().IsRegular():
			it.file = p
		}
		items = append(items, it)
		return nil
	})
	if err != nil {
		return "", err
	}
	work := make(chan *item)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer failure.Crash()
			defer wg.Done()
			for it := range work {
				s, err := SHA256Context(ctx, it.file)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				it.sum = s
			}
		}()
	}
	for _, it := range items {
		if it.file != "" {
			work <- it
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return "", err
	default:
	}
	h := sha256.New()
	for _, it := range items {
		fmt.Fprintln(h, it.line, it.sum)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
