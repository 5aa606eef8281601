package registry

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/ociremote"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// PullPartial fetches the per-arch image at ref (REGISTRY/REPO:X.Y.Z-ARCH
// or @sha256:..., pushed from a per-arch bake) and the partial's manifest
// attached to it into dir (new or empty), as the release directory that
// bake wrote: an OCI layout holding the image, and manifest.toml. Every
// blob is checked against its digest as it is read, and the image against
// the digest the manifest records. It returns the manifest.
func PullPartial(ctx context.Context, ref, dir string, o Options) (*manifest.Manifest, error) {
	r, desc, opts, err := o.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if desc.MediaType.IsIndex() {
		return nil, fmt.Errorf("%w: %s is an image index; merge takes the per-arch images that push of a per-arch bake leaves (REGISTRY/REPO:X.Y.Z-ARCH)", failure.ErrUsage, r)
	}
	d := r.Context().Digest(desc.Digest.String())
	files, err := partialManifest(d, opts)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(files[manifest.FileName])
	if err != nil {
		return nil, fmt.Errorf("%w: the manifest attached to %s: %v", ErrMismatch, r, err)
	}
	var found bool
	for _, im := range m.Images {
		found = found || im.Digest == desc.Digest.String()
	}
	if !found {
		return nil, fmt.Errorf("%w: %s is %s, an image its attached manifest (%s-%s) does not record", ErrMismatch, r, desc.Digest, m.Family, m.Release)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, ociremote.Describe("pulling "+r.String(), err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img); err != nil {
		return nil, ociremote.Describe(fmt.Sprintf("pulling %s into %s", r, dir), err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// partialManifest finds the imagebake manifest among the referrers of the
// image d and pulls its files. Two different manifests attached to one
// image (per-arch bakes of other inputs that made the same image) are
// refused: which release the image belongs to would be a guess.
func partialManifest(d name.Digest, opts []remote.Option) (map[string][]byte, error) {
	arts, err := manifestArtifacts(d, opts)
	if err != nil {
		return nil, err
	}
	var found map[string][]byte
	for _, a := range arts {
		files, err := manifestFiles(a, opts)
		if err != nil {
			return nil, err
		}
		if found != nil && !bytes.Equal(found[manifest.FileName], files[manifest.FileName]) {
			return nil, fmt.Errorf("%w: %s has two different imagebake manifests attached (%s and %s): per-arch bakes of other inputs made this image; bake the release number anew", ErrMismatch, d, arts[0].DigestStr(), a.DigestStr())
		}
		found = files
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s has no imagebake manifest among its referrers: push the per-arch bake with imagebake push", failure.ErrNotFound, d)
	}
	return found, nil
}

// supersede drops from the referrers of the image subject every imagebake
// manifest but keep: a per-arch bake pushed again with the same image and
// another manifest (an advisory added, say) replaces the one it attached,
// so merge finds one. On a registry with the referrers API the old
// manifests are deleted; on one without (the sha256-DIGEST tag) the tag's
// index is rewritten without them (a registry that refuses deletes, as
// distribution 2.8 does by default, keeps them untagged, out of the list).
func supersede(rp name.Repository, subject v1.Hash, keep string, opts []remote.Option) error {
	arts, err := manifestArtifacts(rp.Digest(subject.String()), opts)
	if err != nil {
		return err
	}
	var old []string
	for _, a := range arts {
		if a.DigestStr() != keep {
			old = append(old, a.DigestStr())
		}
	}
	if len(old) == 0 {
		return nil
	}
	tag := rp.Tag(strings.Replace(subject.String(), ":", "-", 1))
	desc, err := remote.Get(tag, opts...)
	switch {
	case ociremote.IsNotFound(err): // the referrers API: the registry lists what it stores
		for _, d := range old {
			if err := remote.Delete(rp.Digest(d), opts...); err != nil {
				return ociremote.Describe(fmt.Sprintf("removing the superseded manifest %s of %s", d, rp.Digest(subject.String())), err)
			}
		}
		return nil
	case err != nil:
		return ociremote.Describe("reading "+tag.String(), err)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return ociremote.Describe("reading "+tag.String(), err)
	}
	var hs []v1.Hash
	for _, d := range old {
		h, err := v1.NewHash(d)
		if err != nil {
			return err
		}
		hs = append(hs, h)
	}
	if err := remote.WriteIndex(tag, mutate.RemoveManifests(idx, match.Digests(hs...)), opts...); err != nil {
		return ociremote.Describe(fmt.Sprintf("writing %s without the superseded manifests %s", tag, strings.Join(old, ", ")), err)
	}
	return nil
}
