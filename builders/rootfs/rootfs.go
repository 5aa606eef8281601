// Package rootfs is the builder for LXD/Incus imports and disk tooling: per
// arch, one deterministic .tar.gz of the merged root file system (base
// layers with whiteouts applied, then the payload).
package rootfs

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/ctxio"
	"github.com/imagebake/imagebake/internal/progress"
	"github.com/imagebake/imagebake/tarball"
)

func init() { builders.Register(Builder{}) }

// Builder is the rootfs builder.
type Builder struct{}

// Name implements builders.Builder.
func (Builder) Name() string { return "rootfs" }

// BlobDir implements builders.Builder: the payload layers are merged into
// the root file system tarball, so they are written to scratch.
func (Builder) BlobDir(dir string) string { return filepath.Join(dir, builders.ScratchDir, "blobs") }

// LayerFile implements builders.Builder: an image is one tarball.
func (Builder) LayerFile(dir, artifact, _ string) string { return filepath.Join(dir, artifact) }

// Build implements builders.Builder.
func (Builder) Build(ctx context.Context, req *builders.Request) (*builders.Result, error) {
	return Build(ctx, req)
}

// Build writes NAME-X.Y.Z-ARCH.rootfs.tar.gz per arch into req.Dir.
func Build(ctx context.Context, req *builders.Request) (*builders.Result, error) {
	res := &builders.Result{}
	for _, im := range req.Images {
		// the layers are merged here, never shipped: a rootfs base is read
		// where it is (not copied) and as it is (not compressed first)
		im.Base.CompressPlain, im.Base.ReadInPlace = false, true
		img, _, base, err := builders.Assemble(ctx, req, im)
		if err != nil {
			return nil, err
		}
		file := im.Name + ".rootfs.tar.gz"
		l, err := flatten(ctx, img, req, file)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Name, err)
		}
		res.Images = append(res.Images, builders.ImageResult{Arch: im.Arch, Digest: l.Digest.String(), Artifact: file, Base: base, Layers: []builders.Layer{l}})
	}
	return res, nil
}

type entry struct {
	h   *tar.Header
	off int64 // of the content in the spill file
}

// flatten merges img's layers and writes them sorted. Contents are spilled
// to a temporary file, so memory holds only headers whatever the size.
func flatten(ctx context.Context, img v1.Image, req *builders.Request, file string) (builders.Layer, error) {
	spill, err := os.CreateTemp(req.Dir, ".spill-*")
	if err != nil {
		return builders.Layer{}, err
	}
	defer os.Remove(spill.Name())
	defer spill.Close()
	byName, err := merge(ctx, img, spill)
	if err != nil {
		return builders.Layer{}, err
	}
	return write(ctx, byName, spill, req, file)
}

// merge reads img's layers with whiteouts applied, top layer first, and
// keeps each path's topmost entry; regular files' contents go to spill.
func merge(ctx context.Context, img v1.Image, spill *os.File) (map[string]*entry, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(ctxio.Reader(ctx, rc))
	byName := map[string]*entry{}
	var off int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			// Extract writes the end-of-archive marker before it reports
			// an error through the pipe: read on, or the error is lost and
			// every entry after the bad one is silently dropped.
			if _, err := io.Copy(io.Discard, rc); err != nil {
				return nil, fmt.Errorf("merging the layers: %w", err)
			}
			return byName, nil
		}
		if err != nil {
			return nil, err
		}
		name := strings.Trim(path.Clean(h.Name), "/")
		if _, seen := byName[name]; seen || name == "." || name == "" {
			continue // Extract gives the top layer first
		}
		switch h.Typeflag {
		case tar.TypeReg:
			n, err := io.Copy(spill, tr)
			if err != nil {
				return nil, err
			}
			byName[name] = &entry{h: h, off: off}
			off += n
		default:
			byName[name] = &entry{h: h}
		}
	}
}

// write writes the merged entries sorted by name as the deterministic
// rootfs tarball file in req.Dir.
func write(ctx context.Context, byName map[string]*entry, spill *os.File, req *builders.Request, file string) (builders.Layer, error) {
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	dst := filepath.Join(req.Dir, file)
	out, err := os.Create(dst)
	if err != nil {
		return builders.Layer{}, err
	}
	defer out.Close()
	zh, uh := sha256.New(), sha256.New()
	cw := &ctxio.Counter{W: ctxio.Writer(ctx, io.MultiWriter(out, zh))}
	var zw io.WriteCloser = tarball.NewGzip(cw)
	if req.Defaults >= 1 { // a whole root file system: compressed on every CPU
		pz, err := tarball.NewParallelGzip(cw)
		if err != nil {
			return builders.Layer{}, err
		}
		zw = pz
	}
	tw := tarball.NewWriter(io.MultiWriter(zw, uh), req.Epoch)
	bar := progress.Start(ctx, "writing "+file, int64(len(names)), false)
	defer bar.Finish()
	for _, n := range names {
		bar.Add(1)
		e := byName[n]
		h := *e.h
		h.Name = n
		src := e
		if h.Typeflag == tar.TypeLink {
			// a hard link becomes a copy of its target
			t, ok := byName[strings.Trim(path.Clean(h.Linkname), "/")]
			if !ok || t.h.Typeflag != tar.TypeReg {
				return builders.Layer{}, fmt.Errorf("hard link %s -> %s has no regular target", n, h.Linkname)
			}
			// one inode: the target's mode and owner, whatever the link entry says
			h.Typeflag, h.Linkname, h.Size = tar.TypeReg, "", t.h.Size
			h.Mode, h.Uid, h.Gid = t.h.Mode, t.h.Uid, t.h.Gid
			src = t
		}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock || h.Typeflag == tar.TypeFifo {
			// the base's /dev entries stay, as in the OCI builder's image
			// (a chroot of the tree needs /dev/null to be one)
			if err := tw.Device(&h); err != nil {
				return builders.Layer{}, err
			}
			continue
		}
		if err := tw.Raw(&h, io.NewSectionReader(spill, src.off, h.Size)); err != nil {
			return builders.Layer{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return builders.Layer{}, err
	}
	if err := zw.Close(); err != nil {
		return builders.Layer{}, err
	}
	if err := out.Sync(); err != nil {
		return builders.Layer{}, err
	}
	return builders.Layer{Path: dst, Role: "rootfs", MediaType: types.OCILayer, Size: cw.N,
		Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(zh.Sum(nil))},
		DiffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uh.Sum(nil))}}, nil
}
