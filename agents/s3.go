package agents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sync/atomic"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/s3obj"
)

// S3Store is a store under s3://BUCKET/PREFIX: tools/index.json and the
// tarballs beside it, as in a directory store. Writers share it without a
// lock: a tarball is created with If-None-Match: * (immutable), and the
// index is replaced with If-Match on the ETag it was read with, read
// again and changed again when another writer was first.
type S3Store struct {
	B *s3obj.Bucket
	// Retries counts the index writes this store lost to another writer
	// (and then made again).
	Retries atomic.Int64
}

// NewS3Store returns the store at an s3://BUCKET/PREFIX URL.
func NewS3Store(ctx context.Context, u string) (*S3Store, error) {
	b, err := s3obj.Open(ctx, u)
	if err != nil {
		return nil, err
	}
	return &S3Store{B: b}, nil
}

func toolsKey(p string) string { return "tools/" + path.Clean(p) }

// Location implements Store.
func (s *S3Store) Location() string { return s.B.URL("tools") }

// Index implements Store.
func (s *S3Store) Index(ctx context.Context) (*Index, error) {
	ix, err := s.index(ctx, nil)
	if err != nil {
		return nil, err
	}
	if ix == nil {
		return nil, fmt.Errorf("%s: %w", s.B.URL(toolsKey(IndexName)), ErrNoIndex)
	}
	return ix, nil
}

// index parses data read from the store's index, or reads it when data is
// nil; a store without an index gives nil.
func (s *S3Store) index(ctx context.Context, data []byte) (*Index, error) {
	if data == nil {
		var err error
		data, _, err = s.B.Get(ctx, toolsKey(IndexName))
		if errors.Is(err, failure.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	ix, err := ParseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.B.URL(toolsKey(IndexName)), err)
	}
	return ix, nil
}

// Open implements Store.
func (s *S3Store) Open(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	r, err := s.B.Open(ctx, toolsKey(p), offset)
	if errors.Is(err, failure.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", err, os.ErrNotExist)
	}
	return r, err
}

// updateIndex changes the index by compare-and-swap.
// mustExist refuses a store without an index (ErrNoIndex).
func (s *S3Store) updateIndex(ctx context.Context, mustExist bool, change func(*Index) error) error {
	lost, err := s.B.Swap(ctx, toolsKey(IndexName), func(old []byte) ([]byte, error) {
		ix := &Index{Version: IndexFormat, Agents: []Entry{}}
		if old == nil && mustExist {
			return nil, fmt.Errorf("%s: %w", s.B.URL(toolsKey(IndexName)), ErrNoIndex)
		}
		if old != nil {
			var err error
			if ix, err = s.index(ctx, old); err != nil {
				return nil, err
			}
		}
		if err := change(ix); err != nil {
			return nil, err
		}
		return ix.Encode()
	})
	s.Retries.Add(int64(lost))
	return err
}

// put creates tools/E.PATH from the file at p, which holds e's content. A
// file there already must be e's content.
func (s *S3Store) put(ctx context.Context, p string, e Entry) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = s.B.Ensure(ctx, toolsKey(e.Path), f, e.Size, e.SHA256) // p was checked against e as it was written
	var other *s3obj.OtherContentError
	if errors.As(err, &other) {
		return fmt.Errorf("%w: %s %s for %s: %v; another publisher of this version was first", ErrExists, e.Name, e.Version, e.Platform(), err)
	}
	return err
}

// add puts e into the index unless it is there; it says whether it added it.
func (s *S3Store) add(ctx context.Context, e Entry) (bool, error) {
	added := false
	err := s.updateIndex(ctx, false, func(ix *Index) error {
		_, ok, err := ix.present(e, s.Location())
		if added = !ok && err == nil; added {
			ix.Agents = append(ix.Agents, e)
		}
		return err
	})
	return added, err
}

// PublishS3 is Publish into an S3 store: the tarball is created first (a
// concurrent publisher of other content under the same version loses
// there), then added to the index by compare-and-swap.
func PublishS3(ctx context.Context, s *S3Store, from string, o PublishOptions) (Entry, bool, error) {
	if err := o.check(from); err != nil {
		return Entry{}, false, err
	}
	tmp, e, err := pack(from, o, "")
	if err != nil {
		return Entry{}, false, err
	}
	defer os.Remove(tmp)
	if err := s.B.CheckConditional(ctx); err != nil {
		return Entry{}, false, err
	}
	ix, err := s.index(ctx, nil)
	if err != nil {
		return Entry{}, false, err
	}
	if ix != nil {
		if old, ok, err := ix.present(e, s.Location()); ok || err != nil {
			return old, false, err
		}
	}
	if err := s.put(ctx, tmp, e); err != nil {
		return Entry{}, false, err
	}
	added, err := s.add(ctx, e)
	return e, added, err
}

// WithdrawS3 is Withdraw in an S3 store.
func WithdrawS3(ctx context.Context, s *S3Store, name, version, os_, arch, reason string, at time.Time) (Entry, error) {
	if reason == "" {
		return Entry{}, errNoReason
	}
	var e Entry
	err := s.updateIndex(ctx, true, func(ix *Index) error {
		var err error
		e, _, err = ix.withdraw(name, version, os_, arch, reason, at, s.Location())
		return err
	})
	return e, err
}

// SyncS3 is Sync into an S3 store: each selected file the store lacks is
// downloaded to a temporary file, verified against the source index, and
// created; the index gains the entries by compare-and-swap at the end.
func SyncS3(ctx context.Context, from Store, to *S3Store, o SyncOptions) (*SyncReport, error) {
	selected, err := o.selected(ctx, from)
	if err != nil {
		return nil, err
	}
	if err := to.B.CheckConditional(ctx); err != nil {
		return nil, err
	}
	dst, err := to.index(ctx, nil)
	if err != nil {
		return nil, err
	}
	if dst == nil {
		dst = &Index{Version: IndexFormat}
	}
	tmpDir, err := os.MkdirTemp("", "imagebake-sync-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmpDir)
	rep := &SyncReport{}
	for _, e := range selected {
		if old, ok := dst.Find(e.Name, e.Version, e.OS, e.Arch); ok && old.SHA256 != e.SHA256 {
			return rep, fmt.Errorf("%w: %s %s for %s: %s has sha256 %s, %s has %s", ErrConflict, e.Name, e.Version, e.Platform(), from.Location(), e.SHA256, to.Location(), old.SHA256)
		}
		if info, err := to.B.Head(ctx, toolsKey(e.Path)); err == nil && info.SHA256 == e.SHA256 && info.Size == e.Size {
			rep.Skipped = append(rep.Skipped, e)
			if o.Progress != nil {
				o.Progress(e, true)
			}
			continue
		}
		tmp := tmpDir + "/" + path.Base(e.Path)
		if err := syncFile(ctx, from, e, tmp); err != nil {
			return rep, err
		}
		if err := to.put(ctx, tmp, e); err != nil {
			return rep, err
		}
		os.Remove(tmp)
		rep.Fetched = append(rep.Fetched, e)
		rep.Bytes += e.Size
		if o.Progress != nil {
			o.Progress(e, false)
		}
	}
	all := append(append([]Entry(nil), rep.Skipped...), rep.Fetched...)
	err = to.updateIndex(ctx, false, func(ix *Index) error {
		for _, e := range all {
			if _, ok, err := ix.present(e, to.Location()); err != nil {
				return err
			} else if !ok {
				ix.Agents = append(ix.Agents, e)
			}
		}
		return nil
	})
	return rep, err
}
