package gitcache

import (
	"bufio"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/objfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
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
	if err := m.copyObjects(filepath.Join(src, "objects"), filepath.Join(root, "objects")); err != nil {
		if errors.Is(err, ErrForgedPack) || errors.Is(err, ErrForgedObject) {
			// no object of this mirror is trusted any more: the next
			// fetch starts afresh
			os.RemoveAll(root)
			return fmt.Errorf("fetching %s: %w; the remote's repository is corrupt or forged (git fsck there says more), and the cache's mirror of it (%s) was dropped", m.URL, err, root)
		}
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
	if m.root != m.path { // a new mirror: its refs in one file, not one per ref
		return writePackedRefs(root, want)
	}
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

// writePackedRefs writes refs as the packed-refs file of the new mirror
// at root (git's format, sorted; readers peel tags themselves): one file
// instead of one per branch and tag.
func writePackedRefs(root string, refs map[plumbing.ReferenceName]plumbing.Hash) error {
	var b strings.Builder
	b.WriteString("# pack-refs with: sorted \n")
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		fmt.Fprintf(&b, "%s %s\n", refs[name], name)
	}
	return atomicfile.WriteFile(filepath.Join(root, "packed-refs"), []byte(b.String()), 0o644)
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
func (m *Mirror) copyObjects(srcObj, dstObj string) error {
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
		if err := copyPack(filepath.Join(srcObj, base), filepath.Join(dstObj, base)); err != nil {
			return err
		}
	}
	if len(loose) > 0 {
		if err := packLoose(srcObj, loose, packDir); err != nil {
			return fmt.Errorf("packing %d loose objects: %w", len(loose), err)
		}
	}
	return syncDir(packDir)
}

// ErrForgedPack marks a remote's pack whose index (or name) says other
// than its content: objects are never taken from it.
var ErrForgedPack = fmt.Errorf("a pack's index does not match its content: %w", failure.ErrVerify)

// indexedMark is the file (in the mirror's imagebake-indexed/) that says
// imagebake wrote the index of the mirror's pack dst itself, from the
// pack's content (git would take a file next to the pack for garbage).
func indexedMark(dst string) string {
	root := filepath.Dir(filepath.Dir(filepath.Dir(dst))) // root/objects/pack/pack-X
	return filepath.Join(root, "imagebake-indexed", filepath.Base(dst))
}

// copyPack brings the pack src.pack into the mirror as dst.pack, never
// trusting the remote's index: the copy is indexed here (go-git's pack
// parser inflates every object and computes its id), and its checksum
// must be its name and its index the remote's. A pack already there is
// kept when this mirror indexed it; one an older imagebake copied with
// the remote's index is indexed again and checked the same way.
func copyPack(src, dst string) error {
	sfi, err := os.Stat(src + ".pack")
	if err != nil {
		return err
	}
	if dfi, err := os.Lstat(dst + ".pack"); err == nil && dfi.Size() == sfi.Size() {
		if _, err := os.Stat(indexedMark(dst)); err == nil {
			return nil
		}
	}
	dir := filepath.Dir(dst)
	pf, err := os.CreateTemp(dir, "tmp_pack_")
	if err != nil {
		return err
	}
	pf.Close()
	defer os.Remove(pf.Name())
	if err := atomicfile.Copy(src+".pack", pf.Name(), 0o444); err != nil {
		return err
	}
	idx, err := indexPack(pf.Name(), filepath.Base(src))
	if err != nil {
		return err
	}
	for _, theirs := range []string{src + ".idx", dst + ".idx"} {
		if err := sameIndex(idx, theirs); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrForgedPack, theirs, err)
		}
	}
	xf, err := writeIndex(dir, idx)
	if err != nil {
		return err
	}
	defer os.Remove(xf.Name())
	if err := os.Rename(pf.Name(), dst+".pack"); err != nil {
		xf.Close()
		return err
	}
	if err := finish(xf, dst+".idx"); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(indexedMark(dst)), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(indexedMark(dst), nil, 0o444)
}

// indexPack indexes the pack file p from its content; its checksum must
// be the one its name (pack-SUM) gives.
func indexPack(p, name string) (*idxfile.MemoryIndex, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// the header's object count sizes the parser's tables: it must be one
	// the file can hold (an object takes at least 9 bytes: a type and
	// size byte and the smallest zlib stream), or a forged count of 2^32
	// would take all memory
	var hdr [12]byte
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(f, hdr[:]); err != nil || string(hdr[:4]) != "PACK" {
		return nil, fmt.Errorf("%w: %s.pack is not a pack file", ErrForgedPack, name)
	}
	if n := int64(binary.BigEndian.Uint32(hdr[8:])); n*9 > fi.Size()-12-20 && n > 0 {
		return nil, fmt.Errorf("%w: %s.pack says it holds %d objects, more than its %d bytes can", ErrForgedPack, name, n, fi.Size())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	iw := new(idxfile.Writer)
	parser, err := packfile.NewParser(packfile.NewScanner(f), iw)
	if err != nil {
		return nil, err
	}
	sum, err := parser.Parse()
	if err != nil {
		return nil, fmt.Errorf("%w: %s.pack: %v", ErrForgedPack, name, err)
	}
	if want := strings.TrimPrefix(name, "pack-"); sum.String() != want {
		return nil, fmt.Errorf("%w: %s.pack holds a pack whose checksum is %s", ErrForgedPack, name, sum)
	}
	return iw.Index()
}

// sameIndex says whether the index file p, when there is one, names the
// objects of idx at the same offsets, and no others.
func sameIndex(idx *idxfile.MemoryIndex, p string) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	theirs := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(bufio.NewReader(f)).Decode(theirs); err != nil {
		return fmt.Errorf("unreadable index: %v", err)
	}
	n, _ := idx.Count()
	m, _ := theirs.Count()
	if n != m {
		return fmt.Errorf("it names %d objects, the pack holds %d", m, n)
	}
	it, err := theirs.Entries()
	if err != nil {
		return err
	}
	defer it.Close()
	for {
		e, err := it.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		off, err := idx.FindOffset(e.Hash)
		if err != nil {
			return fmt.Errorf("it names object %s, which the pack does not hold", e.Hash)
		}
		if uint64(off) != e.Offset {
			return fmt.Errorf("it names object %s at offset %d, where the pack holds another object (%s is at %d)", e.Hash, e.Offset, e.Hash, off)
		}
	}
}

// packLoose writes the loose objects hashes of the objects directory
// srcObj as one pack with its index into packDir: each object read from
// its file once, checked against its name, and compressed anew (fastest
// level: the pack stays on this machine), none made a delta. go-git's
// encoder read each object twice through its storage, which was half of a
// cold install from a local remote.
func packLoose(srcObj string, hashes []plumbing.Hash, packDir string) error {
	pf, err := os.CreateTemp(packDir, "tmp_pack_")
	if err != nil {
		return err
	}
	defer os.Remove(pf.Name())
	defer pf.Close()
	sum := sha1.New() // the trailer: SHA-1 of the pack's bytes
	bw := bufio.NewWriterSize(io.MultiWriter(pf, sum), 256<<10)
	cw := &entryWriter{w: bw, crc: crc32.NewIEEE()}
	var head [12]byte
	copy(head[:], "PACK")
	binary.BigEndian.PutUint32(head[4:], 2)
	binary.BigEndian.PutUint32(head[8:], uint32(len(hashes)))
	if _, err := cw.Write(head[:]); err != nil {
		return err
	}
	zw, err := newCompressors(cw)
	if err != nil {
		return err
	}
	// the index is made as the pack is written: each object's hash was
	// checked against its content as it was read
	iw := new(idxfile.Writer)
	iw.OnHeader(uint32(len(hashes)))
	buf := make([]byte, 32<<10)
	for _, id := range hashes {
		name := id.String()
		pos := cw.n
		cw.crc.Reset()
		if err := packEntry(cw, zw, buf, filepath.Join(srcObj, name[:2], name[2:]), id); err != nil {
			return err
		}
		iw.Add(id, uint64(pos), cw.crc.Sum32())
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var trailer plumbing.Hash
	copy(trailer[:], sum.Sum(nil))
	if _, err := pf.Write(trailer[:]); err != nil {
		return err
	}
	if err := iw.OnFooter(trailer); err != nil {
		return err
	}
	idx, err := iw.Index()
	if err != nil {
		return err
	}
	return storePack(pf, packDir, idx, trailer)
}

// entryWriter counts the bytes written through it and sums their CRC-32
// (reset per pack entry): a pack index's offset and checksum of each.
type entryWriter struct {
	w   io.Writer
	n   int64
	crc hash.Hash32
}

func (e *entryWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	e.n += int64(n)
	e.crc.Write(p[:n])
	return n, err
}

// smallObject is the size under which a loose object is stored in the
// pack without compression: for these, building a Huffman code each cost
// more than the bytes saved (a tenth of a cold install of 30 modules).
const smallObject = 2048

// compressors are the zlib writers of a pack's entries: stored for small
// objects, the fastest level for the others.
type compressors struct{ small, large *zlib.Writer }

func newCompressors(w io.Writer) (compressors, error) {
	small, err := zlib.NewWriterLevel(w, zlib.NoCompression)
	if err != nil {
		return compressors{}, err
	}
	large, err := zlib.NewWriterLevel(w, zlib.BestSpeed)
	return compressors{small, large}, err
}

// ErrForgedObject marks a loose object whose content is not what its name
// says: it is never taken.
var ErrForgedObject = fmt.Errorf("a loose object's content does not match its name: %w", failure.ErrVerify)

// packEntry appends the loose object id, read from its file p, to a pack
// being written to w: its type and size, then its content through one of
// zws, copied in buf.
func packEntry(w io.Writer, zws compressors, buf []byte, p string, id plumbing.Hash) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := objfile.NewReader(f)
	if err != nil {
		return fmt.Errorf("loose object %s: %w", p, err)
	}
	defer r.Close()
	t, size, err := r.Header()
	if err != nil {
		return fmt.Errorf("loose object %s: %w", p, err)
	}
	if t < plumbing.CommitObject || t > plumbing.TagObject || size < 0 {
		return fmt.Errorf("loose object %s: %w (type %v, size %d)", p, ErrForgedObject, t, size)
	}
	// the entry's header: type and the size's low 4 bits, then 7 bits a byte
	var hdr [binary.MaxVarintLen64 + 1]byte
	hdr[0] = byte(t)<<4 | byte(size&0x0f)
	n := 1
	for rest := size >> 4; rest > 0; rest >>= 7 {
		hdr[n-1] |= 0x80
		hdr[n] = byte(rest & 0x7f)
		n++
	}
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	zw := zws.large
	if size < smallObject {
		zw = zws.small
	}
	zw.Reset(w)
	if got, err := io.CopyBuffer(zw, r, buf); err != nil || got != size {
		return fmt.Errorf("loose object %s: %w (%d of its %d bytes read: %v)", p, ErrForgedObject, got, size, err)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if got := r.Hash(); got != id {
		return fmt.Errorf("loose object %s: %w (it holds %s)", p, ErrForgedObject, got)
	}
	return nil
}

// errNotAPack marks a pack file that does not parse whole.
var errNotAPack = errors.New("not a whole git pack")

// installPack indexes the pack written into pf (a temporary file of
// packDir), lets check refuse it by its index, then names the pack and
// its index pack-SUM.pack and .idx, both synced and read-only. A pack
// that does not parse is errNotAPack.
func installPack(pf *os.File, packDir string, check func(*idxfile.MemoryIndex) error) error {
	if _, err := pf.Seek(0, io.SeekStart); err != nil {
		return err
	}
	iw := new(idxfile.Writer)
	parser, err := packfile.NewParser(packfile.NewScanner(pf), iw)
	if err != nil {
		return fmt.Errorf("%w: %v", errNotAPack, err)
	}
	sum, err := parser.Parse()
	if err != nil {
		return fmt.Errorf("%w: %v", errNotAPack, err)
	}
	idx, err := iw.Index()
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(idx); err != nil {
			return err
		}
	}
	return storePack(pf, packDir, idx, sum)
}

// storePack writes idx, the index of the pack in pf (a temporary file of
// packDir), and names the pack and its index pack-SUM.pack and .idx,
// both synced and read-only.
func storePack(pf *os.File, packDir string, idx *idxfile.MemoryIndex, sum plumbing.Hash) error {
	xf, err := writeIndex(packDir, idx)
	if err != nil {
		return err
	}
	defer os.Remove(xf.Name())
	base := filepath.Join(packDir, "pack-"+sum.String())
	if err := finish(pf, base+".pack"); err != nil {
		return err
	}
	return finish(xf, base+".idx")
}

// writeIndex writes idx into a temporary file in dir (tmp_idx_*, which a
// next open clears if it is left), left open for finish to name it.
func writeIndex(dir string, idx *idxfile.MemoryIndex) (*os.File, error) {
	xf, err := os.CreateTemp(dir, "tmp_idx_")
	if err != nil {
		return nil, err
	}
	xw := bufio.NewWriter(xf)
	_, err = idxfile.NewEncoder(xw).Encode(idx)
	if err == nil {
		err = xw.Flush()
	}
	if err != nil {
		xf.Close()
		os.Remove(xf.Name())
		return nil, err
	}
	return xf, nil
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

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

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
