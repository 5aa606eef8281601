package tarball

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/imagebake/imagebake/internal/confine"
	"github.com/imagebake/imagebake/internal/ctxio"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/sysx"
)

// ErrUnsafe marks an archive that Extract refuses: a path leaving the
// destination, a link pointing out of it, a device, or too much content.
var ErrUnsafe = fmt.Errorf("unsafe archive: %w", failure.ErrVerify)

// ExtractOptions bound and shape an extraction.
type ExtractOptions struct {
	// StripComponents drops this many leading path elements (a Forge
	// tarball's "author-name-version/" directory).
	StripComponents int
	// MaxBytes bounds the total size of regular files; 0 means 4 GiB.
	MaxBytes int64
	// MaxEntries bounds the number of entries; 0 means 1,000,000.
	MaxEntries int
	// Mtime, when not zero, is every entry's modification time; otherwise
	// each keeps the archive's.
	Mtime time.Time
	// Skip leaves out entries (after stripping) it returns true for.
	Skip func(name string) bool
	// RootFS is for a root file system unpacked to be chrooted into:
	// absolute symlinks are kept (they resolve inside the chroot; nothing
	// is ever written through a symlink here) and modes, setuid and sticky
	// bits included, are kept as the archive has them.
	RootFS bool
	// SkipDevices leaves out device nodes and FIFOs instead of refusing
	// them (a base's /dev, unpacked to run a program in: a runtime makes
	// its own /dev).
	SkipDevices bool
	// NoSetID drops the setuid and setgid bits a RootFS archive carries:
	// a tree unpacked to be run in a sandbox (where no_new_privs makes
	// them void) must not leave root-owned setuid programs on the host.
	NoSetID bool
	// Plain reads an uncompressed tar stream.
	Plain bool
	// Ctx, when set, stops the extraction when it ends (Ctrl-C); nothing
	// is left behind.
	Ctx context.Context
}

// ExtractFile extracts the gzip-compressed tar at name into dst, which must
// not exist. See Extract.
func ExtractFile(name, dst string, o ExtractOptions) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := Extract(f, dst, o); err != nil {
		return fmt.Errorf("extracting %s: %w", name, err)
	}
	return nil
}

// Extract unpacks a gzip-compressed tar stream into dst, which must not
// exist. It writes into a temporary directory beside dst and renames it at
// the end, so a refused or broken archive leaves nothing behind. Modes are
// normalised (directories 0755, files 0644, or 0755 when any execute bit
// is set). Absolute paths, "..", links pointing outside dst, hard links to
// anything not extracted before, devices, FIFOs and archives past the
// bounds are refused.
func Extract(r io.Reader, dst string, o ExtractOptions) (err error) {
	if o.MaxBytes == 0 {
		o.MaxBytes = 4 << 30
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = 1_000_000
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s already exists", dst)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if o.Ctx != nil {
		r = ctxio.Reader(o.Ctx, r)
	}
	var zr io.Reader = bufio.NewReaderSize(r, 1<<16)
	if !o.Plain {
		if zr, err = gzip.NewReader(zr); err != nil {
			return fmt.Errorf("%w: not gzip: %v", ErrUnsafe, err)
		}
	}
	root, err := confine.Open(tmp)
	if err != nil {
		return err
	}
	defer root.Close()
	x := &extractor{o: o, tmp: tmp, root: root, tr: tar.NewReader(zr), seen: map[string]bool{}, dirs: map[string]bool{".": true}}
	if err := x.run(); err != nil {
		return err
	}
	// Set mtimes last, children before parents, so writing never disturbs them.
	for i := len(x.times) - 1; i >= 0; i-- {
		if err := sysx.Lutimes(x.times[i], x.mtimes[i]); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// extractor is one Extract in progress.
type extractor struct {
	o     ExtractOptions
	tmp   string
	root  *confine.Dir // writes never go through a link an entry made
	tr    *tar.Reader
	total int64
	seen  map[string]bool
	// dirs are directories this extraction made and nothing replaced
	// since: their parents need no check again
	dirs   map[string]bool
	times  []string // entries whose mtimes are set at the end, in order
	mtimes []time.Time
}

func (x *extractor) run() error {
	for n := 0; ; n++ {
		h, err := x.tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: reading tar: %v", ErrUnsafe, err)
		}
		if n >= x.o.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrUnsafe, x.o.MaxEntries)
		}
		name, ok, err := clean(h.Name, x.o.StripComponents)
		if err != nil {
			return err
		}
		if !ok || (x.o.Skip != nil && x.o.Skip(name)) || h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if x.o.SkipDevices && (h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock || h.Typeflag == tar.TypeFifo) {
			continue
		}
		// parents are made inside the tree, never through a symlink an
		// earlier entry made (confine refuses it by name); a parent this
		// extraction made as a directory, and nothing replaced since, is
		// one still
		if parent := path.Dir(name); !x.dirs[parent] {
			if err := x.root.MkdirAll(parent); err != nil {
				return fmt.Errorf("%w: entry %s: %v", ErrUnsafe, name, err)
			}
			x.dirs[parent] = true
		}
		if h.Typeflag != tar.TypeDir {
			x.replaced(name)
		}
		target := filepath.Join(x.tmp, filepath.FromSlash(name))
		if err := x.entry(h, name, target); err != nil {
			return err
		}
		mt := h.ModTime
		if !x.o.Mtime.IsZero() {
			mt = x.o.Mtime
		}
		x.seen[name] = true
		x.times = append(x.times, target)
		x.mtimes = append(x.mtimes, mt)
	}
}

// replaced forgets name, and all below it, as directories made: a file or
// link takes its place.
func (x *extractor) replaced(name string) {
	if !x.dirs[name] {
		return
	}
	for d := range x.dirs {
		if d == name || strings.HasPrefix(d, name+"/") {
			delete(x.dirs, d)
		}
	}
}

// entry writes one entry at target.
func (x *extractor) entry(h *tar.Header, name, target string) error {
	switch h.Typeflag {
	case tar.TypeDir:
		if err := x.root.MkdirAll(name); err != nil {
			return fmt.Errorf("%w: entry %s: %v", ErrUnsafe, name, err)
		}
		x.dirs[name] = true
		mode := os.FileMode(0o755)
		if x.o.RootFS {
			mode = x.modeOf(h)
		}
		return os.Chmod(target, mode)
	case tar.TypeReg:
		return x.file(h, name, target)
	case tar.TypeSymlink:
		if escapes(name, h.Linkname) && !(x.o.RootFS && strings.HasPrefix(h.Linkname, "/")) {
			return fmt.Errorf("%w: symlink %s -> %s points outside", ErrUnsafe, name, h.Linkname)
		}
		if x.seen[name] {
			os.Remove(target)
		}
		return os.Symlink(h.Linkname, target)
	case tar.TypeLink:
		ln, ok, err := clean(h.Linkname, x.o.StripComponents)
		if err != nil || !ok || !x.seen[ln] {
			return fmt.Errorf("%w: hard link %s -> %s points outside or at nothing extracted before it", ErrUnsafe, name, h.Linkname)
		}
		if x.seen[name] {
			os.Remove(target)
		}
		return os.Link(filepath.Join(x.tmp, filepath.FromSlash(ln)), target)
	}
	return fmt.Errorf("%w: %s is a %s, only files, directories and links are allowed", ErrUnsafe, name, typeName(h.Typeflag))
}

// file writes a regular file, counting its size against MaxBytes.
func (x *extractor) file(h *tar.Header, name, target string) error {
	if x.total += h.Size; x.total > x.o.MaxBytes {
		return fmt.Errorf("%w: expands past %d bytes", ErrUnsafe, x.o.MaxBytes)
	}
	mode := os.FileMode(0o644)
	if h.Mode&0o111 != 0 {
		mode = 0o755
	}
	if x.o.RootFS {
		mode = x.modeOf(h)
	}
	if x.seen[name] {
		os.Remove(target) // a later entry of the same name replaces an earlier one
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	_, err = io.CopyN(f, x.tr, h.Size)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// modeOf is a header's permission, setuid, setgid and sticky bits (no
// setuid or setgid with NoSetID).
func (x *extractor) modeOf(h *tar.Header) os.FileMode {
	m := os.FileMode(h.Mode & 0o777)
	if h.Mode&0o4000 != 0 && !x.o.NoSetID {
		m |= os.ModeSetuid
	}
	if h.Mode&0o2000 != 0 && !x.o.NoSetID {
		m |= os.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func typeName(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "FIFO"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}

// clean validates an entry name and strips leading components. ok is false
// for entries that vanish in stripping.
func clean(name string, strip int) (string, bool, error) {
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return "", false, fmt.Errorf("%w: entry %q has an absolute or unsafe path", ErrUnsafe, name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", false, fmt.Errorf("%w: entry %q climbs out of the destination with \"..\"", ErrUnsafe, name)
		}
	}
	c := path.Clean(name)
	parts := strings.Split(c, "/")
	if c == "." || len(parts) <= strip {
		return "", false, nil
	}
	c = strings.Join(parts[strip:], "/")
	if c == ".git" || strings.HasPrefix(c, ".git/") {
		return "", false, nil
	}
	return c, true, nil
}

// escapes says whether a symlink at name with target leaves the root.
func escapes(name, target string) bool {
	if strings.HasPrefix(target, "/") {
		return true
	}
	p := path.Join(path.Dir(name), target)
	return p == ".." || strings.HasPrefix(p, "../")
}
