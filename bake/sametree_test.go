//go:build linux

package bake

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// treeOf lists a tar stream's entries as "NAME TYPE MODE UID:GID
// DEV CONTENT", hard links resolved to their target's content (the rootfs
// builder writes them as files).
func treeOf(t *testing.T, r io.Reader) []string {
	t.Helper()
	tr := tar.NewReader(r)
	type ent struct {
		h   tar.Header
		sum string
	}
	byName := map[string]*ent{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.Trim(path.Clean(h.Name), "/")
		if _, seen := byName[name]; seen || name == "." {
			continue
		}
		s := sha256.New()
		if _, err := io.Copy(s, tr); err != nil {
			t.Fatal(err)
		}
		byName[name] = &ent{*h, fmt.Sprintf("%x", s.Sum(nil))[:12]}
	}
	var out []string
	for name, e := range byName {
		h, sum := e.h, e.sum
		if h.Typeflag == tar.TypeLink {
			target := byName[strings.Trim(path.Clean(h.Linkname), "/")]
			h.Typeflag, h.Mode, sum = tar.TypeReg, target.h.Mode, target.sum
		}
		if h.Typeflag != tar.TypeReg {
			sum = h.Linkname
		}
		out = append(out, fmt.Sprintf("%s %c %o %d:%d %d,%d %s", name, h.Typeflag, h.Mode&0o7777, h.Uid, h.Gid, h.Devmajor, h.Devminor, sum))
	}
	sort.Strings(out)
	return out
}

// The OCI and rootfs builders give the same tree for the same inputs,
// entry by entry: a base with a device node, a FIFO, a setuid file, a
// symlink and a hard link keeps each in both (/dev/null stays a
// character device: a chroot of either image needs it).
func TestBuildersGiveTheSameTree(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	f := filepath.Join(root, "base", "dev.tar.gz")
	tarGz(t, f, []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/sh", Mode: 0o755, Size: 5},
		{Name: "bin/su", Mode: 0o4755, Size: 2},
		{Name: "bin/bash", Typeflag: tar.TypeSymlink, Linkname: "sh"},
		{Name: "bin/dash", Typeflag: tar.TypeLink, Linkname: "bin/sh"},
		{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "dev/sda", Typeflag: tar.TypeBlock, Mode: 0o660, Gid: 6, Devmajor: 8},
		{Name: "run/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "run/initctl", Typeflag: tar.TypeFifo, Mode: 0o600},
	}, 0)
	trees := map[string][]string{}
	setConfig(t, repo, "1.1.0", fmt.Sprintf("rootfs = %q\nsha256 = %q", "base/dev.tar.gz", sha256File(t, f)), "oci")
	for _, builder := range []string{"oci", "rootfs"} {
		o := opts(root, repo, filepath.Join(root, "dist-"+builder))
		o.Release, o.Arches = "1.1.0", []string{"amd64"}
		o.Builder = builder // the same commit, the builder from the command line
		m, err := Bake(ctx, o)
		if err != nil {
			t.Fatalf("%s: %v", builder, err)
		}
		dir := filepath.Join(o.Out, "example-1.1.0")
		if builder == "rootfs" {
			raw, err := os.ReadFile(filepath.Join(dir, m.Images[0].Name+".rootfs.tar.gz"))
			if err != nil {
				t.Fatal(err)
			}
			trees[builder] = treeOf(t, mustGunzip(t, raw))
			continue
		}
		img := layoutImage(t, dir, m.Images[0].Digest)
		rc := mutate.Extract(img)
		trees[builder] = treeOf(t, rc)
		rc.Close()
	}
	// release.toml names the image's content digest, which names its
	// builder: the one entry that must differ
	for k, tr := range trees {
		for i, e := range tr {
			if strings.HasPrefix(e, "etc/imagebake/release.toml ") {
				trees[k] = append(tr[:i:i], tr[i+1:]...)
				break
			}
		}
	}
	a, b := strings.Join(trees["oci"], "\n"), strings.Join(trees["rootfs"], "\n")
	if a != b {
		t.Errorf("the builders' trees differ:\n--- oci\n%s\n--- rootfs\n%s", a, b)
	}
	if !strings.Contains(b, "dev/null 3 666 0:0 1,3") || !strings.Contains(b, "run/initctl 6 600") {
		t.Errorf("the rootfs tree lacks the base's device node or FIFO:\n%s", b)
	}
}

func mustGunzip(t *testing.T, b []byte) io.Reader {
	t.Helper()
	return mustGunzipFile(t, writeTemp(t, b))
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "x.gz")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
