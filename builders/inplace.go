package builders

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/sysx"
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
	n    int64
	id   string // sysx.Identity when opened
}

func openInPlace(name string) (*inPlace, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%w: base rootfs %s is not a regular file", ErrBadBase, name)
	}
	var id string
	if err == nil {
		id, err = sysx.Identity(f)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &inPlace{name: name, f: f, n: fi.Size(), id: id}, nil
}

func (p *inPlace) size() int64 { return p.n }

// check says whether the file is still the one first seen: a write
// changes its modification and change times (the latter no one can set).
func (p *inPlace) check() error {
	now, err := sysx.Identity(p.f)
	if err != nil {
		return err
	}
	if now != p.id {
		return fmt.Errorf("%w: %s was written to during the bake; bake again once it is finished", ErrBaseChanged, p.name)
	}
	return nil
}

// reader reads the whole file from its start, checking after each read
// of the file that it is unchanged (an fstat per MiB); closing it leaves
// the descriptor open: every reader shares it.
// Reads reach the file in blocks of 1 MiB, each checked: a tar reader's
// 512-byte header reads cost no fstat of their own.
func (p *inPlace) reader() io.ReadCloser {
	return io.NopCloser(bufio.NewReaderSize(&inPlaceReader{p: p, r: io.NewSectionReader(p.f, 0, p.n)}, 1<<20))
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
