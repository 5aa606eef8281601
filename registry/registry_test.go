package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

var ctx = context.Background()

// baked bakes the example's release 1.0.0 (amd64, arm64) with agent
// version agent, signs its manifest and returns the release directory,
// the trusted keys and the signer.
type baked struct {
	dir    string
	m      *manifest.Manifest
	keys   *signing.Keyring
	signer *signing.Signer
	root   string
	repo   string
}

func bakeExample(t *testing.T) *baked {
	t.Helper()
	root := t.TempDir()
	repo := testutil.Example(t, root)
	store := agentstest.Store(t, filepath.Join(root, "store"))
	for _, arch := range []string{"amd64", "arm64"} {
		agentstest.Publish(t, store, agents.PublishOptions{Name: "mozagent", Version: "2.4.1", OS: "linux", Arch: arch}, "")
	}
	b := &baked{root: root, repo: repo}
	b.rebake(t, false)
	pub, key, err := signing.Generate(t.TempDir(), "k", "")
	if err != nil {
		t.Fatal(err)
	}
	if b.signer, err = signing.LoadSigner(key, ""); err != nil {
		t.Fatal(err)
	}
	if b.keys, err = signing.LoadKeyring(pub); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *baked) rebake(t *testing.T, force bool) {
	t.Helper()
	m, err := bake.Bake(ctx, bake.Options{Repo: b.repo, Release: "1.0.0", Out: filepath.Join(b.root, "dist"), Cache: filepath.Join(b.root, "cache"), Context: b.root, Version: "test", Force: force})
	if err != nil {
		t.Fatal(err)
	}
	b.m, b.dir = m, filepath.Join(b.root, "dist", "example-1.0.0")
}

// sig signs the release's manifest as publish does.
func (b *baked) sig(t *testing.T) []byte {
	raw, err := os.ReadFile(filepath.Join(b.dir, manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b.signer.Sign(raw, manifest.FileName, catalog.ManifestSubject(b.m.Family, b.m.Release))
}

// served starts go-containerregistry's in-memory registry (no referrers
// API, as distribution 2.8) behind h, which may change what it answers.
func served(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	_, host := testutil.MemRegistry(t, wrap)
	return host
}

func TestPushVerifyAndCopy(t *testing.T) {
	t.Parallel()
	b := bakeExample(t)
	host := served(t, nil)
	repo := host + "/golden/example"
	pushed, err := Push(ctx, b.dir, repo, b.sig(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"1.0.0-amd64": b.m.Images[0].Digest, "1.0.0-arm64": b.m.Images[1].Digest, "1.0.0": b.m.IndexDigest}
	tagged := 0
	for _, p := range pushed {
		if p.Tag == "" {
			continue
		}
		tagged++
		if p.Ref != repo+"@"+want[p.Tag] || !p.New {
			t.Errorf("pushed %+v, want %s@%s, new", p, repo, want[p.Tag])
		}
		d, err := crane.Digest(repo+":"+p.Tag, crane.Insecure)
		if err != nil || d != want[p.Tag] {
			t.Errorf("%s:%s in the registry = %s, %v; want %s", repo, p.Tag, d, err, want[p.Tag])
		}
	}
	if tagged != 3 || len(pushed) != 5 {
		t.Errorf("pushed %d manifests (%d tagged), want 3 tagged and 2 referrers: %+v", len(pushed), tagged, pushed)
	}
	// referrers by the tag schema, the only way this registry has
	fallback := repo + ":sha256-" + strings.TrimPrefix(b.m.IndexDigest, "sha256:")
	if raw, err := crane.Manifest(fallback, crane.Insecure); err != nil || !strings.Contains(string(raw), SBOMArtifact) || !strings.Contains(string(raw), ManifestArtifact) {
		t.Errorf("referrers tag %s = %s, %v", fallback, raw, err)
	}
	// the same release again: nothing new
	again, err := Push(ctx, b.dir, repo, b.sig(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range again {
		if p.New {
			t.Errorf("a second push wrote %+v", p)
		}
	}
	m, err := Verify(ctx, repo+":1.0.0", b.keys, Options{})
	if err != nil || m.IndexDigest != b.m.IndexDigest {
		t.Fatalf("Verify = %v", err)
	}
	if _, err := Verify(ctx, repo+"@"+b.m.IndexDigest, b.keys, Options{}); err != nil {
		t.Errorf("Verify by digest = %v", err)
	}
	// a copy tool keeps the index as it is (a plain OCI index)
	if err := crane.Copy(repo+":1.0.0", host+"/mirror/example:1.0.0", crane.Insecure); err != nil {
		t.Fatal(err)
	}
	if d, err := crane.Digest(host+"/mirror/example:1.0.0", crane.Insecure); err != nil || d != b.m.IndexDigest {
		t.Errorf("crane copy gave index %s, %v; want %s", d, err, b.m.IndexDigest)
	}
	// untrusted key: refused
	pub, _, err := signing.Generate(t.TempDir(), "o", "")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := signing.LoadKeyring(pub)
	if _, err := Verify(ctx, repo+":1.0.0", other, Options{}); failure.Code(err) != failure.ExitVerify {
		t.Errorf("Verify with another key = %v, want exit 4", err)
	}
}

// A release tag is immutable: other content under 1.0.0 is refused
// before anything is written, unless forced.
func TestPushRefusesMovedTag(t *testing.T) {
	t.Parallel()
	b := bakeExample(t)
	repo := served(t, nil) + "/golden/example"
	if _, err := Push(ctx, b.dir, repo, b.sig(t), Options{}); err != nil {
		t.Fatal(err)
	}
	first := b.m.IndexDigest
	agentstest.Publish(t, agentstest.Store(t, filepath.Join(b.root, "store")), agents.PublishOptions{Name: "mozagent", Version: "2.4.2", OS: "linux", Arch: "amd64"}, "")
	agentstest.Publish(t, agentstest.Store(t, filepath.Join(b.root, "store")), agents.PublishOptions{Name: "mozagent", Version: "2.4.2", OS: "linux", Arch: "arm64"}, "")
	b.rebake(t, true)
	_, err := Push(ctx, b.dir, repo, b.sig(t), Options{})
	if !errors.Is(err, ErrTagMoved) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), repo+":1.0.0 is "+first) {
		t.Fatalf("push of other content under 1.0.0 = %v, want ErrTagMoved", err)
	}
	if d, _ := crane.Digest(repo+":1.0.0", crane.Insecure); d != first {
		t.Errorf("a refused push moved 1.0.0 to %s", d)
	}
	if _, err := Push(ctx, b.dir, repo, b.sig(t), Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if d, _ := crane.Digest(repo+":1.0.0", crane.Insecure); d != b.m.IndexDigest {
		t.Errorf("--force left 1.0.0 at %s, want %s", d, b.m.IndexDigest)
	}
}

// corrupting serves a registry that flips a byte in the blob whose digest
// is stored in the returned value ("" for none) and returns a repository
// in it.
func corrupting(t *testing.T) (string, *atomic.Value) {
	corrupt := &atomic.Value{}
	corrupt.Store("")
	repo := served(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d := corrupt.Load().(string); d != "" && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+d) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				body := rec.Body.Bytes()
				body[len(body)/2] ^= 1
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(body)
				return
			}
			h.ServeHTTP(w, r)
		})
	}) + "/golden/example"
	return repo, corrupt
}

// A registry serving a layer that is not what its digest says: verify
// exits 4 naming the layer.
func TestVerifyCorruptBlob(t *testing.T) {
	t.Parallel()
	b := bakeExample(t)
	repo, corrupt := corrupting(t)
	if _, err := Push(ctx, b.dir, repo, b.sig(t), Options{}); err != nil {
		t.Fatal(err)
	}
	layer := b.m.Images[1].Layers[len(b.m.Images[1].Layers)-1].Digest
	corrupt.Store(layer)
	_, err := Verify(ctx, repo+":1.0.0", b.keys, Options{})
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), layer) {
		t.Errorf("Verify with a corrupt layer = %v, want exit 4 naming %s", err, layer)
	}
}

// An unsigned push cannot be verified; a push to a registry that refuses
// the credentials or is down says so, naming the repository.
func TestPushAndVerifyFaults(t *testing.T) {
	t.Parallel()
	b := bakeExample(t)
	repo := served(t, nil) + "/golden/example"
	var log strings.Builder
	if _, err := Push(ctx, b.dir, repo, nil, Options{Log: &log}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "no signature") {
		t.Errorf("an unsigned push did not warn: %q", log.String())
	}
	if _, err := Verify(ctx, repo+":1.0.0", b.keys, Options{}); failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "manifest.toml is not signed (no manifest.toml.minisig)") {
		t.Errorf("Verify of an unsigned push = %v, want exit 4", err)
	}
	denied := served(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"errors":[{"code":"DENIED"}]}`, http.StatusForbidden)
		})
	}) + "/golden/example"
	if _, err := Push(ctx, b.dir, denied, b.sig(t), Options{}); err == nil || !strings.Contains(err.Error(), "refused the credentials") || !strings.Contains(err.Error(), denied) {
		t.Errorf("push to a registry denying access = %v", err)
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	down := strings.TrimPrefix(srv.URL, "http://") + "/golden/example"
	srv.Close()
	if _, err := Push(ctx, b.dir, down, b.sig(t), Options{}); err == nil || !strings.Contains(err.Error(), down) {
		t.Errorf("push to a registry that is down = %v", err)
	}
	if _, err := Verify(ctx, down+":1.0.0", b.keys, Options{}); err == nil || !strings.Contains(err.Error(), down) {
		t.Errorf("verify against a registry that is down = %v", err)
	}
	if _, err := Push(ctx, t.TempDir(), repo, nil, Options{}); failure.Code(err) != failure.ExitNotFound {
		t.Errorf("push of a directory without a release = %v, want exit 3", err)
	}
	if _, err := Push(ctx, b.dir, "Not A Repo", nil, Options{}); failure.Code(err) != failure.ExitUsage {
		t.Errorf("push to a malformed repository = %v, want exit 2", err)
	}
}

// Two pushers of one blob at once can make distribution 2.8 answer
// DIGEST_INVALID to one upload's commit, or MANIFEST_BLOB_UNKNOWN to a
// manifest whose blob the other is still linking: the push writes the
// image again (skipping the blobs that are there) instead of failing.
func TestPushRetriesRacedUploads(t *testing.T) {
	t.Parallel()
	b := bakeExample(t)
	var mu sync.Mutex
	injected := map[string]int{}
	host := served(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			kind := ""
			switch {
			case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/"):
				kind = "DIGEST_INVALID"
			case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/1.0.0-"):
				kind = "MANIFEST_BLOB_UNKNOWN"
			case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/sha256:"):
				kind = "BLOB_UNKNOWN" // an artifact attached, its blob still being linked
			}
			mu.Lock()
			inject := kind != "" && injected[kind] == 0
			if inject {
				injected[kind]++
			}
			mu.Unlock()
			if inject {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"injected race"}]}`, kind)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	repo := host + "/golden/example"
	if _, err := Push(ctx, b.dir, repo, b.sig(t), Options{}); err != nil {
		t.Fatalf("push with a raced upload, image manifest and artifact manifest = %v", err)
	}
	if injected["DIGEST_INVALID"] != 1 || injected["MANIFEST_BLOB_UNKNOWN"] != 1 || injected["BLOB_UNKNOWN"] != 1 {
		t.Fatalf("faults injected: %v", injected)
	}
	if _, err := Verify(ctx, repo+":1.0.0", b.keys, Options{}); err != nil {
		t.Errorf("verify after the retried push = %v", err)
	}
}

// A release tag moved to one arch's image is a mismatch (exit 4), judged
// by the manifest's own bytes even where the registry's Content-Type
// claims an index.
func TestVerifyTagMovedToAnImage(t *testing.T) {
	t.Parallel()
	b := bakeExample(t)
	for _, lying := range []bool{false, true} {
		host := served(t, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if lying && strings.Contains(r.URL.Path, "/manifests/") {
					w = indexContentType{w}
				}
				next.ServeHTTP(w, r)
			})
		})
		repo := host + "/golden/example"
		if _, err := Push(ctx, b.dir, repo, b.sig(t), Options{}); err != nil {
			t.Fatal(err)
		}
		if err := crane.Tag(repo+"@"+b.m.Images[1].Digest, "1.0.0", crane.Insecure); err != nil {
			t.Fatal(err)
		}
		_, err := Verify(ctx, repo+":1.0.0", b.keys, Options{})
		if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "not the image index of a release: the tag was moved") || !strings.Contains(err.Error(), b.m.Images[1].Digest) {
			t.Errorf("Verify of a tag moved to an image (Content-Type lies: %v) = %v (exit %d), want exit 4", lying, err, failure.Code(err))
		}
	}
}

// indexContentType claims every manifest is an OCI index.
type indexContentType struct{ http.ResponseWriter }

func (w indexContentType) WriteHeader(code int) {
	if w.Header().Get("Content-Type") != "" {
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	}
	w.ResponseWriter.WriteHeader(code)
}

// A manifest artifact's file served longer than its descriptor (here past
// 64 MiB, where the reader used to stop short of the digest check) is
// refused for what it is, not by the signature check.
func TestVerifyOversizedManifestFile(t *testing.T) {
	t.Parallel()
	b := bakeExample(t)
	raw, err := os.ReadFile(filepath.Join(b.dir, manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	target := "/blobs/sha256:" + hex.EncodeToString(sum[:])
	var grow atomic.Bool
	host := served(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if grow.Load() && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, target) {
				w.WriteHeader(http.StatusOK)
				w.Write(raw)
				pad := make([]byte, 1<<20)
				for range 65 {
					if _, err := w.Write(pad); err != nil {
						return
					}
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	repo := host + "/golden/example"
	if _, err := Push(ctx, b.dir, repo, b.sig(t), Options{}); err != nil {
		t.Fatal(err)
	}
	grow.Store(true)
	_, err = Verify(ctx, repo+":1.0.0", b.keys, Options{})
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), fmt.Sprintf("manifest.toml is %d bytes, its descriptor says %d", len(raw)+1, len(raw))) {
		t.Errorf("Verify with an oversized manifest.toml = %v (exit %d)", err, failure.Code(err))
	}
}
