package bake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/flock"
)

// DefaultCompileCacheMax caps the compile gate's cache of unpacked bases
// (a Debian base with Puppet is about 270 MB unpacked).
const DefaultCompileCacheMax = 4 << 30

// CompileCacheEntry is one unpacked base of the compile gate's cache.
type CompileCacheEntry struct {
	Key  string    `json:"key"`
	Dir  string    `json:"dir"`
	Size int64     `json:"size"`
	Used time.Time `json:"used"`
}

const (
	sizeFile = "size"
	usedFile = "used"
)

// CompileCache lists the unpacked bases in the gate's cache under the
// imagebake cache dir, least recently used first.
func CompileCache(cache string) (dir string, entries []CompileCacheEntry, err error) {
	dir, err = gateCache(Options{Cache: cache})
	if err != nil {
		return "", nil, err
	}
	entries, err = compileEntries(dir)
	return dir, entries, err
}

// compileEntries lists the unpacked bases in dir, least recently used
// first.
func compileEntries(dir string) (entries []CompileCacheEntry, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		ce := CompileCacheEntry{Key: e.Name(), Dir: p}
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

// PruneCompileCache removes unpacked bases, least recently used first,
// until the cache holds at most max bytes (0: no size cap), and every one
// not used for olderThan (0: none by age). keep is never removed (the
// base a bake uses now); nor is one another bake holds (its lock is
// taken). It returns what it removed.
func PruneCompileCache(ctx context.Context, cache string, max int64, olderThan time.Duration, keep string) ([]CompileCacheEntry, error) {
	dir, err := gateCache(Options{Cache: cache})
	if err != nil {
		return nil, err
	}
	return pruneCompileDir(ctx, dir, max, olderThan, keep)
}

// pruneCompileDir is PruneCompileCache on the gate's cache directory dir.
func pruneCompileDir(ctx context.Context, dir string, max int64, olderThan time.Duration, keep string) ([]CompileCacheEntry, error) {
	entries, err := compileEntries(dir)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	var removed []CompileCacheEntry
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
