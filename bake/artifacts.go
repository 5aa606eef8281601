package bake

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/imagebake/imagebake/internal/attest"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet/compiled"
)

// ErrArtifact marks a release whose files on disk are not what its
// manifest says.
var ErrArtifact = fmt.Errorf("release files differ from the manifest: %w", failure.ErrVerify)

// CheckArtifacts hashes every file of the release whose manifest is at
// name: each blob of an OCI layout (against its name, and the index, image
// and layer digests the manifest records against index.json and the
// blobs), each rootfs tarball, and the SBOM (against the one the manifest
// makes). Every difference is named in one error: the file, the expected
// and the actual digest.
func CheckArtifacts(ctx context.Context, name string) (*manifest.Manifest, error) {
	m, err := manifest.Read(name)
	if err != nil {
		return nil, err
	}
	bad, err := artifactProblems(ctx, name, m)
	if err != nil {
		return m, err
	}
	if len(bad) > 0 {
		return m, fmt.Errorf("%w: %s\n  %s", ErrArtifact, filepath.Dir(name), strings.Join(bad, "\n  "))
	}
	return m, nil
}

// artifactProblems lists, one line each, the files of the release at name
// (manifest m) that are not what m says.
func artifactProblems(ctx context.Context, name string, m *manifest.Manifest) ([]string, error) {
	dir := filepath.Dir(name)
	var bad []string
	switch m.Builder {
	case "oci":
		bad = checkLayout(ctx, dir, m)
	case "rootfs":
		for _, im := range m.Images {
			p := filepath.Join(dir, im.Artifact)
			if got, err := fileDigest(p); err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", p, err))
			} else if got != im.Digest {
				bad = append(bad, fmt.Sprintf("%s: sha256 %s, manifest %s", p, got, im.Digest))
			}
		}
	default:
		return nil, fmt.Errorf("%w: %s was built by %s; its artifacts are recorded (with sha256) in its manifest, where Packer wrote them", failure.ErrUsage, name, m.Builder)
	}
	bad = append(bad, checkCatalogs(dir, m)...)
	return append(append(bad, attest.CheckSBOM(dir, m)...), attest.CheckProvenance(dir, m)...), nil
}

// checkCatalogs checks the compiled catalogs the release keeps against
// the digests its manifest records, and that it keeps no other.
func checkCatalogs(dir string, m *manifest.Manifest) []string {
	var bad []string
	listed := map[string]bool{}
	for _, im := range m.Images {
		for _, c := range im.Catalogs {
			listed[c.File] = true
			p := filepath.Join(dir, c.File)
			if c.File != compiled.FileName(c.Node) {
				bad = append(bad, fmt.Sprintf("%s: the catalog of node %s is kept as %s", dir, c.Node, compiled.FileName(c.Node)))
				continue
			}
			if got, err := fileDigest(p); err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", p, err))
			} else if got != c.SHA256 {
				bad = append(bad, fmt.Sprintf("%s: sha256 %s, manifest %s (the catalog of node %s was changed)", p, got, c.SHA256, c.Node))
			}
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if compiled.IsFileName(e.Name()) && !listed[e.Name()] {
			bad = append(bad, fmt.Sprintf("%s: a catalog the manifest does not record", filepath.Join(dir, e.Name())))
		}
	}
	return bad
}

// checkLayout checks an OCI layout: every blob's content against its name,
// and that index.json and the blobs hold the index, images and layers the
// manifest records.
func checkLayout(ctx context.Context, dir string, m *manifest.Manifest) []string {
	var bad []string
	blobs := filepath.Join(dir, "blobs", "sha256")
	ents, err := os.ReadDir(blobs)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", blobs, err)}
	}
	have, corrupt := map[string]bool{}, map[string]bool{}
	for _, e := range ents {
		p := filepath.Join(blobs, e.Name())
		got, err := fileDigest(p)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", p, err))
		case got != "sha256:"+e.Name():
			bad = append(bad, fmt.Sprintf("%s: sha256 %s, named sha256:%s", p, got, e.Name()))
			corrupt["sha256:"+e.Name()] = true
		default:
			have[got] = true
		}
	}
	var index struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	listed := map[string]bool{}
	p := filepath.Join(dir, "index.json")
	if b, err := os.ReadFile(p); err != nil {
		bad = append(bad, fmt.Sprintf("%s: %v", p, err))
	} else if err := json.Unmarshal(b, &index); err != nil {
		bad = append(bad, fmt.Sprintf("%s: %v", p, err))
	}
	for _, d := range index.Manifests {
		listed[d.Digest] = true
	}
	want := func(what, d string, inIndex bool) {
		if d == "" {
			return
		}
		if inIndex && !listed[d] {
			bad = append(bad, fmt.Sprintf("%s: %s %s is not listed", p, what, d))
		}
		if !have[d] && !corrupt[d] {
			bad = append(bad, fmt.Sprintf("%s: %s %s is missing", filepath.Join(blobs, strings.TrimPrefix(d, "sha256:")), what, d))
		}
	}
	want("image index", m.IndexDigest, true)
	for _, im := range m.Images {
		want("image "+im.Name, im.Digest, true)
		for _, l := range im.Layers {
			want(fmt.Sprintf("layer (%s) of %s", l.Role, im.Name), l.Digest, false)
		}
	}
	if len(bad) > 0 {
		return bad
	}
	// the blobs are whole: what the manifest says of each image is
	// checked against them (an edited manifest over untouched blobs)
	src, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", dir, err)}
	}
	for _, im := range m.Images {
		h, err := v1.NewHash(im.Digest)
		if err != nil {
			bad = append(bad, fmt.Sprintf("image %s: digest %q: %v", im.Name, im.Digest, err))
			continue
		}
		img, err := src.Image(h)
		if err == nil {
			err = partCheck(ctx, dir, m, im)(img)
		}
		if err != nil {
			bad = append(bad, err.Error())
		}
	}
	return bad
}

func fileDigest(p string) (string, error) {
	h, err := filehash.SHA256(p)
	return "sha256:" + h, err
}
