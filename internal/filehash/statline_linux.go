package filehash

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// statLine is what TreeStat records of an entry: mode, size, inode, and
// change and modification times in nanoseconds.
func statLine(fi fs.FileInfo) (string, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", errors.New("no stat")
	}
	return fmt.Sprintf("%o %d %d %d.%09d %d.%09d", st.Mode, st.Size, st.Ino, st.Ctim.Sec, st.Ctim.Nsec, st.Mtim.Sec, st.Mtim.Nsec), nil
}
