package builders

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/imagebake/imagebake/internal/failure"
)

// ErrBaseChanged marks a base file that changed while a bake read it.
var ErrBaseChanged = fmt.Errorf("base changed while it was read: %w", failure.ErrVerify)

// inPlace is a base file read where it is, through one descriptor, for a
// builder that keeps none of its bytes (rootfs merges them): it is hashed
// (the pin checked on that hash), scanned, then read by the builder, all
// through that descriptor, and the file's identity (inode, size,
// modification and change times) is checked at the end of every read. A
// rewrite in place changes them, so the read fails rather than pass other
// bytes under the pinned digest; a file renamed over the path is not the
// one read.
type inPlace struct {
	name string
	f    *os.File
	st   unix.Stat_t
}

func openInPlace(name string) (*inPlace, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	p := &inPlace{name: name, f: f}
	if err := unix.Fstat(int(f.Fd()), &p.st); err != nil {
		f.Close()
		return nil, err
	}
	if p.st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("%w: base rootfs %s is not a regular file", ErrBadBase, name)
	}
	return p, nil
}

func (p *inPlace) size() int64 { return p.st.Size }

// check says whether the file is still the one first seen: a write
// changes its modification and change times (the latter no one can set).
func (p *inPlace) check() error {
	var now unix.Stat_t
	if err := unix.Fstat(int(p.f.Fd()), &now); err != nil {
		return err
	}
	if now.Ino != p.st.Ino || now.Size != p.st.Size || now.Mtim != p.st.Mtim || now.Ctim != p.st.Ctim {
		return fmt.Errorf("%w: %s was written to during the bake (size %d -> %d); bake again once it is finished", ErrBaseChanged, p.name, p.st.Size, now.Size)
	}
	return nil
}

// reader reads the whole file from its start, checking after each read
// that the file is unchanged (an fstat per read: about 10 ms for 250 MiB).
func (p *inPlace) reader() io.ReadCloser {
	return &inPlaceReader{p: p, r: io.NewSectionReader(p.f, 0, p.st.Size)}
}

type inPlaceReader struct {
	p *inPlace
	r *io.SectionReader
}

func (r *inPlaceReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 || errors.Is(err, io.EOF) {
		if cerr := r.p.check(); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

// Close leaves the descriptor open: every reader shares it.
func (r *inPlaceReader) Close() error { return nil }
