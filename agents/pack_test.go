package agents

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
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
	t.Parallel()
	from := t.TempDir()
	big := make([]byte, 4<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(from, "agent"), big, 0o755); err != nil {
		t.Fatal(err)
	}
	// every goroutine packTo starts is gone when it returns (goleak
	// retries a while for one that is returning; one left blocked fails)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for range 5 {
		if _, _, err := packTo(&failingWriter{left: 1 << 10}, from, time.Unix(0, 0)); !errors.Is(err, errDiskFull) {
			t.Fatalf("packTo into a full disk = %v", err)
		}
	}
}
