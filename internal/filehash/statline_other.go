//go:build !linux

package filehash

import (
	"fmt"
	"io/fs"
)

// statLine is what TreeStat records of an entry where Linux's stat is not
// at hand: mode, size and modification time (a weaker check; the compile
// gate that relies on it runs on Linux only).
func statLine(fi fs.FileInfo) (string, error) {
	return fmt.Sprintf("%o %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano()), nil
}
