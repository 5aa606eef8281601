package builders

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/imagebake/imagebake/internal/ctxio"
	"github.com/imagebake/imagebake/internal/distro"
	"github.com/imagebake/imagebake/internal/failure"
)

// ErrBadBase marks a base whose layers imagebake refuses to build on: not
// a tar archive, an entry leaving the root, a whiteout naming no file, or
// a decompression bomb.
var ErrBadBase = fmt.Errorf("base refused: %w", failure.ErrVerify)

// A layer may expand to ExpansionRatio times its compressed size, and to
// at least MinExpansionLimit bytes whatever its size. Root file systems
// compress 3 to 5 times; a layer far beyond that is a decompression bomb
// (a 510 KB gzip of zeros expands to 512 MiB).
const (
	ExpansionRatio    = 100
	MinExpansionLimit = 64 << 20
)

// BaseReport lists what a base holds that an image user may want to know:
// device nodes (kept as tar entries by both builders) and setuid/setgid files.
type BaseReport struct {
	Devices []string
	Setuid  []string
	// Collect, when set, is given every entry: what the base says about
	// itself (OS, packages) is read on the same pass.
	Collect *distro.Collector
}

// Warnings formats the report as one line for the log (at most three
// names of each kind): a stock distribution base has setuid files and
// /dev entries, and every bake on it says so once, not once per file.
func (r *BaseReport) Warnings(what string) []string {
	show := func(names []string) string {
		if len(names) > 3 {
			return strings.Join(names[:3], ", ") + fmt.Sprintf(" and %d more", len(names)-3)
		}
		return strings.Join(names, ", ")
	}
	var parts []string
	if len(r.Devices) > 0 {
		parts = append(parts, fmt.Sprintf("%d device nodes or FIFOs (%s)", len(r.Devices), show(r.Devices)))
	}
	if len(r.Setuid) > 0 {
		parts = append(parts, fmt.Sprintf("%d setuid/setgid files (%s)", len(r.Setuid), show(r.Setuid)))
	}
	if len(parts) == 0 {
		return nil
	}
	return []string{what + " holds " + strings.Join(parts, " and ") + ", kept in the image as they are"}
}

// quote shows at most 80 bytes of a name from an untrusted archive.
func quote(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q...", s[:80])
	}
	return fmt.Sprintf("%q", s)
}

// capped counts what is read through it and fails past max.
type capped struct {
	r        io.Reader
	n, max   int64
	exceeded bool
}

var errTooBig = errors.New("expands past its limit")

func (c *capped) Read(p []byte) (int, error) {
	if c.n >= c.max {
		c.exceeded = true
		return 0, errTooBig
	}
	if rem := c.max - c.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// decompress returns the tar stream of a layer file, whatever its
// compression: gzip, zstd or none.
func decompress(r io.Reader) (io.Reader, types.MediaType, func(), error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "", nil, err
		}
		return zr, types.OCILayer, func() { zr.Close() }, nil
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, "", nil, err
		}
		return zr, types.OCILayerZStd, zr.Close, nil
	}
	return br, types.OCIUncompressedLayer, func() {}, nil
}

// scanTar reads a whole uncompressed layer and refuses what no base may
// hold; it stops reading past the expansion limit for compressed bytes.
// It returns the number of entries and the uncompressed bytes read.
func scanTar(ctx context.Context, r io.Reader, compressed int64, what string, rep *BaseReport) (int, int64, error) {
	limit := max(int64(MinExpansionLimit), ExpansionRatio*compressed)
	c := &capped{r: ctxio.Reader(ctx, r), max: limit}
	tr := tar.NewReader(c)
	n := 0
	for {
		h, err := tr.Next()
		if err == nil {
			n++
			if err = checkEntry(h, rep); err == nil && rep.Collect != nil {
				err = rep.Collect.Add(h, tr)
			}
			if err == nil {
				_, err = io.Copy(io.Discard, tr)
			}
		}
		if err == io.EOF {
			break
		}
		if ctx.Err() != nil {
			return n, c.n, fmt.Errorf("%s: %w", what, context.Cause(ctx))
		}
		if c.exceeded {
			return n, c.n, fmt.Errorf("%w: %s expands past %d MiB (%d times its %d bytes): a decompression bomb", ErrBadBase, what, limit>>20, ExpansionRatio, compressed)
		}
		if err != nil {
			if n == 0 {
				return 0, c.n, fmt.Errorf("%w: %s is not a tar archive (nor a gzip or zstd of one): %v", ErrBadBase, what, err)
			}
			if h != nil {
				return n, c.n, fmt.Errorf("%w: %s: entry %s %v", ErrBadBase, what, quote(h.Name), err)
			}
			return n, c.n, fmt.Errorf("%w: %s after entry %d: %v", ErrBadBase, what, n, err)
		}
	}
	// the rest of the stream (end-of-archive padding) counts too
	if _, err := io.Copy(io.Discard, c); err != nil && c.exceeded {
		return n, c.n, fmt.Errorf("%w: %s expands past %d MiB: a decompression bomb", ErrBadBase, what, limit>>20)
	}
	return n, c.n, nil
}

// checkEntry refuses an entry that leaves the root (.., an absolute name,
// a hard link out) or a whiteout that names no file, and notes devices and
// setuid files. Symlink targets may be absolute: /etc/localtime ->
// /usr/share/zoneinfo/UTC is resolved inside the image.
func checkEntry(h *tar.Header, rep *BaseReport) error {
	if strings.HasPrefix(h.Name, "/") && strings.Trim(h.Name, "/.") != "" {
		return errors.New("has an absolute name (a base's entries are relative to its root)")
	}
	if h.Typeflag == tar.TypeLink && strings.HasPrefix(h.Linkname, "/") {
		return fmt.Errorf("is a hard link to the absolute name %s (hard links name entries of the same archive, relative to its root)", quote(h.Linkname))
	}
	for _, part := range strings.Split(h.Name, "/") {
		if part == ".." {
			return errors.New("leaves the root file system (..)")
		}
	}
	if h.Typeflag == tar.TypeLink {
		for _, part := range strings.Split(h.Linkname, "/") {
			if part == ".." {
				return fmt.Errorf("is a hard link to %s, outside the root file system", quote(h.Linkname))
			}
		}
	}
	if strings.ContainsRune(h.Name, 0) {
		return errors.New("has a NUL byte in its name")
	}
	name := strings.Trim(path.Clean("/"+h.Name), "/")
	base := path.Base(name)
	if strings.HasPrefix(base, ".wh.") && base != ".wh..wh..opq" {
		if t := strings.TrimPrefix(base, ".wh."); t == "" || t == "." || t == ".." || strings.HasPrefix(t, ".wh.") {
			return fmt.Errorf("is a whiteout of %s, which names no file", quote(t))
		}
	}
	switch h.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		rep.Devices = append(rep.Devices, "/"+name)
	case tar.TypeReg:
		if h.Mode&0o6000 != 0 {
			rep.Setuid = append(rep.Setuid, "/"+name)
		}
	}
	return nil
}

// scanLayers checks every layer of a base image and reads what it says
// about itself.
func scanLayers(ctx context.Context, img v1.Image, what string) (*BaseReport, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	return scanLayerList(ctx, ls, what)
}

// ReadBase reads what the base layers ls (bottom first) say about
// themselves, the OS and the packages, with the checks every base gets:
// what a bake records of a base, read again from the layers an image
// names (merge checks a part's manifest against them).
func ReadBase(ctx context.Context, ls []v1.Layer, what string) (*distro.Info, error) {
	rep, err := scanLayerList(ctx, ls, what)
	if err != nil {
		return nil, err
	}
	return rep.Collect.Info(), nil
}

func scanLayerList(ctx context.Context, ls []v1.Layer, what string) (*BaseReport, error) {
	rep := &BaseReport{Collect: distro.NewCollector()}
	for i, l := range ls {
		if i > 0 {
			rep.Collect.NextLayer()
		}
		size, err := l.Size()
		if err != nil {
			return nil, err
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("%s layer %d: %w", what, i+1, err)
		}
		d, _ := l.Digest()
		_, _, err = scanTar(ctx, rc, size, fmt.Sprintf("%s layer %d (%s)", what, i+1, d), rep)
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// scanFile checks a root file system tarball and returns its media type
// and uncompressed digest input: the tar stream is hashed by h.
//
// raw, when set, is given every byte of the file as it is read (its
// sha256 in the same pass).
func scanFile(ctx context.Context, name string, h, raw io.Writer, rep *BaseReport) (types.MediaType, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: base rootfs %s is not a regular file", ErrBadBase, name)
	}
	return scanReader(ctx, f, fi.Size(), name, h, raw, rep)
}

// scanReader is scanFile of the base file name read through f (size
// bytes).
func scanReader(ctx context.Context, f io.Reader, size int64, name string, h, raw io.Writer, rep *BaseReport) (types.MediaType, error) {
	var in io.Reader = f
	if raw != nil {
		in = io.TeeReader(f, raw)
	}
	r, mt, done, err := decompress(in)
	if err != nil {
		return "", fmt.Errorf("%w: base rootfs %s: %v", ErrBadBase, name, err)
	}
	defer done()
	n, _, err := scanTar(ctx, io.TeeReader(r, h), size, "base rootfs "+name, rep)
	if err != nil {
		return "", err
	}
	if raw != nil { // what follows the tar stream counts too
		if _, err := io.Copy(raw, f); err != nil {
			return "", fmt.Errorf("base rootfs %s: %w", name, err)
		}
	}
	if n == 0 {
		return "", fmt.Errorf("%w: base rootfs %s holds no entries: not a root file system", ErrBadBase, name)
	}
	return mt, nil
}
