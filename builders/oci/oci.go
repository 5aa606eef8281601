// Package oci is the default builder: one OCI image layout holding an
// image per arch, named NAME-X.Y.Z-ARCH, and an image index over them,
// named NAME-X.Y.Z. Readable by skopeo, umoci, podman and any registry.
package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/imagebake/imagebake/internal/failure"

	"github.com/imagebake/imagebake/builders"
)

const refName = "org.opencontainers.image.ref.name"

func init() { builders.Register(Builder{}) }

// Builder is the oci builder.
type Builder struct{}

// Name implements builders.Builder.
func (Builder) Name() string { return "oci" }

// BlobDir implements builders.Builder: layers are written into the
// layout's blob directory once, and never copied.
func (Builder) BlobDir(dir string) string { return filepath.Join(dir, "blobs", "sha256") }

// LayerFile implements builders.Builder: every layer is a blob.
func (b Builder) LayerFile(dir, _, layer string) string {
	return filepath.Join(b.BlobDir(dir), strings.TrimPrefix(layer, "sha256:"))
}

// Build implements builders.Builder.
func (Builder) Build(ctx context.Context, req *builders.Request) (*builders.Result, error) {
	return Build(ctx, req)
}

// Build writes the layout into req.Dir. Payload layers already in
// req.Dir/blobs/sha256 are not copied again.
func Build(ctx context.Context, req *builders.Request) (*builders.Result, error) {
	p, err := layout.Write(req.Dir, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("writing OCI layout %s: %w", req.Dir, err)
	}
	res := &builders.Result{}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, im := range req.Images {
		img, nBase, base, err := builders.Assemble(ctx, req, im)
		if err != nil {
			return nil, err
		}
		if idx, err = appendImage(p, idx, img, im.Arch, im.Name); err != nil {
			return nil, fmt.Errorf("image %s: writing into %s: %w", im.Name, req.Dir, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		ls, err := builders.Layers(img, nBase, im.Layers)
		if err != nil {
			return nil, err
		}
		res.Images = append(res.Images, builders.ImageResult{Arch: im.Arch, Digest: d.String(), Artifact: "oci:" + im.Name, Base: base, Layers: ls})
	}
	d, err := finishIndex(p, idx, req)
	if err != nil {
		return nil, err
	}
	res.IndexDigest = d.String()
	return res, nil
}

// appendImage writes img (arch, named name) into the layout and adds it
// to idx, the release's index being made.
func appendImage(p layout.Path, idx v1.ImageIndex, img v1.Image, arch, name string) (v1.ImageIndex, error) {
	plat := v1.Platform{OS: "linux", Architecture: arch}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refName: name}), layout.WithPlatform(plat)); err != nil {
		return nil, err
	}
	return mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
		MediaType: types.OCIManifestSchema1, Platform: &plat, Annotations: map[string]string{refName: name}}}), nil
}

// finishIndex annotates the release's index and writes it.
func finishIndex(p layout.Path, idx v1.ImageIndex, req *builders.Request) (v1.Hash, error) {
	name := req.Family + "-" + req.Release
	idx = mutate.Annotations(idx, req.Annotations(name)).(v1.ImageIndex)
	d, err := writePlainIndex(p, idx, name)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("writing image index into %s: %w", req.Dir, err)
	}
	return d, nil
}

// Part is an image of a release already in an OCI layout (a per-arch
// bake) that Merge takes.
type Part struct {
	Dir    string // the layout holding it
	From   string // where it came from, for messages ("" is Dir)
	Arch   string
	Name   string // NAME-X.Y.Z-ARCH
	Digest string
	// Check, when set, is given the image once its blobs match their
	// digests: what the caller knows of it is checked against them. Every
	// part's Check runs; their errors are returned together.
	Check func(v1.Image) error
}

// Merge writes into req.Dir (new or empty) the layout a bake of all of
// parts' arches at once writes: each image, its blobs copied from its
// layout, in the order given, and the release's index over them. Only
// req's Dir, Family, Release, Revision and Epoch are read. It returns the
// index digest.
func Merge(req *builders.Request, parts []Part) (string, error) {
	p, err := layout.Write(req.Dir, empty.Index)
	if err != nil {
		return "", fmt.Errorf("writing OCI layout %s: %w", req.Dir, err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var checks []error
	for _, part := range parts {
		src, err := layout.ImageIndexFromPath(part.Dir)
		if err != nil {
			return "", fmt.Errorf("%s is not an OCI layout: %w", part.Dir, err)
		}
		h, err := v1.NewHash(part.Digest)
		if err != nil {
			return "", fmt.Errorf("image %s: digest %q: %w", part.Name, part.Digest, err)
		}
		from := part.From
		if from == "" {
			from = part.Dir
		}
		img, err := src.Image(h)
		if err != nil {
			return "", fmt.Errorf("image %s (%s) in %s: %w", part.Name, part.Digest, from, err)
		}
		// every blob hashed before it is copied: a part's layout is only
		// files, and the merged index must name what it holds
		if err := validate.Image(img); err != nil {
			return "", fmt.Errorf("%w: image %s (%s) in %s does not match its digests: %v", failure.ErrVerify, part.Name, part.Digest, from, err)
		}
		if part.Check != nil {
			if err := part.Check(img); err != nil {
				checks = append(checks, err)
				continue
			}
		}
		if idx, err = appendImage(p, idx, img, part.Arch, part.Name); err != nil {
			return "", fmt.Errorf("image %s: copying from %s into %s: %w", part.Name, from, req.Dir, err)
		}
	}
	if len(checks) > 0 {
		return "", errors.Join(checks...)
	}
	d, err := finishIndex(p, idx, req)
	return d.String(), err
}

// writePlainIndex writes idx as a plain OCI image index: descriptors
// without artifactType (which the library copies from each image's config
// media type), so that registries and copy tools (skopeo copy --all
// --preserve-digests, crane) keep the index's bytes and digest as they are.
func writePlainIndex(p layout.Path, idx v1.ImageIndex, name string) (v1.Hash, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	im = im.DeepCopy()
	for i := range im.Manifests {
		im.Manifests[i].ArtifactType = ""
	}
	raw, err := json.Marshal(im)
	if err != nil {
		return v1.Hash{}, err
	}
	d, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, err
	}
	if err := p.WriteBlob(d, io.NopCloser(bytes.NewReader(raw))); err != nil {
		return v1.Hash{}, err
	}
	return d, p.AppendDescriptor(v1.Descriptor{MediaType: types.OCIImageIndex, Digest: d, Size: size, Annotations: map[string]string{refName: name}})
}
