//go:build !linux

package atomicfile

import (
	"errors"
	"os"
)

// reflink is Linux's FICLONE only: elsewhere a copy is written out.
func reflink(_, _ *os.File) error { return errors.ErrUnsupported }
