// Package testutil holds the helpers the tests of several packages share:
// running git and other tools, generating the embedded example, reading
// tarballs back.
package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// GitEnv is the environment tests run git with: a fixed identity and
// date, no system or user configuration.
var GitEnv = []string{
	"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
	"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid",
	"GIT_AUTHOR_DATE=2024-05-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-05-01T00:00:00Z",
	"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
}

// Git runs git in dir and returns its output, trimmed; it fails the test
// when git fails.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), GitEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Run runs a command and returns its combined output; it fails the test
// when the command fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ModuleRoot is the folder holding go.mod, found from the test's working
// directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		up := filepath.Dir(d)
		if up == d {
			t.Fatal("no go.mod above the test's directory")
		}
		d = up
	}
}

// Example generates the embedded example (testdata/example/gen.sh) in
// root: the control repo, its module remotes and the base. It returns the
// control repo's path.
func Example(t testing.TB, root string) string {
	t.Helper()
	out := Run(t, filepath.Join(ModuleRoot(t), "testdata", "example", "gen.sh"), root)
	return strings.TrimSpace(out)
}

// Untar reads a tar (gzip-compressed or not) into a map from entry name
// (without a trailing slash) to content; a symlink reads "-> TARGET".
func Untar(t testing.TB, b []byte) map[string]string {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		v := string(c)
		if h.Typeflag == tar.TypeSymlink {
			v = "-> " + h.Linkname
		}
		out[strings.TrimSuffix(h.Name, "/")] = v
	}
}
