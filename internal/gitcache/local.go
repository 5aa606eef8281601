package gitcache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"golang.org/x/sys/unix"
)

// localRepo returns the git directory of a remote that is a repository on
// this machine (a file:// URL or an absolute path), or "" for any other
// remote. Repositories using alternates go through the transport.
func localRepo(url string) string {
	p, ok := strings.CutPrefix(url, "file://")
	if !ok {
		if !filepath.IsAbs(url) {
			return ""
		}
		p = url
	}
	for _, d := range []string{p, filepath.Join(p, ".git")} {
		if fi, err := os.Stat(filepath.Join(d, "objects")); err == nil && fi.IsDir() {
			if _, err := os.Stat(filepath.Join(d, "objects", "info", "alternates")); err == nil {
				return ""
			}
			return d
		}
	}
	return ""
}

// localFetch mirrors a repository on this machine the way `git clone
// --local` does: object files are hard-linked (copied across file systems)
// into the mirror, then the branches and tags are copied. Objects are
// immutable and content-addressed, so sharing them is safe, and the mirror
// keeps them when the source deletes or rewrites history. It skips the
// pack negotiation that makes a local fetch slow.
func (m *Mirror) localFetch(src, root string) error {
	srcObj := filepath.Join(src, "objects")
	dstObj := filepath.Join(root, "objects")
	var idx []string // pack indexes go last, so a pack is whole before it is seen
	err := filepath.WalkDir(srcObj, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(srcObj, p)
		if d.IsDir() {
			if rel == "info" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), "tmp_") || strings.HasSuffix(d.Name(), ".lock") {
			return nil
		}
		if strings.HasSuffix(p, ".idx") {
			idx = append(idx, rel)
			return nil
		}
		return linkObject(p, filepath.Join(dstObj, rel))
	})
	if err == nil {
		for _, rel := range idx {
			if err = linkObject(filepath.Join(srcObj, rel), filepath.Join(dstObj, rel)); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = syncObjects(dstObj)
	}
	if err != nil {
		return fmt.Errorf("fetching %s: copying objects: %w", m.URL, err)
	}
	srcRepo, err := git.PlainOpen(src)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", m.URL, err)
	}
	want, err := branchesAndTags(srcRepo)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", m.URL, err)
	}
	// reopen: go-git lists pack files once per repository value
	if err := m.open(); err != nil {
		return fmt.Errorf("fetching %s: %w", m.URL, err)
	}
	repo := m.repo
	have, err := branchesAndTags(repo)
	if err != nil {
		return err
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			if err := repo.Storer.RemoveReference(name); err != nil {
				return err
			}
		}
	}
	for name, h := range want {
		if have[name] == h {
			continue
		}
		if err := repo.Storer.SetReference(plumbing.NewHashReference(name, h)); err != nil {
			return err
		}
	}
	return nil
}

func branchesAndTags(r *git.Repository) (map[plumbing.ReferenceName]plumbing.Hash, error) {
	it, err := r.References()
	if err != nil {
		return nil, err
	}
	out := map[plumbing.ReferenceName]plumbing.Hash{}
	err = it.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() == plumbing.HashReference && (ref.Name().IsBranch() || ref.Name().IsTag()) {
			out[ref.Name()] = ref.Hash()
		}
		return nil
	})
	if errors.Is(err, storer.ErrStop) {
		err = nil
	}
	return out, err
}

// linkObject puts a copy of src at dst unless dst is there whole. Never a
// hard link: the source repository is not imagebake's, and a file shared
// with it could change under the cache (a reflink where the file system
// has it). The copy goes through a temporary file and a rename, so dst is
// whole or absent; it is not synced one by one (an object store holds
// thousands of files): localFetch syncs the file system once, before any
// reference names the objects, and a copy a crash left short is made
// again (its size differs from the source's).
func linkObject(src, dst string) error {
	sfi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if dfi, err := os.Lstat(dst); err == nil && dfi.Size() == sfi.Size() {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return copyNoSync(src, dst)
}

// copyNoSync copies src to dst through a temporary file in dst's
// directory (a reflink where the file system has one).
func copyNoSync(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), ".obj-")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) != nil {
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return fmt.Errorf("copying %s: %w", src, err)
		}
	}
	if err := out.Chmod(0o444); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}

// syncObjects makes the copied objects durable before a reference names
// them: one syncfs of the cache's file system.
func syncObjects(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// localRemoteRefs is RemoteRefs for a repository on this machine.
func (m *Mirror) localRemoteRefs(src string) (map[string]string, error) {
	r, err := git.PlainOpen(src)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", m.URL, err)
	}
	refs, err := branchesAndTags(r)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", m.URL, err)
	}
	out := map[string]string{}
	for name, h := range refs {
		for range 10 {
			t, err := r.TagObject(h)
			if err != nil {
				break
			}
			h = t.Target
		}
		out[name.String()] = h.String()
	}
	return out, nil
}
