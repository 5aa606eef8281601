package flock

import (
	"os"
)

// Shared takes a shared lock on the file at path (created, with its
// directory, if missing), waiting while an exclusive holder has it: many
// shared holders work side by side, and TryExclusive fails while any does.
func Shared(path string) (*os.File, error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	if _, err = lock(f, false, true); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// TryExclusive takes an exclusive lock on the file at path if no one
// holds it; ok is false (and f nil) when someone does.
func TryExclusive(path string) (f *os.File, ok bool, err error) {
	if f, err = openLockFile(path); err != nil {
		return nil, false, err
	}
	busy, err := lock(f, true, false)
	if err == nil && busy {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, err
	}
	return f, true, nil
}

// Downgrade turns the exclusive lock f holds into a shared one: others
// may then take it shared, and TryExclusive fails while f holds it.
func Downgrade(f *os.File) error { return downgrade(f) }
