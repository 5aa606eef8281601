package tarball

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/pgzip"
)

// Writer writes a deterministic tar stream: entries as given (callers add
// them in lexical order; AddTree does), PAX format, uid/gid 0 and no user
// names, modes normalised to 0755/0644 (0777 for symlinks), mtimes
// clamped to the epoch and cut to whole seconds, no atime or ctime, and
// only files, directories and symlinks.
type Writer struct {
	tw    *tar.Writer
	epoch time.Time
	dirs  map[string]bool
	// KeepModes makes AddTree keep each entry's permission, setuid,
	// setgid and sticky bits (a root file system) instead of normalising.
	KeepModes bool
	// AtEpoch gives every entry the epoch as its mtime instead of
	// clamping: an image's payload, whatever its sources' times.
	AtEpoch bool
}

// NewWriter returns a Writer onto w with the given epoch.
func NewWriter(w io.Writer, epoch time.Time) *Writer {
	return &Writer{tw: tar.NewWriter(w), epoch: epoch.UTC().Truncate(time.Second), dirs: map[string]bool{}}
}

// Close writes the tar trailer. It does not close the underlying writer.
func (w *Writer) Close() error { return w.tw.Close() }

func (w *Writer) clamp(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Second)
	if w.AtEpoch || t.IsZero() || t.After(w.epoch) {
		return w.epoch
	}
	return t
}

func (w *Writer) header(name string, typ byte, mode int64, mtime time.Time) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: mode, ModTime: w.clamp(mtime), Format: tar.FormatPAX}
}

// Dir adds a directory entry (and any missing parents).
func (w *Writer) Dir(name string, mtime time.Time) error {
	name = strings.Trim(path.Clean(name), "/")
	if name == "." || name == "" || w.dirs[name] {
		return nil
	}
	if err := w.Dir(path.Dir(name), mtime); err != nil {
		return err
	}
	w.dirs[name] = true
	return w.tw.WriteHeader(w.header(name+"/", tar.TypeDir, 0o755, mtime))
}

// File adds a regular file of size bytes read from r; exec makes it 0755.
func (w *Writer) File(name string, exec bool, size int64, mtime time.Time, r io.Reader) error {
	name = strings.Trim(path.Clean(name), "/")
	if err := w.Dir(path.Dir(name), mtime); err != nil {
		return err
	}
	mode := int64(0o644)
	if exec {
		mode = 0o755
	}
	h := w.header(name, tar.TypeReg, mode, mtime)
	h.Size = size
	if err := w.tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.Copy(w.tw, r)
	if err != nil {
		return fmt.Errorf("adding %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("adding %s: read %d bytes, expected %d (changed while reading?)", name, n, size)
	}
	return nil
}

// Symlink adds a symbolic link.
func (w *Writer) Symlink(name, target string, mtime time.Time) error {
	name = strings.Trim(path.Clean(name), "/")
	if err := w.Dir(path.Dir(name), mtime); err != nil {
		return err
	}
	h := w.header(name, tar.TypeSymlink, 0o777, mtime)
	h.Linkname = target
	return w.tw.WriteHeader(h)
}

// AddTree adds everything under root, in lexical order, under prefix
// ("" for the top). Sockets, devices and FIFOs are refused.
func (w *Writer) AddTree(root, prefix string) error {
	prefix = strings.Trim(prefix, "/")
	fi, err := os.Stat(root)
	if err != nil {
		return err
	}
	if prefix != "" {
		if err := w.Dir(prefix, fi.ModTime()); err != nil {
			return err
		}
	}
	return w.addDir(root, prefix)
}

func (w *Writer) addDir(dir, prefix string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		name := path.Join(prefix, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if w.KeepModes {
			if err := w.addKeepingMode(p, name, fi); err != nil {
				return err
			}
			continue
		}
		switch m := fi.Mode(); {
		case m.IsDir():
			if err := w.Dir(name, fi.ModTime()); err != nil {
				return err
			}
			if err := w.addDir(p, name); err != nil {
				return err
			}
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := w.Symlink(name, target, fi.ModTime()); err != nil {
				return err
			}
		case m.IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			err = w.File(name, m.Perm()&0o111 != 0, fi.Size(), fi.ModTime(), f)
			f.Close()
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s is a %v: only files, directories and symlinks go into an archive", p, m.Type())
		}
	}
	return nil
}

// addKeepingMode adds one entry with its own mode bits, through Raw.
func (w *Writer) addKeepingMode(p, name string, fi os.FileInfo) error {
	m := fi.Mode()
	mode := int64(m.Perm())
	if m&os.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		mode |= 0o1000
	}
	h := &tar.Header{Name: name, Mode: mode, ModTime: fi.ModTime()}
	switch {
	case m.IsDir():
		h.Typeflag = tar.TypeDir
		if err := w.Raw(h, nil); err != nil {
			return err
		}
		return w.addDir(p, name)
	case m&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, t
		return w.Raw(h, nil)
	case m.IsRegular():
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		return w.Raw(h, f)
	}
	return fmt.Errorf("%s is a %v: only files, directories and symlinks go into an archive", p, m.Type())
}

// NewGzip returns a gzip writer with a fixed header (MTIME 0, no name) and
// level, so the same tar gives the same bytes.
func NewGzip(w io.Writer) *gzip.Writer {
	zw, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	zw.ModTime = time.Unix(0, 0)
	zw.Name = ""
	zw.OS = 255 // "unknown", whatever the host
	return zw
}

// compressorVersion is the klauspost/compress go.mod requires: a test
// keeps the two equal, so a bump cannot change compressed digests unseen.
const compressorVersion = "v1.20.3"

// Compressor names the gzip library and version NewGzip compresses with
// (its settings are fixed): compressed digests are as stable as it. A
// manifest records it, so that a rebuild by another version says where a
// difference in compressed digests alone comes from.
func Compressor() string {
	return "github.com/klauspost/compress/gzip " + compressorVersion + ", default level"
}

// Compressors is what a manifest of defaults 1 records: the payload
// layers' compressor, and the parallel one of whole root file systems and
// plain-tar bases.
func Compressors() string {
	return Compressor() + "; root file systems and plain-tar bases: " + ParallelCompressor()
}

// WriteTreeGz writes root as a gzip-compressed deterministic tar to w.
func WriteTreeGz(w io.Writer, root, prefix string, epoch time.Time) error {
	zw := NewGzip(w)
	tw := NewWriter(zw, epoch)
	if err := tw.AddTree(root, prefix); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// Device adds a device node or FIFO entry from a base image as it is (its
// type, mode, owner and device numbers; the mtime clamped): an image keeps
// its base's /dev entries, nothing is created on the host.
func (w *Writer) Device(h *tar.Header) error {
	switch h.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return fmt.Errorf("%s: tar entry type %q is not a device node or FIFO", h.Name, h.Typeflag)
	}
	name := strings.Trim(path.Clean(h.Name), "/")
	return w.tw.WriteHeader(&tar.Header{Typeflag: h.Typeflag, Name: name, Mode: h.Mode & 0o7777, Uid: h.Uid, Gid: h.Gid,
		Devmajor: h.Devmajor, Devminor: h.Devminor, ModTime: w.clamp(h.ModTime), Format: tar.FormatPAX})
}

// Raw adds an entry from another archive, keeping its type, mode and
// numeric owner (a base root file system needs its setuid bits and its
// service users) but dropping user names, atime, ctime and extended
// records, and clamping the mtime. Devices, FIFOs and hard links are
// refused: callers turn hard links into files.
func (w *Writer) Raw(h *tar.Header, r io.Reader) error {
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
	default:
		return fmt.Errorf("%s: tar entry type %q is not allowed in an image", h.Name, h.Typeflag)
	}
	name := strings.Trim(path.Clean(h.Name), "/")
	if h.Typeflag == tar.TypeDir {
		w.dirs[name] = true
		name += "/"
	}
	out := &tar.Header{Typeflag: h.Typeflag, Name: name, Linkname: h.Linkname, Size: h.Size,
		Mode: h.Mode & 0o7777, Uid: h.Uid, Gid: h.Gid, ModTime: w.clamp(h.ModTime), Format: tar.FormatPAX}
	if h.Typeflag != tar.TypeReg {
		out.Size = 0
	}
	if err := w.tw.WriteHeader(out); err != nil {
		return err
	}
	if h.Typeflag == tar.TypeReg && h.Size > 0 {
		if _, err := io.CopyN(w.tw, r, h.Size); err != nil {
			return fmt.Errorf("adding %s: %w", name, err)
		}
	}
	return nil
}

// parallelBlock is the block size the parallel gzip splits input at: the
// output depends on it (and on nothing else: not on how many blocks are
// compressed at once), so it is fixed.
const parallelBlock = 1 << 20

// NewParallelGzip returns a gzip writer that compresses 1 MiB blocks on
// every CPU (klauspost/pgzip), for large layers (a base given as a plain
// tar). Its bytes are the same at any GOMAXPROCS; they differ from
// NewGzip's.
func NewParallelGzip(w io.Writer) (*pgzip.Writer, error) {
	zw, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if err := zw.SetConcurrency(parallelBlock, max(2, runtime.GOMAXPROCS(0))); err != nil {
		return nil, err
	}
	zw.ModTime = time.Unix(0, 0)
	zw.Name = ""
	zw.OS = 255
	return zw, nil
}

// ParallelCompressor names what NewParallelGzip compresses with: a
// compressed layer cached under this name is reused by bakes that would
// write the same bytes.
func ParallelCompressor() string {
	return "github.com/klauspost/pgzip v1.3.0 (klauspost/compress " + compressorVersion + "), default level, 1 MiB blocks"
}
