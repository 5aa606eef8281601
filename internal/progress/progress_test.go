//go:build linux

package progress

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A step that outlasts Delay draws its bar with its description and count
// and clears it at the end; a quick step, a step without a reporter and a
// step overlapping another draw nothing.
func TestBarOnlyForLongSteps(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	r := New(&out)
	clock := time.Unix(1700000000, 0)
	r.now = func() time.Time { return clock }
	ctx := With(context.Background(), r)

	quick := Start(ctx, "quick step", 10, false)
	quick.Add(10)
	quick.Finish()
	if out.Len() != 0 || quick.Drawn() {
		t.Fatalf("a step shorter than %v drew %q", Delay, out.String())
	}

	long := Start(ctx, "installing the modules", 3, false)
	inner := Start(ctx, "an overlapping step", 5, false)
	long.Add(1)
	clock = clock.Add(Delay + 100*time.Millisecond)
	long.Add(1)
	inner.Add(5)
	time.Sleep(150 * time.Millisecond) // past the throttle
	long.Add(1)
	long.Finish()
	inner.Finish()
	s := out.String()
	if !long.Drawn() || !strings.Contains(s, "installing the modules") || !strings.Contains(s, "/3)") {
		t.Errorf("a long step drew %q, want its description and count of 3", s)
	}
	if strings.Contains(s, "overlapping") || inner.Drawn() {
		t.Errorf("a step overlapping another drew a second bar: %q", s)
	}
	if !strings.HasSuffix(strings.TrimRight(s, " "), "\r") {
		t.Errorf("the bar's line was not cleared at the end: %q", s)
	}

	// after the first ended, the next step may draw again
	next := Start(ctx, "compressing", 100, true)
	clock = clock.Add(Delay + 50*time.Millisecond)
	if _, err := io.Copy(io.Discard, next.Reader(strings.NewReader(strings.Repeat("x", 100)))); err != nil {
		t.Fatal(err)
	}
	next.Finish()
	if !next.Drawn() {
		t.Error("a step after a finished one drew nothing")
	}

	none := Start(context.Background(), "no reporter", 1, false)
	time.Sleep(10 * time.Millisecond)
	none.Add(1)
	none.Finish()
	if none.Drawn() {
		t.Error("a step without a reporter drew a bar")
	}
}

// Bars are for terminals: not for a file, not in CI.
func TestTerminal(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Terminal(f, false) {
		t.Error("a file is called a terminal")
	}
	tty := openPTY(t)
	if !Terminal(tty, false) {
		t.Error("/dev/tty is not called a terminal")
	}
	if Terminal(tty, true) {
		t.Error("a terminal in CI draws bars")
	}
}

// openPTY opens a new pseudo-terminal and returns its terminal side.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty
}

// A line written through the reporter's Writer while a bar is drawn lands
// on a cleared line, never after the bar's text.
func TestLinesClearTheBar(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	r := New(&out)
	clock := time.Unix(1700000000, 0)
	r.now = func() time.Time { return clock }
	ctx := With(context.Background(), r)
	b := Start(ctx, "fetching modules", 10, false)
	clock = clock.Add(Delay + time.Millisecond)
	b.Add(3)
	if !b.Drawn() {
		t.Fatal("the bar was not drawn")
	}
	before := out.Len()
	fmt.Fprintf(r.Writer(), "warning: a note\n")
	s := out.String()[before:]
	i := strings.Index(s, "warning: a note\n")
	if i < 0 {
		t.Fatalf("the line did not reach the output: %q", s)
	}
	if cleared := s[:i]; !strings.HasSuffix(strings.TrimRight(cleared, " "), "\r") || strings.Contains(cleared, "fetching") {
		t.Errorf("the line was written after the bar without clearing it: %q", s)
	}
	b.Finish()
	fmt.Fprintf(r.Writer(), "done\n")
	if !strings.HasSuffix(out.String(), "done\n") {
		t.Errorf("a line after the step = %q", out.String())
	}
}
