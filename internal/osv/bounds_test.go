//go:build linux

package osv

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// overlappingZip is a zip whose n central-directory entries all point at
// one member's data (a zip bomb: each inflates the same stream).
func overlappingZip(t *testing.T, n int, member []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("aaaaaaaaaa.json")
	w.Write(member)
	zw.Close()
	b := buf.Bytes()
	eocd := bytes.LastIndex(b, []byte{0x50, 0x4b, 0x05, 0x06})
	cdOff := binary.LittleEndian.Uint32(b[eocd+16:])
	cdSize := binary.LittleEndian.Uint32(b[eocd+12:])
	entry := b[cdOff : cdOff+cdSize]
	nameLen := int(binary.LittleEndian.Uint16(entry[28:]))
	var cd bytes.Buffer
	for i := 0; i < n; i++ {
		e := append([]byte(nil), entry...)
		name := fmt.Sprintf("r%0*d.json", nameLen-6, i)
		copy(e[46:46+nameLen], name)
		cd.Write(e)
	}
	out := append([]byte(nil), b[:cdOff]...)
	out = append(out, cd.Bytes()...)
	end := append([]byte(nil), b[eocd:]...)
	binary.LittleEndian.PutUint16(end[8:], uint16(n))
	binary.LittleEndian.PutUint16(end[10:], uint16(n))
	binary.LittleEndian.PutUint32(end[12:], uint32(cd.Len()))
	binary.LittleEndian.PutUint32(end[16:], cdOff)
	return append(out, end...)
}

// A zip whose members share bytes is refused whole (exit 2), at once,
// naming two of them; a FIFO named as advisories is refused without
// being read (it would block for ever); a cancelled context stops the
// loader.
func TestLoadBounds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bomb := filepath.Join(dir, "bomb.zip")
	if err := os.WriteFile(bomb, overlappingZip(t, 200, bytes.Repeat([]byte(" "), 4<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := LoadScoped(context.Background(), []string{bomb}, Scope{})
	if !errors.Is(err, ErrArchive) || failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("a zip of 200 members sharing one 4 MiB stream = %v (exit %d), want it refused as overlapping", err, failure.Code(err))
	}
	t.Logf("refused in %s", time.Since(start))

	fifo := filepath.Join(dir, "all.zip")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := LoadScoped(context.Background(), []string{fifo}, Scope{}); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrArchive) || !strings.Contains(err.Error(), "is a FIFO") {
			t.Errorf("a FIFO = %v, want it refused", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loader blocked on a FIFO")
	}

	// many records, the context cancelled: the loader stops with the cause
	many := filepath.Join(dir, "many.zip")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < 20000; i++ {
		w, _ := zw.Create(fmt.Sprintf("r%d.json", i))
		fmt.Fprintf(w, `{"id":"X-%d","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"p%d"}}]}`, i, i)
	}
	zw.Close()
	testutil.Must(t, os.WriteFile(many, buf.Bytes(), 0o644))
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("interrupted"))
	if _, err := LoadScoped(ctx, []string{many}, Scope{}); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("a cancelled load = %v", err)
	}
}

// Any bytes as a zip archive: refused or read, never a panic or a hang.
func FuzzZip(f *testing.F) {
	f.Add(overlappingZip(&testing.T{}, 3, []byte(`{"id":"X"}`)))
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("r.json")
	w.Write([]byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.11-1~deb12u2"}]}]}]}`))
	zw.Close()
	f.Add(buf.Bytes())
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.zip")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		LoadScoped(ctx, []string{p}, Scope{})
	})
}
