//go:build linux

package gitcache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// hostileGitConfig turns on what a CI machine often has (file transport for
// local submodules) and what no machine should (ext::), the way a user's
// environment would: git reads GIT_CONFIG_COUNT before any -c.
func hostileGitConfig(t *testing.T) {
	t.Setenv("GIT_CONFIG_COUNT", "2")
	t.Setenv("GIT_CONFIG_KEY_0", "protocol.file.allow")
	t.Setenv("GIT_CONFIG_VALUE_0", "always")
	t.Setenv("GIT_CONFIG_KEY_1", "protocol.ext.allow")
	t.Setenv("GIT_CONFIG_VALUE_1", "always")
}

func noMarker(t *testing.T, marker string) {
	t.Helper()
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("%s exists: a remote ran a command", marker)
	}
}

// A remote or ref that git could read as an option never becomes one: the
// public entry points refuse it, and below them every git command passes
// "--" before the URL, so even a URL that got there is only a path. ext::
// is refused whatever the user's configuration says.
func TestRemoteNeverAnOption(t *testing.T) {
	hostileGitConfig(t)
	root := t.TempDir()
	marker := filepath.Join(root, "PWNED")
	// a real repository, served over git://, and one on this machine that
	// an injected option could make git read with file transport
	work := filepath.Join(root, "work")
	testutil.Git(t, root, "init", "-q", "-b", "main", work)
	if err := os.WriteFile(filepath.Join(work, "f"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Git(t, work, "add", "f")
	testutil.Git(t, work, "commit", "-q", "-m", "one")
	testutil.Git(t, root, "clone", "-q", "--bare", work, filepath.Join(root, "srv", "m.git"))
	good := testutil.GitDaemon(t, filepath.Join(root, "srv")) + "/m.git"
	local := filepath.Join(root, "srv", "m.git")

	c, err := Open(filepath.Join(root, "cache"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	for _, url := range []string{
		"--upload-pack=touch " + marker + " #",
		"-oProxyCommand=touch " + marker,
		"-u touch " + marker,
		good + "\n--upload-pack=touch " + marker,
	} {
		_, err := c.Mirror(ctx, url)
		if !errors.Is(err, failure.ErrUsage) {
			t.Errorf("Mirror(%q) = %v, want a usage error", url, err)
		}
		noMarker(t, marker)
	}

	// ext:: does not start with "-": it reaches git, which must refuse it
	ext := "ext::sh -c touch% " + marker
	if m, err := c.Mirror(ctx, ext); err == nil {
		_, err = m.Pin(ctx, "branch", "main")
		m.Close()
		if err == nil || !strings.Contains(err.Error(), "transport 'ext' not allowed") {
			t.Errorf("Pin over %q = %v, want git's refusal of the ext transport", ext, err)
		}
	}
	noMarker(t, marker)

	// refs that would be options or other refspecs
	m, err := c.Mirror(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, ref := range []string{"--upload-pack=touch " + marker, "main:refs/heads/x", "-n", "ma\x00in", "a..b"} {
		if _, err := m.Pin(ctx, "branch", ref); !errors.Is(err, failure.ErrUsage) {
			t.Errorf("Pin(branch, %q) = %v, want a usage error", ref, err)
		}
	}
	if sha, err := m.Pin(ctx, "branch", "main"); err != nil || len(sha) != 40 {
		t.Fatalf("Pin(branch, main) = %q, %v", sha, err)
	}
	noMarker(t, marker)

	// below the gate: a mirror whose URL is an option, with a local
	// repository as the next argument (what git would take as the remote
	// if the URL were read as an option)
	bad := &Mirror{URL: "hostile", remote: splitRemote("--upload-pack=touch " + marker + " #"), root: m.root, stall: 5 * time.Second}
	if _, err := bad.lsRemote(ctx); err == nil {
		t.Error("ls-remote of an option-like URL succeeded")
	}
	if err := bad.fetchShallow(ctx, local); err == nil {
		t.Error("fetch of an option-like URL succeeded")
	}
	if err := bad.fetchAll(ctx); err == nil {
		t.Error("fetch --all of an option-like URL succeeded")
	}
	noMarker(t, marker)
}

// What held before stays held: a file:// remote naming a host directory
// that is not a repository, refs with shell characters, and a module
// whose .gitmodules names a hostile URL (submodules are never fetched:
// they become empty directories, as in git archive).
func TestHostileRemotesHeld(t *testing.T) {
	hostileGitConfig(t)
	root := t.TempDir()
	marker := filepath.Join(root, "PWNED")
	c, err := Open(filepath.Join(root, "cache"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if m, err := c.Mirror(ctx, "file:///etc"); err == nil {
		_, err = m.Pin(ctx, "tag", "v1")
		m.Close()
		if err == nil {
			t.Error("file:///etc gave a pin")
		}
	}

	work := filepath.Join(root, "work")
	testutil.Git(t, root, "init", "-q", "-b", "main", work)
	testutil.Must(t, os.WriteFile(filepath.Join(work, ".gitmodules"), []byte("[submodule \"evil\"]\n\tpath = evil\n\turl = ext::sh -c touch% "+marker+"\n"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(work, "f"), []byte("x\n"), 0o644))
	testutil.Git(t, work, "add", ".gitmodules", "f")
	// a gitlink (submodule entry) at evil, naming some commit
	testutil.Git(t, work, "update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("1", 40)+",evil")
	testutil.Git(t, work, "commit", "-q", "-m", "with a submodule")
	testutil.Git(t, root, "clone", "-q", "--bare", work, filepath.Join(root, "srv", "m.git"))
	url := testutil.GitDaemon(t, filepath.Join(root, "srv")) + "/m.git"
	m, err := c.Mirror(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, ref := range []string{"main;touch " + marker, "$(touch " + marker + ")", "`touch x`"} {
		if _, err := m.Pin(ctx, "branch", ref); err == nil {
			t.Errorf("Pin(branch, %q) succeeded", ref)
		}
	}
	sha, err := m.Pin(ctx, "branch", "main")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "tree")
	if err := m.WriteTree(ctx, sha, dir, time.Unix(0, 0), nil); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "evil")); err != nil || len(ents) != 0 {
		t.Errorf("the submodule is %v (%v), want an empty directory", ents, err)
	}
	noMarker(t, marker)
}
