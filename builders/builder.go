// Package builders turns (base, payload layers, arch, epoch) into images.
//
// A payload layer is a gzip-compressed deterministic tar (package tarball)
// written once into a blob directory by WriteLayer, with its diffID
// (uncompressed sha256, the content identity) and digest. The oci builder
// (package builders/oci) adds the layers to the base as its own layers in an
// OCI image layout; the rootfs builder (builders/rootfs) merges base and
// payload into one deterministic root file system tarball per arch.
package builders

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/ctxio"
	"github.com/imagebake/imagebake/internal/distro"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/internal/ociremote"
	"github.com/imagebake/imagebake/internal/progress"
	"github.com/imagebake/imagebake/tarball"
)

// ErrDigestMismatch marks a base whose content is not the pinned digest.
var ErrDigestMismatch = fmt.Errorf("digest mismatch: %w", failure.ErrVerify)

// Layer is a compressed layer blob on disk.
type Layer struct {
	Path      string
	src       *inPlace // a base read where it is (Path is then the user's file)
	Role      string   // "base", "environment", "agents", "release"
	MediaType types.MediaType
	DiffID    v1.Hash
	Digest    v1.Hash
	Size      int64
}

// WriteLayer writes a gzip-compressed deterministic tar into blobDir as
// blobs are named (the hex of its sha256), hashing as it goes: one pass.
func WriteLayer(ctx context.Context, blobDir, role string, epoch time.Time, fill func(*tarball.Writer) error) (Layer, error) {
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return Layer{}, err
	}
	f, err := os.CreateTemp(blobDir, ".layer-*")
	if err != nil {
		return Layer{}, err
	}
	defer os.Remove(f.Name())
	zh, uh := sha256.New(), sha256.New()
	cw := &ctxio.Counter{W: ctxio.Writer(ctx, io.MultiWriter(f, zh))}
	zw := tarball.NewGzip(cw)
	tw := tarball.NewWriter(io.MultiWriter(zw, uh), epoch)
	err = fill(tw)
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Layer{}, fmt.Errorf("writing %s layer: %w", role, err)
	}
	l := Layer{Role: role, MediaType: types.OCILayer, Size: cw.N,
		Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(zh.Sum(nil))},
		DiffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uh.Sum(nil))}}
	l.Path = filepath.Join(blobDir, l.Digest.Hex)
	if err := os.Rename(f.Name(), l.Path); err != nil {
		return Layer{}, err
	}
	return l, nil
}

// V1 returns the layer as a go-containerregistry layer.
func (l Layer) V1() v1.Layer { return &fileLayer{l} }

type fileLayer struct{ l Layer }

func (f *fileLayer) Digest() (v1.Hash, error)            { return f.l.Digest, nil }
func (f *fileLayer) DiffID() (v1.Hash, error)            { return f.l.DiffID, nil }
func (f *fileLayer) Size() (int64, error)                { return f.l.Size, nil }
func (f *fileLayer) MediaType() (types.MediaType, error) { return f.l.MediaType, nil }
func (f *fileLayer) Compressed() (io.ReadCloser, error) {
	if f.l.src != nil {
		return f.l.src.reader(), nil
	}
	return os.Open(f.l.Path)
}

func (f *fileLayer) Uncompressed() (io.ReadCloser, error) {
	file, err := f.Compressed()
	if err != nil {
		return nil, err
	}
	return uncompressed(file, f.l.MediaType)
}

func uncompressed(file io.ReadCloser, mt types.MediaType) (io.ReadCloser, error) {
	switch mt {
	case types.OCIUncompressedLayer:
		return file, nil
	case types.OCILayerZStd:
		zr, err := zstd.NewReader(file, zstd.WithDecoderConcurrency(1))
		if err != nil {
			file.Close()
			return nil, err
		}
		return &readCloser{zr, closers{zr.IOReadCloser(), file}}, nil
	}
	zr, err := gzip.NewReader(file)
	if err != nil {
		file.Close()
		return nil, err
	}
	return &readCloser{zr, file}, nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r *readCloser) Close() error { return r.c.Close() }

type closers []io.Closer

func (cs closers) Close() error {
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Base is a pinned base with absolute paths.
type Base struct {
	Scratch bool
	Layout  string // OCI layout dir
	Digest  string // of an image or index in Layout
	Rootfs  string // root file system tarball (.tar or .tar.gz)
	SHA256  string // of Rootfs
	Image   string // REGISTRY/REPO@sha256:... of an image or index

	// CompressPlain stores a Rootfs given as a plain tar as a gzip layer
	// (cached in Cache), as releases of manifest defaults 1 do.
	CompressPlain bool `json:"-"`
	// Verbose prints the notes on what the base lacks (no package
	// database, no /bin/sh to tell its arch by): the same on every bake of
	// it, so said with --verbose only.
	Verbose bool `json:"-"`
	// ReadInPlace reads a Rootfs where it is, through one descriptor
	// checked not to change, instead of copying it into the blob dir: for
	// a builder that keeps none of its bytes (rootfs).
	ReadInPlace bool `json:"-"`

	// Remote and Cache say how an Image is pulled and where its blobs
	// are kept.
	Remote ociremote.Options `json:"-"`
	Cache  string            `json:"-"`
}

// FoundBase is what a loaded base is: the digest to record (the image
// manifest digest for a layout or registry image, the tarball's sha256
// for a rootfs, "" for scratch) and what its files say about it (nil for
// scratch).
type FoundBase struct {
	Digest string
	Info   *distro.Info
	What   string // the base as messages name it ("base rootfs PATH", ...)
}

// ErrBaseArch marks a base built for another architecture than the image.
var ErrBaseArch = fmt.Errorf("base built for another architecture: %w", failure.ErrVerify)

// LoadBase returns the base image for arch, checking every pin, and what
// it is. A base whose packages (or, without a package database, /bin/sh)
// are built for another architecture is refused.
func LoadBase(ctx context.Context, b Base, arch, blobDir string, epoch time.Time, log io.Writer) (v1.Image, FoundBase, error) {
	img, found, what, err := loadBase(ctx, b, arch, blobDir, epoch, log)
	found.What = what
	if err != nil || found.Info == nil {
		return img, found, err
	}
	if b.Verbose {
		for _, n := range found.Info.Notes {
			logf(log, "note: %s: %s\n", what, n)
		}
	}
	got, by, others := found.Info.ArchBy()
	switch {
	case got != "" && got != arch:
		return nil, FoundBase{}, fmt.Errorf("%w: %s is for %s (%s built for %s), the image is for %s: give [bases.%s] a base built for %s", ErrBaseArch, what, got, by, got, arch, arch, arch)
	case len(others) > 0:
		logf(log, "note: %s: most packages are for %s, some for %s\n", what, got, strings.Join(others, ", "))
	case got == "" && found.Info.OS != nil && b.Verbose:
		logf(log, "note: %s: no package database and no /bin/sh to tell its architecture by\n", what)
	}
	return img, found, nil
}

func loadBase(ctx context.Context, b Base, arch, blobDir string, epoch time.Time, log io.Writer) (v1.Image, FoundBase, string, error) {
	switch {
	case b.Scratch:
		return empty.Image, FoundBase{}, "scratch", nil
	case b.Rootfs != "":
		img, found, err := rootfsBase(ctx, b, blobDir, epoch, log)
		return img, found, "base rootfs " + b.Rootfs, err
	case b.Layout != "" || b.Image != "":
		var img v1.Image
		var digest, what string
		var err error
		if b.Image != "" {
			img, digest, err = registryBase(ctx, b, arch)
			what = fmt.Sprintf("base %s (linux/%s image %s)", b.Image, arch, digest)
		} else {
			img, digest, err = layoutBase(b, arch)
			what = fmt.Sprintf("base layout %s image %s", b.Layout, digest)
		}
		if err != nil {
			return nil, FoundBase{}, what, err
		}
		rep, err := scanLayers(ctx, img, what)
		if err != nil {
			return nil, FoundBase{}, what, err
		}
		for _, w := range rep.Warnings(what) {
			logf(log, "note: %s\n", w)
		}
		return img, FoundBase{Digest: digest, Info: rep.Collect.Info()}, what, nil
	}
	return nil, FoundBase{}, "", errors.New("base: nothing configured")
}

func rootfsBase(ctx context.Context, b Base, blobDir string, epoch time.Time, log io.Writer) (v1.Image, FoundBase, error) {
	// one read of the file: it is copied into the blob dir while it is
	// hashed, the pin is checked on that hash, and the copy (bytes that
	// can no longer change) is what is scanned and built on. A file
	// rewritten meanwhile cannot put other bytes under the pinned digest.
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return nil, FoundBase{}, err
	}
	if img, found, ok, err := cachedBase(ctx, b, blobDir, epoch, log); ok || err != nil {
		return img, found, err
	}
	if b.ReadInPlace {
		return inPlaceBase(ctx, b, epoch, log)
	}
	tmp, sum, size, err := copyHashed(ctx, b.Rootfs, blobDir)
	if err != nil {
		return nil, FoundBase{}, fmt.Errorf("base rootfs %s: %w", b.Rootfs, err)
	}
	defer os.Remove(tmp) // renamed into place below, unless something failed
	if err := checkRootfsPin(b, sum); err != nil {
		return nil, FoundBase{}, err
	}
	uh := sha256.New()
	rep := &BaseReport{Collect: distro.NewCollector()}
	mt, err := scanFile(ctx, tmp, uh, nil, rep) // the pin is checked above, before anything parses the file
	if err != nil {
		return nil, FoundBase{}, fmt.Errorf("%w (base rootfs %s)", err, b.Rootfs)
	}
	for _, w := range rep.Warnings("base rootfs " + b.Rootfs) {
		logf(log, "note: %s\n", w)
	}
	l := Layer{Role: "base", MediaType: mt, Size: size,
		Digest: v1.Hash{Algorithm: "sha256", Hex: sum},
		DiffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uh.Sum(nil))}}
	if mt == types.OCIUncompressedLayer && b.CompressPlain {
		// a plain tar becomes a gzip layer: registries, pulls and stores
		// pay for the compressed size, and it is compressed once per
		// cache (by the base's sha256 and the compressor)
		if l, err = compressedBase(ctx, tmp, sum, b.Cache, blobDir); err != nil {
			return nil, FoundBase{}, fmt.Errorf("compressing base rootfs %s: %w", b.Rootfs, err)
		}
		saveScan(b.Cache, sum, rep.Warnings("base rootfs "+b.Rootfs), rep.Collect.Info())
	} else {
		l.Path = filepath.Join(blobDir, sum)
		if err := os.Rename(tmp, l.Path); err != nil {
			return nil, FoundBase{}, err
		}
	}
	img, err := AppendLayers(empty.Image, epoch, l)
	if err != nil {
		return nil, FoundBase{}, err
	}
	return img, FoundBase{Digest: "sha256:" + sum, Info: rep.Collect.Info()}, nil
}

// inPlaceBase is rootfsBase for a base read where it is (b.ReadInPlace):
// hashed through one descriptor, the pin checked, scanned and then read by
// the builder through the same descriptor, each read checking at its end
// that the file did not change (inPlace). Nothing is copied.
func inPlaceBase(ctx context.Context, b Base, epoch time.Time, log io.Writer) (v1.Image, FoundBase, error) {
	p, err := openInPlace(b.Rootfs)
	if err != nil {
		return nil, FoundBase{}, fmt.Errorf("base rootfs %s: %w", b.Rootfs, err)
	}
	h := sha256.New()
	r := p.reader()
	if _, err := io.Copy(h, ctxio.Reader(ctx, r)); err != nil {
		return nil, FoundBase{}, fmt.Errorf("base rootfs %s: %w", b.Rootfs, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := checkRootfsPin(b, sum); err != nil {
		return nil, FoundBase{}, err
	}
	uh := sha256.New()
	rep := &BaseReport{Collect: distro.NewCollector()}
	mt, err := scanReader(ctx, p.reader(), p.size(), b.Rootfs, uh, nil, rep) // after the pin
	if err != nil {
		return nil, FoundBase{}, fmt.Errorf("%w (base rootfs %s)", err, b.Rootfs)
	}
	for _, w := range rep.Warnings("base rootfs " + b.Rootfs) {
		logf(log, "note: %s\n", w)
	}
	l := Layer{Role: "base", MediaType: mt, Size: p.size(), Path: b.Rootfs, src: p,
		Digest: v1.Hash{Algorithm: "sha256", Hex: sum},
		DiffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uh.Sum(nil))}}
	img, err := AppendLayers(empty.Image, epoch, l)
	if err != nil {
		return nil, FoundBase{}, err
	}
	return img, FoundBase{Digest: "sha256:" + sum, Info: rep.Collect.Info()}, nil
}

// cachedLayer is where the compressed layer of the plain tar with sha256
// sum is cached, by the compressor ("" without a cache).
func cachedLayer(cache, sum string) string {
	if cache == "" {
		return ""
	}
	tag := sha256.Sum256([]byte(tarball.ParallelCompressor()))
	return filepath.Join(cache, "base-layers", sum+"-"+hex.EncodeToString(tag[:6])+".tar.gz")
}

// baseScan is what a plain-tar base said of itself when it was first
// compressed: its notes and what its files say (OS, packages).
type baseScan struct {
	Notes []string     `json:"notes"`
	Info  *distro.Info `json:"info"`
}

// saveScan caches what the scan of the base with sha256 sum found (best
// effort: without it the next bake scans again).
func saveScan(cache, sum string, notes []string, info *distro.Info) {
	if p := cachedLayer(cache, sum); p != "" {
		if b, err := json.Marshal(baseScan{Notes: notes, Info: info}); err == nil {
			atomicfile.WriteFile(p+".scan.json", b, 0o644)
		}
	}
}

// cachedBase is a plain-tar base whose compressed layer and scan an
// earlier bake cached: the file is read once, to check its pin, and
// neither copied, scanned nor compressed again. ok is false when the
// cache lacks it (or holds other bytes than it recorded).
func cachedBase(ctx context.Context, b Base, blobDir string, epoch time.Time, log io.Writer) (v1.Image, FoundBase, bool, error) {
	cached := cachedLayer(b.Cache, b.SHA256)
	if !b.CompressPlain || cached == "" {
		return nil, FoundBase{}, false, nil
	}
	rec, err1 := os.ReadFile(cached + ".sha256")
	raw, err2 := os.ReadFile(cached + ".scan.json")
	var scan baseScan
	if err1 != nil || err2 != nil || json.Unmarshal(raw, &scan) != nil || scan.Info == nil {
		return nil, FoundBase{}, false, nil
	}
	sum, err := filehash.SHA256Context(ctx, b.Rootfs)
	if errors.Is(err, filehash.ErrNotRegular) {
		return nil, FoundBase{}, false, fmt.Errorf("%w: %v", ErrBadBase, err)
	}
	if err != nil {
		return nil, FoundBase{}, false, fmt.Errorf("base rootfs %s: %w", b.Rootfs, err)
	}
	if err := checkRootfsPin(b, sum); err != nil {
		return nil, FoundBase{}, false, err
	}
	tmp, zsum, n, err := copyHashed(ctx, cached, blobDir)
	if err != nil || zsum != strings.TrimSpace(string(rec)) {
		if err == nil {
			os.Remove(tmp)
		}
		return nil, FoundBase{}, false, nil // damaged: made anew
	}
	l := Layer{Role: "base", MediaType: types.OCILayer, Size: n, Path: filepath.Join(blobDir, zsum),
		Digest: v1.Hash{Algorithm: "sha256", Hex: zsum}, DiffID: v1.Hash{Algorithm: "sha256", Hex: sum}}
	if err := os.Rename(tmp, l.Path); err != nil {
		return nil, FoundBase{}, false, err
	}
	for _, w := range scan.Notes {
		logf(log, "note: %s\n", w)
	}
	img, err := AppendLayers(empty.Image, epoch, l)
	if err != nil {
		return nil, FoundBase{}, false, err
	}
	return img, FoundBase{Digest: "sha256:" + sum, Info: scan.Info}, true, nil
}

// compressedBase makes the gzip layer of the plain tar at plain (sha256
// sum): from the cache when an earlier bake made it with the same
// compressor, else compressed now on every CPU (tarball.NewParallelGzip)
// and cached. The layer's blob is written into blobDir.
func compressedBase(ctx context.Context, plain, sum, cache, blobDir string) (Layer, error) {
	cached := cachedLayer(cache, sum)
	l := Layer{Role: "base", MediaType: types.OCILayer, DiffID: v1.Hash{Algorithm: "sha256", Hex: sum}}
	// the cached copy is hashed as it is copied in and must have the
	// sha256 recorded beside it when it was made: a damaged cache is
	// compressed anew, never trusted
	if cached != "" {
		if rec, err := os.ReadFile(cached + ".sha256"); err == nil {
			if tmp, zsum, n, err := copyHashed(ctx, cached, blobDir); err == nil {
				if zsum == strings.TrimSpace(string(rec)) {
					l.Digest, l.Size, l.Path = v1.Hash{Algorithm: "sha256", Hex: zsum}, n, filepath.Join(blobDir, zsum)
					return l, os.Rename(tmp, l.Path)
				}
				os.Remove(tmp)
			}
		}
	}
	in, err := os.Open(plain)
	if err != nil {
		return l, err
	}
	defer in.Close()
	out, err := atomicfile.CreateTemp(blobDir, ".basegz-*")
	if err != nil {
		return l, err
	}
	defer out.Cleanup()
	zh := sha256.New()
	cw := &ctxio.Counter{W: io.MultiWriter(out, zh)}
	zw, err := tarball.NewParallelGzip(cw)
	if err == nil {
		var size int64 = -1
		if fi, err := in.Stat(); err == nil {
			size = fi.Size()
		}
		bar := progress.Start(ctx, "compressing the base "+filepath.Base(plain), size, true)
		_, err = io.Copy(zw, bar.Reader(ctxio.Reader(ctx, in)))
		bar.Finish()
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return l, err
	}
	zsum := hex.EncodeToString(zh.Sum(nil))
	l.Digest, l.Size, l.Path = v1.Hash{Algorithm: "sha256", Hex: zsum}, cw.N, filepath.Join(blobDir, zsum)
	if err := out.Commit(l.Path, 0o644); err != nil {
		return l, err
	}
	if cached != "" { // best effort: a cache that cannot be written costs the next bake a compression
		if err := os.MkdirAll(filepath.Dir(cached), 0o755); err == nil && atomicfile.Copy(l.Path, cached, 0o644) == nil {
			atomicfile.WriteFile(cached+".sha256", []byte(zsum+"\n"), 0o644)
		}
	}
	return l, nil
}

// copyHashed copies the file name into a new temporary file in dir while
// hashing it, and returns the copy's path, sha256 and size. The copy is
// synced; it stops when ctx ends.
func copyHashed(ctx context.Context, name, dir string) (string, string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", "", 0, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", "", 0, fmt.Errorf("%w: not a regular file", ErrBadBase)
	}
	out, err := os.CreateTemp(dir, ".base-*")
	if err != nil {
		return "", "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), ctxio.Reader(ctx, f))
	if err = closeTemp(out, err); err != nil {
		os.Remove(out.Name())
		return "", "", 0, err
	}
	return out.Name(), hex.EncodeToString(h.Sum(nil)), n, nil
}

// closeTemp ends the temporary file out that a write left with err: made
// durable and 0644 when err is nil; closed either way.
func closeTemp(out *os.File, err error) error {
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(out.Name(), 0o644)
	}
	return err
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

func layoutBase(b Base, arch string) (v1.Image, string, error) {
	p, err := layout.FromPath(b.Layout)
	if err != nil {
		return nil, "", fmt.Errorf("base layout %s: %w", b.Layout, err)
	}
	h, err := v1.NewHash(b.Digest)
	if err != nil {
		return nil, "", fmt.Errorf("base layout %s: digest %q: %w", b.Layout, b.Digest, err)
	}
	raw, err := os.ReadFile(filepath.Join(b.Layout, "blobs", h.Algorithm, h.Hex))
	if err != nil {
		return nil, "", fmt.Errorf("base layout %s has no blob %s: %w", b.Layout, b.Digest, failure.ErrNotFound)
	}
	if s := sha256.Sum256(raw); hex.EncodeToString(s[:]) != h.Hex {
		return nil, "", fmt.Errorf("%w: base layout %s: blob %s has sha256 %x", ErrDigestMismatch, b.Layout, b.Digest, s)
	}
	mf, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err == nil && mf.MediaType.IsIndex() {
		ii, err := p.ImageIndex()
		if err != nil {
			return nil, "", err
		}
		idx, err := ii.ImageIndex(h)
		if err != nil {
			return nil, "", fmt.Errorf("base layout %s index %s: %w", b.Layout, b.Digest, err)
		}
		var arches []string
		for _, d := range mf.Manifests {
			if d.Platform != nil && d.Platform.Architecture == arch && d.Platform.OS == "linux" {
				img, err := idx.Image(d.Digest)
				if err != nil {
					return nil, "", err
				}
				return checked(img, b, arch, d.Digest.String())
			}
			if d.Platform != nil {
				arches = append(arches, d.Platform.OS+"/"+d.Platform.Architecture)
			}
		}
		return nil, "", fmt.Errorf("base layout %s index %s has no linux/%s image (has %v): %w", b.Layout, b.Digest, arch, arches, failure.ErrNotFound)
	}
	img, err := p.Image(h)
	if err != nil {
		return nil, "", fmt.Errorf("base layout %s image %s: %w", b.Layout, b.Digest, err)
	}
	return checked(img, b, arch, b.Digest)
}

// registryBase pulls the base from its registry, or its cache.
func registryBase(ctx context.Context, b Base, arch string) (v1.Image, string, error) {
	img, digest, err := b.Remote.Pull(ctx, b.Image, arch, b.Cache)
	if err != nil {
		return nil, "", err
	}
	return checked(img, b, arch, digest)
}

func checked(img v1.Image, b Base, arch, digest string) (v1.Image, string, error) {
	where := "base layout " + b.Layout
	if b.Image != "" {
		where = "base " + b.Image
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, "", fmt.Errorf("%s image %s: %w", where, digest, err)
	}
	if cf.Architecture != arch {
		return nil, "", fmt.Errorf("%w: %s image %s is for %s, not %s", failure.ErrVerify, where, digest, cf.Architecture, arch)
	}
	// every layer is checked against its digest as it is copied (partial does)
	return img, digest, nil
}

// AppendLayers adds layers to base, each with a history entry at the epoch.
func AppendLayers(base v1.Image, epoch time.Time, ls ...Layer) (v1.Image, error) {
	var adds []mutate.Addendum
	for _, l := range ls {
		adds = append(adds, mutate.Addendum{Layer: l.V1(), MediaType: l.MediaType,
			History: v1.History{Created: v1.Time{Time: epoch.UTC()}, CreatedBy: "imagebake: " + l.Role + " layer"}})
	}
	return mutate.Append(base, adds...)
}

// Request is what a builder builds: one image per arch in Dir.
type Request struct {
	Dir      string // the release directory being made
	BlobDir  string // where the payload layers are (Dir/blobs/sha256 for oci)
	Family   string
	Release  string
	Revision string // control repo commit
	Epoch    time.Time
	Images   []Image
	Log      io.Writer // notes about the bases (devices, setuid files); nil for none
	// Defaults is the manifest's imagebake.defaults: 1 adds a PATH to an
	// image config whose base sets none.
	Defaults int

	bases map[baseKey]loadedBase // bases loaded for earlier arches of this request
}

// baseKey identifies a loaded base: a rootfs or scratch base is the same
// for every arch, a layout base picks a platform per arch.
type baseKey struct {
	scratch                            bool
	layout, digest, rootfs, sum, image string
	arch                               string
}

type loadedBase struct {
	img   v1.Image
	found FoundBase
}

// base loads (hashes, scans, copies) each base once per request, however
// many arches share it.
func (req *Request) base(ctx context.Context, b Base, arch string) (v1.Image, FoundBase, error) {
	k := baseKey{scratch: b.Scratch, layout: b.Layout, digest: b.Digest, rootfs: b.Rootfs, sum: b.SHA256, image: b.Image}
	if b.Layout != "" || b.Image != "" {
		k.arch = arch
	}
	if l, ok := req.bases[k]; ok {
		if got, _ := l.found.Info.Arch(); got != "" && got != arch {
			return nil, FoundBase{}, fmt.Errorf("%w: %s is for %s, the image is for %s: give [bases.%s] a base built for %s", ErrBaseArch, l.found.What, got, arch, arch, arch)
		}
		return l.img, l.found, nil
	}
	img, found, err := LoadBase(ctx, b, arch, req.BlobDir, req.Epoch, req.Log)
	if err != nil {
		return nil, FoundBase{}, err
	}
	if req.bases == nil {
		req.bases = map[baseKey]loadedBase{}
	}
	req.bases[k] = loadedBase{img, found}
	return img, found, nil
}

// Image is one arch's inputs.
type Image struct {
	Arch   string
	Name   string // family-release-arch
	Base   Base
	Layers []Layer // payload, in order
}

// Result is what a builder made.
type Result struct {
	IndexDigest string
	Images      []ImageResult
}

// ImageResult is one arch's image.
type ImageResult struct {
	Arch, Digest, Artifact string
	Base                   FoundBase
	Layers                 []Layer // every layer, base first
}

// Annotations are the OCI annotations of an image of req.
func (req *Request) Annotations(ref string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.version":  req.Release,
		"org.opencontainers.image.revision": req.Revision,
		"org.opencontainers.image.ref.name": ref,
		"org.opencontainers.image.created":  req.Epoch.UTC().Format(time.RFC3339),
	}
}

// Assemble builds the v1.Image of one arch: base, payload layers, config
// for linux/arch created at the epoch, OCI media types and annotations.
// It returns the image, the number of base layers and what the base is.
func Assemble(ctx context.Context, req *Request, im Image) (v1.Image, int, FoundBase, error) {
	base, found, err := req.base(ctx, im.Base, im.Arch)
	if err != nil {
		return nil, 0, FoundBase{}, fmt.Errorf("image %s: %w", im.Name, err)
	}
	bl, err := base.Layers()
	if err != nil {
		return nil, 0, FoundBase{}, err
	}
	img, err := AppendLayers(base, req.Epoch, im.Layers...)
	if err != nil {
		return nil, 0, FoundBase{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, 0, FoundBase{}, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = im.Arch, "linux"
	cf.Created = v1.Time{Time: req.Epoch.UTC()}
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels["org.opencontainers.image.version"] = req.Release
	cf.Config.Labels["org.opencontainers.image.revision"] = req.Revision
	if req.Defaults >= 1 && !hasPath(cf.Config.Env) {
		// a base with no config of its own (a rootfs tarball, scratch):
		// the PATH container runtimes give a shell, so `podman run IMAGE
		// sh` finds its commands
		cf.Config.Env = append(cf.Config.Env, DefaultPath)
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, 0, FoundBase{}, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img = mutate.Annotations(img, req.Annotations(im.Name)).(v1.Image)
	return img, len(bl), found, nil
}

// DefaultPath is the PATH an image gets when its base's config sets none
// (the one Docker and podman give containers).
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func hasPath(env []string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return true
		}
	}
	return false
}

// Layers lists img's layers as Layers with roles: the first nBase are the base's.
func Layers(img v1.Image, nBase int, payload []Layer) ([]Layer, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var out []Layer
	for i, l := range ls {
		if i >= nBase && i-nBase < len(payload) {
			out = append(out, payload[i-nBase])
			continue
		}
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		di, err := l.DiffID()
		if err != nil {
			return nil, err
		}
		sz, _ := l.Size()
		mt, _ := l.MediaType()
		out = append(out, Layer{Role: "base", MediaType: mt, Digest: d, DiffID: di, Size: sz})
	}
	return out, nil
}

// checkRootfsPin compares a rootfs base's sha256 with its pin: bake,
// release plan and release check refuse a base with this one check.
func checkRootfsPin(b Base, sum string) error {
	if sum != b.SHA256 {
		// the actual digest is not printed: it is what a repo that may not
		// name host files would need to pin one
		return fmt.Errorf("%w: base rootfs %s does not match the sha256 imagebake.toml pins (%s); a base changes only with a new pin", ErrDigestMismatch, b.Rootfs, b.SHA256)
	}
	return nil
}

// Inspect reads what base b is for arch (its OS and packages) without
// building on it: nothing is copied, and the pin is checked as a bake
// checks it (a rootfs whose sha256 differs from b.SHA256, when set, is
// refused). For a rootfs the digest is the tarball's sha256.
func Inspect(ctx context.Context, b Base, arch string) (FoundBase, error) {
	if b.Rootfs == "" {
		_, found, _, err := loadBase(ctx, b, arch, "", time.Time{}, nil)
		return found, err
	}
	h := sha256.New()
	rep := &BaseReport{Collect: distro.NewCollector()}
	if _, err := scanFile(ctx, b.Rootfs, io.Discard, h, rep); err != nil {
		return FoundBase{}, err
	}
	if b.SHA256 != "" {
		if err := checkRootfsPin(b, hex.EncodeToString(h.Sum(nil))); err != nil {
			return FoundBase{}, err
		}
	}
	return FoundBase{Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Info: rep.Collect.Info()}, nil
}
