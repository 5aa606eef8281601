//go:build linux

package bake

import (
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// pushBase pushes a base index of arches to a new in-memory registry and
// returns the server, the pinned reference and each arch's first layer.
func pushBase(t *testing.T, arches ...string) (*httptest.Server, string, map[string]string) {
	srv, ref, imgs := pushBaseImages(t, arches...)
	first := map[string]string{}
	for arch, img := range imgs {
		first[arch] = testutil.FirstLayer(t, img)
	}
	return srv, ref, first
}

// pushBaseImages is pushBase returning each arch's image.
func pushBaseImages(t *testing.T, arches ...string) (*httptest.Server, string, map[string]v1.Image) {
	t.Helper()
	srv, host := testutil.MemRegistry(t, nil)
	idx, imgs := testutil.BaseIndex(t, arches...)
	d, _ := idx.Digest()
	ref := host + "/library/base@" + d.String()
	r, err := name.NewDigest(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	return srv, ref, imgs
}

// setBase commits imagebake.toml with [base] image = ref and tags release.
func setBase(t *testing.T, repo, ref, release string) {
	t.Helper()
	p := filepath.Join(repo, "imagebake.toml")
	b, _ := os.ReadFile(p)
	lines := strings.Split(string(b), "\n")
	out := lines[:0]
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "rootfs = "), strings.HasPrefix(l, "image = "):
			out = append(out, fmt.Sprintf("image = %q", ref))
		case strings.HasPrefix(l, "sha256 = "):
		default:
			out = append(out, l)
		}
	}
	testutil.Must(t, os.WriteFile(p, []byte(strings.Join(out, "\n")), 0o644))
	testutil.Git(t, repo, "commit", "-qam", "registry base")
	testutil.Git(t, repo, "tag", "v"+release)
}

// A base pinned by digest in a registry: each arch takes its platform's
// image; a second bake reads the cache and needs no registry at all.
func TestBakeOnRegistryBase(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	srv, ref, first := pushBase(t, "amd64", "arm64")
	setBase(t, repo, ref, "1.3.0")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release = "1.3.0"
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range m.Images {
		if len(im.Layers) != 5 || im.Layers[0].Digest != first[im.Arch] || im.Base.Ref != ref || !strings.HasPrefix(im.Base.Digest, "sha256:") {
			t.Errorf("%s: base %+v, layers %+v; want the base's layers first (%s)", im.Name, im.Base, im.Layers, first[im.Arch])
		}
	}
	srv.Close()
	o.Out = filepath.Join(root, "dist-offline")
	again, err := Bake(ctx, o)
	if err != nil {
		t.Fatalf("a second bake with the registry down: %v", err)
	}
	if again.IndexDigest != m.IndexDigest {
		t.Errorf("second bake %s, first %s", again.IndexDigest, m.IndexDigest)
	}
}

// The rootfs builder on a registry base: each arch's tarball holds its
// base image's files (every layer, in order) under the payload.
func TestRootfsOnRegistryBase(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	_, ref, imgs := pushBaseImages(t, "amd64", "arm64")
	setBase(t, repo, ref, "1.3.0")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release, o.Builder = "1.3.0", "rootfs"
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range m.Images {
		b, err := os.ReadFile(filepath.Join(o.Out, m.Family+"-"+m.Release, im.Name+".rootfs.tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		got := testutil.Untar(t, b)
		ls, _ := imgs[im.Arch].Layers()
		for _, l := range ls {
			rc, _ := l.Compressed()
			raw, _ := io.ReadAll(rc)
			rc.Close()
			for name, content := range testutil.Untar(t, raw) {
				if got[name] != content {
					t.Errorf("%s: the base's %s is missing or differs", im.Name, name)
				}
			}
		}
		if im.Base.Ref != ref {
			t.Errorf("%s: base %+v, want %s", im.Name, im.Base, ref)
		}
		payload := 0
		for name := range got {
			if strings.HasPrefix(name, "etc/puppetlabs/code/environments/") {
				payload++
			}
		}
		if payload == 0 {
			t.Errorf("%s: no control repo environment in the rootfs over the base", im.Name)
		}
	}
}

// An index without the arch's platform: the error names the platforms
// it has. A base in a registry that is down names the reference.
func TestRegistryBaseFaults(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	srv, ref, _ := pushBase(t, "amd64")
	setBase(t, repo, ref, "1.3.0")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release = "1.3.0"
	_, err := Bake(ctx, o)
	if !errors.Is(err, failure.ErrNotFound) || !strings.Contains(err.Error(), "no linux/arm64 image (it has linux/amd64)") || !strings.Contains(err.Error(), ref) {
		t.Errorf("bake on a base without arm64 = %v", err)
	}
	srv.Close()
	o.Arches = []string{"amd64"}
	o.Cache = filepath.Join(root, "other-cache")
	if _, err := Bake(ctx, o); err == nil || !strings.Contains(err.Error(), strings.SplitN(ref, "@", 2)[0]) {
		t.Errorf("bake on a base whose registry is down = %v, want an error naming it", err)
	}
}
