//go:build linux

package catalog

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/internal/testutil"
)

// layoutRelease is a release directory holding an OCI layout: one image
// of the shared base layer and a layer of its own.
func layoutRelease(t *testing.T, version string, base v1.Layer) string {
	t.Helper()
	dir := release(t, version, "sha256:"+strings.Repeat("1", 64))
	testutil.Must(t, os.RemoveAll(filepath.Join(dir, "blobs")))
	own := static.NewLayer([]byte("release "+version), types.OCILayer)
	img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), base, own)
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(dir, mutate.IndexMediaType(empty.Index, types.OCIImageIndex))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

func randomLayer(t *testing.T, n int) v1.Layer {
	b := make([]byte, n)
	rand.Read(b)
	return static.NewLayer(b, types.OCILayer)
}

func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-sb", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range strings.Fields(string(out))[0] {
		n = n*10 + int64(c-'0')
	}
	return n
}

// Three releases on one 4 MiB base: the directory store holds the base
// once (hard links into each release's layout), skopeo reads every
// release as an OCI layout, gc removes only old unheld blobs, and a
// store in the old layout migrates without a digest changing.
func TestPoolDirectoryStore(t *testing.T) {
	t.Parallel()
	signer, kr, _ := keys(t)
	root := t.TempDir()
	st := &Store{Root: root, Keys: kr}
	base := randomLayer(t, 4<<20)
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		if _, _, err := st.Publish(context.Background(), layoutRelease(t, v, base), signer); err != nil {
			t.Fatal(err)
		}
	}
	if n := duBytes(t, root); n > 6<<20 {
		t.Errorf("three releases on a 4 MiB base take %d bytes; want the base once (under 6 MiB)", n)
	}
	bd, _ := base.Digest()
	fi, err := os.Stat(filepath.Join(root, "blobs", "sha256", bd.Hex))
	if err != nil || fi.Sys().(*syscall.Stat_t).Nlink != 4 {
		t.Fatalf("the base in the pool: %v, links %v; want the pool's and three releases'", err, fi)
	}
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Fatal("skopeo is needed (make test installs it)")
	}
	for _, v := range []string{"1.0.0", "1.2.0"} {
		out := t.TempDir()
		if b, err := exec.Command("skopeo", "copy", "--quiet", "oci:"+filepath.Join(root, "images", "example-"+v), "oci:"+out+":x").CombinedOutput(); err != nil {
			t.Errorf("skopeo copy of the published %s: %v\n%s", v, err, b)
		}
	}

	// gc: an old unheld blob goes, a young one stays, held ones stay
	pool := filepath.Join(root, "blobs", "sha256")
	old, young := filepath.Join(pool, strings.Repeat("a", 64)), filepath.Join(pool, strings.Repeat("b", 64))
	testutil.Must(t, os.WriteFile(old, []byte("old"), 0o644))
	testutil.Must(t, os.WriteFile(young, []byte("young"), 0o644))
	past := time.Now().Add(-2 * time.Hour)
	testutil.Must(t, os.Chtimes(old, past, past))
	r, err := st.GC(context.Background(), time.Hour, true, time.Now())
	if err != nil || r.Removed != 1 || r.Young != 1 {
		t.Fatalf("gc --dry-run = %+v, %v", r, err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Error("a dry run removed a blob")
	}
	if r, err = st.GC(context.Background(), time.Hour, false, time.Now()); err != nil || r.Removed != 1 || r.Referenced < 4 {
		t.Fatalf("gc = %+v, %v", r, err)
	}
	if _, err := os.Stat(old); err == nil {
		t.Error("gc kept an old unheld blob")
	}
	if _, err := os.Stat(young); err != nil {
		t.Error("gc removed a blob inside the grace period")
	}

	// the old layout: each release with its own copies
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		d := filepath.Join(root, "images", "example-"+v, "blobs", "sha256")
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			p := filepath.Join(d, e.Name())
			b, _ := os.ReadFile(p)
			testutil.Must(t, os.Remove(p))
			testutil.Must(t, os.WriteFile(p, b, 0o644))
		}
	}
	testutil.Must(t, os.RemoveAll(pool))
	before := duBytes(t, root)
	n, err := st.Migrate(context.Background())
	if err != nil || n == 0 {
		t.Fatalf("migrate = %d, %v", n, err)
	}
	if after := duBytes(t, root); after > before/2 {
		t.Errorf("migrate: %d bytes before, %d after; want the base kept once", before, after)
	}
	out := t.TempDir()
	if b, err := exec.Command("skopeo", "copy", "--quiet", "oci:"+filepath.Join(root, "images", "example-1.1.0"), "oci:"+out+":x").CombinedOutput(); err != nil {
		t.Errorf("skopeo copy after migrate: %v\n%s", err, b)
	}
}

// A publish racing a gc with no grace period at all loses no blob: a
// pool blob removed between its adding and its linking is added again.
func TestPublishRacingGC(t *testing.T) {
	t.Parallel()
	signer, kr, _ := keys(t)
	root := t.TempDir()
	st := &Store{Root: root, Keys: kr}
	base := randomLayer(t, 1<<20)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				st.GC(context.Background(), 0, false, time.Now().Add(time.Hour))
			}
		}
	}()
	versions := []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0"}
	for _, v := range versions {
		if _, _, err := st.Publish(context.Background(), layoutRelease(t, v, base), signer); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	for _, v := range versions {
		out := t.TempDir()
		if b, err := exec.Command("skopeo", "copy", "--quiet", "oci:"+filepath.Join(root, "images", "example-"+v), "oci:"+out+":x").CombinedOutput(); err != nil {
			t.Errorf("%s after publishes raced a gc: %v\n%s", v, err, b)
		}
	}
}

// On S3 (versitygw): the second release on the same base sends only its
// own blobs; gc removes an old unheld blob; a release whose index names a
// blob the pool lacks stops gc (exit 4) naming it.
func TestPoolS3Store(t *testing.T) {
	srv := testutil.S3(t, "store")
	srv.Setenv(t)
	signer, kr, _ := keys(t)
	ctx := context.Background()
	w, err := OpenWriter(ctx, "s3://store/releases", kr, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	s3s := w.(*S3Store)
	base := randomLayer(t, 4<<20)
	for i, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		before := s3s.Reused.Load()
		if _, _, err := s3s.Publish(ctx, layoutRelease(t, v, base), signer); err != nil {
			t.Fatal(err)
		}
		if reused := s3s.Reused.Load() - before; i > 0 && reused != 1 { // the base (the config names each release's layers)
			t.Errorf("publish %s reused %d pool blobs, want 1 (the base)", v, reused)
		}
	}
	if n := duBytes(t, filepath.Join(srv.Dir, "store")); n > 6<<20 {
		t.Errorf("three releases on a 4 MiB base take %d bytes in the bucket; want the base once", n)
	}
	if err := s3s.B.CreateBytes(ctx, "blobs/sha256/"+strings.Repeat("a", 64), []byte("orphan")); err != nil {
		t.Fatal(err)
	}
	r, err := s3s.GC(ctx, time.Hour, false, time.Now().Add(2*time.Hour))
	if err != nil || r.Removed != 1 || r.Referenced == 0 {
		t.Fatalf("gc = %+v, %v", r, err)
	}
	bd, _ := base.Digest()
	if err := s3s.B.Delete(ctx, "blobs/sha256/"+bd.Hex); err != nil {
		t.Fatal(err)
	}
	if _, err := s3s.GC(ctx, time.Hour, false, time.Now().Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), bd.String()) {
		t.Errorf("gc with a blob missing from the pool = %v, want an error naming %s", err, bd)
	}
}

// A gc cannot run while a publish is between reusing a pool blob (left
// by an earlier failed publish, old and unreferenced) and the catalog
// listing its release: the publish holds a shared lease, so the gc stops
// (removing nothing) and the release keeps every blob; a publish cannot
// start while a gc holds its exclusive lease; a killed holder's lease,
// unrefreshed past LeaseStale, is passed over and removed by gc.
func TestS3GCRacingPublishHeld(t *testing.T) {
	srv := testutil.S3(t, "store")
	srv.Setenv(t)
	signer, kr, _ := keys(t)
	ctx := context.Background()
	w, err := OpenWriter(ctx, "s3://store/releases", kr, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	s3s := w.(*S3Store)
	base := randomLayer(t, 1<<20)
	if _, _, err := s3s.Publish(ctx, layoutRelease(t, "1.0.0", base), signer); err != nil {
		t.Fatal(err)
	}
	// an earlier publish of 1.1.0 died after sending its own layer
	own := static.NewLayer([]byte("release 1.1.0"), types.OCILayer)
	od, _ := own.Digest()
	ob, _ := own.Compressed()
	b, _ := io.ReadAll(ob)
	if err := s3s.B.CreateBytes(ctx, "blobs/sha256/"+od.Hex, b); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Hour) // every pool blob is past the grace period
	var gcErr error
	s3s.afterUpload = func() {
		_, gcErr = s3s.GC(ctx, time.Hour, false, later)
	}
	before := s3s.Reused.Load()
	if _, _, err := s3s.Publish(ctx, layoutRelease(t, "1.1.0", base), signer); err != nil {
		t.Fatal(err)
	}
	s3s.afterUpload = nil
	if s3s.Reused.Load()-before < 2 {
		t.Errorf("the publish reused %d pool blobs, want the base and its own layer", s3s.Reused.Load()-before)
	}
	if !errors.Is(gcErr, ErrLeased) || !strings.Contains(gcErr.Error(), `"publish example-1.1.0"`) {
		t.Errorf("gc during the publish = %v, want it refused naming the publish", gcErr)
	}
	if _, err := s3s.B.Head(ctx, "blobs/sha256/"+od.Hex); err != nil {
		t.Fatalf("the reused blob is gone after the gc: %v", err)
	}
	// the next gc runs, and finds every blob the releases name
	if r, err := s3s.GC(ctx, time.Hour, false, later); err != nil || r.Removed != 0 {
		t.Fatalf("gc after the publish = %+v, %v", r, err)
	}

	// a gc holding its lease refuses a publish
	var pubErr error
	s3s.gcHolding = func() {
		_, _, pubErr = s3s.Publish(ctx, layoutRelease(t, "1.2.0", base), signer)
	}
	if _, err := s3s.GC(ctx, time.Hour, true, later); err != nil {
		t.Fatal(err)
	}
	s3s.gcHolding = nil
	if !errors.Is(pubErr, ErrLeased) || !strings.Contains(pubErr.Error(), `"gc"`) {
		t.Errorf("publish during a gc = %v, want it refused naming the gc", pubErr)
	}
	if c, _ := s3s.Read(ctx); c.find("example", "1.2.0") != nil {
		t.Error("the refused publish is listed")
	}

	// a killed publisher's lease, unrefreshed for an hour
	dead := filepath.Join(srv.Dir, "store", "releases", "locks", "shared-dead.json")
	if err := s3s.B.CreateBytes(ctx, "locks/shared-dead.json", []byte(`{"kind":"shared","what":"publish example-9.9.9"}`)); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(dead, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s3s.GC(ctx, time.Hour, false, later); err != nil {
		t.Fatalf("gc with a stale lease = %v", err)
	}
	if left, _ := s3s.B.List(ctx, "locks/"); len(left) != 0 {
		t.Errorf("leases left after the gc: %+v", left)
	}
}

// A directory store's pool blob of the right size but other bytes is
// never linked into a new release: the release's own good copy takes its
// place; when the release's copy is no better, the publish stops (exit 4)
// naming the blob, and nothing is listed.
func TestPoolBlobHashChecked(t *testing.T) {
	t.Parallel()
	signer, kr, _ := keys(t)
	root := t.TempDir()
	st := &Store{Root: root, Keys: kr}
	ctx := context.Background()
	base := randomLayer(t, 1<<20)
	bd, _ := base.Digest()
	if _, _, err := st.Publish(ctx, layoutRelease(t, "1.0.0", base), signer); err != nil {
		t.Fatal(err)
	}
	pool := filepath.Join(root, "blobs", "sha256", bd.Hex)
	damage := func(p string) {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		os.Remove(p) // its own inode: the releases linked to it keep theirs
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	damage(pool)
	if _, _, err := st.Publish(ctx, layoutRelease(t, "1.1.0", base), signer); err != nil {
		t.Fatalf("publish over a damaged pool blob, the release's copy good: %v", err)
	}
	for _, p := range []string{pool, filepath.Join(root, "images", "example-1.1.0", "blobs", "sha256", bd.Hex)} {
		if got, _ := filehash.SHA256(p); got != bd.Hex {
			t.Errorf("%s holds sha256:%s, want %s", p, got, bd.Hex)
		}
	}
	damage(pool)
	dir := layoutRelease(t, "1.2.0", base)
	damage(filepath.Join(dir, "blobs", "sha256", bd.Hex))
	_, _, err := st.Publish(ctx, dir, signer)
	if !errors.Is(err, ErrPoolBlob) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), bd.Hex) {
		t.Fatalf("publish with both copies damaged = %v (exit %d), want exit 4 naming the blob", err, failure.Code(err))
	}
	if c, _ := st.Read(); c.find("example", "1.2.0") != nil {
		t.Error("the release with a damaged blob is listed")
	}
}

// What a SIGKILLed publish or migrate leaves (pool .add-* and release
// .migrate-* temporaries) goes when the store is next opened, unless a
// publish or migrate is at work (it holds the pool's lock shared).
func TestKilledTemporariesCleared(t *testing.T) {
	t.Parallel()
	signer, kr, _ := keys(t)
	root := t.TempDir()
	st := &Store{Root: root, Keys: kr}
	ctx := context.Background()
	if _, _, err := st.Publish(ctx, layoutRelease(t, "1.0.0", randomLayer(t, 1<<10)), signer); err != nil {
		t.Fatal(err)
	}
	left := []string{filepath.Join(root, "blobs", "sha256", ".add-123"), filepath.Join(root, "images", "example-1.0.0", "blobs", "sha256", ".migrate-"+strings.Repeat("a", 64))}
	for _, p := range left {
		testutil.Must(t, os.WriteFile(p, []byte("half"), 0o644))
	}
	done, err := st.sharePool() // a publish at work
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenWriter(ctx, root, kr, true, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range left {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed while a publish held the pool", p)
		}
	}
	done()
	if _, err := OpenWriter(ctx, root, kr, true, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range left {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there after the store was opened", p)
		}
	}
}
