package catalog

import (
	"context"
	"crypto/rand"
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

	"github.com/imagebake/imagebake/internal/testutil"
)

// layoutRelease is a release directory holding an OCI layout: one image
// of the shared base layer and a layer of its own.
func layoutRelease(t *testing.T, version string, base v1.Layer) string {
	t.Helper()
	dir := release(t, version, "sha256:"+strings.Repeat("1", 64))
	os.RemoveAll(filepath.Join(dir, "blobs"))
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
	os.WriteFile(old, []byte("old"), 0o644)
	os.WriteFile(young, []byte("young"), 0o644)
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, past, past)
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
			os.Remove(p)
			os.WriteFile(p, b, 0o644)
		}
	}
	os.RemoveAll(pool)
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
