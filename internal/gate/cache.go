// Package gate is the compile gate's machinery: the base's own Puppet run
// in the sandbox on an image's files (Compile), the facts it is given
// (BaseFacts, fact sets), and the cache of unpacked bases it runs on
// (CachedBase, Prune). The bake decides what is compiled, for which nodes,
// and keeps the catalogs.
package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/sandbox"
	"github.com/imagebake/imagebake/tarball"
	"github.com/klauspost/pgzip"
)

// DefaultCacheMax caps the compile gate's cache of unpacked bases
// (a Debian base with Puppet is about 270 MB unpacked).
const DefaultCacheMax = 4 << 30

// CacheEntry is one unpacked base of the compile gate's cache.
type CacheEntry struct {
	Key  string    `json:"key"`
	Dir  string    `json:"dir"`
	Size int64     `json:"size"`
	Used time.Time `json:"used"`
}

const (
	sizeFile = "size"
	usedFile = "used"
)

// Cache lists the unpacked bases in the gate's cache under the
// imagebake cache dir, least recently used first.
func Cache(cache string) (dir string, entries []CacheEntry, err error) {
	dir, err = CacheDir(cache)
	if err != nil {
		return "", nil, err
	}
	entries, err = compileEntries(dir)
	return dir, entries, err
}

// compileEntries lists the unpacked bases in dir, least recently used
// first.
func compileEntries(dir string) (entries []CacheEntry, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		ce := CacheEntry{Key: e.Name(), Dir: p}
		if b, err := os.ReadFile(filepath.Join(p, sizeFile)); err == nil {
			ce.Size, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		} else {
			ce.Size = treeSize(p)
		}
		if fi, err := os.Stat(filepath.Join(p, usedFile)); err == nil {
			ce.Used = fi.ModTime()
		} else if fi, err := os.Stat(p); err == nil {
			ce.Used = fi.ModTime()
		}
		entries = append(entries, ce)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Used.Before(entries[j].Used) })
	return entries, nil
}

// treeSize is the bytes the files under dir take.
func treeSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// Prune removes unpacked bases, least recently used first,
// until the cache holds at most max bytes (0: no size cap), and every one
// not used for olderThan (0: none by age). keep is never removed (the
// base a bake uses now); nor is one another bake holds (its lock is
// taken). It returns what it removed.
func Prune(ctx context.Context, cache string, max int64, olderThan time.Duration, keep string) ([]CacheEntry, error) {
	dir, err := CacheDir(cache)
	if err != nil {
		return nil, err
	}
	return PruneDir(ctx, dir, max, olderThan, keep)
}

// PruneDir is Prune on the gate's cache directory dir.
func PruneDir(ctx context.Context, dir string, max int64, olderThan time.Duration, keep string) ([]CacheEntry, error) {
	entries, err := compileEntries(dir)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	var removed []CacheEntry
	var errs []error
	for _, e := range entries {
		old := olderThan > 0 && time.Since(e.Used) > olderThan
		over := max > 0 && total > max
		if e.Key == keep || (!old && !over) {
			continue
		}
		if ctx.Err() != nil {
			return removed, ctx.Err()
		}
		lf, ok, err := flock.TryExclusive(filepath.Join(dir, e.Key) + ".lock")
		if err != nil || !ok {
			continue // a bake uses it now
		}
		stale := filepath.Join(dir, "."+e.Key+".tmp-pruned")
		os.RemoveAll(stale)
		if err := os.Rename(e.Dir, stale); err != nil {
			errs = append(errs, err)
		} else {
			os.RemoveAll(stale)
			total -= e.Size
			removed = append(removed, e)
		}
		lf.Close()
	}
	return removed, errors.Join(errs...)
}

// markUsed records that the unpacked base at final is used now, and its
// size once.
func markUsed(final string) {
	now := time.Now()
	p := filepath.Join(final, usedFile)
	if err := os.Chtimes(p, now, now); err != nil {
		atomicfile.WriteFile(p, nil, 0o644)
	}
	if _, err := os.Stat(filepath.Join(final, sizeFile)); err != nil {
		atomicfile.WriteFile(filepath.Join(final, sizeFile), []byte(fmt.Sprintln(treeSize(final))), 0o644)
	}
}

// treeFile holds the digest of an unpacked base's tree, next to it.
const treeFile = "tree.sha256"

// CacheDir is the directory the gate's unpacked bases are kept in:
// CACHE/compile, or, when imagebake runs as root and the sandbox's user
// could not reach CACHE, /var/cache/imagebake/compile.
func CacheDir(cache string) (string, error) {
	c := filepath.Join(cache, "compile")
	if os.Geteuid() == 0 {
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return "", err
		}
		if sandbox.Reachable(cache) != nil {
			c = "/var/cache/imagebake/compile"
		}
	}
	if err := os.MkdirAll(c, 0o755); err != nil {
		return "", err
	}
	return c, os.Chmod(c, 0o755)
}

// CachedBase returns cache/key/root, unpacking it with fill first when it
// is missing, and again when its tree no longer has the digest recorded
// when it was unpacked (with a note). It is unpacked into a temporary
// directory and renamed into place, so a bake stopped half-way leaves no
// half tree to be used; the gate's sandbox sees it read-only. The base's
// lock is returned held shared: close it once the base is no longer used
// (a prune leaves a base alone while someone holds it).
func CachedBase(ctx context.Context, cache, key, image string, logf Logf, fill func(dst string) error) (root string, held *os.File, err error) {
	final := filepath.Join(cache, key)
	// the common case, a base unpacked and whole: several bakes use it
	// side by side
	sf, err := flock.Shared(final + ".lock")
	if err != nil {
		return "", nil, err
	}
	if intact(ctx, final) {
		markUsed(final)
		return filepath.Join(final, "root"), sf, nil
	}
	sf.Close()
	if ctx.Err() != nil {
		return "", nil, ctx.Err()
	}
	lf, err := flock.LockContext(ctx, final+".lock")
	if err != nil {
		return "", nil, err
	}
	defer func() {
		if err == nil {
			markUsed(final)
			err = flock.Downgrade(lf)
		}
		if err != nil {
			lf.Close()
			return
		}
		held = lf
	}()
	root, err = unpackedBase(ctx, cache, key, image, logf, fill)
	return root, nil, err
}

// intact says whether the base unpacked at final has the tree digest
// recorded when it was unpacked. What the file system says of every entry
// (filehash.TreeStat: sizes, inodes, change times) is compared first, a
// walk; only when that changed are the files read and hashed again.
func intact(ctx context.Context, final string) bool {
	want, err := os.ReadFile(filepath.Join(final, treeFile))
	if err != nil {
		return false
	}
	root := filepath.Join(final, "root")
	st, err := filehash.TreeStat(ctx, root)
	if err != nil {
		return false
	}
	if was, err := os.ReadFile(filepath.Join(final, statFile)); err == nil && strings.TrimSpace(string(was)) == st {
		return true
	}
	got, err := filehash.Tree(ctx, root)
	if err != nil || got != strings.TrimSpace(string(want)) {
		return false
	}
	atomicfile.WriteFile(filepath.Join(final, statFile), []byte(st+"\n"), 0o644)
	return true
}

// unpackedBase is CachedBase's work, its lock held.
func unpackedBase(ctx context.Context, cache, key, image string, logf Logf, fill func(dst string) error) (string, error) {
	final := filepath.Join(cache, key)
	// what a stopped unpack of this key left
	old, _ := filepath.Glob(filepath.Join(cache, "."+key+".tmp-*"))
	for _, d := range old {
		os.RemoveAll(d)
	}
	root := filepath.Join(final, "root")
	if want, err := os.ReadFile(filepath.Join(final, treeFile)); err == nil {
		got, err := filehash.Tree(ctx, root)
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if err == nil && got == strings.TrimSpace(string(want)) {
			return root, nil
		}
		logf.printf("note: compile gate: the unpacked base %s changed since it was unpacked (tree %s, recorded %s): unpacking it again\n", final, orNone(got, err), strings.TrimSpace(string(want)))
	} else if _, serr := os.Stat(final); serr == nil {
		logf.printf("note: compile gate: the unpacked base %s has no tree digest (%s): unpacking it again\n", final, treeFile)
	}
	if _, err := os.Stat(final); err == nil {
		stale := filepath.Join(cache, "."+key+".tmp-stale")
		os.RemoveAll(stale)
		if err := os.Rename(final, stale); err != nil {
			return "", err
		}
		os.RemoveAll(stale)
	}
	logf.printf("compile gate: unpacking the base of %s into %s (once per base)\n", image, final)
	tmp, err := os.MkdirTemp(cache, "."+key+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	t0 := time.Now()
	if err := fill(filepath.Join(tmp, "root")); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", err
	}
	t1 := time.Now()
	sum, err := filehash.Tree(ctx, filepath.Join(tmp, "root"))
	if err != nil {
		return "", err
	}
	st, err := filehash.TreeStat(ctx, filepath.Join(tmp, "root"))
	if err != nil {
		return "", err
	}
	logf.printf("compile gate: base unpacked in %s, its tree digest taken in %s\n", t1.Sub(t0).Round(10*time.Millisecond), time.Since(t1).Round(10*time.Millisecond))
	if err := atomicfile.WriteFile(filepath.Join(tmp, treeFile), []byte(sum+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, statFile), []byte(st+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return root, nil
}

func orNone(s string, err error) string {
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return s
}

// ExtractBase unpacks a base's layers into dst. One gzip layer (the
// common base) is read straight from its blob and decompressed on every
// CPU, its whiteout markers (which hide nothing below a first layer) left
// out; several are applied in order by ExtractLayers.
func ExtractBase(ls []v1.Layer, dst string, opts tarball.ExtractOptions) error {
	if len(ls) != 1 {
		return ExtractLayers(ls, dst, opts)
	}
	mt, err := ls[0].MediaType()
	if err != nil || !strings.HasSuffix(string(mt), "gzip") {
		return ExtractLayers(ls, dst, opts)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	zr, err := pgzip.NewReader(rc)
	if err != nil {
		return fmt.Errorf("base layer: %w", err)
	}
	defer zr.Close()
	opts.Skip = func(name string) bool { return strings.HasPrefix(path.Base(name), ".wh.") }
	return tarball.Extract(zr, dst, opts)
}

// ExtractLayers unpacks layers (whiteouts applied) into dst.
func ExtractLayers(ls []v1.Layer, dst string, opts tarball.ExtractOptions) error {
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		return err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	err = tarball.Extract(rc, dst, opts)
	io.Copy(io.Discard, rc)
	return err
}

// Logf prints a progress line or note (nil: nothing).
type Logf func(format string, args ...any)

func (f Logf) printf(format string, args ...any) {
	if f != nil {
		f(format, args...)
	}
}

// statFile holds the TreeStat of an unpacked base whose content was last
// found whole, next to it.
const statFile = "tree.stat"
