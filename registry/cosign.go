package registry

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebake/imagebake/internal/cosignkey"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/ociremote"
)

// The predicate types cosign's --type names stand for.
const (
	ProvenancePredicate = "https://slsa.dev/provenance/v1" // --type slsaprovenance1
	SPDXPredicate       = "https://spdx.dev/Document"      // --type spdxjson
	provenanceFile      = "provenance.intoto.json"
	predicateAnnotation = "dev.sigstore.bundle.predicateType"
)

// ErrCosign marks a pushed release whose cosign signatures or
// attestations are missing or do not verify.
var ErrCosign = fmt.Errorf("cosign signatures: %w", failure.ErrVerify)

// cosignBundle is one bundle to attach: what it is about and says.
type cosignBundle struct {
	subject   v1.Descriptor
	name      string // for messages: the image or index
	predicate string
	body      json.RawMessage // nil for a signature
}

// subjectRef is a manifest that gets signed and attested.
type subjectRef struct {
	d    v1.Descriptor
	name string // for messages
}

// cosignAttach signs the index and every image (cosign's signature
// predicate) and attests the provenance and the SBOM on each, each a
// Sigstore bundle attached as a referrer, as cosign v3 writes them. A
// bundle of the same kind by the same key already attached is kept:
// pushing again adds nothing.
//
// A per-arch (partial) release has no index yet: its images are signed and
// attested alone, and the merged release's push signs its index (an image
// already signed by the key keeps its bundles).
func (r *release) cosignAttach(ctx context.Context, rp name.Repository, key crypto.Signer, provenance []byte, opts []remote.Option) ([]Pushed, error) {
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T key; cosign verifies offline with ECDSA P-256 keys", cosignkey.ErrKey, key.Public())
	}
	var prov json.RawMessage
	if provenance != nil {
		var st struct {
			Predicate json.RawMessage `json:"predicate"`
		}
		if err := json.Unmarshal(provenance, &st); err != nil || st.Predicate == nil {
			return nil, fmt.Errorf("%s of %s-%s is not an in-toto statement: %v", provenanceFile, r.m.Family, r.m.Release, err)
		}
		prov = st.Predicate
	}
	// the index and each image: signed, with the release's provenance
	// and SBOM attested about that digest (a policy may name either)
	var subjects []subjectRef
	if len(r.m.PartialOf) == 0 {
		raw, err := r.index.RawManifest()
		if err != nil {
			return nil, err
		}
		subjects = append(subjects, subjectRef{v1.Descriptor{MediaType: types.OCIImageIndex, Digest: mustHash(r.m.IndexDigest), Size: int64(len(raw))}, r.m.Family + "-" + r.m.Release})
	}
	for _, im := range r.m.Images {
		b, err := r.images[im.Arch].RawManifest()
		if err != nil {
			return nil, err
		}
		subjects = append(subjects, subjectRef{v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: mustHash(im.Digest), Size: int64(len(b))}, im.Name})
	}
	var todo []cosignBundle
	for _, s := range subjects {
		todo = append(todo, cosignBundle{subject: s.d, name: s.name, predicate: cosignkey.SignPredicate})
		if prov != nil {
			todo = append(todo, cosignBundle{subject: s.d, name: s.name, predicate: ProvenancePredicate, body: prov})
		}
		todo = append(todo, cosignBundle{subject: s.d, name: s.name, predicate: SPDXPredicate, body: r.sbom})
	}
	created := r.created()
	var out []Pushed
	for _, c := range todo {
		// a bundle already there is kept only when it verifies with this
		// key and is about this digest: a copied or forged one is signed
		// again
		if d, ok := signedBy(rp.Digest(c.subject.Digest.String()), c.predicate, pub, opts); ok {
			out = append(out, Pushed{Name: c.predicate + " of " + c.name, Ref: rp.Digest(d).String()})
			continue
		}
		st, err := cosignkey.Statement(c.subject.Digest.Hex, c.predicate, c.body)
		if err != nil {
			return nil, err
		}
		bundle, err := cosignkey.Sign(key, st)
		if err != nil {
			return nil, err
		}
		ref, err := putBundle(rp, c.subject, c.predicate, created, bundle, opts)
		if err != nil {
			return nil, ociremote.Describe(fmt.Sprintf("attaching the cosign %s of %s to %s", c.predicate, c.name, rp), err)
		}
		out = append(out, Pushed{Name: c.predicate + " of " + c.name, Ref: ref, New: true})
	}
	return out, nil
}

// created is the annotation cosign writes: here the release's epoch, so
// the artifact is the same whoever pushes it.
func (r *release) created() string {
	return time.Unix(r.m.Epoch, 0).UTC().Format(time.RFC3339)
}

// putBundle writes a bundle as cosign v3 does: an OCI 1.1 artifact whose
// subject is the signed manifest (the registry's referrers API, or the
// sha256-DIGEST tag where it has none).
func putBundle(rp name.Repository, subject v1.Descriptor, predicate, created string, bundle []byte, opts []remote.Option) (string, error) {
	empty := []byte("{}")
	eh, _, _ := v1.SHA256(bytes.NewReader(empty))
	bh, bn, _ := v1.SHA256(bytes.NewReader(bundle))
	for _, l := range []v1.Layer{static.NewLayer(empty, emptyJSON), static.NewLayer(bundle, cosignkey.BundleType)} {
		if err := remote.WriteLayer(rp, l, opts...); err != nil {
			return "", err
		}
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: cosignkey.BundleType,
		Config:  v1.Descriptor{MediaType: emptyJSON, Digest: eh, Size: 2, ArtifactType: cosignkey.BundleType},
		Layers:  []v1.Descriptor{{MediaType: cosignkey.BundleType, Digest: bh, Size: bn}},
		Subject: &subject,
		Annotations: map[string]string{"dev.sigstore.bundle.content": "dsse-envelope", predicateAnnotation: predicate,
			"org.opencontainers.image.created": created}}
	body, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	h, _, _ := v1.SHA256(bytes.NewReader(body))
	ref := rp.Digest(h.String())
	if err := remote.Put(ref, rawManifest(body), opts...); err != nil {
		return "", err
	}
	return ref.String(), nil
}

// signedBy finds a bundle of predicate attached to d that pub's
// signature vouches for, its statement about d: the digest of its
// artifact manifest.
func signedBy(d name.Digest, predicate string, pub *ecdsa.PublicKey, opts []remote.Option) (string, bool) {
	for _, b := range bundleManifests(d, predicate, opts) {
		raw, err := readBundle(d.Context(), b, opts)
		if err == nil && vouches(pub, raw, d.DigestStr(), predicate) {
			return b.digest, true
		}
	}
	return "", false
}

// vouches says whether bundle is signed by pub and states predicate
// about digest (sha256:HEX).
func vouches(pub *ecdsa.PublicKey, bundle []byte, digest, predicate string) bool {
	st, err := cosignkey.Verify(pub, bundle)
	if err != nil {
		return false
	}
	var s struct {
		Subject []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		PredicateType string `json:"predicateType"`
	}
	if json.Unmarshal(st, &s) != nil || s.PredicateType != predicate {
		return false
	}
	for _, sub := range s.Subject {
		if "sha256:"+sub.Digest["sha256"] == digest {
			return true
		}
	}
	return false
}

type bundleRef struct{ digest, layer string }

// maxBundle bounds a bundle read from a registry (cosign's are a few KiB).
const maxBundle = 4 << 20

// readBundle reads a bundle artifact's layer.
func readBundle(repo name.Repository, b bundleRef, opts []remote.Option) ([]byte, error) {
	l, err := remote.Layer(repo.Digest(b.layer), opts...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(rc, maxBundle)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bundleManifests finds the bundle artifacts of predicate among d's
// referrers.
func bundleManifests(d name.Digest, predicate string, opts []remote.Option) []bundleRef {
	idx, err := remote.Referrers(d, opts...)
	if err != nil {
		return nil
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil
	}
	var out []bundleRef
	for _, desc := range im.Manifests {
		if desc.ArtifactType != cosignkey.BundleType {
			continue
		}
		raw, err := remote.Get(d.Context().Digest(desc.Digest.String()), opts...)
		if err != nil {
			continue
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw.Manifest))
		if err != nil || m.Annotations[predicateAnnotation] != predicate || len(m.Layers) != 1 {
			continue
		}
		out = append(out, bundleRef{digest: desc.Digest.String(), layer: m.Layers[0].Digest.String()})
	}
	return out
}

// VerifyCosign checks, for the release m pushed to repo, that the index
// and every image carry a cosign signature by pub and the provenance and
// SBOM attestations, each statement about that digest.
// Every missing or bad one is named.
func VerifyCosign(ctx context.Context, repo name.Repository, index string, images map[string]string, pub *ecdsa.PublicKey, o Options) error {
	opts := o.Remote(ctx)
	type want struct{ digest, what, predicate string }
	var wants []want
	arches := make([]string, 0, len(images))
	for a := range images {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	targets := [][2]string{{index, "the index"}}
	for _, a := range arches {
		targets = append(targets, [2]string{images[a], "the " + a + " image"})
	}
	for _, t := range targets {
		for _, p := range []string{cosignkey.SignPredicate, ProvenancePredicate, SPDXPredicate} {
			wants = append(wants, want{t[0], t[1], p})
		}
	}
	var problems []string
	for _, w := range wants {
		d := repo.Digest(w.digest)
		if _, ok := signedBy(d, w.predicate, pub, opts); !ok {
			kind := "signature"
			if w.predicate != cosignkey.SignPredicate {
				kind = "attestation " + w.predicate
			}
			problems = append(problems, fmt.Sprintf("%s (%s): no cosign %s by the key given", w.what, w.digest, kind))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w in %s:\n  %s", ErrCosign, repo, strings.Join(problems, "\n  "))
	}
	return nil
}
