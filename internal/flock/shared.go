package flock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Shared takes a shared lock on the file at path (created, with its
// directory, if missing), waiting while an exclusive holder has it: many
// shared holders work side by side, and TryExclusive fails while any does.
func Shared(path string) (*os.File, error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_SH)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
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
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
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
func Downgrade(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
