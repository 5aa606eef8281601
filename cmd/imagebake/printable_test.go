package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/testutil"
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
	t.Parallel()
	p := filepath.Join(t.TempDir(), "Puppetfile\x1b[2J\x1b[31m")
	out := stderrOf(t, "puppetfile", "check", "--puppetfile", p)
	if strings.Contains(out, "\x1b") || !strings.Contains(out, `Puppetfile\x1b[2J\x1b[31m`) {
		t.Errorf("stderr = %q, want the escape shown as \\x1b", out)
	}
}

// IMAGEBAKE_STALL_TIMEOUT reaches every HTTP client: an agent store and a
// catalog on a server that accepts and never answers are given up after
// it (300ms here), not after the default minute.
func TestStallTimeoutReachesEveryHTTPClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	url := "http://" + ln.Addr().String()
	t.Setenv("IMAGEBAKE_STALL_TIMEOUT", "300ms")
	deploy := filepath.Join(t.TempDir(), "deploy.yaml")
	testutil.Must(t, os.WriteFile(deploy, []byte("images:\n  web:\n    image: example\n    version: \"1.0\"\n"), 0o644))
	for _, args := range [][]string{
		{"agents", "list", "--store", url + "/tools"},
		{"check", deploy, "--catalog", url + "/catalog.toml"},
	} {
		start := time.Now()
		out := stderrOf(t, args...)
		if took := time.Since(start); took > 20*time.Second || !strings.Contains(out, "300ms") {
			t.Errorf("%v against a server that never answers: %s, stderr %q", args, took, out)
		}
	}
}
