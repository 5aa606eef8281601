package builders

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
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
		_, _, err := scanTar(bytes.NewReader(tt.data), int64(len(tt.data)), "layer", rep)
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
		_, n, _ := scanTar(bytes.NewReader(b), int64(len(b)), "layer", rep)
		if limit := max(int64(MinExpansionLimit), ExpansionRatio*int64(len(b))); n > limit {
			t.Fatalf("read %d bytes past the limit %d", n, limit)
		}
	})
}
