package gitcache

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// forgeIdx rewrites the version 2 pack index p so that it names commit
// c1 at the offset of commit c2 (its checksum recomputed): git fsck calls
// the pack "hash mismatch", a reader trusting the index reads c2 for c1.
func forgeIdx(t *testing.T, p, c1, c2 string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.BigEndian.Uint32(b[8+255*4:]))
	hashes, offs := 8+256*4, 8+256*4+n*20+n*4
	find := func(hexid string) int {
		id, _ := hex.DecodeString(hexid)
		for i := 0; i < n; i++ {
			if bytes.Equal(b[hashes+i*20:hashes+i*20+20], id) {
				return i
			}
		}
		t.Fatalf("%s is not in %s", hexid, p)
		return -1
	}
	i, j := find(c1), find(c2)
	copy(b[offs+i*4:offs+i*4+4], b[offs+j*4:offs+j*4+4])
	sum := sha1.Sum(b[:len(b)-20])
	copy(b[len(b)-20:], sum[:])
	testutil.Must(t, os.Chmod(p, 0o644))
	if err := os.WriteFile(p, b, 0o444); err != nil {
		t.Fatal(err)
	}
}

// A local remote whose pack index names the pinned commit C1 at the
// offset of another commit C2 is refused (exit 4, naming the remote), and
// no mirror of it is kept; a mirror an older imagebake filled with such a
// pack (the remote's index copied) refuses to write C1's tree, is dropped
// at the next fetch, and a fetch from the repaired remote writes C1's
// files again.
func TestForgedPackRefused(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	testutil.Git(t, root, "init", "-q", "-b", "main", work)
	commit := func(text string) string {
		testutil.Must(t, os.WriteFile(filepath.Join(work, "init.pp"), []byte(text), 0o644))
		testutil.Git(t, work, "add", "-A")
		testutil.Git(t, work, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", text)
		return strings.TrimSpace(testutil.Git(t, work, "rev-parse", "HEAD"))
	}
	c1 := commit("class pinned {}\n")
	c2 := commit("class other {}\n")
	testutil.Git(t, work, "repack", "-a", "-d", "-q")
	packs, _ := filepath.Glob(filepath.Join(work, ".git", "objects", "pack", "pack-*.idx"))
	if len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	good, _ := os.ReadFile(packs[0])
	forgeIdx(t, packs[0], c1, c2)
	url := "file://" + work

	c, err := Open(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.Mirror(ctx, url)
	if !errors.Is(err, ErrForgedPack) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), work) {
		t.Fatalf("mirroring a remote with a forged pack index = %v (exit %d), want exit 4 naming the remote", err, failure.Code(err))
	}
	mirrors, _ := filepath.Glob(filepath.Join(root, "cache", "git", "*", "objects"))
	if len(mirrors) != 0 {
		t.Errorf("a mirror of the forged remote was kept: %v", mirrors)
	}

	// the remote repaired, mirrored; then its index forged in the mirror,
	// as an older imagebake that copied the remote's index left it
	testutil.Must(t, os.Chmod(packs[0], 0o644))
	testutil.Must(t, os.WriteFile(packs[0], good, 0o444))
	m, err := c.Mirror(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	mirrorPack := filepath.Join(m.path, "objects", "pack", filepath.Base(packs[0]))
	m.Close()
	forgeIdx(t, mirrorPack, c1, c2)
	testutil.Must(t, os.RemoveAll(filepath.Join(m.path, "imagebake-indexed")))
	m, err = c.Mirror(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	err = m.WriteTree(ctx, c1, filepath.Join(root, "tree1"), time.Unix(0, 0), nil)
	if !errors.Is(err, ErrObjectMismatch) || failure.Code(err) != failure.ExitVerify {
		t.Errorf("writing C1 from a mirror whose index is forged = %v, want a mismatch (exit 4)", err)
	}
	if err := m.Fetch(ctx); !errors.Is(err, ErrForgedPack) {
		t.Errorf("fetching into a mirror whose pack index is forged = %v, want it refused", err)
	}
	m.Close()
	if _, err := os.Stat(m.path); err == nil {
		t.Errorf("the forged mirror %s was kept", m.path)
	}
	m, err = c.Mirror(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.WriteTree(ctx, c1, filepath.Join(root, "tree2"), time.Unix(0, 0), nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "tree2", "init.pp")); string(b) != "class pinned {}\n" {
		t.Errorf("C1's init.pp from the repaired remote = %q", b)
	}
}

// Any bytes as a remote's pack: indexed or refused, never a panic.
func FuzzIndexPack(f *testing.F) {
	f.Add([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x00"))
	f.Add([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x01\x30\x78\x9c\x03\x00\x00\x00\x00\x01"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "pack")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if idx, err := indexPack(p, "pack-"+strings.Repeat("0", 40)); err == nil && idx == nil {
			t.Fatal("no index and no error")
		}
	})
}

// A local remote whose loose object file holds another object's content
// (a blob swapped for another under its name) is refused with exit 4,
// naming the file, and no mirror of it is kept; an honest remote of loose
// objects, one of them larger than a pack's copy buffer, is mirrored with
// every object and writes the same files.
func TestForgedLooseObjectRefused(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	testutil.Git(t, root, "init", "-q", "-b", "main", work)
	big := bytes.Repeat([]byte("class big { }\n"), 20000) // 280 kB: many copy buffers
	testutil.Must(t, os.WriteFile(filepath.Join(work, "init.pp"), []byte("class pinned {}\n"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(work, "big.pp"), big, 0o644))
	testutil.Git(t, work, "add", "-A")
	testutil.Git(t, work, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "one")
	c1 := strings.TrimSpace(testutil.Git(t, work, "rev-parse", "HEAD"))
	loose := func(rev string) string {
		id := strings.TrimSpace(testutil.Git(t, work, "rev-parse", rev))
		return filepath.Join(work, ".git", "objects", id[:2], id[2:])
	}
	ctx := context.Background()
	c, err := Open(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Mirror(ctx, "file://"+work)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WriteTree(ctx, c1, filepath.Join(root, "tree"), time.Unix(0, 0), nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "tree", "big.pp")); !bytes.Equal(b, big) {
		t.Errorf("big.pp from a mirror of loose objects: %d bytes, want %d", len(b), len(big))
	}
	// git reads the pack and the index made beside it: offsets and CRCs
	idxs, _ := filepath.Glob(filepath.Join(m.path, "objects", "pack", "pack-*.idx"))
	if len(idxs) != 1 {
		t.Fatalf("the mirror's packs: %v", idxs)
	}
	testutil.Git(t, root, "verify-pack", idxs[0])
	testutil.Git(t, root, "--git-dir", m.path, "fsck", "--strict", "--no-dangling")
	m.Close()

	// a second remote, the same files: init.pp's loose file swapped for big.pp's
	forged := filepath.Join(root, "forged")
	testutil.Git(t, root, "init", "-q", "-b", "main", forged)
	work = forged // loose reads this remote from here on
	testutil.Must(t, os.WriteFile(filepath.Join(work, "init.pp"), []byte("class pinned {}\n"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(work, "big.pp"), big, 0o644))
	testutil.Git(t, work, "add", "-A")
	testutil.Git(t, work, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "one")
	small, large := loose("HEAD:init.pp"), loose("HEAD:big.pp")
	b, err := os.ReadFile(large)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, os.Chmod(small, 0o644))
	testutil.Must(t, os.WriteFile(small, b, 0o444))
	_, err = c.Mirror(ctx, "file://"+work)
	if !errors.Is(err, ErrForgedObject) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), small) {
		t.Fatalf("mirroring a remote with a forged loose object = %v (exit %d), want exit 4 naming %s", err, failure.Code(err), small)
	}
	if mirrors, _ := filepath.Glob(filepath.Join(root, "cache", "git", "forged-*.git")); len(mirrors) != 0 {
		t.Errorf("a mirror of the forged remote was kept: %v", mirrors)
	}
}
