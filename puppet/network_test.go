//go:build linux

package puppet

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// longHistory adds n commits to u's main branch and pushes them, so that a
// whole-history fetch and a one-commit fetch differ.
func (u *upstream) longHistory(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		u.commit(t, map[string]string{"manifests/history.pp": fmt.Sprintf("# %d\n", i)}, fmt.Sprintf("history %d", i))
	}
	testutil.Git(t, u.work, "tag", "v2.0.0")
	u.push(t, "main", "v2.0.0")
}

// cacheRepo is the one repository under cache/git.
func cacheRepo(t *testing.T, cache string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(cache, "git", "*.git"))
	if len(m) != 1 {
		t.Fatalf("cache repositories %v, want one", m)
	}
	return m[0]
}

func commitsIn(t *testing.T, repo string) int {
	t.Helper()
	n, err := strconv.Atoi(testutil.Git(t, repo, "rev-list", "--all", "--count"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A cold install over the network fetches the pinned commits, not the
// history; a warm one asks the remote nothing for tags and commits.
func TestNetworkFetchesOnlyThePins(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"git", "http"} {
		t.Run(proto, func(t *testing.T) {
			root := t.TempDir()
			a := newUpstream(t, root, "alpha")
			a.longHistory(t, 40)
			serve(t, proto, a)
			env := filepath.Join(root, "env")
			pf := writePuppetfile(t, env, fmt.Sprintf(`
mod 'alpha', :git => '%s', :tag => 'v2.0.0'
mod 'old',   :git => '%s', :tag => 'v1.0.0'
mod 'pin',   :git => '%s', :commit => '%s'
`, a.url, a.url, a.url, a.rev(t, "v1.1.0")))
			cache := filepath.Join(root, "cache")
			moddir := filepath.Join(env, "modules")
			if _, err := Install(context.Background(), pf, nil, env, moddir, WithCache(cache)); err != nil {
				t.Fatal(err)
			}
			sameTree(t, filepath.Join(moddir, "alpha"), archive(t, a, "v2.0.0"))
			sameTree(t, filepath.Join(moddir, "old"), archive(t, a, "v1.0.0"))
			sameTree(t, filepath.Join(moddir, "pin"), archive(t, a, "v1.1.0"))
			wantAlpha := archive(t, a, "v2.0.0")
			repo := cacheRepo(t, cache)
			if n, all := commitsIn(t, repo), commitsIn(t, a.bare); n > 3 || all < 40 {
				t.Errorf("the cache holds %d commits of the upstream's %d, want only the 3 pinned", n, all)
			}

			// the repository gone from the server: tags and commits come from the cache
			if err := os.Rename(a.bare, a.bare+".gone"); err != nil {
				t.Fatal(err)
			}
			testutil.Must(t, os.RemoveAll(moddir))
			if _, err := Install(context.Background(), pf, nil, env, moddir, WithCache(cache), WithoutInstallState()); err != nil {
				t.Fatalf("warm install without the remote: %v", err)
			}
			sameTree(t, filepath.Join(moddir, "alpha"), wantAlpha)
		})
	}
}

// An old server (protocol v0 without allow-reachable-sha1-in-want)
// refuses commits by SHA: a lock is still built, through the tag, or
// through the whole history for a commit no ref names; a tag that moved
// since the lock is reported and the locked commit built.
func TestOldServerRefusesSHAs(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a := newUpstream(t, root, "alpha")
	b := newUpstream(t, root, "beta") // its own cache repository: the modules are fetched in parallel
	b.longHistory(t, 5)
	base := "git://" + v0Proxy(t, strings.TrimPrefix(testutil.GitDaemon(t, filepath.Dir(a.bare)), "git://"))
	a.url, b.url = base+"/alpha.git", base+"/beta.git"
	env := filepath.Join(root, "env")
	inner := testutil.Git(t, b.bare, "rev-parse", "main~2")
	pf := writePuppetfile(t, env, fmt.Sprintf(`
mod 'alpha', :git => '%s', :tag => 'v1.0.0'
mod 'inner', :git => '%s', :commit => '%s'
`, a.url, b.url, inner))
	lk, err := Lock(context.Background(), pf, WithCache(filepath.Join(root, "lockcache")))
	if err != nil {
		t.Fatal(err)
	}
	oldTag := a.rev(t, "v1.0.0")
	testutil.Git(t, a.work, "tag", "-f", "-a", "v1.0.0", "-m", "moved", "v1.1.0")
	a.push(t, "v1.0.0")

	var log bytes.Buffer
	moddir := filepath.Join(env, "modules")
	rep, err := Install(context.Background(), pf, lk, env, moddir, WithCache(filepath.Join(root, "cache")), WithLog(&log))
	if err != nil {
		t.Fatalf("locked install from a v0 server: %v", err)
	}
	sameTree(t, filepath.Join(moddir, "alpha"), archive(t, a, oldTag))
	sameTree(t, filepath.Join(moddir, "inner"), archive(t, b, inner))
	want := fmt.Sprintf(`module "alpha": tag v1.0.0 in %s moved: locked %s, now %s`, a.url, oldTag, a.rev(t, "v1.1.0"))
	if len(rep.Drift) != 1 || rep.Drift[0].String() != want || !strings.Contains(log.String(), want) {
		t.Errorf("drift %v, log %q; want %q", rep.Drift, log.String(), want)
	}
}

// v0Proxy forwards git:// connections to addr with the client's request
// for protocol v2 taken out of the first packet, so the server speaks v0
// and refuses commits it did not advertise, as old servers do.
func v0Proxy(t *testing.T, addr string) string {
	return serveTCP(t, func(c net.Conn) {
		defer c.Close()
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
		if err != nil || n < 4 {
			return
		}
		req := make([]byte, n-4)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		if i := bytes.Index(req, []byte("\x00\x00version=")); i >= 0 {
			req = append(req[:i+1], 0)
		}
		s, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer s.Close()
		fmt.Fprintf(s, "%04x%s", len(req)+4, req)
		go io.Copy(s, c)
		io.Copy(c, s)
	})
}

// serveTCP hands every connection to a loopback listener to handle, until
// the test ends, and returns its host:port.
func serveTCP(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return l.Addr().String()
}

// Hung remotes are stopped, each named; the other modules are installed.
func TestStalledRemotesStoppedTogether(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a := newUpstream(t, root, "alpha")
	serve(t, "git", a)
	// each hung server notes when its first connection came and when the
	// client gave it up: stopped together means both were held at once
	var mu sync.Mutex
	var accepted, dropped []time.Time
	hungServer := func() string {
		first := true
		return serveTCP(t, func(c net.Conn) {
			mu.Lock()
			mine := first
			first = false
			if mine {
				accepted = append(accepted, time.Now())
			}
			mu.Unlock()
			io.Copy(io.Discard, c)
			if mine {
				mu.Lock()
				dropped = append(dropped, time.Now())
				mu.Unlock()
			}
		})
	}
	hung1, hung2 := "git://"+hungServer()+"/one.git", "http://"+hungServer()+"/two.git"
	env := filepath.Join(root, "env")
	pf := writePuppetfile(t, env, fmt.Sprintf(`
mod 'one',   :git => '%s', :tag => 'v1'
mod 'alpha', :git => '%s', :tag => 'v1.0.0'
mod 'two',   :git => '%s', :branch => 'main'
`, hung1, a.url, hung2))
	moddir := filepath.Join(env, "modules")
	start := time.Now()
	_, err := Install(context.Background(), pf, nil, env, moddir, WithCache(filepath.Join(root, "cache")), WithStall(time.Second))
	if err == nil {
		t.Fatal("install from hung remotes succeeded")
	}
	t.Log(err)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v with a 1s stall timeout", d)
	}
	for _, want := range []string{`module "one"`, hung1, `module "two"`, hung2, "nothing received for 1s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	sameTree(t, filepath.Join(moddir, "alpha"), archive(t, a, "v1.0.0"))
	// a server notes a dropped connection once its read returns, which may
	// come a moment after Install returned
	for i := 0; i < 100; i++ {
		mu.Lock()
		n := len(dropped)
		mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != 2 || len(dropped) != 2 {
		t.Fatalf("the hung servers saw %d connections and %d given up, want 2 and 2", len(accepted), len(dropped))
	}
	if last, first := slices.MaxFunc(accepted, time.Time.Compare), slices.MinFunc(dropped, time.Time.Compare); !last.Before(first) {
		t.Errorf("the hung remotes were waited on one after another (the second was reached %v after the first was given up), not together", last.Sub(first))
	}
}

// A pack cut short, or a server that stops mid-pack, fails naming the
// module and URL and leaves a cache the next run uses.
func TestBrokenPackLeavesUsableCache(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"truncated", "stalled"} {
		t.Run(mode, func(t *testing.T) {
			root := t.TempDir()
			a := newUpstream(t, root, "alpha")
			noise := make([]byte, 300<<10)
			rand.Read(noise)
			a.commit(t, map[string]string{"files/big.bin": string(noise)}, "big")
			testutil.Git(t, a.work, "tag", "v3.0.0")
			a.push(t, "main", "v3.0.0")
			var broken atomic.Bool
			broken.Store(true)
			base := testutil.GitHTTP(t, filepath.Dir(a.bare), func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !broken.Load() || r.Method != http.MethodPost {
						h.ServeHTTP(w, r)
						return
					}
					body, _ := io.ReadAll(r.Body)
					r.Body = io.NopCloser(bytes.NewReader(body))
					if r.Header.Get("Content-Encoding") == "gzip" {
						if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
							body, _ = io.ReadAll(zr)
						}
					}
					if !bytes.Contains(body, []byte("command=fetch")) { // ls-refs, not the pack
						h.ServeHTTP(w, r)
						return
					}
					cut := &cutWriter{ResponseWriter: w, left: 20000, stall: mode == "stalled", done: r.Context().Done()}
					h.ServeHTTP(cut, r)
				})
			})
			a.url = base + "/alpha.git"
			env := filepath.Join(root, "env")
			pf := writePuppetfile(t, env, fmt.Sprintf("mod 'alpha', :git => '%s', :tag => 'v3.0.0'\n", a.url))
			cache := filepath.Join(root, "cache")
			moddir := filepath.Join(env, "modules")
			_, err := Install(context.Background(), pf, nil, env, moddir, WithCache(cache), WithStall(2*time.Second))
			if err == nil {
				t.Fatal("install from a broken pack succeeded")
			}
			t.Log(err)
			for _, want := range []string{`module "alpha"`, a.url} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if out, err := exec.Command("git", "--git-dir", cacheRepo(t, cache), "fsck", "--no-dangling").CombinedOutput(); err != nil {
				t.Errorf("git fsck of the cache after a broken pack: %v\n%s", err, out)
			}
			broken.Store(false)
			if _, err := Install(context.Background(), pf, nil, env, moddir, WithCache(cache)); err != nil {
				t.Fatalf("install after the broken one: %v", err)
			}
			sameTree(t, filepath.Join(moddir, "alpha"), archive(t, a, "v3.0.0"))
		})
	}
}

// cutWriter passes on the first left bytes of a response, then ends it
// (truncated) or holds it open (stalled) until the client gives up.
type cutWriter struct {
	http.ResponseWriter
	left  int
	stall bool
	done  <-chan struct{}
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("cut")
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	c.left -= len(p)
	n, err := c.ResponseWriter.Write(p)
	if c.left <= 0 {
		c.ResponseWriter.(http.Flusher).Flush()
		if c.stall {
			select { // until the client hangs up
			case <-c.done:
			case <-time.After(30 * time.Second):
			}
		}
		return n, errors.New("cut")
	}
	return n, err
}

// A token in a module URL is used to fetch and written nowhere: not in
// the lock, the cache, the module dir, the log or an error.
func TestCredentialsNeverWritten(t *testing.T) {
	t.Parallel()
	const token = "s3cr3tT0KEN4242"
	root := t.TempDir()
	a := newUpstream(t, root, "alpha")
	base := testutil.GitHTTP(t, filepath.Dir(a.bare), func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != token {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "who are you", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	url := strings.Replace(base, "http://", "http://alice:"+token+"@", 1) + "/alpha.git"
	env := filepath.Join(root, "env")
	pf := writePuppetfile(t, env, fmt.Sprintf(`
mod 'alpha', :git => '%s', :tag => 'v1.0.0'
mod 'beta',  :git => '%s', :branch => 'feature#1'
`, url, url))
	cache := filepath.Join(root, "cache")
	var log bytes.Buffer
	lk, err := Lock(context.Background(), pf, WithCache(cache), WithLog(&log))
	if err != nil {
		t.Fatal(err)
	}
	moddir := filepath.Join(env, "modules")
	if _, err := Install(context.Background(), pf, lk, env, moddir, WithCache(cache), WithLog(&log)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, filepath.Join(moddir, "alpha"), archive(t, a, "v1.0.0"))
	text, err := lk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := lk.Find("alpha"); m.Source != base+"/alpha.git" {
		t.Errorf("lock source %q, want %q", m.Source, base+"/alpha.git")
	}

	// failures: a tag that is not there, a wrong token
	bad := writePuppetfile(t, filepath.Join(root, "bad"), fmt.Sprintf(`
mod 'alpha', :git => '%s', :tag => 'v9'
mod 'beta',  :git => '%s', :tag => 'v1.0.0'
`, url, strings.Replace(url, token, "wrongT0KEN4242", 1)))
	_, err = Lock(context.Background(), bad, WithCache(cache), WithLog(&log))
	if err == nil {
		t.Fatal("lock of a missing tag and a wrong token succeeded")
	}
	// the token travels base64-encoded in an Authorization header too:
	// neither form may be written anywhere
	secrets := []string{token, "wrongT0KEN4242",
		base64.StdEncoding.EncodeToString([]byte("alice:" + token)), base64.StdEncoding.EncodeToString([]byte("alice:wrongT0KEN4242"))}
	leaks := func(b []byte) bool {
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				return true
			}
		}
		return false
	}
	for _, s := range []string{string(text), log.String(), err.Error()} {
		if leaks([]byte(s)) {
			t.Errorf("a token in %q", s)
		}
	}
	for _, dir := range []string{cache, env} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == pf.Path {
				return nil // the user's own
			}
			if leaks([]byte(p)) {
				t.Errorf("the token in the path %s", p)
			}
			if d.Type().IsRegular() {
				if b, _ := os.ReadFile(p); leaks(b) {
					t.Errorf("the token in %s", p)
				}
			}
			return nil
		})
	}
	if !errors.Is(err, failure.ErrNotFound) && !strings.Contains(err.Error(), "v9") {
		t.Errorf("error %v does not say what was missing", err)
	}
}

// A module with a 50 MB file installs whole over the network.
func TestLargeFile(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("50 MB")
	}
	root := t.TempDir()
	a := newUpstream(t, root, "alpha")
	big := filepath.Join(a.work, "files", "big.bin")
	testutil.Must(t, os.MkdirAll(filepath.Dir(big), 0o755))
	testutil.Run(t, "sh", "-c", "head -c 52428800 /dev/urandom > "+big)
	testutil.Git(t, a.work, "add", "-A")
	testutil.Git(t, a.work, "commit", "-q", "-m", "big")
	testutil.Git(t, a.work, "tag", "v5.0.0")
	a.push(t, "main", "v5.0.0")
	serve(t, "git", a)
	env := filepath.Join(root, "env")
	pf := writePuppetfile(t, env, fmt.Sprintf("mod 'alpha', :git => '%s', :tag => 'v5.0.0'\n", a.url))
	moddir := filepath.Join(env, "modules")
	if _, err := Install(context.Background(), pf, nil, env, moddir, WithCache(filepath.Join(root, "cache"))); err != nil {
		t.Fatal(err)
	}
	sameTree(t, filepath.Join(moddir, "alpha"), archive(t, a, "v5.0.0"))
}
