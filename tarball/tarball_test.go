//go:build linux

package tarball

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/imagebake/imagebake/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixture makes a tree with every kind of entry, odd modes and times.
func fixture(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "b", "deep"), 0o700))
	must(os.WriteFile(filepath.Join(root, "b", "deep", "x.txt"), []byte("x\n"), 0o600))
	must(os.WriteFile(filepath.Join(root, "a.sh"), []byte("#!/bin/sh\n"), 0o700))
	must(os.WriteFile(filepath.Join(root, "Z"), bytes.Repeat([]byte("z"), 5000), 0o664))
	must(os.Symlink("b/deep/x.txt", filepath.Join(root, "link")))
	old := time.Unix(1000, 0)
	must(os.Chtimes(filepath.Join(root, "Z"), old, old))
	return root
}

func TestWriterGolden(t *testing.T) {
	old := syscall.Umask(0o077) // the umask must not matter
	defer syscall.Umask(old)
	var buf bytes.Buffer
	if err := WriteTreeGz(&buf, fixture(t), "opt/app", time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	got := hex.EncodeToString(sum[:])
	golden := filepath.Join("testdata", "golden", "tree.tar.gz.sha256")
	if *update {
		testutil.Must(t, os.WriteFile(golden, []byte(got+"\n"), 0o644))
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != strings.TrimSpace(string(want)) {
		t.Errorf("WriteTreeGz digest = %s, want %s (run with -update if the format changed on purpose)", got, want)
	}
	// and the headers say what the rules say
	zr, _ := gzip.NewReader(bytes.NewReader(buf.Bytes()))
	if !zr.ModTime.Equal(time.Unix(0, 0)) && !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("gzip header mtime %v name %q, want 0 and empty", zr.ModTime, zr.Name)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d/%d %q/%q, want 0/0 and no names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.Name == "opt/app/Z" && h.ModTime.Unix() != 1000 {
			t.Errorf("Z mtime %v, want 1000 (older than the epoch, kept)", h.ModTime)
		} else if h.Name != "opt/app/Z" && h.ModTime.Unix() != 1700000000 {
			t.Errorf("%s mtime %v, want the epoch (clamped)", h.Name, h.ModTime)
		}
		want := map[byte]int64{tar.TypeDir: 0o755, tar.TypeSymlink: 0o777}[h.Typeflag]
		if h.Typeflag == tar.TypeReg {
			want = 0o644
			if strings.HasSuffix(h.Name, ".sh") {
				want = 0o755
			}
		}
		if h.Mode != want {
			t.Errorf("%s mode %o, want %o", h.Name, h.Mode, want)
		}
	}
	if got := strings.Join(names, " "); got != "opt/ opt/app/ opt/app/Z opt/app/a.sh opt/app/b/ opt/app/b/deep/ opt/app/b/deep/x.txt opt/app/link" {
		t.Errorf("entries = %s, want lexical order with parents first", got)
	}
}

// hostile builds a gzip tar from headers (with body "x" for regular files).
func hostile(hs ...*tar.Header) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range hs {
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = 1
		}
		tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestExtractRefusesHostileArchives(t *testing.T) {
	t.Parallel()
	reg := func(n string) *tar.Header { return &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644} }
	tests := []struct {
		name string
		arc  []byte
		opts ExtractOptions
	}{
		{"absolute path", hostile(reg("/etc/passwd")), ExtractOptions{}},
		{"dot-dot", hostile(reg("a/../../evil")), ExtractOptions{}},
		{"symlink out", hostile(&tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "../../etc"}), ExtractOptions{}},
		{"absolute symlink", hostile(&tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/etc/passwd"}), ExtractOptions{}},
		{"write through symlink", hostile(&tar.Header{Typeflag: tar.TypeSymlink, Name: "d", Linkname: "."}, reg("d/x")), ExtractOptions{}},
		{"hardlink out", hostile(&tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "../../etc/passwd"}), ExtractOptions{}},
		{"hardlink to nothing", hostile(&tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "missing"}), ExtractOptions{}},
		{"char device", hostile(&tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}), ExtractOptions{}},
		{"fifo", hostile(&tar.Header{Typeflag: tar.TypeFifo, Name: "p"}), ExtractOptions{}},
		{"too big", hostile(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: 2048}), ExtractOptions{MaxBytes: 1024}},
		{"too many", hostile(reg("a"), reg("b"), reg("c")), ExtractOptions{MaxEntries: 2}},
		{"not gzip", []byte("plain text"), ExtractOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "out")
			err := Extract(bytes.NewReader(tt.arc), dst, tt.opts)
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Extract = %v, want ErrUnsafe", err)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("a refused archive left %v behind", ents)
			}
		})
	}
}

func TestExtractRoundTrip(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	var buf bytes.Buffer
	if err := WriteTreeGz(&buf, root, "top", time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := Extract(bytes.NewReader(buf.Bytes()), dst, ExtractOptions{StripComponents: 1}); err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "link")); l != "b/deep/x.txt" {
		t.Errorf("link = %q", l)
	}
	fi, _ := os.Stat(filepath.Join(dst, "a.sh"))
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("a.sh mode %v, want 0755", fi.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "b", "deep", "x.txt")); string(b) != "x\n" {
		t.Errorf("x.txt = %q", b)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add(hostile(&tar.Header{Typeflag: tar.TypeReg, Name: "a/b", Mode: 0o644}))
	f.Add(hostile(&tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "x"}, &tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "l"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "out")
		err := Extract(bytes.NewReader(b), dst, ExtractOptions{MaxBytes: 1 << 20, MaxEntries: 100})
		if err != nil {
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Fatalf("failed extraction left %v", ents)
			}
			return
		}
		// nothing may point outside dst
		filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return nil
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				l, _ := os.Readlink(p)
				rel, _ := filepath.Rel(dst, filepath.Join(filepath.Dir(p), l))
				if filepath.IsAbs(l) || strings.HasPrefix(rel, "..") {
					t.Fatalf("symlink %s -> %s escapes", p, l)
				}
			}
			if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("%s is a %v", p, fi.Mode())
			}
			return nil
		})
	})
}

// TestExtractRootFSNeverWritesThroughALink: in a root file system an
// absolute symlink is kept (/etc/mtab -> /proc/mounts), but an entry below
// it must not create directories where it points, on the host.
func TestExtractRootFSNeverWritesThroughALink(t *testing.T) {
	t.Parallel()
	host := t.TempDir()
	arc := hostile(&tar.Header{Typeflag: tar.TypeSymlink, Name: "lib", Linkname: host},
		&tar.Header{Typeflag: tar.TypeReg, Name: "lib/x/y", Mode: 0o644})
	err := Extract(bytes.NewReader(arc), filepath.Join(t.TempDir(), "out"), ExtractOptions{RootFS: true})
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "lib is a symlink") {
		t.Errorf("Extract = %v, want ErrUnsafe naming the link lib", err)
	}
	if ents, _ := os.ReadDir(host); len(ents) != 0 {
		t.Errorf("extracting wrote %d entries into the link's target on the host", len(ents))
	}
}

// The compressor version manifests record is the one go.mod requires.
func TestCompressorVersionIsGoMods(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := "github.com/klauspost/compress " + compressorVersion + "\n"
	if !strings.Contains(string(b), want) {
		t.Errorf("go.mod does not require %q: update compressorVersion with the dependency (and expect every compressed digest to move)", strings.TrimSpace(want))
	}
}

// The parallel gzip writes the same bytes at any GOMAXPROCS (the blocks
// are fixed; only how many are compressed at once changes), pinned for a
// known input; go.mod requires the pgzip version its name records.
func TestParallelGzipDeterministic(t *testing.T) {
	t.Parallel()
	in := make([]byte, 5<<20+1234)
	for i := range in {
		in[i] = byte(i*31 + i>>11)
	}
	var sums []string
	for _, procs := range []int{1, 2, 8} {
		old := runtime.GOMAXPROCS(procs)
		var out bytes.Buffer
		zw, err := NewParallelGzip(&out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(in); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		runtime.GOMAXPROCS(old)
		sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(out.Bytes())))
	}
	if sums[0] != sums[1] || sums[1] != sums[2] {
		t.Fatalf("parallel gzip bytes differ with GOMAXPROCS 1, 2, 8: %v", sums)
	}
	const pinned = "2f48aac845fdc9e0a9ee91d405ff89136d7c1780ec63fb4b854fd78bebb678c8"
	if sums[0] != pinned {
		t.Errorf("parallel gzip of the known input: sha256 %s, pinned %s (a dependency bump moves the digests of compressed bases)", sums[0], pinned)
	}
	b, _ := os.ReadFile(filepath.Join("..", "go.mod"))
	if !strings.Contains(string(b), "github.com/klauspost/pgzip v1.3.0\n") || !strings.Contains(ParallelCompressor(), "pgzip v1.3.0") {
		t.Error("go.mod and ParallelCompressor disagree on the pgzip version")
	}
}
