package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/s3obj"
	"github.com/imagebake/imagebake/internal/sysx"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// The blob pool. A store keeps each blob once, content-addressed at
// STORE/blobs/sha256/HEX (the OCI layout's own rule). A directory store's
// release, images/NAME/, is still a whole OCI layout (skopeo copy
// oci:STORE/images/NAME reads it as before): its
// blobs/sha256/HEX are hard links to the pool's, so the bytes are on disk
// once however many releases share a base. An S3 store's release holds its
// index, manifest, SBOM and signatures under images/NAME/; its blobs are
// the pool's keys, blobs/sha256/HEX.
//
// Garbage: `store gc` removes pool blobs no release holds (a directory
// store: a link count of 1, the pool's own; an S3 store: named by no
// release's index and image manifests) that are older than a grace period
// (DefaultGrace). A directory store's publish links each blob into its
// release as it adds or finds it, and gc removes only blobs with no other
// link; an S3 store's publish holds a shared lease and gc an exclusive one
// (lease.go), so the two never overlap. Releases are never removed by gc.

// PoolDir is the pool, relative to a store's root.
const PoolDir = "blobs/sha256"

// DefaultGrace is how old an unreferenced pool blob must be before gc
// removes it: far longer than any publish takes.
const DefaultGrace = time.Hour

// ErrPoolBlob marks a pool blob whose bytes are not what its name says.
var ErrPoolBlob = fmt.Errorf("pool blob does not match its digest: %w", failure.ErrVerify)

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// poolLock is the lock file of a directory store's pool: a publish and a
// migrate hold it shared while they write temporaries into the pool and
// the releases; clearTemps removes what killed ones left only when it can
// hold it alone.
const poolLock = ".pool.lock"

// sharePool holds the pool's lock shared until the returned func is run.
func (s *Store) sharePool() (func(), error) {
	f, err := flock.Shared(filepath.Join(s.Root, poolLock))
	if err != nil {
		return nil, fmt.Errorf("locking the pool of %s: %w", s.Root, err)
	}
	return func() { f.Close() }, nil
}

// clearTemps removes the temporaries a killed publish (pool .add-*) or
// migrate (images/NAME/blobs/sha256/.migrate-*) left, when no publish or
// migrate is at work.
func (s *Store) clearTemps() {
	f, ok, err := flock.TryExclusive(filepath.Join(s.Root, poolLock))
	if err != nil || !ok {
		return
	}
	defer f.Close()
	adds, _ := filepath.Glob(filepath.Join(s.Root, filepath.FromSlash(PoolDir), ".add-*"))
	migrates, _ := filepath.Glob(filepath.Join(s.Root, "images", "*", filepath.FromSlash(PoolDir), ".migrate-*"))
	for _, p := range append(adds, migrates...) {
		os.Remove(p)
	}
}

// isPoolBlob says whether the release-relative path rel is a layout blob
// the pool keeps (blobs/sha256/HEX).
func isPoolBlob(rel string) (string, bool) {
	d, name := filepath.Split(filepath.ToSlash(rel))
	if d != PoolDir+"/" || !hexRE.MatchString(name) {
		return "", false
	}
	return name, true
}

// linkFromPool makes dst a hard link to the pool's blob hex, adding src
// to the pool first when it lacks it. src's bytes are checked against hex
// on the way in; a blob already in the pool of another size is refused.
// A file system without hard links gets a copy.
func (s *Store) linkFromPool(src, dst, hex string) error {
	pool := filepath.Join(s.Root, filepath.FromSlash(PoolDir), hex)
	for attempt := 0; attempt < 2; attempt++ {
		fi, err := os.Stat(pool)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return s.putInPool(src, pool, hex, dst, false)
		case err != nil:
			return err
		}
		sfi, err := os.Stat(src)
		if err != nil {
			return err
		}
		if fi.Size() != sfi.Size() {
			return fmt.Errorf("%w: %s is %d bytes, the release's blob %s is %d", ErrPoolBlob, pool, fi.Size(), src, sfi.Size())
		}
		// a blob of the right size may still hold other bytes: it is
		// linked into a signed release only once its hash is checked
		got, err := filehash.SHA256(pool)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a gc removed it just now
		}
		if err != nil {
			return err
		}
		if got != hex {
			// the release's own copy, when good, replaces it
			if err := s.putInPool(src, pool, hex, dst, true); err != nil {
				return fmt.Errorf("the pool's %s holds sha256:%s, and the release's own copy is no better: %w", pool, got, err)
			}
			return nil
		}
		err = os.Link(pool, dst)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, fs.ErrNotExist): // a gc removed it just now: add it again
			continue
		case errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EMLINK):
			return atomicfile.Copy(pool, dst, 0o644) // no hard links here
		default:
			return err
		}
	}
	return s.putInPool(src, pool, hex, dst, false) // a gc removed it twice: add it anew
}

// putInPool copies src into the pool as hex, checking its bytes, through
// a temporary file: a reader never sees a partial blob, and two
// publishers adding the same blob both succeed. The copy is linked into
// the release (dst) before it gets its pool name, so gc never finds it
// held by the pool alone. With replace, it takes the place of a damaged
// pool blob.
func (s *Store) putInPool(src, pool, want, dst string, replace bool) error {
	dir := filepath.Dir(pool)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, ".add-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		tmp.Close()
		return fmt.Errorf("copying %s into the pool: %w", src, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		tmp.Close()
		return fmt.Errorf("%w: the release's %s holds sha256:%s", ErrPoolBlob, src, got)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), dst); err != nil {
		if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EMLINK) {
			return err
		}
		if err := atomicfile.Copy(tmp.Name(), dst, 0o644); err != nil { // no hard links here
			return err
		}
	}
	if replace {
		if err := os.Rename(tmp.Name(), pool); err != nil {
			return err
		}
	} else if err := os.Link(tmp.Name(), pool); err != nil && !errors.Is(err, fs.ErrExist) {
		// link, not rename: a blob another publisher added meanwhile
		// stays (this release then keeps its own copy, the same bytes)
		return err
	}
	syncDir(dir)
	return nil
}

// GCReport is what a gc found and did.
type GCReport struct {
	Blobs      int   `json:"blobs"`       // in the pool
	Referenced int   `json:"referenced"`  // held by a release
	Young      int   `json:"young"`       // unreferenced, inside the grace period: kept
	Removed    int   `json:"removed"`     // unreferenced and old: removed (or, dry run, would be)
	Freed      int64 `json:"freed_bytes"` // their size
	DryRun     bool  `json:"dry_run"`
}

// GC removes the pool blobs no release holds that are older than grace.
// Releases are never touched; a gc stopped at any point leaves a store
// every reader accepts (a blob is unlinked whole, or not).
func (s *Store) GC(ctx context.Context, grace time.Duration, dryRun bool, now time.Time) (*GCReport, error) {
	r := &GCReport{DryRun: dryRun}
	dir := filepath.Join(s.Root, filepath.FromSlash(PoolDir))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		if !hexRE.MatchString(e.Name()) {
			continue // a publisher's temporary file, or not ours
		}
		r.Blobs++
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if sysx.Links(fi) > 1 {
			r.Referenced++
			continue
		}
		if now.Sub(fi.ModTime()) < grace {
			r.Young++
			continue
		}
		r.Removed++
		r.Freed += fi.Size()
		if !dryRun {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return r, err
			}
		}
	}
	return r, nil
}

// Migrate moves the blobs of releases in the old layout (each release
// with blobs of its own) into the pool: each becomes a hard link to the
// pool's copy, through a rename, so no reader ever sees it missing and
// no digest changes. It returns how many blobs it linked.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	s.clearTemps()
	done, err := s.sharePool()
	if err != nil {
		return 0, err
	}
	defer done()
	rels, err := filepath.Glob(filepath.Join(s.Root, "images", "*", filepath.FromSlash(PoolDir)))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range rels {
		ents, err := os.ReadDir(d)
		if err != nil {
			return n, err
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			if !hexRE.MatchString(e.Name()) || !e.Type().IsRegular() {
				continue
			}
			p := filepath.Join(d, e.Name())
			pool := filepath.Join(s.Root, filepath.FromSlash(PoolDir), e.Name())
			if same, err := sameFile(p, pool); err != nil || same {
				if err != nil {
					return n, err
				}
				continue
			}
			tmp := filepath.Join(d, ".migrate-"+e.Name())
			os.Remove(tmp)
			if err := s.linkFromPool(p, tmp, e.Name()); err != nil {
				return n, fmt.Errorf("migrating %s: %w", p, err)
			}
			if err := os.Rename(tmp, p); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

// ociIndex is what gc reads of an index or image manifest: the digests it
// names.
type ociIndex struct {
	Manifests []struct {
		Digest string `json:"digest"`
	} `json:"manifests"`
	Config *struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
	} `json:"layers"`
}

// GC removes the pool blobs that no release of the catalog names (its
// index.json, the manifests and indexes it names, their configs and
// layers) and that are older than grace. A release whose index names a
// blob the pool lacks is an error naming both (exit 4): the store is
// damaged, and gc removes nothing.
func (s *S3Store) GC(ctx context.Context, grace time.Duration, dryRun bool, now time.Time) (*GCReport, error) {
	l, err := s.takeLease(ctx, true, "gc")
	if err != nil {
		return nil, err
	}
	defer l.release(ctx)
	if s.gcHolding != nil {
		s.gcHolding()
	}
	c, err := s.Read(ctx)
	if err != nil {
		return nil, err
	}
	objs, err := s.B.List(ctx, PoolDir+"/")
	if err != nil {
		return nil, err
	}
	have := map[string]s3obj.Object{}
	for _, o := range objs {
		if hex, ok := isPoolBlob(o.Key); ok {
			have[hex] = o
		}
	}
	refs := map[string]bool{}
	var missing []string
	for _, f := range c.Families {
		for _, r := range f.Releases {
			name := f.Name + "-" + r.Version
			raw, _, err := s.B.Get(ctx, "images/"+name+"/index.json")
			if errors.Is(err, failure.ErrNotFound) {
				continue // a rootfs release: no layout
			}
			if err != nil {
				return nil, err
			}
			if err := s.walkRefs(ctx, name, raw, refs, have, &missing, 0); err != nil {
				return nil, err
			}
			if err := s.sourceRefs(ctx, name, refs); err != nil {
				return nil, err
			}
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: the pool %s lacks blobs releases name (gc removed nothing):\n  %s", ErrPoolBlob, s.B.URL(PoolDir), strings.Join(missing, "\n  "))
	}
	rep := &GCReport{DryRun: dryRun, Blobs: len(have)}
	for hex, o := range have {
		switch {
		case refs[hex]:
			rep.Referenced++
		case now.Sub(o.Modified) < grace:
			rep.Young++
		default:
			rep.Removed++
			rep.Freed += o.Size
			if !dryRun {
				if err := s.B.Delete(ctx, o.Key); err != nil {
					return rep, err
				}
			}
		}
	}
	return rep, nil
}

// sourceRefs adds the blobs a release's sources.toml names: a store keeps
// a release's sources as long as the release is in the catalog.
func (s *S3Store) sourceRefs(ctx context.Context, release string, refs map[string]bool) error {
	raw, _, err := s.B.Get(ctx, "images/"+release+"/"+manifest.SourcesFileName)
	if errors.Is(err, failure.ErrNotFound) {
		return nil // a release published before stores kept sources
	}
	if err != nil {
		return err
	}
	src, err := manifest.ParseSources(raw)
	if err != nil {
		return fmt.Errorf("%w: %s of %s: %v", ErrPoolBlob, manifest.SourcesFileName, release, err)
	}
	for _, x := range src.Source {
		refs[strings.TrimPrefix(x.Blob, "sha256:")] = true
	}
	return nil
}

// walkRefs adds the digests an index or manifest (raw) names, following
// indexes and manifests through the pool.
func (s *S3Store) walkRefs(ctx context.Context, release string, raw []byte, refs map[string]bool, have map[string]s3obj.Object, missing *[]string, depth int) error {
	var ix ociIndex
	if err := json.Unmarshal(raw, &ix); err != nil {
		return fmt.Errorf("%w: %s of %s: %v", ErrPoolBlob, "an index or manifest", release, err)
	}
	var next []string
	add := func(d string, follow bool) {
		hex := strings.TrimPrefix(d, "sha256:")
		if refs[hex] {
			return
		}
		refs[hex] = true
		if _, ok := have[hex]; !ok {
			// a release in the old layout keeps its blobs (store migrate)
			if _, err := s.B.Head(ctx, "images/"+release+"/"+PoolDir+"/"+hex); err != nil {
				*missing = append(*missing, fmt.Sprintf("%s (named by %s)", d, release))
				return
			}
		}
		if follow {
			next = append(next, hex)
		}
	}
	for _, m := range ix.Manifests {
		add(m.Digest, true)
	}
	if ix.Config != nil {
		add(ix.Config.Digest, false)
	}
	for _, l := range ix.Layers {
		add(l.Digest, false)
	}
	if depth > 4 {
		return nil
	}
	for _, hex := range next {
		key := PoolDir + "/" + hex
		if _, ok := have[hex]; !ok {
			key = "images/" + release + "/" + key
		}
		b, _, err := s.B.Get(ctx, key)
		if err != nil {
			return err
		}
		if err := s.walkRefs(ctx, release, b, refs, have, missing, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// Migrate moves the blobs of releases in the old layout (each under its
// own images/NAME/blobs/sha256/) into the pool: each is written to the
// pool (checked against its digest) before the release's copy is
// deleted, so no reader of the new layout misses it and no digest
// changes. It returns how many blobs it moved.
func (s *S3Store) Migrate(ctx context.Context) (int, error) {
	l, err := s.takeLease(ctx, false, "store migrate")
	if err != nil {
		return 0, err
	}
	defer l.release(ctx)
	objs, err := s.B.List(ctx, "images/")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, "images/")
		i := strings.Index(rest, "/")
		if i < 0 {
			continue
		}
		hex, ok := isPoolBlob(rest[i+1:])
		if !ok {
			continue
		}
		if err := s.moveToPool(ctx, o.Key, hex); err != nil {
			return n, err
		}
		if err := s.B.Delete(ctx, o.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// moveToPool copies the object at key into the pool as hex, through a
// temporary file (blobs may be larger than memory allows), checking its
// bytes.
func (s *S3Store) moveToPool(ctx context.Context, key, hex string) error {
	r, err := s.B.Open(ctx, key, 0)
	if err != nil {
		return err
	}
	defer r.Close()
	tmp, err := os.CreateTemp("", "imagebake-migrate-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		return fmt.Errorf("reading %s: %w", s.B.URL(key), err)
	}
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != hex {
		return fmt.Errorf("%w: %s holds sha256:%s", ErrPoolBlob, s.B.URL(key), got)
	}
	_, err = s.B.EnsureFile(ctx, PoolDir+"/"+hex, tmp.Name())
	return err
}
