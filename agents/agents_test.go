package agents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

var ctx = context.Background()

// publish packs a tiny agent (a script printing its version) into store d.
func publish(t *testing.T, d *DirStore, name, version, os_, arch string) Entry {
	t.Helper()
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\necho %s %s %s/%s\n", name, version, os_, arch)
	if err := os.WriteFile(filepath.Join(src, "bin", name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e, _, err := Publish(ctx, d, src, PublishOptions{Name: name, Version: version, OS: os_, Arch: arch, Epoch: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newDir(t *testing.T) *DirStore {
	t.Helper()
	d, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// serve serves a directory store over HTTP on loopback and records every
// path requested.
func serve(t *testing.T, d *DirStore) (*httptest.Server, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var paths []string
	fs := http.FileServer(http.Dir(d.Root()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/") {
			t.Errorf("store listed a directory: %s", r.URL.Path)
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &paths
}

func httpStore(t *testing.T, url string) Store {
	t.Helper()
	s, err := NewStore(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSelectMatrix(t *testing.T) {
	t.Parallel()
	private := newDir(t)
	public := newDir(t)
	publish(t, public, "mozagent", "1.9.0", "linux", "arm64")
	publish(t, public, "mozagent", "2.3.1", "linux", "amd64")
	publish(t, public, "mozagent", "2.3.1", "linux", "arm64")
	publish(t, public, "mozagent", "2.4.0", "linux", "amd64")
	publish(t, public, "mozagent", "2.5.0-rc.1", "linux", "amd64")
	publish(t, public, "mozagent", "3.0.0", "linux", "amd64")
	publish(t, public, "mozagent", "2.6.0", "darwin", "arm64")
	publish(t, private, "mozagent", "2.4.1", "linux", "amd64")
	srv, paths := serve(t, public)
	chain := NewChain(private, httpStore(t, srv.URL))

	tests := []struct {
		name       string
		q          Query
		version    string
		fromPublic bool
	}{
		{"largest of major over the chain", Query{Name: "mozagent", Want: "2", OS: "linux", Arch: "amd64"}, "2.4.1", false},
		{"per arch: arm64 gets an older newest", Query{Name: "mozagent", Want: "2", OS: "linux", Arch: "arm64"}, "2.3.1", true},
		{"2.x spelling", Query{Name: "mozagent", Want: "2.x", OS: "linux", Arch: "arm64"}, "2.3.1", true},
		{"pre-release only when asked", Query{Name: "mozagent", Want: "2", OS: "linux", Arch: "amd64", Prerelease: true}, "2.5.0-rc.1", true},
		{"exact pre-release by name", Query{Name: "mozagent", Want: "2.5.0-rc.1", OS: "linux", Arch: "amd64"}, "2.5.0-rc.1", true},
		{"same major.minor (--patch)", Query{Name: "mozagent", Want: "2.3", OS: "linux", Arch: "amd64"}, "2.3.1", true},
		{"exact pin", Query{Name: "mozagent", Want: "2.4.0", OS: "linux", Arch: "amd64"}, "2.4.0", true},
		{"constraint", Query{Name: "mozagent", Want: ">=2.0 <2.4", OS: "linux", Arch: "amd64"}, "2.3.1", true},
		{"OS dimension", Query{Name: "mozagent", Want: "2", OS: "darwin", Arch: "arm64"}, "2.6.0", true},
		{"other major", Query{Name: "mozagent", Want: "1", OS: "linux", Arch: "arm64"}, "1.9.0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := chain.Select(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if s.Version != tt.version {
				t.Errorf("Select(%+v) = %s, want %s", tt.q, s.Version, tt.version)
			}
			if got := strings.HasPrefix(s.Source, srv.URL); got != tt.fromPublic {
				t.Errorf("Select(%+v) came from %s", tt.q, s.Source)
			}
		})
	}
	for _, p := range *paths {
		if p != "/tools/index.json" {
			t.Errorf("selection requested %s; only the index should be read", p)
		}
	}

	sels, err := chain.SelectArches(ctx, Query{Name: "mozagent", Want: "2", OS: "linux"}, []string{"amd64", "arm64"})
	if err != nil || len(sels) != 2 || sels[0].Version != "2.4.1" || sels[1].Version != "2.3.1" {
		t.Errorf("SelectArches = %+v, %v; want 2.4.1 amd64, 2.3.1 arm64", sels, err)
	}
}

func TestMissNamesStoresAndNearest(t *testing.T) {
	t.Parallel()
	private := newDir(t)
	os.MkdirAll(private.Tools(), 0o755) // a store without an index
	public := newDir(t)
	publish(t, public, "mozagent", "2.3.1", "linux", "amd64")
	publish(t, public, "mozagent", "2.4.0", "linux", "amd64")
	publish(t, public, "mozagent", "1.9.0", "linux", "arm64")
	srv, _ := serve(t, public)
	chain := NewChain(private, httpStore(t, srv.URL))
	_, err := chain.Select(ctx, Query{Name: "mozagent", Want: "2", OS: "linux", Arch: "arm64"})
	if !errors.Is(err, ErrNoMatch) || !errors.Is(err, failure.ErrNotFound) {
		t.Fatalf("Select = %v, want ErrNoMatch", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"no agent binaries for mozagent 2.x on linux/arm64",
		"searched: " + private.Location() + " (no index.json)",
		srv.URL + "/tools (index has 2.3.1, 2.4.0 for linux/amd64; 1.9.0 for linux/arm64)",
		"nearest:  mozagent-2.4.0-amd64 (other arch), mozagent-1.9.0-arm64 (other major)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("miss message:\n%s\nwant it to contain %q", msg, want)
		}
	}
	// no index anywhere is a different message from nothing matched
	_, err = NewChain(private).Select(ctx, Query{Name: "mozagent", Want: "2", OS: "linux", Arch: "arm64"})
	if err == nil || !strings.Contains(err.Error(), "no index") || strings.Contains(err.Error(), "index has") {
		t.Errorf("Select from a store without index = %v", err)
	}
}

func TestConflictingStores(t *testing.T) {
	t.Parallel()
	a, b := newDir(t), newDir(t)
	publish(t, a, "mozagent", "2.4.0", "linux", "amd64")
	publish(t, b, "mozagent", "2.4.0", "linux", "amd64")
	// b's 2.4.0 is other content: rebuild it from another script
	src := t.TempDir()
	testutil.Must(t, os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(src, "bin", "mozagent"), []byte("other"), 0o755))
	testutil.Must(t, os.Remove(filepath.Join(b.Tools(), "mozagent-2.4.0-amd64.tar.gz")))
	testutil.Must(t, os.Remove(filepath.Join(b.Tools(), IndexName)))
	if _, _, err := Publish(ctx, b, src, PublishOptions{Name: "mozagent", Version: "2.4.0", OS: "linux", Arch: "amd64"}); err != nil {
		t.Fatal(err)
	}
	_, err := NewChain(a, b).Select(ctx, Query{Name: "mozagent", Want: "2", OS: "linux", Arch: "amd64"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), a.Location()) || !strings.Contains(err.Error(), b.Location()) {
		t.Errorf("Select over conflicting stores = %v, want ErrConflict naming both", err)
	}
}

// agents publish takes a tree laid out as images run it (bin/NAME, an
// executable) and names what is missing otherwise; nothing is published.
func TestPublishChecksLayout(t *testing.T) {
	t.Parallel()
	d := newDir(t)
	o := PublishOptions{Name: "mozagent", Version: "2.4.0", OS: "linux", Arch: "amd64"}
	flat := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(flat, "mozagent"), []byte("x"), 0o755))
	noexec := t.TempDir()
	testutil.Must(t, os.MkdirAll(filepath.Join(noexec, "bin"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(noexec, "bin", "mozagent"), []byte("x"), 0o644))
	for _, c := range []struct{ from, want string }{
		{flat, "it has no bin/mozagent (its top level: mozagent)"},
		{noexec, "bin/mozagent is not executable (mode 0644)"},
	} {
		_, _, err := Publish(ctx, d, c.from, o)
		if !errors.Is(err, failure.ErrUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("publish of %s = %v, want a usage error saying %q", c.from, err, c.want)
		}
	}
	if entries, _ := os.ReadDir(d.Tools()); len(entries) > 1 { // the index at most
		t.Errorf("a refused publish left files in the store: %v", entries)
	}
}

func TestPublishImmutable(t *testing.T) {
	t.Parallel()
	d := newDir(t)
	e := publish(t, d, "mozagent", "2.4.0", "linux", "amd64")
	again := publish(t, d, "mozagent", "2.4.0", "linux", "amd64") // same content: no-op
	if again.SHA256 != e.SHA256 {
		t.Errorf("re-publish changed sha256 %s -> %s: the tarball is not deterministic", e.SHA256, again.SHA256)
	}
	src := t.TempDir()
	testutil.Must(t, os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(src, "bin", "mozagent"), []byte("other content"), 0o755))
	_, _, err := Publish(ctx, d, src, PublishOptions{Name: "mozagent", Version: "2.4.0", OS: "linux", Arch: "amd64"})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("publishing other content under 2.4.0 = %v, want ErrExists", err)
	}
	ix, _ := d.Index(ctx)
	if len(ix.Agents) != 1 || ix.Agents[0].SHA256 != e.SHA256 {
		t.Errorf("index after a refused publish = %+v", ix.Agents)
	}
	// Reindex finds the same entry from the file alone
	testutil.Must(t, os.Remove(filepath.Join(d.Tools(), IndexName)))
	testutil.Must(t, os.WriteFile(filepath.Join(d.Tools(), "README.tar.gz"), []byte("x"), 0o644))
	rix, skipped, err := Reindex(ctx, d)
	if err != nil || len(rix.Agents) != 1 || rix.Agents[0].SHA256 != e.SHA256 || len(skipped) != 1 {
		t.Errorf("Reindex = %+v, skipped %v, %v", rix, skipped, err)
	}
}

func TestFetchVerifies(t *testing.T) {
	t.Parallel()
	d := newDir(t)
	publish(t, d, "mozagent", "2.4.0", "linux", "amd64")
	srv, _ := serve(t, d)
	cache := t.TempDir()
	chain := NewChain(httpStore(t, srv.URL))
	s, err := chain.Select(ctx, Query{Name: "mozagent", Want: "2", OS: "linux", Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Fetch(ctx, s, cache)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "2.4.0-amd64")
	if err := Unpack(p, dst, 0); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "bin", "mozagent")); !strings.Contains(string(b), "mozagent 2.4.0 linux/amd64") {
		t.Errorf("unpacked agent = %q", b)
	}

	// tampered: same size, other bytes
	file := filepath.Join(d.Tools(), s.Path)
	b, _ := os.ReadFile(file)
	b[len(b)-1] ^= 0xff
	testutil.Must(t, os.WriteFile(file, b, 0o644))
	testutil.Must(t, os.RemoveAll(cache))
	if _, err := Fetch(ctx, s, cache); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("Fetch of a tampered tarball = %v, want ErrChecksum on sha256", err)
	}
	if _, err := Fetch(ctx, Selection{Entry: s.Entry, Store: d, URL: file}, cache); !errors.Is(err, ErrChecksum) {
		t.Errorf("Fetch of a tampered tarball from a directory store = %v, want ErrChecksum", err)
	}
	// truncated
	testutil.Must(t, os.WriteFile(file, b[:len(b)/2], 0o644))
	if _, err := Fetch(ctx, s, cache); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("Fetch of a truncated tarball = %v, want ErrChecksum on size", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "agents")); len(ents) != 0 {
		t.Errorf("refused downloads left %v in the cache", ents)
	}
}

func TestSyncResumes(t *testing.T) {
	t.Parallel()
	pub := newDir(t)
	publish(t, pub, "mozagent", "2.3.1", "linux", "amd64")
	big := publish(t, pub, "mozagent", "2.4.0", "linux", "arm64")
	publish(t, pub, "mozagent", "1.9.0", "linux", "arm64")
	publish(t, pub, "other", "1.0.0", "linux", "arm64")
	srv, _ := serve(t, pub)
	to := newDir(t)
	// an interrupted earlier run left half a file
	whole, _ := os.ReadFile(filepath.Join(pub.Tools(), big.Path))
	testutil.Must(t, os.MkdirAll(to.Tools(), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(to.Tools(), big.Path+".part"), whole[:len(whole)/2], 0o644))

	rep, err := Sync(ctx, httpStore(t, srv.URL), to, SyncOptions{Name: "mozagent", Major: "2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Fetched) != 2 {
		t.Errorf("fetched %d, want 2 (mozagent 2.x only)", len(rep.Fetched))
	}
	got, _ := os.ReadFile(filepath.Join(to.Tools(), big.Path))
	if string(got) != string(whole) {
		t.Error("resumed file differs from the source")
	}
	ents, _ := os.ReadDir(to.Tools())
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".part") {
			t.Errorf("%s left behind", e.Name())
		}
	}
	ix, err := to.Index(ctx)
	if err != nil || len(ix.Agents) != 2 {
		t.Fatalf("mirror index = %+v, %v", ix, err)
	}
	rep, err = Sync(ctx, httpStore(t, srv.URL), to, SyncOptions{Name: "mozagent", Major: "2"})
	if err != nil || len(rep.Fetched) != 0 || len(rep.Skipped) != 2 {
		t.Errorf("second sync fetched %d skipped %d (%v), want 0 and 2", len(rep.Fetched), len(rep.Skipped), err)
	}
	// a corrupt source file is refused and leaves nothing under its final name
	testutil.Must(t, os.WriteFile(filepath.Join(pub.Tools(), "other-1.0.0-arm64.tar.gz"), []byte("corrupt"), 0o644))
	_, err = Sync(ctx, httpStore(t, srv.URL), to, SyncOptions{Name: "other"})
	if !errors.Is(err, ErrChecksum) {
		t.Errorf("sync of a corrupt file = %v, want ErrChecksum", err)
	}
	if _, err := os.Stat(filepath.Join(to.Tools(), "other-1.0.0-arm64.tar.gz")); err == nil {
		t.Error("a corrupt file landed under its final name")
	}
}

func TestParseFileName(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, name, ver, os, arch string }{
		{"mozagent-2.4.0-amd64.tar.gz", "mozagent", "2.4.0", "linux", "amd64"},
		{"moz-agent-2.4.0-darwin-arm64.tar.gz", "moz-agent", "2.4.0", "darwin", "arm64"},
		{"mozagent-2.5.0-rc.1-amd64.tar.gz", "mozagent", "2.5.0-rc.1", "linux", "amd64"},
	}
	for _, tt := range tests {
		n, v, o, a, ok := ParseFileName(tt.in)
		if !ok || n != tt.name || v != tt.ver || o != tt.os || a != tt.arch {
			t.Errorf("ParseFileName(%q) = %q %q %q %q %v", tt.in, n, v, o, a, ok)
		}
		if f := FileName(n, v, o, a); f != tt.in {
			t.Errorf("FileName round trip = %q, want %q", f, tt.in)
		}
	}
	for _, bad := range []string{"mozagent.tar.gz", "mozagent-2.4-amd64.tar.gz", "x-1.0.0-amd64.zip"} {
		if _, _, _, _, ok := ParseFileName(bad); ok {
			t.Errorf("ParseFileName(%q) accepted", bad)
		}
	}
}

func TestParseIndexRejects(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		`{"version":2,"agents":[]}`,
		`{"version":1,"agents":[{"name":"A","version":"1.0.0","os":"linux","arch":"amd64","size":1,"sha256":"` + strings.Repeat("a", 64) + `","path":"a.tar.gz"}]}`,
		`{"version":1,"agents":[]} trailing`,
		`{"version":1,"agents":[{"name":"a","version":"1.0","os":"linux","arch":"amd64","size":1,"sha256":"` + strings.Repeat("a", 64) + `","path":"a.tar.gz"}]}`,
		`{"version":1,"agents":[{"name":"a","version":"1.0.0","os":"linux","arch":"amd64","size":1,"sha256":"` + strings.Repeat("a", 64) + `","path":"../a.tar.gz"}]}`,
	} {
		if _, err := ParseIndex([]byte(src)); !errors.Is(err, ErrBadIndex) {
			t.Errorf("ParseIndex(%s) = %v, want ErrBadIndex", src, err)
		}
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"version":1,"agents":[{"name":"a","version":"1.0.0","os":"linux","arch":"amd64","size":1,"sha256":"` + strings.Repeat("a", 64) + `","path":"a.tar.gz"}]}`))
	f.Add([]byte(`{"version":1,"agents":[]}`))
	f.Add([]byte(`{"version":1,"agents":[{"name":"a","version":"1.0.0","os":"linux","arch":"amd64","size":1,"sha256":"` + strings.Repeat("a", 64) + `","path":"a/../../x.tar.gz"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := ParseIndex(b)
		if err != nil {
			return
		}
		for _, e := range ix.Agents {
			// an accepted path stays inside tools/: clean, relative, no ".."
			// element anywhere (".../x" is a name), no backslash
			up := false
			for _, el := range strings.Split(e.Path, "/") {
				up = up || el == ".."
			}
			if e.SemVer() == nil || strings.HasPrefix(e.Path, "/") || up || path.Clean(e.Path) != e.Path || strings.Contains(e.Path, "\\") {
				t.Fatalf("accepted entry %+v", e)
			}
		}
		if _, err := ix.Encode(); err != nil && !errors.Is(err, ErrBadIndex) {
			t.Fatalf("Encode of a parsed index: %v", err)
		}
		_ = io.Discard
	})
}

// A withdrawn upload is skipped by selection (a miss says why), survives a
// re-index, and still serves a release that pinned it by sha256.
func TestWithdraw(t *testing.T) {
	t.Parallel()
	d := newDir(t)
	publish(t, d, "mozagent", "2.4.0", "linux", "amd64")
	bad := publish(t, d, "mozagent", "2.4.1", "linux", "amd64")
	if _, err := Withdraw(ctx, d, "mozagent", "2.4.1", "linux", "amd64", "segfaults on start", time.Unix(1.8e9, 0)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Reindex(ctx, d); err != nil {
		t.Fatal(err)
	}
	s, err := NewChain(d).Select(ctx, Query{Name: "mozagent", Want: "2", OS: "linux", Arch: "amd64"})
	if err != nil || s.Version != "2.4.0" {
		t.Errorf("select after withdrawing 2.4.1 = %s, %v; want 2.4.0", s.Version, err)
	}
	_, err = NewChain(d).Select(ctx, Query{Name: "mozagent", Want: "2.4.1", OS: "linux", Arch: "amd64"})
	if !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "withdrawn: segfaults on start") {
		t.Errorf("select of the withdrawn version = %v, want a miss saying why", err)
	}
	if s, err := NewChain(d).Select(ctx, Query{Name: "mozagent", Want: "2.4.1", OS: "linux", Arch: "amd64", SHA256: bad.SHA256}); err != nil || s.SHA256 != bad.SHA256 {
		t.Errorf("a release pinned to the withdrawn sha256 cannot be rebuilt: %v", err)
	}
	if _, err := Withdraw(ctx, d, "mozagent", "9.9.9", "linux", "amd64", "x", time.Now()); !errors.Is(err, failure.ErrNotFound) || !strings.Contains(err.Error(), "2.4.0 linux/amd64") {
		t.Errorf("withdrawing what is not there = %v", err)
	}
}
