// Package flock serialises processes on a lock file: git mirrors, install
// states, agent stores, catalogs and machine agent states are each changed
// by one imagebake process at a time, so several can share them safely.
package flock

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// Lock takes an exclusive lock on the file at path (created, with its
// directory, if missing), waiting for other holders. Closing the returned
// file releases it; so does the holder's death.
func Lock(path string) (*os.File, error) {
	return LockContext(context.Background(), path)
}

// LockContext is Lock that gives up when ctx is done.
func LockContext(ctx context.Context, path string) (*os.File, error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	return wait(ctx, f)
}

// openLockFile opens the lock file at path, creating it and its directory.
func openLockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
}

// LockDir takes an exclusive lock on the directory dir itself (no lock file
// is created inside it), waiting until it is free or ctx ends. Close the
// returned file to release it.
func LockDir(ctx context.Context, dir string) (*os.File, error) {
	return LockDirWaiting(ctx, dir, nil)
}

// LockDirWaiting is LockDir that calls waiting (when not nil) once, when
// the lock is found held and it starts to wait, so the user hears why
// nothing happens.
func LockDirWaiting(ctx context.Context, dir string, waiting func()) (*os.File, error) {
	f, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	return waitNotify(ctx, f, waiting)
}

// wait takes an exclusive flock on f, polling until it is free or ctx
// ends; f is closed on failure.
func wait(ctx context.Context, f *os.File) (*os.File, error) { return waitNotify(ctx, f, nil) }

// waitNotify is wait that calls waiting once, at the first refusal.
func waitNotify(ctx context.Context, f *os.File, waiting func()) (*os.File, error) {
	for {
		busy, err := lock(f, true, false)
		if err == nil && !busy {
			return f, nil
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		if waiting != nil {
			waiting()
			waiting = nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
