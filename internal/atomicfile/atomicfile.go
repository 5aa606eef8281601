// Package atomicfile writes files so that a reader sees either the whole old
// content or the whole new one, never a half-written file: the bytes go to
// a temporary file beside the target, are fsynced, and renamed over it.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile atomically replaces name with data, with permissions perm.
func WriteFile(name string, data []byte, perm os.FileMode) error {
	return Write(name, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write atomically replaces name with what fill writes.
func Write(name string, perm os.FileMode, fill func(io.Writer) error) error {
	p, err := CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer p.Cleanup()
	if err := fill(p); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return p.Commit(name, perm)
}

// Pending is a file being written beside where it will land, for a name
// known only once it is written (a blob named by its digest) or a content
// checked before it lands (a download): Commit puts it there whole,
// Cleanup removes it when Commit was not reached. The one place imagebake
// writes the temporary file, fsyncs it and renames it.
type Pending struct {
	*os.File
	committed bool
}

// CreateTemp starts a Pending file in dir (os.CreateTemp's pattern).
func CreateTemp(dir, pattern string) (*Pending, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &Pending{File: f}, nil
}

// Commit gives the file perm, syncs it, closes it and renames it to name
// (then syncs the directory). On an error the file is removed.
func (p *Pending) Commit(name string, perm os.FileMode) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("writing %s: %w", name, err)
			p.Cleanup()
		}
	}()
	if err = p.Chmod(perm); err != nil {
		return err
	}
	if err = p.Sync(); err != nil {
		return err
	}
	if err = p.File.Close(); err != nil {
		return err
	}
	if err = os.Rename(p.Name(), name); err != nil {
		return err
	}
	p.committed = true
	// the rename happened; a directory that cannot be synced loses nothing
	// the file system had not already promised
	_ = SyncDir(filepath.Dir(name))
	return nil
}

// Cleanup closes and removes the file unless it was committed; deferring
// it right after CreateTemp is always safe.
func (p *Pending) Cleanup() {
	if p.committed {
		return
	}
	p.File.Close()
	os.Remove(p.Name())
}

// SyncDir makes the entries of dir (a file renamed into it) durable: the
// one place imagebake syncs a directory.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
