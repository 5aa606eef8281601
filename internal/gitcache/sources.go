package gitcache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/imagebake/imagebake/internal/failure"
)

// PackTree writes to w a git pack of what a rebuild of commit sha needs
// and nothing of its history: the commit object, and every tree and blob
// of its tree (submodule entries are links to other repositories, left
// out). Objects are sorted by id and written whole (no deltas), so the
// same commit always gives the same bytes and a store keeps it once. It
// returns the commit's tree id.
func (m *Mirror) PackTree(ctx context.Context, sha string, w io.Writer) (string, error) {
	t, err := m.Tree(sha)
	if err != nil {
		return "", err
	}
	seen := map[plumbing.Hash]bool{plumbing.NewHash(sha): true}
	if err := collect(ctx, t, seen); err != nil {
		return "", fmt.Errorf("packing commit %s of %s: %w", sha, m.URL, err)
	}
	hashes := make([]plumbing.Hash, 0, len(seen))
	for h := range seen {
		hashes = append(hashes, h)
	}
	sort.Slice(hashes, func(i, j int) bool { return hashes[i].String() < hashes[j].String() })
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := packfile.NewEncoder(bw, m.repo.Storer, false).Encode(hashes, 0); err != nil {
		return "", fmt.Errorf("packing commit %s of %s: %w", sha, m.URL, err)
	}
	return t.Hash.String(), bw.Flush()
}

// collect adds t and everything below it to seen.
func collect(ctx context.Context, t *object.Tree, seen map[plumbing.Hash]bool) error {
	if seen[t.Hash] {
		return nil
	}
	seen[t.Hash] = true
	for _, e := range t.Entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case e.Mode == filemode.Submodule:
		case e.Mode == filemode.Dir:
			sub, err := t.Tree(e.Name)
			if err != nil {
				return err
			}
			if err := collect(ctx, sub, seen); err != nil {
				return err
			}
		default:
			seen[e.Hash] = true
		}
	}
	return nil
}

// AddPack adds the objects of the pack r (as PackTree wrote it, from a
// store) to the mirror, then checks it now holds commit sha with tree id
// tree: objects are named by the hash of their content as the pack is
// indexed, so a pack that lacks them, or holds other content under their
// names, is refused (failure.ErrVerify).
func (m *Mirror) AddPack(ctx context.Context, r io.Reader, sha, tree string) error {
	packDir := filepath.Join(m.root, "objects", "pack")
	if err := os.MkdirAll(packDir, 0o755); err != nil {
		return err
	}
	pf, err := os.CreateTemp(packDir, "tmp_pack_")
	if err != nil {
		return err
	}
	defer os.Remove(pf.Name())
	defer pf.Close()
	if _, err := io.Copy(pf, r); err != nil {
		return err
	}
	err = installPack(pf, packDir, func(idx *idxfile.MemoryIndex) error {
		if _, err := idx.FindOffset(plumbing.NewHash(sha)); err != nil {
			return fmt.Errorf("%w: the stored source of %s holds no commit %s", failure.ErrVerify, m.URL, sha)
		}
		return nil
	})
	if errors.Is(err, errNotAPack) {
		return fmt.Errorf("%w: the stored source of %s: %v", failure.ErrVerify, m.URL, err)
	}
	if err != nil {
		return err
	}
	if err := m.open(); err != nil {
		return err
	}
	t, err := m.Tree(sha)
	if err != nil {
		return fmt.Errorf("%w: the stored source of %s: %v", failure.ErrVerify, m.URL, err)
	}
	if tree != "" && t.Hash.String() != tree {
		return fmt.Errorf("%w: commit %s of %s has tree %s; the release records %s", failure.ErrVerify, sha, m.URL, t.Hash, tree)
	}
	return nil
}
