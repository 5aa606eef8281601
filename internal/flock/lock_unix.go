//go:build unix

package flock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lock takes flock(2) on f: exclusive or shared; waiting for it, or
// reporting busy when another holds it.
func lock(f *os.File, exclusive, wait bool) (busy bool, err error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// downgrade turns f's exclusive flock into a shared one, in one call.
func downgrade(f *os.File) error {
	_, err := lock(f, false, true)
	return err
}

// openDir opens dir itself to lock it.
func openDir(dir string) (*os.File, error) { return os.Open(dir) }
