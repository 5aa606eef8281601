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

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/sys/unix"
)

// WriteTree writes the tree of commit sha into dir (which must not exist),
// as `git archive` of that commit would hold it: regular files 0644,
// executables 0755, directories 0755, symlinks as symlinks, submodules as
// empty directories, no .git. Every mtime is mtime. skip, when not nil,
// leaves out the entries (and everything below them) it returns true for.
func (m *Mirror) WriteTree(ctx context.Context, sha, dir string, mtime time.Time, skip func(p string) bool) error {
	tree, err := m.Tree(sha)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	dirs := []string{dir}
	if err := writeTree(ctx, tree, dir, "", skip, &dirs); err != nil {
		return fmt.Errorf("writing %s of %s into %s: %w", sha, m.URL, dir, err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	// Directories last, deepest first: writing into one changes its mtime.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i], ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("setting mtime of %s: %w", dirs[i], err)
		}
	}
	return nil
}

func writeTree(ctx context.Context, t *object.Tree, dir, rel string, skip func(string) bool, dirs *[]string) error {
	for _, e := range t.Entries {
		if err := ctx.Err(); err != nil { // Ctrl-C, between entries
			return context.Cause(ctx)
		}
		p := path.Join(rel, e.Name)
		if skip != nil && skip(p) {
			continue
		}
		if !validName(e.Name) {
			return fmt.Errorf("tree entry %q is not a safe file name", p)
		}
		dst := filepath.Join(dir, e.Name)
		switch e.Mode {
		case filemode.Dir:
			sub, err := t.Tree(e.Name)
			if err != nil {
				return err
			}
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			*dirs = append(*dirs, dst)
			if err := writeTree(ctx, sub, dst, p, skip, dirs); err != nil {
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
			if err := writeBlob(f, dst, mode); err != nil {
				return err
			}
			*dirs = append(*dirs, dst)
		default:
			return fmt.Errorf("tree entry %q has unsupported mode %v", p, e.Mode)
		}
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

func writeBlob(f *object.File, dst string, mode os.FileMode) error {
	r, err := f.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
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
