//go:build linux

package bake

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebake/imagebake/internal/testutil"
)

// A base given as a plain .tar becomes a gzip layer, compressed once per
// cache: the second bake on it takes the cached layer (a damaged cache is
// compressed anew), and every bake gives the same digests.
func TestPlainTarBaseCompressedOnce(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	plain := filepath.Join(root, "base", "plain.tar")
	f, _ := os.Create(plain)
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	tw.WriteHeader(&tar.Header{Name: "etc/big", Mode: 0o644, Size: int64(len(data))})
	tw.Write(data)
	tw.Close()
	f.Close()
	setConfig(t, repo, "1.1.0", fmt.Sprintf("rootfs = %q\nsha256 = %q", "base/plain.tar", sha256File(t, plain)), "oci")
	bake := func(out string) string {
		o := opts(root, repo, filepath.Join(root, out))
		o.Release, o.Arches = "1.1.0", []string{"amd64"}
		m, err := Bake(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		img := layoutImage(t, filepath.Join(o.Out, "example-1.1.0"), m.Images[0].Digest)
		mf, _ := img.Manifest()
		if mt := mf.Layers[0].MediaType; mt != types.OCILayer {
			t.Errorf("the plain tar base is a %s layer, want %s", mt, types.OCILayer)
		}
		if mf.Layers[0].Size > 1<<20 {
			t.Errorf("the base layer is %d bytes: not compressed", mf.Layers[0].Size)
		}
		return m.Images[0].Digest
	}
	first := bake("dist-1")
	cached, _ := filepath.Glob(filepath.Join(root, "cache", "base-layers", "*.tar.gz"))
	if len(cached) != 1 {
		t.Fatalf("cached compressed bases: %v, want one", cached)
	}
	st1, _ := os.Stat(cached[0])
	if second := bake("dist-2"); second != first {
		t.Errorf("the second bake on the cached layer: %s, the first %s", second, first)
	}
	if st2, _ := os.Stat(cached[0]); !st2.ModTime().Equal(st1.ModTime()) {
		t.Error("the second bake compressed the base again")
	}
	testutil.Must(t, os.WriteFile(cached[0], []byte("damaged"), 0o644))
	if third := bake("dist-3"); third != first {
		t.Errorf("a bake over a damaged cache: %s, want %s", third, first)
	}
}

// An image on a base with no config of its own (a rootfs tarball) gets the
// PATH container runtimes give a shell, so `podman run IMAGE sh` works.
func TestImageConfigHasPath(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches = []string{"amd64"}
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	img := layoutImage(t, filepath.Join(o.Out, "example-1.0.0"), m.Images[0].Digest)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Config.Env) != 1 || cf.Config.Env[0] != "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" {
		t.Errorf("image config Env = %v, want the default PATH", cf.Config.Env)
	}
}

// layoutImage is the image of digest in the OCI layout at dir.
func layoutImage(t *testing.T, dir, digest string) v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
