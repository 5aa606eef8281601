// Package oci is the default builder: one OCI image layout holding an
// image per arch, named NAME-X.Y.Z-ARCH, and an image index over them,
// named NAME-X.Y.Z. Readable by skopeo, umoci, podman and any registry.
package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

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
		img, nBase, baseDigest, err := builders.Assemble(ctx, req, im)
		if err != nil {
			return nil, err
		}
		plat := v1.Platform{OS: "linux", Architecture: im.Arch}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refName: im.Name}), layout.WithPlatform(plat)); err != nil {
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
		res.Images = append(res.Images, builders.ImageResult{Arch: im.Arch, Digest: d.String(), Artifact: "oci:" + im.Name, BaseDigest: baseDigest, Layers: ls})
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: types.OCIManifestSchema1, Platform: &plat, Annotations: map[string]string{refName: im.Name}}})
	}
	name := req.Family + "-" + req.Release
	idx = mutate.Annotations(idx, req.Annotations(name)).(v1.ImageIndex)
	d, err := writePlainIndex(p, idx, name)
	if err != nil {
		return nil, fmt.Errorf("writing image index into %s: %w", req.Dir, err)
	}
	res.IndexDigest = d.String()
	return res, nil
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
