//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/testutil"
)

// tree writes files (path: content; "->x" makes a symlink to x) under dir.
func tree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		testutil.Must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		if target, ok := strings.CutPrefix(c, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// The sandbox's root is the union of its directories, the top one
// winning, read-only but for its private tmpfs mounts; the program sees
// no host /proc (only its own PID namespace), no network but loopback,
// no capabilities, and a /dev with null, zero and urandom.
func TestRunUnionReadOnly(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		if os.Getenv("IMAGEBAKE_NO_SKIP") != "" {
			t.Fatal("bwrap is needed (make test installs bubblewrap)")
		}
		t.Skip("no bwrap")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("no busybox (busybox-static)")
	}
	dir := t.TempDir()
	testutil.Must(t, os.Chmod(dir, 0o755))
	testutil.Searchable(t, filepath.Dir(dir)) // reachable by nobody when the test runs as root
	base, top := filepath.Join(dir, "base"), filepath.Join(dir, "top")
	tree(t, base, map[string]string{"etc/a": "base-a", "etc/b": "base-b", "etc/sub/x": "base-x", "bin": "->usr/bin", "usr/bin/.keep": ""})
	tree(t, top, map[string]string{"etc/b": "top-b", "etc/sub/y": "top-y", "opt/app/run": "app"})
	b, _ := os.ReadFile(bb)
	testutil.Must(t, os.WriteFile(filepath.Join(base, "usr", "bin", "busybox"), b, 0o755))
	script := `cat /etc/a /etc/b /etc/sub/x /etc/sub/y /opt/app/run; echo;
ls /bin/busybox >/dev/null && echo symlink-ok
echo w > /etc/new 2>/dev/null && echo WROTE-ETC
echo w > /tmp/new && echo tmp-ok
ls /proc | grep -c '^[0-9]'
grep CapEff /proc/self/status
grep NoNewPrivs /proc/self/status
ip link 2>/dev/null | grep -c 'eth'
head -c 4 /dev/urandom | wc -c`
	t.Setenv("SANDBOX_SECRET", "s3cret")
	res, err := Run(context.Background(), Spec{Lower: []string{top, base}, Writable: []string{"/tmp"}, Args: []string{"/usr/bin/busybox", "sh", "-c", script}, Env: []string{"PATH=/usr/bin"}})
	out := string(res.Output)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	for _, want := range []string{"base-atop-bbase-xtop-yapp\nsymlink-ok\n", "Read-only file system", "tmp-ok", "CapEff:\t0000000000000000\nNoNewPrivs:\t1\n0\n4"} {
		if !strings.Contains(out, want) {
			t.Errorf("in the sandbox, want %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "WROTE-ETC") || strings.Contains(out, "s3cret") {
		t.Errorf("the sandbox wrote its root or saw the host's environment:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(top, "etc", "new")); err == nil {
		t.Error("a write reached a lower directory")
	}

	// directories given relative to the working directory (bake --out
	// dist) are the ones bound
	t.Chdir(dir)
	res, err = Run(context.Background(), Spec{Lower: []string{"top", "base"}, Args: []string{"/usr/bin/busybox", "cat", "/etc/b", "/etc/a"}})
	if err != nil || string(res.Output) != "top-bbase-a" {
		t.Errorf("relative directories: %q, %v", res.Output, err)
	}

	// an exit status comes back as an *ExitError; output past the limit
	// stops the run
	_, err = Run(context.Background(), Spec{Lower: []string{base}, Args: []string{"/usr/bin/busybox", "sh", "-c", "exit 3"}})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Errorf("exit 3 = %v", err)
	}
	res, err = Run(context.Background(), Spec{Lower: []string{base}, Args: []string{"/usr/bin/busybox", "sh", "-c", "while :; do echo yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy; done"},
		Limits: Limits{Output: 1 << 20, Tail: 100}})
	if !errors.Is(err, ErrLimit) || len(res.Output) != 100 || res.Written < 1<<20 {
		t.Errorf("endless output = %v, kept %d bytes of %d", err, len(res.Output), res.Written)
	}

	// a run stopped by its context leaves no process behind, not even
	// for a moment: Run returns once the sandbox's PID namespace is gone
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	mark := fmt.Sprintf("%d", time.Now().UnixNano())
	_, err = Run(ctx, Spec{Lower: []string{base}, Args: []string{"/usr/bin/busybox", "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do /usr/bin/busybox sleep 600 " + mark + " & done; wait"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a run past its context = %v", err)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(b), mark) {
			t.Errorf("process %s outlived Run: %q", e.Name(), b)
		}
	}
}

// A writable path under a symlink of the image, or a missing program
// path, is refused before anything runs.
func TestBwrapArgsRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tree(t, dir, map[string]string{"var/run": "->/run", "etc/x": ""})
	if _, err := bwrapArgs(Spec{Lower: []string{dir}, Writable: []string{"/var/run/puppet"}, Args: []string{"/bin/sh"}}, DefaultLimits); err == nil {
		t.Error("a writable path below a symlink was taken")
	}
	if _, err := bwrapArgs(Spec{Lower: []string{dir}, Args: []string{"sh"}}, DefaultLimits); err == nil {
		t.Error("a relative program path was taken")
	}
}
