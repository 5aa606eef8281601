package gitcache

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/imagebake/imagebake/internal/atomicfile"
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

// localFetch mirrors a repository on this machine without the pack
// negotiation that makes a local fetch slow. Its pack files are copied as
// they are (never hard-linked: the source is not imagebake's, and a file
// shared with it could change under the cache), and its loose objects, of
// which a repository that was never repacked holds thousands, are written
// into one new pack. Objects are immutable and content-addressed, so the
// mirror keeps them when the source deletes or rewrites history. Every
// file is synced before it gets its name and before any reference names
// its objects, so a crash leaves whole packs or none.
func (m *Mirror) localFetch(src, root string) error {
	srcRepo, err := git.PlainOpen(src)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", m.URL, err)
	}
	if err := m.copyObjects(srcRepo, filepath.Join(src, "objects"), filepath.Join(root, "objects")); err != nil {
		return fmt.Errorf("fetching %s: copying objects: %w", m.URL, err)
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

// copyObjects brings the objects of the repository src, whose object
// directory is srcObj, into the object directory dstObj: each pack whole
// (the pack before its index, so a pack is complete before it is seen),
// and the loose objects dstObj lacks as one new pack.
func (m *Mirror) copyObjects(src *git.Repository, srcObj, dstObj string) error {
	var packs []string
	var loose []plumbing.Hash
	fresh := m.root != m.path // a mirror being created holds nothing yet
	err := filepath.WalkDir(srcObj, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(srcObj, p)
		dir, name := filepath.Split(rel)
		switch {
		case d.IsDir():
			if rel == "info" {
				return filepath.SkipDir
			}
		case dir == "pack/" && strings.HasPrefix(name, "pack-") && strings.HasSuffix(name, ".pack"):
			if _, err := os.Stat(strings.TrimSuffix(p, ".pack") + ".idx"); err == nil {
				packs = append(packs, strings.TrimSuffix(rel, ".pack"))
			}
		case len(dir) == 3 && len(name) == 38:
			if b, err := hex.DecodeString(dir[:2] + name); err == nil && len(b) == 20 {
				h := plumbing.NewHash(dir[:2] + name)
				if fresh || m.repo.Storer.HasEncodedObject(h) != nil {
					loose = append(loose, h)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	packDir := filepath.Join(dstObj, "pack")
	if err := os.MkdirAll(packDir, 0o755); err != nil {
		return err
	}
	for _, base := range packs {
		for _, ext := range []string{".pack", ".idx"} {
			if err := copyWhole(filepath.Join(srcObj, base+ext), filepath.Join(dstObj, base+ext)); err != nil {
				return err
			}
		}
	}
	if len(loose) > 0 {
		if err := writePack(src.Storer, loose, packDir); err != nil {
			return fmt.Errorf("packing %d loose objects: %w", len(loose), err)
		}
	}
	return syncDir(packDir)
}

// copyWhole puts a synced copy of src at dst (atomicfile.Copy: a
// reflink where there is one, never a hard link) unless dst is there
// whole: a pack is named by its checksum, so its size is enough to tell.
func copyWhole(src, dst string) error {
	sfi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if dfi, err := os.Lstat(dst); err == nil && dfi.Size() == sfi.Size() {
		return nil
	}
	return atomicfile.Copy(src, dst, 0o444)
}

// writePack writes the objects hashes of s as one pack (deltas as s
// holds them, none computed) with its index into packDir.
func writePack(s storer.EncodedObjectStorer, hashes []plumbing.Hash, packDir string) error {
	pf, err := os.CreateTemp(packDir, "tmp_pack_")
	if err != nil {
		return err
	}
	defer os.Remove(pf.Name())
	defer pf.Close()
	bw := bufio.NewWriterSize(pf, 1<<20)
	sum, err := packfile.NewEncoder(bw, s, false).Encode(hashes, 0)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return err
	}
	if _, err := pf.Seek(0, io.SeekStart); err != nil {
		return err
	}
	iw := new(idxfile.Writer)
	parser, err := packfile.NewParser(packfile.NewScanner(pf), iw)
	if err != nil {
		return err
	}
	if _, err := parser.Parse(); err != nil {
		return fmt.Errorf("indexing the new pack: %w", err)
	}
	idx, err := iw.Index()
	if err != nil {
		return err
	}
	xf, err := os.CreateTemp(packDir, "tmp_idx_")
	if err != nil {
		return err
	}
	defer os.Remove(xf.Name())
	xw := bufio.NewWriter(xf)
	_, err = idxfile.NewEncoder(xw).Encode(idx)
	if err == nil {
		err = xw.Flush()
	}
	if err != nil {
		xf.Close()
		return err
	}
	base := filepath.Join(packDir, "pack-"+sum.String())
	if err := finish(pf, base+".pack"); err != nil {
		return err
	}
	return finish(xf, base+".idx")
}

// finish makes f read-only and durable, closes it and gives it the name dst.
func finish(f *os.File, dst string) error {
	if err := f.Chmod(0o444); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
