package bake

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/tarball"
)

// ErrMismatch marks a rebuild whose digests differ from the manifest's.
var ErrMismatch = fmt.Errorf("rebuild differs from the manifest: %w", failure.ErrVerify)

// Verify checks the release's files on disk against the manifest at name
// (CheckArtifacts), then rebuilds the release it describes from the
// manifest alone (its commit, module pins, agent binaries and epoch; no
// resolution) into a temporary directory, and compares every digest. On a
// difference the error names the image, the layer and the first differing
// path. o supplies the cache, context and logging.
func Verify(ctx context.Context, name string, o Options) (*manifest.Manifest, error) {
	if err := failure.NeedLinux("verifying a release by rebuilding it"); err != nil {
		return nil, err
	}
	want, err := manifest.Read(name)
	if err != nil {
		return nil, err
	}
	if want.Builder == BuilderPacker {
		return nil, fmt.Errorf("%w: %s was built by Packer; verify rebuilds oci and rootfs releases, a Packer release's artifacts are recorded (with sha256) in its manifest", failure.ErrUsage, name)
	}
	// the files on disk first: a rebuild that matches the manifest says
	// nothing of a blob flipped since
	onDisk, err := artifactProblems(ctx, name, want)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "imagebake-verify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if o.Version != want.Imagebake.Version {
		o.logf("note: the release was baked by imagebake %s, this is %s; rebuilding as %s\n", want.Imagebake.Version, o.Version, want.Imagebake.Version)
	}
	if o.Stored == nil {
		if o.Stored, err = LocalSources(name); err != nil {
			return nil, err
		}
	}
	in, err := ResolveManifest(ctx, want, nil, o)
	if err != nil && o.Stored == nil && errors.Is(err, failure.ErrNotFound) {
		return nil, fmt.Errorf("rebuilding %s: %w\n(the release keeps no sources, no %s beside its manifest: it was baked before releases kept them, so its upstreams are needed)", name, err, manifest.SourcesFileName)
	}
	if err != nil {
		return nil, fmt.Errorf("rebuilding %s: %w", name, err)
	}
	rebuilt := filepath.Join(tmp, in.Name())
	got, err := stageAndBuild(ctx, in, rebuilt, o)
	if err != nil {
		return nil, fmt.Errorf("rebuilding %s: %w", name, err)
	}
	var diffs []string
	if got.InputsDigest != want.InputsDigest {
		diffs = append(diffs, fmt.Sprintf("inputs digest: manifest %s, rebuild %s", want.InputsDigest, got.InputsDigest))
	}
	if got.IndexDigest != want.IndexDigest {
		diffs = append(diffs, fmt.Sprintf("image index: manifest %s, rebuild %s", want.IndexDigest, got.IndexDigest))
	}
	for i, wi := range want.Images {
		if gi := got.Images[i]; gi.Digest != wi.Digest {
			diffs = append(diffs, imageDiff(want, wi, gi, filepath.Dir(name), rebuilt))
		}
	}
	switch {
	case len(diffs) > 0:
		return got, fmt.Errorf("%w: %s\n  %s", ErrMismatch, name, strings.Join(append(diffs, onDisk...), "\n  "))
	case len(onDisk) > 0:
		return got, fmt.Errorf("%w: %s\n  %s", ErrArtifact, filepath.Dir(name), strings.Join(onDisk, "\n  "))
	}
	return got, nil
}

// imageDiff says how a rebuilt image differs from the recorded one: the
// digests, whether only the compression differs (and by which
// compressor), and the first layer whose content differs with the first
// differing path.
func imageDiff(want *manifest.Manifest, wi, gi manifest.Image, dir, rebuilt string) string {
	d := fmt.Sprintf("image %s: manifest %s, rebuild %s", wi.Name, wi.Digest, gi.Digest)
	sameContent := len(wi.Layers) == len(gi.Layers)
	for j, wl := range wi.Layers {
		if j < len(gi.Layers) && gi.Layers[j].DiffID != wl.DiffID {
			sameContent = false
		}
	}
	if sameContent {
		// the uncompressed layers are the same: only compression differs
		now := tarball.Compressor()
		if want.Imagebake.Defaults >= 1 {
			now = tarball.Compressors()
		}
		if c := want.Imagebake.Compressor; c != "" && c != now {
			d += fmt.Sprintf("; every layer's content (diff_id) is the same, only the compressed bytes differ: the release was compressed by %s, this imagebake uses %s", c, now)
		} else {
			d += fmt.Sprintf("; every layer's content (diff_id) is the same, only the compressed bytes differ (compressor %s)", now)
		}
	}
	for j, wl := range wi.Layers {
		if j >= len(gi.Layers) {
			return d + fmt.Sprintf("; layer %d (%s) missing from the rebuild", j, wl.Role)
		}
		if gl := gi.Layers[j]; gl.DiffID != wl.DiffID {
			d += fmt.Sprintf("; layer %d (%s): diff_id %s, rebuild %s", j, wl.Role, wl.DiffID, gl.DiffID)
			if p := firstDiff(blobPath(want.Builder, dir, wi, wl), blobPath(want.Builder, rebuilt, gi, gl)); p != "" {
				d += "; first difference: " + p
			}
			return d
		}
	}
	return d
}

func blobPath(builder, dir string, im manifest.Image, l manifest.Layer) string {
	b, err := builders.Lookup(builder)
	if err != nil {
		return filepath.Join(dir, im.Artifact)
	}
	return b.LayerFile(dir, im.Artifact, l.Digest)
}

// firstDiff compares two gzip-compressed tars entry by entry and describes
// the first difference.
func firstDiff(a, b string) string {
	ra, err := openTar(a)
	if err != nil {
		return "cannot read " + a + ": " + err.Error()
	}
	defer ra.Close()
	rb, err := openTar(b)
	if err != nil {
		return "cannot read " + b + ": " + err.Error()
	}
	defer rb.Close()
	for {
		ha, ea := ra.tr.Next()
		hb, eb := rb.tr.Next()
		if ea == io.EOF && eb == io.EOF {
			return ""
		}
		if ea != nil || eb != nil {
			if ea == io.EOF {
				return fmt.Sprintf("%s only in the rebuild", hb.Name)
			}
			if eb == io.EOF {
				return fmt.Sprintf("%s missing from the rebuild", ha.Name)
			}
			return fmt.Sprintf("reading: %v / %v", ea, eb)
		}
		if ha.Name != hb.Name {
			return fmt.Sprintf("%s in the release, %s in the rebuild at the same place", ha.Name, hb.Name)
		}
		switch {
		case ha.Typeflag != hb.Typeflag, ha.Linkname != hb.Linkname:
			return fmt.Sprintf("%s: type or link target differs", ha.Name)
		case ha.Mode != hb.Mode:
			return fmt.Sprintf("%s: mode %o, rebuild %o", ha.Name, ha.Mode, hb.Mode)
		case ha.Uid != hb.Uid || ha.Gid != hb.Gid:
			return fmt.Sprintf("%s: owner %d:%d, rebuild %d:%d", ha.Name, ha.Uid, ha.Gid, hb.Uid, hb.Gid)
		case !ha.ModTime.Equal(hb.ModTime):
			return fmt.Sprintf("%s: mtime %s, rebuild %s", ha.Name, ha.ModTime.UTC(), hb.ModTime.UTC())
		case ha.Size != hb.Size:
			return fmt.Sprintf("%s: size %d, rebuild %d", ha.Name, ha.Size, hb.Size)
		}
		sa, sb := sha256.New(), sha256.New()
		io.Copy(sa, ra.tr)
		io.Copy(sb, rb.tr)
		if string(sa.Sum(nil)) != string(sb.Sum(nil)) {
			return fmt.Sprintf("%s: content differs", ha.Name)
		}
	}
}

type tarFile struct {
	f  *os.File
	tr *tar.Reader
}

func (t *tarFile) Close() error { return t.f.Close() }

func openTar(p string) (*tarFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &tarFile{f: f, tr: tar.NewReader(zr)}, nil
}
