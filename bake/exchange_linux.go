package bake

import (
	"errors"

	"golang.org/x/sys/unix"
)

// exchange swaps the directories src and dst in one rename
// (RENAME_EXCHANGE); errors.ErrUnsupported where the file system cannot.
func exchange(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return errors.ErrUnsupported
	}
	return err
}
