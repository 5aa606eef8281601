package flock

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lock takes LockFileEx on f's first byte: exclusive or shared; waiting
// for it, or reporting busy when another holds it.
func lock(f *os.File, exclusive, wait bool) (busy bool, err error) {
	var flags uint32
	if exclusive {
		flags |= windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	if !wait {
		flags |= windows.LOCKFILE_FAIL_IMMEDIATELY
	}
	err = windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, new(windows.Overlapped))
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		return true, nil
	}
	return false, err
}

// downgrade releases f's exclusive lock and takes it shared: two steps on
// Windows, which has no conversion.
func downgrade(f *os.File) error {
	if err := windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, new(windows.Overlapped)); err != nil {
		return err
	}
	_, err := lock(f, false, true)
	return err
}

// openDir opens a lock file beside dir: Windows locks files, not
// directories.
func openDir(dir string) (*os.File, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	return openLockFile(dir + ".lock")
}
