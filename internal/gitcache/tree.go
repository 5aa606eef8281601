package gitcache

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/sysx"
)

// WriteTree writes the tree of commit sha into dir (which must not exist),
// as `git archive` of that commit would hold it: regular files 0644,
// executables 0755, directories 0755, symlinks as symlinks, submodules as
// empty directories, no .git. Every mtime is mtime. skip, when not nil,
// leaves out the entries (and everything below them) it returns true for.
func (m *Mirror) WriteTree(ctx context.Context, sha, dir string, mtime time.Time, skip func(p string, isDir bool) bool) error {
	tree, err := m.Tree(sha)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	dirs := []string{dir}
	if err := writeTree(ctx, m.repo.Storer, tree, dir, "", skip, &dirs); err != nil {
		return fmt.Errorf("writing %s of %s into %s: %w", sha, m.URL, dir, err)
	}
	// Directories last, deepest first: writing into one changes its mtime.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := sysx.Lutimes(dirs[i], mtime); err != nil {
			return fmt.Errorf("setting mtime of %s: %w", dirs[i], err)
		}
	}
	return nil
}

func writeTree(ctx context.Context, st storer.EncodedObjectStorer, t *object.Tree, dir, rel string, skip func(string, bool) bool, dirs *[]string) error {
	for _, e := range t.Entries {
		if err := ctx.Err(); err != nil { // Ctrl-C, between entries
			return context.Cause(ctx)
		}
		p := path.Join(rel, e.Name)
		if skip != nil && skip(p, e.Mode == filemode.Dir || e.Mode == filemode.Submodule) {
			continue
		}
		if !validName(e.Name) {
			return fmt.Errorf("tree entry %q is not a safe file name", p)
		}
		dst := filepath.Join(dir, e.Name)
		switch e.Mode {
		case filemode.Dir:
			if err := VerifyObject(st, e.Hash); err != nil {
				return fmt.Errorf("tree %s: %w", p, err)
			}
			sub, err := t.Tree(e.Name)
			if err != nil {
				return err
			}
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			*dirs = append(*dirs, dst)
			if err := writeTree(ctx, st, sub, dst, p, skip, dirs); err != nil {
				return err
			}
		case filemode.Submodule:
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			*dirs = append(*dirs, dst)
		case filemode.Symlink:
			f, err := t.TreeEntryFile(&e)
			if err != nil {
				return err
			}
			target, err := f.Contents()
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
			*dirs = append(*dirs, dst) // its mtime is set with the directories
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			f, err := t.TreeEntryFile(&e)
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if e.Mode == filemode.Executable {
				mode = 0o755
			}
			if err := writeBlob(f, e.Hash, dst, mode); err != nil {
				return err
			}
			*dirs = append(*dirs, dst)
		default:
			return fmt.Errorf("tree entry %q has unsupported mode %v", p, e.Mode)
		}
	}
	return nil
}

// ErrObjectMismatch marks a mirror's object whose content does not hash
// to its id.
var ErrObjectMismatch = fmt.Errorf("a git object does not hash to its id: %w", failure.ErrVerify)

// VerifyObject reads the object id from st and checks that its content
// hashes to id.
func VerifyObject(st storer.EncodedObjectStorer, id plumbing.Hash) error {
	o, err := st.EncodedObject(plumbing.AnyObject, id)
	if err != nil {
		return err
	}
	r, err := o.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	h := plumbing.NewHasher(o.Type(), o.Size())
	if _, err := io.Copy(h, r); err != nil {
		return err
	}
	if got := h.Sum(); got != id {
		return fmt.Errorf("%w: %s %s holds content whose id is %s", ErrObjectMismatch, o.Type(), id, got)
	}
	return nil
}

func validName(n string) bool {
	return n != "" && n != "." && n != ".." && n != ".git" && !containsSlash(n)
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == 0 {
			return true
		}
	}
	return false
}

// writeBlob writes the blob of f at dst, checking that its content
// hashes to id (the tree's entry): a mirror's object is trusted only
// after its hash is checked.
func writeBlob(f *object.File, id plumbing.Hash, dst string, mode os.FileMode) error {
	r, err := f.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	h := plumbing.NewHasher(plumbing.BlobObject, f.Size)
	if _, err := io.Copy(io.MultiWriter(out, h), r); err != nil {
		out.Close()
		return err
	}
	if got := h.Sum(); got != id {
		out.Close()
		return fmt.Errorf("%w: blob %s (%s) holds content whose id is %s", ErrObjectMismatch, id, filepath.Base(dst), got)
	}
	if err := out.Chmod(mode); err != nil { // whatever the umask
		out.Close()
		return err
	}
	return out.Close()
}

// ChangedFiles lists the files that differ between commits from and to,
// each "A path" (added), "D path" (deleted) or "M path" (changed), sorted
// by path.
func (m *Mirror) ChangedFiles(from, to string) ([]string, error) {
	a, err := m.Tree(from)
	if err != nil {
		return nil, err
	}
	b, err := m.Tree(to)
	if err != nil {
		return nil, err
	}
	changes, err := object.DiffTree(a, b)
	if err != nil {
		return nil, fmt.Errorf("comparing %s and %s in %s: %w", from, to, m.URL, err)
	}
	var out []string
	for _, c := range changes {
		switch {
		case c.From.Name == "":
			out = append(out, "A "+c.To.Name)
		case c.To.Name == "":
			out = append(out, "D "+c.From.Name)
		default:
			out = append(out, "M "+c.To.Name)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][2:] < out[j][2:] })
	return out, nil
}
