// Package confine writes inside one directory tree and never through a
// symlink that is part of it. A control repo or a module is content
// written by whoever can commit to it: a committed `modules -> /etc` must
// not make imagebake write (or purge) outside the tree it is building.
//
// Every operation goes through an os.Root, so nothing can resolve outside
// the directory even if the tree changes underneath; on top of that,
// every directory component on the way is checked with Lstat and a
// symlink is refused by name (ErrSymlink), so a link inside the tree is
// not followed either.
package confine

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrSymlink marks a write that would have gone through a symlink.
var ErrSymlink = errors.New("refusing to write through a symlink")

// LinkError names the link that was refused.
type LinkError struct {
	Root   string // the tree being written
	Path   string // the link, relative to Root
	Target string // what it points to
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("%s is a symlink to %q inside %s: refusing to write through it (a tree imagebake writes may not redirect its writes)", e.Path, e.Target, e.Root)
}

// Unwrap makes errors.Is(err, ErrSymlink) true.
func (e *LinkError) Unwrap() error { return ErrSymlink }

// Dir is a directory tree writes are confined to.
type Dir struct {
	root *os.Root
	abs  string
}

// Open opens dir (which the caller trusts: it is created by imagebake or
// named by a flag) as a confined tree.
func Open(dir string) (*Dir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, err
	}
	return &Dir{root: r, abs: abs}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// Path is the absolute path of rel (for messages and for code that writes
// into a fresh directory made by MkdirTemp).
func (d *Dir) Path(rel string) string { return filepath.Join(d.abs, filepath.FromSlash(rel)) }

// clean turns rel into a slash path below the root, or an error.
func clean(rel string) (string, error) {
	rel = filepath.ToSlash(rel)
	c := path.Clean(rel)
	if path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%s leaves the tree it is written into", rel)
	}
	return c, nil
}

// Rel returns abs as a path relative to d, or an error when it is outside.
func (d *Dir) Rel(abs string) (string, error) {
	a, err := filepath.Abs(abs)
	if err != nil {
		return "", err
	}
	r, err := filepath.Rel(d.abs, a)
	if err != nil {
		return "", err
	}
	return clean(r)
}

// check refuses a symlink at rel and reports whether rel exists as a
// directory.
func (d *Dir) check(rel string) (exists bool, err error) {
	fi, err := d.root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case fi.Mode()&fs.ModeSymlink != 0:
		t, _ := d.root.Readlink(rel)
		return true, &LinkError{Root: d.abs, Path: rel, Target: t}
	case !fi.IsDir():
		return true, fmt.Errorf("%s in %s is not a directory", rel, d.abs)
	}
	return true, nil
}

// MkdirAll makes rel and its parents, refusing any symlink on the way.
func (d *Dir) MkdirAll(rel string) error {
	c, err := clean(rel)
	if err != nil || c == "." {
		return err
	}
	parts := strings.Split(c, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		ok, err := d.check(p)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		if err := d.root.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if _, err := d.check(p); err != nil { // made by someone else meanwhile
			return err
		}
	}
	return nil
}

// CheckDirs refuses a symlink among the directories leading to rel (rel
// itself may be anything, including a symlink, or absent).
func (d *Dir) CheckDirs(rel string) error {
	c, err := clean(rel)
	if err != nil || c == "." {
		return err
	}
	parts := strings.Split(c, "/")
	for i := 0; i < len(parts)-1; i++ {
		if _, err := d.check(strings.Join(parts[:i+1], "/")); err != nil {
			return err
		}
	}
	return nil
}

// MkdirTemp makes a new directory under dir (made with MkdirAll) and
// returns its path relative to d.
func (d *Dir) MkdirTemp(dir, prefix string) (string, error) {
	if err := d.MkdirAll(dir); err != nil {
		return "", err
	}
	c, _ := clean(dir)
	var b [6]byte
	for range 100 {
		rand.Read(b[:])
		p := path.Join(c, prefix+hex.EncodeToString(b[:]))
		err := d.root.Mkdir(p, 0o700)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("no free temporary name under %s", d.Path(dir))
}

// Rename moves old to new inside d; neither's parent may be a symlink. A
// symlink at old or new itself is moved or replaced, never followed.
func (d *Dir) Rename(old, new string) error {
	for _, p := range []string{old, new} {
		if err := d.CheckDirs(p); err != nil {
			return err
		}
	}
	return d.root.Rename(old, new)
}

// RemoveAll removes rel and everything below it, inside d only. A symlink
// is removed, not what it points to.
func (d *Dir) RemoveAll(rel string) error {
	if err := d.CheckDirs(rel); err != nil {
		return err
	}
	c, err := clean(rel)
	if err != nil {
		return err
	}
	if c == "." {
		return fmt.Errorf("refusing to remove the root %s", d.abs)
	}
	return d.root.RemoveAll(c)
}

// ReadDir lists the directory rel, which must be a real directory.
func (d *Dir) ReadDir(rel string) ([]fs.DirEntry, error) {
	c, err := clean(rel)
	if err != nil {
		return nil, err
	}
	if c != "." {
		if err := d.CheckDirs(c + "/x"); err != nil {
			return nil, err
		}
	}
	f, err := d.root.Open(c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// Sub opens the directory rel (made with MkdirAll) as its own confined tree.
func (d *Dir) Sub(rel string) (*Dir, error) {
	if err := d.MkdirAll(rel); err != nil {
		return nil, err
	}
	c, _ := clean(rel)
	r, err := d.root.OpenRoot(c)
	if err != nil {
		return nil, err
	}
	return &Dir{root: r, abs: d.Path(c)}, nil
}

// ReadFile reads the regular file rel, at most max bytes (more is an
// error). A symlink anywhere on the way is refused, as for writes.
func (d *Dir) ReadFile(rel string, max int64) ([]byte, error) {
	c, err := clean(rel)
	if err != nil {
		return nil, err
	}
	if err := d.CheckDirs(c); err != nil {
		return nil, err
	}
	fi, err := d.root.Lstat(c)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", d.Path(c), fi.Mode().Type())
	}
	f, err := d.root.Open(c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", d.Path(c), max)
	}
	return b, nil
}
