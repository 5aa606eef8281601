package atomicfile

import (
	"fmt"
	"io"
	"os"
)

// Copy atomically replaces dst with a copy of src, mode perm. The copy
// never shares an inode with src (no hard link): rewriting src in place
// later must not change what imagebake made from it. Where the file system
// offers it (btrfs, XFS), the copy is a reflink, which shares blocks
// copy-on-write and costs no space.
func Copy(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return Write(dst, perm, func(w io.Writer) error {
		if f, ok := w.(*os.File); ok {
			if reflink(f, in) == nil {
				return nil
			}
		}
		if _, err := io.Copy(w, in); err != nil {
			return fmt.Errorf("copying %s: %w", src, err)
		}
		return nil
	})
}
