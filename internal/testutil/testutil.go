// Package testutil holds the helpers the tests of several packages share:
// running git and other tools, generating the embedded example, reading
// tarballs back.
package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// ModuleRoot is the folder holding the main module's go.mod (module
// github.com/imagebake/imagebake), found from the test's working directory;
// a nested module's go.mod (the Packer plugin's) is passed over.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/imagebake/imagebake\n")) {
			return d
		}
		up := filepath.Dir(d)
		if up == d {
			t.Fatal("no go.mod of module github.com/imagebake/imagebake above the test's directory")
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

var runTimes = regexp.MustCompile(`"(startedOn|finishedOn)": "[^"]*"`)

// TreeFiles reads every file under dir, by path relative to dir (a
// provenance's run times blanked: they are the run's, not the inputs').
func TreeFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		if filepath.Base(p) == "provenance.intoto.json" {
			// the same inputs give the same provenance except the times
			b = runTimes.ReplaceAll(b, []byte(`"$1": "TIME"`))
		}
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// GitHTTP serves the bare repositories under dir over git's smart HTTP
// protocol (git http-backend behind net/http/cgi) on a loopback port until
// the test ends, and returns the base URL ("http://127.0.0.1:PORT"). wrap,
// when not nil, wraps the handler: to ask for credentials, to play an old
// server, to cut a pack short.
func GitHTTP(t testing.TB, dir string, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = &cgi.Handler{Path: git, Args: []string{"http-backend"}, Env: []string{
		"GIT_PROJECT_ROOT=" + dir, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*"}}
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Searchable lets other users search every directory from dir up to /
// (a test's temporary directories are 0700), adding the others' search
// bit and changing nothing else: /tmp keeps its 1777.
func Searchable(t testing.TB, dir string) {
	t.Helper()
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode()|0o001); err != nil {
				t.Fatal(err)
			}
		}
		if d == filepath.Dir(d) {
			return
		}
	}
}

// Must fails the test at once when a setup step (writing a fixture,
// making a directory) failed, naming the error there rather than in a
// confusing later failure.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("test setup: %v", err)
	}
}
