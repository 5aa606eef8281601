// Package agentstest publishes stand-in agent binaries into a directory
// store for tests.
package agentstest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imagebake/imagebake/agents"
)

// Script is the stand-in agent: a shell script printing its version.
func Script(version string) string { return fmt.Sprintf("#!/bin/sh\necho %s\n", version) }

// Publish publishes bin/NAME holding content (Script(version) when empty)
// as the agent binaries o describes into d.
func Publish(t testing.TB, d *agents.DirStore, o agents.PublishOptions, content string) agents.Entry {
	t.Helper()
	if content == "" {
		content = Script(o.Version)
	}
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "bin", o.Name), []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	e, _, err := agents.Publish(context.Background(), d, src, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Store returns the directory store at dir, failing the test if it cannot.
func Store(t testing.TB, dir string) *agents.DirStore {
	t.Helper()
	d, err := agents.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
