package ociremote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
)

// ErrDigest marks content whose digest is not the one it was asked by.
var ErrDigest = fmt.Errorf("content does not match its digest: %w", failure.ErrVerify)

// cache is a content-addressed blob cache: DIR/blobs/sha256/HEX, each
// blob written whole (temporary file, fsync, rename) once its digest is
// checked, shared by every bake on the machine.
type cache struct{ dir string }

func (c cache) path(h v1.Hash) string { return filepath.Join(c.dir, "blobs", h.Algorithm, h.Hex) }

// cached returns a blob from the cache when it is there and whole.
func (c cache) cached(h v1.Hash) ([]byte, bool) {
	b, err := os.ReadFile(c.path(h))
	if err != nil {
		return nil, false
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != h.Hex {
		os.Remove(c.path(h)) // damaged: fetched again
		return nil, false
	}
	return b, true
}

// put streams r into the cache as blob h, checking its digest. It reads
// at most size bytes (the descriptor's; -1 for no bound): a registry that
// sends more (an endless blob) is stopped there, before it fills the disk.
func (c cache) put(h v1.Hash, r io.Reader, size int64) error {
	if h.Algorithm != "sha256" {
		return fmt.Errorf("%w: digest %s: only sha256 is supported", failure.ErrUsage, h)
	}
	dst := c.path(h)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := atomicfile.CreateTemp(filepath.Dir(dst), ".pull-")
	if err != nil {
		return err
	}
	defer f.Cleanup()
	sum := sha256.New()
	if size >= 0 {
		r = io.LimitReader(r, size+1)
	}
	n, err := io.Copy(io.MultiWriter(f, sum), r)
	if err == nil && size >= 0 && n > size {
		err = fmt.Errorf("%w: blob %s is longer than the %d bytes its descriptor gives: stopped there", ErrDigest, h, size)
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.Hex {
		return fmt.Errorf("%w: blob %s has sha256:%s", ErrDigest, h, got)
	}
	return f.Commit(dst, 0o644)
}

// manifest returns the manifest (or index) d from the cache, or fetches it.
func (c cache) manifest(d name.Digest, opts []remote.Option) ([]byte, error) {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return nil, err
	}
	if b, ok := c.cached(h); ok {
		return b, nil
	}
	desc, err := remote.Get(d, opts...)
	if err != nil {
		return nil, Describe("pulling "+d.String(), err)
	}
	if err := c.put(h, bytes.NewReader(desc.Manifest), -1); err != nil {
		return nil, fmt.Errorf("pulling %s: %w", d, err)
	}
	return desc.Manifest, nil
}

// blob makes sure blob h of repo is in the cache.
func (c cache) blob(repo name.Repository, h v1.Hash, size int64, opts []remote.Option) error {
	if _, err := os.Stat(c.path(h)); err == nil {
		return nil
	}
	l, err := remote.Layer(repo.Digest(h.String()), opts...)
	if err != nil {
		return Describe("pulling blob "+h.String()+" of "+repo.String(), err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return Describe("pulling blob "+h.String()+" of "+repo.String(), err)
	}
	defer rc.Close()
	if err := c.put(h, rc, size); err != nil {
		return Describe("pulling blob "+h.String()+" of "+repo.String(), err)
	}
	return nil
}

// Pull returns the linux/arch image that ref (REGISTRY/REPO@sha256:..., of
// an image or a multi-arch index) pins, and its image manifest digest.
// Manifests and blobs come from the cache in cacheDir when it has them
// (a second bake does not touch the network), else from the registry,
// each checked against its digest before it is kept.
func (o Options) Pull(ctx context.Context, ref, arch, cacheDir string) (v1.Image, string, error) {
	r, err := o.Reference(ref)
	if err != nil {
		return nil, "", err
	}
	d, ok := r.(name.Digest)
	if !ok {
		return nil, "", fmt.Errorf("%w: base %s is not pinned by digest (want REGISTRY/REPO@sha256:...; imagebake base pin %s prints it)", failure.ErrUsage, ref, ref)
	}
	c, opts := cache{dir: filepath.Join(cacheDir, "oci")}, o.Remote(ctx)
	raw, err := c.manifest(d, opts)
	if err != nil {
		return nil, "", err
	}
	mt, err := MediaType(raw)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", d, err)
	}
	if mt.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", d, err)
		}
		pd, err := Platform(idx, arch)
		if err != nil {
			return nil, "", fmt.Errorf("base %s: %w", ref, err)
		}
		d = d.Context().Digest(pd.String())
		if raw, err = c.manifest(d, opts); err != nil {
			return nil, "", err
		}
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, "", fmt.Errorf("%s is not an image manifest: %w", d, err)
	}
	for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if err := c.blob(d.Context(), b.Digest, b.Size, opts); err != nil {
			return nil, "", err
		}
	}
	img, err := partial.CompressedToImage(cachedImage{c: c, raw: raw, m: m})
	return img, d.DigestStr(), err
}

// MediaType is what a manifest's own bytes say it is: its mediaType field,
// else an index when it lists manifests, else an OCI image manifest when
// it has a config. A registry's Content-Type header is only a claim.
func MediaType(raw []byte) (types.MediaType, error) {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests []any           `json:"manifests"`
		Config    any             `json:"config"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return "", err
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType, nil
	case probe.Manifests != nil:
		return types.OCIImageIndex, nil
	case probe.Config != nil:
		return types.OCIManifestSchema1, nil
	}
	return "", nil
}

// Platform picks the linux/arch image of a multi-arch index (arm64
// prefers variant v8 or none); a missing platform is an error naming
// the platforms the index has.
func Platform(idx *v1.IndexManifest, arch string) (v1.Hash, error) {
	var have []string
	var pick *v1.Descriptor
	for i, d := range idx.Manifests {
		p := d.Platform
		if p == nil {
			continue
		}
		have = append(have, strings.TrimSuffix(p.OS+"/"+p.Architecture+"/"+p.Variant, "/"))
		if p.OS == "linux" && p.Architecture == arch && (pick == nil || p.Variant == "" || p.Variant == "v8") {
			pick = &idx.Manifests[i]
		}
	}
	if pick == nil {
		return v1.Hash{}, fmt.Errorf("the index has no linux/%s image (it has %s): %w", arch, strings.Join(have, ", "), failure.ErrNotFound)
	}
	return pick.Digest, nil
}

// cachedImage is an image whose manifest, config and layers are in the
// cache.
type cachedImage struct {
	c   cache
	raw []byte
	m   *v1.Manifest
}

func (i cachedImage) RawManifest() ([]byte, error) { return i.raw, nil }
func (i cachedImage) MediaType() (types.MediaType, error) {
	if i.m.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return i.m.MediaType, nil
}
func (i cachedImage) RawConfigFile() ([]byte, error) { return os.ReadFile(i.c.path(i.m.Config.Digest)) }
func (i cachedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range i.m.Layers {
		if l.Digest == h {
			return cachedLayer{path: i.c.path(h), d: l}, nil
		}
	}
	return nil, errors.New("no layer " + h.String())
}

type cachedLayer struct {
	path string
	d    v1.Descriptor
}

func (l cachedLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l cachedLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l cachedLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l cachedLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }

// Pinned is a base reference resolved to its digest.
type Pinned struct {
	Ref       string            // REGISTRY/REPO@sha256:...
	Platforms map[string]string // arch -> the linux/arch image manifest digest
}

// Pin resolves ref (a tag or a digest) to the digest it names now and,
// for each of arches, the digest of its linux/arch image; an arch the
// index lacks is an error naming the platforms it has.
func (o Options) Pin(ctx context.Context, ref string, arches []string) (*Pinned, error) {
	r, err := o.Reference(ref)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(r, o.Remote(ctx)...)
	if err != nil {
		return nil, Describe("resolving "+r.String(), err)
	}
	p := &Pinned{Ref: r.Context().Digest(desc.Digest.String()).String(), Platforms: map[string]string{}}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, Describe("resolving "+r.String(), err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, Describe("reading the config of "+r.String(), err)
		}
		for _, a := range arches {
			if a != cf.Architecture {
				return nil, fmt.Errorf("%s is a single %s/%s image, not linux/%s: %w", r, cf.OS, cf.Architecture, a, failure.ErrNotFound)
			}
			p.Platforms[a] = desc.Digest.String()
		}
		return p, nil
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r, err)
	}
	var errs []error
	for _, a := range arches {
		d, err := Platform(idx, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r, err))
			continue
		}
		p.Platforms[a] = d.String()
	}
	return p, errors.Join(errs...)
}
