package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/ociremote"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

// ErrMismatch marks a pushed release that differs from its signed
// manifest.
var ErrMismatch = fmt.Errorf("pushed release does not match its manifest: %w", failure.ErrVerify)

// Verify pulls the index at ref (REGISTRY/REPO:X.Y.Z or @sha256:...), its
// images and every blob (each checked against its digest as it is read),
// finds the release's manifest among the index's referrers, checks its
// signature with keys, and compares every digest with it. Every
// difference is named in one error.
func Verify(ctx context.Context, ref string, keys *signing.Keyring, o Options) (*manifest.Manifest, error) {
	r, desc, opts, err := o.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	// what the manifest's bytes say, not the Content-Type header: a tag
	// moved to a per-arch image is a mismatch, whatever the registry claims
	mt, err := ociremote.MediaType(desc.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not an OCI manifest: %v", ErrMismatch, r, err)
	}
	if !mt.IsIndex() {
		if release, arch, ok := ArchTag(ref); ok {
			return verifyArch(ctx, r, release, arch, desc.Digest.String(), keys, o)
		}
		return nil, fmt.Errorf("%w: %s is %s (%s), not the image index of a release: the tag was moved, or names one arch's image", ErrMismatch, r, mt, desc.Digest)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, ociremote.Describe("pulling "+r.String(), err)
	}
	m, err := signedManifest(r.Context().Digest(desc.Digest.String()), keys, opts)
	if err != nil {
		return nil, err
	}
	var diffs []string
	if t, ok := r.(name.Tag); ok && t.TagStr() != m.Release {
		diffs = append(diffs, fmt.Sprintf("tag %s names release %s", t.TagStr(), m.Release))
	}
	if desc.Digest.String() != m.IndexDigest {
		diffs = append(diffs, fmt.Sprintf("index: %s, the manifest records %s", desc.Digest, m.IndexDigest))
	}
	more, err := compareImages(r, idx, m)
	if err != nil {
		return nil, err
	}
	if diffs = append(diffs, more...); len(diffs) > 0 {
		return nil, fmt.Errorf("%w: %s (%s-%s):\n  %s", ErrMismatch, r, m.Family, m.Release, strings.Join(diffs, "\n  "))
	}
	return m, nil
}

// get parses ref and fetches its descriptor (and manifest), returning the
// remote options it used.
func (o Options) get(ctx context.Context, ref string) (name.Reference, *remote.Descriptor, []remote.Option, error) {
	r, err := o.Reference(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := o.Remote(ctx)
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, nil, nil, ociremote.Describe("pulling "+r.String(), err)
	}
	return r, desc, opts, nil
}

// compareImages pulls every image of idx with its blobs and compares
// digests with the manifest's images.
func compareImages(r name.Reference, idx v1.ImageIndex, m *manifest.Manifest) ([]string, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, ociremote.Describe("pulling "+r.String(), err)
	}
	want := map[string]manifest.Image{}
	for _, x := range m.Images {
		want[x.Arch] = x
	}
	var diffs []string
	for _, d := range im.Manifests {
		arch := ""
		if d.Platform != nil {
			arch = d.Platform.Architecture
		}
		w, ok := want[arch]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("image %s (%s): not in the manifest", d.Digest, arch))
			continue
		}
		delete(want, arch)
		if d.Digest.String() != w.Digest {
			diffs = append(diffs, fmt.Sprintf("%s: %s, the manifest records %s", w.Name, d.Digest, w.Digest))
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, ociremote.Describe("pulling "+w.Name, err)
		}
		layers, err := pullLayers(img, w.Name)
		if err != nil {
			return nil, err
		}
		if len(w.Layers) > 0 && strings.Join(layers, " ") != strings.Join(layerDigests(w.Layers), " ") {
			diffs = append(diffs, fmt.Sprintf("%s: layers %s, the manifest records %s", w.Name, layers, layerDigests(w.Layers)))
		}
	}
	for _, w := range want {
		diffs = append(diffs, fmt.Sprintf("%s: missing from the index", w.Name))
	}
	return diffs, nil
}

// pullLayers reads the config and every layer of img, each checked
// against its digest, and returns the layer digests.
func pullLayers(img v1.Image, what string) ([]string, error) {
	if _, err := img.RawConfigFile(); err != nil {
		return nil, ociremote.Describe("pulling the config of "+what, err)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, ociremote.Describe("pulling "+what, err)
	}
	var out []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		rc, err := l.Compressed()
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			if cerr := rc.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return nil, ociremote.Describe(fmt.Sprintf("pulling layer %s of %s", d, what), err)
		}
		out = append(out, d.String())
	}
	return out, nil
}

func layerDigests(ls []manifest.Layer) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Digest
	}
	return out
}

// signedManifest finds the manifest artifact among the referrers of the
// index d and returns the manifest its signature vouches for.
func signedManifest(d name.Digest, keys *signing.Keyring, opts []remote.Option) (*manifest.Manifest, error) {
	arts, err := manifestArtifacts(d, opts)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, a := range arts {
		m, err := readManifestArtifact(a, keys, opts)
		if err == nil {
			return m, nil
		}
		lastErr = err
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, fmt.Errorf("%w: %s has no imagebake manifest among its referrers (push the release with imagebake push)", failure.ErrNotFound, d)
}

// manifestArtifacts lists the imagebake manifest artifacts among the
// referrers of d.
func manifestArtifacts(d name.Digest, opts []remote.Option) ([]name.Digest, error) {
	idx, err := remote.Referrers(d, opts...)
	if ociremote.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, ociremote.Describe("listing the referrers of "+d.String(), err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, ociremote.Describe("listing the referrers of "+d.String(), err)
	}
	var out []name.Digest
	for _, desc := range im.Manifests {
		if desc.ArtifactType == ManifestArtifact {
			out = append(out, d.Context().Digest(desc.Digest.String()))
		}
	}
	return out, nil
}

// readManifestArtifact pulls a manifest artifact's files and checks the
// signature.
func readManifestArtifact(d name.Digest, keys *signing.Keyring, opts []remote.Option) (*manifest.Manifest, error) {
	files, err := manifestFiles(d, opts)
	if err != nil {
		return nil, err
	}
	name := d.String() + "/" + manifest.FileName
	return catalog.VerifyManifest(name, files[manifest.FileName], files[manifest.FileName+".minisig"], keys)
}

// manifestFiles pulls the manifest.toml (and manifest.toml.minisig, when
// it has one) of the manifest artifact d, by file name.
func manifestFiles(d name.Digest, opts []remote.Option) (map[string][]byte, error) {
	raw, err := remote.Get(d, opts...)
	if err != nil {
		return nil, ociremote.Describe("pulling "+d.String(), err)
	}
	var am v1.Manifest
	if err := json.Unmarshal(raw.Manifest, &am); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMismatch, d, err)
	}
	files := map[string][]byte{}
	for _, l := range am.Layers {
		title := l.Annotations[titleAnnotation]
		if title != manifest.FileName && title != manifest.FileName+".minisig" {
			continue
		}
		what := fmt.Sprintf("pulling %s of %s", title, d)
		if l.Size > catalog.MaxDocument || l.Size < 0 {
			return nil, fmt.Errorf("%w: %s: %s is %d bytes, more than the %d MiB a manifest or signature may have", ErrMismatch, d, title, l.Size, catalog.MaxDocument>>20)
		}
		layer, err := remote.Layer(d.Context().Digest(l.Digest.String()), opts...)
		if err != nil {
			return nil, ociremote.Describe(what, err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			return nil, ociremote.Describe(what, err)
		}
		// to the end (the digest is checked there), at most the descriptor's size
		files[title], err = io.ReadAll(io.LimitReader(rc, l.Size+1))
		rc.Close()
		if err != nil {
			return nil, ociremote.Describe(what, err)
		}
		if got := int64(len(files[title])); got != l.Size {
			return nil, fmt.Errorf("%w: %s: %s is %d bytes, its descriptor says %d", ErrMismatch, d, title, got, l.Size)
		}
		if h, _, err := v1.SHA256(bytes.NewReader(files[title])); err != nil || h != l.Digest {
			return nil, fmt.Errorf("%w: %s: %s has digest %s, its descriptor says %s", ErrMismatch, d, title, h, l.Digest)
		}
	}
	if files[manifest.FileName] == nil {
		return nil, fmt.Errorf("%w: artifact %s has no %s layer", ErrMismatch, d, manifest.FileName)
	}
	return files, nil
}

var archTagRE = regexp.MustCompile(`:(\d+\.\d+\.\d+)-([a-z0-9]+)$`)

// ArchTag says whether ref names one arch's image of a release by its tag,
// REGISTRY/REPO:X.Y.Z-ARCH, and which.
func ArchTag(ref string) (release, arch string, ok bool) {
	m := archTagRE.FindStringSubmatch(ref)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// verifyArch verifies the release an arch's image belongs to (tag X.Y.Z
// beside it, every image and the signed manifest) and that the image is
// the one its manifest records for arch.
func verifyArch(ctx context.Context, r name.Reference, release, arch, digest string, keys *signing.Keyring, o Options) (*manifest.Manifest, error) {
	rel := r.Context().Tag(release)
	m, err := Verify(ctx, rel.String(), keys, o)
	if err != nil {
		return nil, fmt.Errorf("%s is the %s image of release %s; verifying that release: %w", r, arch, rel, err)
	}
	for _, im := range m.Images {
		if im.Arch != arch {
			continue
		}
		if im.Digest != digest {
			return nil, fmt.Errorf("%w: %s is %s, the signed manifest of %s records %s for %s", ErrMismatch, r, digest, rel, im.Digest, arch)
		}
		return m, nil
	}
	return nil, fmt.Errorf("%w: %s: release %s has no %s image (the signed manifest lists %d images)", ErrMismatch, r, rel, arch, len(m.Images))
}
