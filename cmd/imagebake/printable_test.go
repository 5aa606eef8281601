package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stderrOf runs the command line and returns what it printed on stderr.
func stderrOf(t *testing.T, args ...string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	run(context.Background(), args)
	os.Stderr = old
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// Strings from others reach the terminal with their control characters
// escaped: a terminal escape in a path named in an error is shown as
// \x1b, never sent.
func TestErrorsEscapeControlCharacters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "Puppetfile\x1b[2J\x1b[31m")
	out := stderrOf(t, "puppetfile", "check", "--puppetfile", p)
	if strings.Contains(out, "\x1b") || !strings.Contains(out, `Puppetfile\x1b[2J\x1b[31m`) {
		t.Errorf("stderr = %q, want the escape shown as \\x1b", out)
	}
}
