package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// TestExitCodes checks the documented exit codes through the real command
// tree, as a CI script would see them.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "Bad")
	testutil.Must(t, os.WriteFile(bad, []byte("mod 'a', :git => 'u', :tga => 'v1'\n"), 0o644))
	good := filepath.Join(dir, "Puppetfile")
	testutil.Must(t, os.WriteFile(good, []byte("# no modules\n"), 0o644))
	stale := filepath.Join(dir, "Puppetfile.lock")
	testutil.Must(t, os.WriteFile(stale, []byte("version = 1\npuppetfile_sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nmoduledir = \"modules\"\n[[module]]\nname = \"gone\"\nkind = \"local\"\npath = \"modules/gone\"\n"), 0o644))
	testutil.Must(t, os.MkdirAll(filepath.Join(dir, "store", "tools"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "store", "tools", "index.json"), []byte(`{"version":1,"agents":[]}`), 0o644))
	cache := filepath.Join(dir, "cache")
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"version", []string{"version"}, failure.ExitOK},
		{"--version", []string{"--version"}, failure.ExitOK},
		{"unknown command", []string{"bogus"}, failure.ExitUsage},
		{"unknown flag", []string{"version", "--nope"}, failure.ExitUsage},
		{"bad Puppetfile", []string{"puppetfile", "show", "--puppetfile", bad, "--cache", cache}, failure.ExitUsage},
		{"stale lock", []string{"puppetfile", "verify", "--puppetfile", good, "--lock", stale, "--cache", cache}, failure.ExitVerify},
		{"no agent binaries", []string{"agents", "select", "mozagent", "--major", "2", "--arch", "arm64", "--store", filepath.Join(dir, "store")}, failure.ExitNotFound},
		{"bad release number", []string{"bake", "--repo", dir, "--release", "1.0", "--cache", cache}, failure.ExitUsage},
		{"unknown sub-command", []string{"catalog", "bogus"}, failure.ExitUsage},
		{"catalog list of a missing store", []string{"catalog", "list", "--store", filepath.Join(dir, "no-store")}, failure.ExitNotFound},
		{"revoke in a missing store", []string{"catalog", "revoke", "example", "1.0.0", "--store", filepath.Join(dir, "no-store"), "--reason", "r"}, failure.ExitNotFound},
		{"missing Puppetfile", []string{"puppetfile", "show", "--puppetfile", filepath.Join(dir, "nope"), "--cache", cache}, failure.ExitNotFound},
		{"too many arguments", []string{"catalog", "revoke", "example", "1.0.0", "r", "x"}, failure.ExitUsage},
		{"too few arguments", []string{"publish"}, failure.ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(context.Background(), tt.args); got != tt.want {
				t.Errorf("imagebake %v exit = %d, want %d", tt.args, got, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "no-store")); err == nil {
		t.Error("a failed catalog command created the store directory")
	}
	// a wrong argument count shows the command's usage line
	root := newRootCommand()
	root.SetArgs([]string{"publish", "a", "b"})
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	err := root.ExecuteContext(context.Background())
	if failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "usage: imagebake publish dist/NAME-X.Y.Z") {
		t.Errorf("publish with two arguments = %v, want exit 2 with its usage line", err)
	}
}
