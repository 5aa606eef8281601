package bake

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A Go binary's build information is read (its Go version and modules);
// any other file gives none.
func TestGoBuildOf(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	g := goBuildOf(exe) // this test binary
	if g == nil || g.Go != runtime.Version() || !strings.Contains(g.Main+strings.Join(g.Deps, " "), "github.com/") {
		t.Errorf("goBuildOf(the test binary) = %+v, want %s and its modules", g, runtime.Version())
	}
	script := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 2.4.1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if g := goBuildOf(script); g != nil {
		t.Errorf("a shell script has Go build information: %+v", g)
	}
}
