package builders

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/distro"
)

func tarOf(entries ...*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			tw.Write(make([]byte, h.Size))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestScanTar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data []byte
		want string // "" for accepted
	}{
		{"plain", tarOf(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, &tar.Header{Name: "etc/x", Typeflag: tar.TypeReg, Size: 4, Mode: 0o644}), ""},
		{"opaque whiteout", tarOf(&tar.Header{Name: "etc/.wh..wh..opq", Typeflag: tar.TypeReg}), ""},
		{"whiteout", tarOf(&tar.Header{Name: "etc/.wh.passwd", Typeflag: tar.TypeReg}), ""},
		{"dotdot", tarOf(&tar.Header{Name: "a/../../x", Typeflag: tar.TypeReg}), `entry "a/../../x" leaves the root`},
		{"absolute", tarOf(&tar.Header{Name: "/etc/x", Typeflag: tar.TypeReg}), `entry "/etc/x" has an absolute name`},
		{"root dir", tarOf(&tar.Header{Name: "/", Typeflag: tar.TypeDir, Mode: 0o755}, &tar.Header{Name: "./etc/x", Typeflag: tar.TypeReg}), ""},
		{"absolute hard link", tarOf(&tar.Header{Name: "etc/l", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}), `hard link to the absolute name "/etc/shadow"`},
		{"absolute symlink", tarOf(&tar.Header{Name: "etc/localtime", Typeflag: tar.TypeSymlink, Linkname: "/usr/share/zoneinfo/UTC"}), ""},
		{"empty whiteout", tarOf(&tar.Header{Name: "etc/.wh.", Typeflag: tar.TypeReg}), `whiteout of ""`},
		{"not tar", []byte(strings.Repeat("hello ", 200)), "is not a tar archive"},
		{"huge name quoted short", tarOf(&tar.Header{Name: strings.Repeat("x", 300) + "/../y", Typeflag: tar.TypeReg}), `"... leaves the root`},
	}
	for _, tt := range tests {
		rep := &BaseReport{}
		_, _, err := scanTar(context.Background(), bytes.NewReader(tt.data), int64(len(tt.data)), "layer", rep)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: scanTar = %v, want it accepted", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: scanTar = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// FuzzScanTar: any bytes give a verdict, never a panic, and reading stops
// at the expansion limit.
func FuzzScanTar(f *testing.F) {
	f.Add(tarOf(&tar.Header{Name: "etc/x", Typeflag: tar.TypeReg, Size: 4, Mode: 0o4755}))
	f.Add(tarOf(&tar.Header{Name: "dev/null", Typeflag: tar.TypeChar}, &tar.Header{Name: "a/.wh.b", Typeflag: tar.TypeReg}))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep := &BaseReport{}
		_, n, _ := scanTar(context.Background(), bytes.NewReader(b), int64(len(b)), "layer", rep)
		if limit := max(int64(MinExpansionLimit), ExpansionRatio*int64(len(b))); n > limit {
			t.Fatalf("read %d bytes past the limit %d", n, limit)
		}
	})
}

// cancelAfter cancels ctx once n bytes were read through it: Ctrl-C in
// the middle of a scan.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	if c.n -= int64(k); c.n <= 0 {
		c.cancel()
	}
	return k, err
}

// A scan of a crafted layer (60,000 whiteouts over 60,000 symlinks) stops
// when its context ends, mid-layer, with the context's error.
func TestScanStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 60000 {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/share/x/f%06d", i), Typeflag: tar.TypeSymlink, Linkname: "y", Mode: 0o777})
	}
	for i := range 60000 {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/share/x/.wh.f%06d", i), Typeflag: tar.TypeReg, Mode: 0o644})
	}
	tw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &cancelAfter{r: bytes.NewReader(buf.Bytes()), n: 1 << 20, cancel: cancel}
	rep := &BaseReport{Collect: distro.NewCollector()}
	n, read, err := scanTar(ctx, r, int64(buf.Len()), "layer", rep)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("scanTar after cancel = %v, want context.Canceled", err)
	}
	if n >= 120000 || read >= int64(buf.Len()) {
		t.Errorf("scanTar read %d entries, %d of %d bytes after the cancel", n, read, buf.Len())
	}
}
