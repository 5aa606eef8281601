package agents

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

type failingWriter struct{ left int }

var errDiskFull = errors.New("no space left on device")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errDiskFull
	}
	w.left -= len(p)
	return len(p), nil
}

// A copy that fails (a full disk) stops the tar writer too: packTo
// returns the copy's error and leaves no goroutine behind, blocked on the
// pipe with a file of the tree open.
func TestPackStopsWriterWhenCopyFails(t *testing.T) {
	from := t.TempDir()
	big := make([]byte, 4<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(from, "agent"), big, 0o755); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 5 {
		if _, _, err := packTo(&failingWriter{left: 1 << 10}, from, time.Unix(0, 0)); !errors.Is(err, errDiskFull) {
			t.Fatalf("packTo into a full disk = %v", err)
		}
	}
	// a writer that returned may take a moment to be gone; one left
	// blocked never is
	after := runtime.NumGoroutine()
	for deadline := time.Now().Add(2 * time.Second); after > before && time.Now().Before(deadline); after = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	if after > before {
		t.Errorf("%d goroutines 2 s after 5 failed packs, %d before: the tar writers were left blocked", after, before)
	}
}
