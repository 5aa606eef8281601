package ociremote

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/stall"
	"github.com/imagebake/imagebake/internal/testutil"
)

// hostileBase pushes a one-arch base and returns its pinned reference and
// the digest of its first layer; serve answers that layer's GET.
func hostileBase(t *testing.T, serve func(w http.ResponseWriter, r *http.Request, next http.Handler)) (ref, layer string) {
	t.Helper()
	var target string
	_, host := testutil.MemRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if target != "" && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+target) {
				serve(w, r, next)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	_, imgs := testutil.BaseIndex(t, "amd64")
	img := imgs["amd64"]
	d, _ := img.Digest()
	tag, _ := name.NewTag(host+"/library/base:1", name.Insecure)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	target = testutil.FirstLayer(t, img)
	return host + "/library/base@" + d.String(), target
}

// A base layer that does not end is read no further than its descriptor's
// size: the pull fails with a digest error and the cache holds nothing of
// it (it filled the disk before).
func TestEndlessBaseLayerBounded(t *testing.T) {
	t.Parallel()
	ref, layer := hostileBase(t, func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		w.WriteHeader(http.StatusOK) // no Content-Length: chunked, endless
		buf := make([]byte, 64<<10)
		for sent := 0; sent < 512<<20; sent += len(buf) {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	cache := t.TempDir()
	_, _, err := Options{}.Pull(context.Background(), ref, "amd64", cache)
	if !errors.Is(err, failure.ErrVerify) || !strings.Contains(err.Error(), "is longer than the") || !strings.Contains(err.Error(), layer) {
		t.Fatalf("Pull of an endless layer = %v, want a verification error naming it", err)
	}
	var total int64
	filepath.Walk(cache, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	if total > 1<<20 {
		t.Errorf("the cache holds %d bytes after the refused pull", total)
	}
}

// A registry that sends a layer's headers and then nothing is stopped
// after the stall timeout, with an error naming the registry and the blob.
func TestStalledRegistryStopped(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	ref, layer := hostileBase(t, func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-done:
		case <-r.Context().Done():
		}
	})
	defer close(done)
	_, _, err := Options{Stall: 500 * time.Millisecond}.Pull(context.Background(), ref, "amd64", t.TempDir())
	var se *stall.Error
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "blobs/"+layer) || !strings.Contains(err.Error(), "nothing received for 500ms") {
		t.Fatalf("Pull from a stalled registry = %v, want the stall error naming the blob", err)
	}
}
