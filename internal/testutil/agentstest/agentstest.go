// Package agentstest publishes stand-in agent binaries into a directory
// store for tests.
package agentstest

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imagebake/imagebake/agents"
)

// Script is the stand-in agent: a shell script printing its version.
func Script(version string) string { return fmt.Sprintf("#!/bin/sh\necho %s\n", version) }

// Publish publishes bin/NAME holding content (Binary(arch, version) when
// empty) as the agent binaries o describes into d.
func Publish(t testing.TB, d *agents.DirStore, o agents.PublishOptions, content string) agents.Entry {
	t.Helper()
	if content == "" {
		content = Binary(o.Arch, o.Version)
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

// Binary is a stand-in agent binary for arch: a minimal ELF header for
// the arch's machine (what imagebake checks), followed by the version.
func Binary(arch, version string) string {
	machine := map[string]uint16{"amd64": 62, "arm64": 183, "386": 3, "arm": 40, "riscv64": 243, "s390x": 22, "ppc64le": 21}[arch]
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1               // 64-bit, little-endian, version 1
	binary.LittleEndian.PutUint16(h[16:], 2) // an executable
	binary.LittleEndian.PutUint16(h[18:], machine)
	binary.LittleEndian.PutUint32(h[20:], 1)
	binary.LittleEndian.PutUint16(h[52:], 64) // header size
	binary.LittleEndian.PutUint16(h[54:], 56) // program header entry size
	binary.LittleEndian.PutUint16(h[58:], 64) // section header entry size
	return string(h) + "mozagent " + version + "\n"
}
