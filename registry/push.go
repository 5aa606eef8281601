package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/ociremote"
	"github.com/imagebake/imagebake/internal/progress"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// Artifact types of the referrers a push attaches to the index.
const (
	// ManifestArtifact is the release's manifest.toml, with its minisign
	// signature as a second layer when it has one.
	ManifestArtifact = "application/vnd.imagebake.manifest.v1+toml"
	// SBOMArtifact is the release's SPDX 2.3 JSON SBOM.
	SBOMArtifact = "application/spdx+json"

	tomlMediaType      = "application/toml"
	signatureMediaType = "application/vnd.imagebake.minisign.signature"
	titleAnnotation    = "org.opencontainers.image.title"
	sbomName           = "sbom.spdx.json"
)

// ErrTagMoved marks a push that would point an existing release tag at
// other content: releases are immutable.
var ErrTagMoved = fmt.Errorf("tag already names other content: %w", failure.ErrVerify)

// Pushed is one manifest a push left in the registry.
type Pushed struct {
	Name string // NAME-X.Y.Z-ARCH, NAME-X.Y.Z, or the artifact's file
	Tag  string // "" for referrers
	Ref  string // REGISTRY/REPO@sha256:...
	New  bool   // false: the registry had it already
}

// release is a release directory read for pushing.
type release struct {
	m          *manifest.Manifest
	index      v1.ImageIndex
	images     map[string]v1.Image // by arch
	sbom       []byte
	provenance []byte // provenance.intoto.json; nil for a release made before it
	sig        []byte // the manifest's signature; nil: unsigned
	raw        []byte // manifest.toml
}

// readRelease opens the OCI layout in dir and checks it holds the index
// and images the manifest records.
func readRelease(dir string, sig []byte) (*release, error) {
	mpath := filepath.Join(dir, manifest.FileName)
	raw, err := os.ReadFile(mpath)
	if err != nil {
		return nil, fmt.Errorf("release directory %s: %w", dir, notFound(err))
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	if m.Builder != "oci" || m.IndexDigest == "" {
		return nil, fmt.Errorf("%w: %s was baked with builder %s; only OCI layout releases (builder oci) are pushed", failure.ErrUsage, dir, m.Builder)
	}
	r := &release{m: m, raw: raw, sig: sig, images: map[string]v1.Image{}}
	if r.sig == nil {
		if r.sig, err = os.ReadFile(mpath + ".minisig"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if r.sbom, err = os.ReadFile(filepath.Join(dir, sbomName)); err != nil {
		return nil, fmt.Errorf("release directory %s: %w", dir, notFound(err))
	}
	if r.provenance, err = os.ReadFile(filepath.Join(dir, provenanceFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s is not an OCI layout: %w", dir, notFound(err))
	}
	h, err := v1.NewHash(m.IndexDigest)
	if err != nil {
		return nil, fmt.Errorf("%s: index digest %q: %w", mpath, m.IndexDigest, failure.ErrUsage)
	}
	if r.index, err = p.ImageIndex(); err == nil {
		r.index, err = r.index.ImageIndex(h)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: the index %s the manifest records: %w", dir, m.IndexDigest, notFound(err))
	}
	im, err := r.index.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: index %s: %w", dir, m.IndexDigest, err)
	}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			return nil, fmt.Errorf("%s: index %s names %s without a platform", dir, m.IndexDigest, d.Digest)
		}
		if r.images[d.Platform.Architecture], err = r.index.Image(d.Digest); err != nil {
			return nil, fmt.Errorf("%s: image %s: %w", dir, d.Digest, notFound(err))
		}
	}
	for _, want := range m.Images {
		img, ok := r.images[want.Arch]
		if !ok {
			return nil, fmt.Errorf("%w: %s: the index has no %s image, the manifest records %s", failure.ErrVerify, dir, want.Arch, want.Digest)
		}
		if d, _ := img.Digest(); d.String() != want.Digest {
			return nil, fmt.Errorf("%w: %s: the index's %s image is %s, the manifest records %s", failure.ErrVerify, dir, want.Arch, d, want.Digest)
		}
	}
	return r, nil
}

func notFound(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", failure.ErrNotFound, err)
	}
	return err
}

// Push sends the release in dir (an OCI layout baked by imagebake) to the
// repository repo: each image by digest and tagged X.Y.Z-ARCH, then the
// index tagged X.Y.Z, then the SBOM and the manifest (with sig, its
// signature, or the manifest.toml.minisig beside it) as referrers of the
// index. Blobs the registry has are not sent again. A tag that names
// other content is refused unless o.Force, before anything is written.
//
// A per-arch bake (its manifest's partial_of set) is pushed for merge:
// each image under its tag X.Y.Z-ARCH with the partial's manifest as its
// referrer, and no index: the tag X.Y.Z is the merged release's.
func Push(ctx context.Context, dir, repo string, sig []byte, o Options) ([]Pushed, error) {
	r, err := readRelease(dir, sig)
	if err != nil {
		return nil, err
	}
	rp, err := o.Repository(repo)
	if err != nil {
		return nil, err
	}
	opts := o.Remote(ctx)
	tags := r.tags()
	partial := len(r.m.PartialOf) > 0
	if partial {
		tags = tags[:len(tags)-1]
	}
	fresh, err := checkTags(rp, tags, o.Force, opts)
	if err != nil {
		return nil, err
	}
	n := len(r.m.Images)
	if err := r.writeImages(ctx, rp, tags[:n], fresh, opts); err != nil {
		return nil, err
	}
	if !partial && fresh[tags[n].tag] {
		it := tags[n]
		if err := raced(ctx, func() error { return remote.WriteIndex(rp.Tag(it.tag), r.index, opts...) }); err != nil {
			return nil, ociremote.Describe(fmt.Sprintf("pushing %s to %s:%s", it.name, rp, it.tag), err)
		}
	}
	var out []Pushed
	for _, t := range tags {
		out = append(out, Pushed{Name: t.name, Tag: t.tag, Ref: rp.Digest(t.digest).String(), New: fresh[t.tag]})
	}
	if !partial {
		refs, err := r.attach(ctx, rp, opts, o)
		if err != nil {
			return append(out, refs...), err
		}
		out = append(out, refs...)
		// the per-arch bakes' manifests attached to the images are
		// superseded by the release's own, now on its index
		for _, im := range r.m.Images {
			if err := supersede(rp, mustHash(im.Digest), "", opts); err != nil {
				return out, err
			}
		}
		if o.Cosign == nil {
			return out, nil
		}
		// after the index landed: never a signature of nothing; again on
		// a retry, it adds only what is missing
		signed, err := r.cosignAttach(ctx, rp, o.Cosign, r.provenance, opts)
		return append(out, signed...), err
	}
	for _, im := range r.m.Images { // merge finds the partial's manifest from each image
		raw, err := r.images[im.Arch].RawManifest()
		if err != nil {
			return nil, err
		}
		subject := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: mustHash(im.Digest), Size: int64(len(raw))}
		refs, err := r.attachTo(ctx, rp, subject, []artifact{r.manifestArtifact()}, opts)
		if err != nil {
			return nil, err
		}
		// the same image pushed again with another manifest: this one
		// replaces the one attached before (after it is there: never none)
		if err := supersede(rp, subject.Digest, strings.TrimPrefix(refs[0].Ref, rp.String()+"@"), opts); err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	if o.Cosign != nil { // after the images landed
		signed, err := r.cosignAttach(ctx, rp, o.Cosign, r.provenance, opts)
		return append(out, signed...), err
	}
	return out, nil
}

// writeImages writes each image of tags that fresh says is missing
// straight under its tag (no second PUT to tag it), all at once. An index
// is written after its images: it never names a manifest the registry
// lacks.
func (r *release) writeImages(ctx context.Context, rp name.Repository, tags []tagged, fresh map[string]bool, opts []remote.Option) error {
	errs := make([]error, len(tags))
	var wg sync.WaitGroup
	var total int64
	for _, t := range tags {
		if fresh[t.tag] {
			total += imageSize(r.images[t.arch])
		}
	}
	bar := progress.Start(ctx, fmt.Sprintf("pushing %s to %s", r.m.Family+"-"+r.m.Release, rp), total, true)
	defer bar.Finish()
	for i, t := range tags {
		if !fresh[t.tag] {
			continue
		}
		wg.Add(1)
		go func() {
			defer failure.Crash()
			defer wg.Done()
			if err := raced(ctx, func() error {
				return counted(bar, func(o ...remote.Option) error { return remote.Write(rp.Tag(t.tag), r.images[t.arch], o...) }, opts)
			}); err != nil {
				errs[i] = ociremote.Describe(fmt.Sprintf("pushing %s to %s:%s", t.name, rp, t.tag), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// imageSize is the bytes of img's layers and config (0 when unknown).
func imageSize(img v1.Image) int64 {
	var n int64
	if m, err := img.Manifest(); err == nil {
		n = m.Config.Size
		for _, l := range m.Layers {
			n += l.Size
		}
	}
	return n
}

// counted runs write with opts and a fresh progress channel that counts
// the bytes it sends on bar (each attempt its own channel: the registry
// client closes it when the write ends).
func counted(bar *progress.Bar, write func(...remote.Option) error, opts []remote.Option) error {
	ch := make(chan v1.Update, 64)
	done := make(chan struct{})
	go func() {
		defer failure.Crash()
		defer close(done)
		var last int64
		for u := range ch {
			if u.Complete > last {
				bar.Add(u.Complete - last)
				last = u.Complete
			}
		}
	}()
	err := write(append(opts[:len(opts):len(opts)], remote.WithProgress(ch))...)
	if err == nil {
		<-done // the client closed ch when the write ended
		return nil
	}
	select { // a write refused before it began leaves ch open
	case <-done:
	case <-time.After(time.Second):
	}
	return err
}

// raceAttempts bounds the writes of one image when pushes race.
const raceAttempts = 4

// raced runs write again when the registry's answer is one that two
// pushers of the same blob at once can cause (distribution 2.8 on a file
// system: one upload's commit moves the blob under the other's, which
// then gets DIGEST_INVALID or BLOB_UPLOAD_UNKNOWN, or a manifest PUT finds
// the blob not yet linked, MANIFEST_BLOB_UNKNOWN). A write skips the
// blobs that are there, so the next attempt finishes what the first left.
func raced(ctx context.Context, write func() error) error {
	var err error
	for attempt := 1; attempt <= raceAttempts; attempt++ {
		if err = write(); err == nil || !racy(err) {
			return err
		}
		select { // Ctrl-C ends the wait
		case <-ctx.Done():
			return errors.Join(err, context.Cause(ctx))
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	return err
}

func racy(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	for _, d := range te.Errors {
		switch d.Code {
		case transport.DigestInvalidErrorCode, transport.BlobUploadUnknownErrorCode, transport.BlobUploadInvalidErrorCode,
			transport.ManifestBlobUnknownErrorCode, transport.BlobUnknownErrorCode:
			return true
		}
	}
	return false
}

type tagged struct {
	name, tag, digest, arch string
}

// tags lists what a push tags: each image (X.Y.Z-ARCH), then the index.
func (r *release) tags() []tagged {
	var out []tagged
	for _, im := range r.m.Images {
		out = append(out, tagged{name: im.Name, tag: r.m.Release + "-" + im.Arch, digest: im.Digest, arch: im.Arch})
	}
	return append(out, tagged{name: r.m.Family + "-" + r.m.Release, tag: r.m.Release, digest: r.m.IndexDigest})
}

// checkTags looks every tag up and returns the ones to write; a tag that
// names other content is refused (all of them named) unless force.
func checkTags(rp name.Repository, tags []tagged, force bool, opts []remote.Option) (map[string]bool, error) {
	found := make([]*v1.Descriptor, len(tags))
	errs := make([]error, len(tags))
	var wg sync.WaitGroup
	for i, t := range tags { // one round trip for all, not one per tag
		wg.Add(1)
		go func() {
			defer failure.Crash()
			defer wg.Done()
			found[i], errs[i] = remote.Head(rp.Tag(t.tag), opts...)
		}()
	}
	wg.Wait()
	fresh := map[string]bool{}
	var moved []string
	for i, t := range tags {
		d, err := found[i], errs[i]
		switch {
		case ociremote.IsNotFound(err):
			fresh[t.tag] = true
		case err != nil:
			return nil, ociremote.Describe(fmt.Sprintf("looking up %s:%s", rp, t.tag), err)
		case d.Digest.String() != t.digest:
			moved = append(moved, fmt.Sprintf("%s:%s is %s, this release's %s is %s", rp, t.tag, d.Digest, t.name, t.digest))
			fresh[t.tag] = true
		}
	}
	if len(moved) > 0 && !force {
		return nil, fmt.Errorf("%w (releases are immutable; bake a new release number, or pass --force):\n  %s", ErrTagMoved, strings.Join(moved, "\n  "))
	}
	return fresh, nil
}

// attach pushes the SBOM and the manifest (and its signature) as
// artifacts whose subject is the index, unless the index has them.
func (r *release) attach(ctx context.Context, rp name.Repository, opts []remote.Option, o Options) ([]Pushed, error) {
	raw, err := r.index.RawManifest()
	if err != nil {
		return nil, err
	}
	subject := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: mustHash(r.m.IndexDigest), Size: int64(len(raw))}
	arts := []artifact{{typ: SBOMArtifact, files: []file{{sbomName, SBOMArtifact, r.sbom}}}}
	if r.sig == nil {
		o.logf("warning: %s has no signature (sign with --key, or push the release from a store): verify will refuse it\n", manifest.FileName)
	}
	return r.attachTo(ctx, rp, subject, append(arts, r.manifestArtifact()), opts)
}

// manifestArtifact is the release's manifest.toml with its signature,
// when it has one.
func (r *release) manifestArtifact() artifact {
	mf := artifact{typ: ManifestArtifact, files: []file{{manifest.FileName, tomlMediaType, r.raw}}}
	if r.sig != nil {
		mf.files = append(mf.files, file{manifest.FileName + ".minisig", signatureMediaType, r.sig})
	}
	return mf
}

// attachTo pushes arts as artifacts whose subject is subject, skipping
// those it has already.
func (r *release) attachTo(ctx context.Context, rp name.Repository, subject v1.Descriptor, arts []artifact, opts []remote.Option) ([]Pushed, error) {
	created := time.Unix(r.m.Epoch, 0).UTC().Format(time.RFC3339)
	have, err := referrers(rp.Digest(subject.Digest.String()), opts)
	if err != nil {
		return nil, err
	}
	// the blobs of every missing artifact at once (the empty config once);
	// the artifact manifests one after the other: on registries without the
	// referrers API each updates the sha256-DIGEST tag, read then written
	var blobs []file
	for _, a := range arts {
		if _, d := a.manifest(subject, created); !have[d.String()] {
			blobs = append(blobs, a.files...)
		}
	}
	if len(blobs) > 0 {
		blobs = append(blobs, file{"the empty config", emptyJSON, []byte("{}")})
	}
	// blobs and manifests are written again together when a racing pusher
	// of the same blob (the empty config) made the registry lose one
	var out []Pushed
	err = raced(ctx, func() error {
		errs := make([]error, len(blobs))
		var wg sync.WaitGroup
		for i, f := range blobs {
			wg.Add(1)
			go func() {
				defer failure.Crash()
				defer wg.Done()
				errs[i] = remote.WriteLayer(rp, static.NewLayer(f.data, types.MediaType(f.mediaType)), opts...)
				errs[i] = ociremote.Describe(fmt.Sprintf("pushing %s to %s", f.name, rp), errs[i])
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		out = nil
		for _, a := range arts {
			body, d := a.manifest(subject, created)
			ref := rp.Digest(d.String())
			if !have[d.String()] {
				if err := remote.Put(ref, rawManifest(body), opts...); err != nil {
					return ociremote.Describe(fmt.Sprintf("attaching %s to %s", a.files[0].name, rp.Digest(subject.Digest.String())), err)
				}
			}
			out = append(out, Pushed{Name: a.files[0].name, Ref: ref.String(), New: !have[d.String()]})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// referrers lists the digests of the index's referrers.
func referrers(d name.Digest, opts []remote.Option) (map[string]bool, error) {
	have := map[string]bool{}
	idx, err := remote.Referrers(d, opts...)
	if ociremote.IsNotFound(err) {
		return have, nil
	}
	if err != nil {
		return nil, ociremote.Describe(fmt.Sprintf("listing the referrers of %s", d), err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, m := range im.Manifests {
		have[m.Digest.String()] = true
	}
	return have, nil
}

const emptyJSON = "application/vnd.oci.empty.v1+json"

type file struct {
	name, mediaType string
	data            []byte
}

// artifact is an OCI 1.1 artifact manifest: artifactType, the empty
// config, one layer per file, a subject.
type artifact struct {
	typ   string
	files []file
}

func (a artifact) manifest(subject v1.Descriptor, created string) ([]byte, v1.Hash) {
	empty := []byte("{}")
	eh, _, _ := v1.SHA256(bytes.NewReader(empty))
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: a.typ,
		Config:      v1.Descriptor{MediaType: emptyJSON, Digest: eh, Size: 2, Data: empty},
		Subject:     &subject,
		Annotations: map[string]string{"org.opencontainers.image.created": created}}
	for _, f := range a.files {
		h, n, _ := v1.SHA256(bytes.NewReader(f.data))
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.MediaType(f.mediaType), Digest: h, Size: n,
			Annotations: map[string]string{titleAnnotation: f.name}})
	}
	body, _ := json.Marshal(m)
	h, _, _ := v1.SHA256(bytes.NewReader(body))
	return body, h
}

type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func mustHash(s string) v1.Hash {
	h, _ := v1.NewHash(s)
	return h
}
