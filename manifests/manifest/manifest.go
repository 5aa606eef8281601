// Package manifest reads and writes manifest.toml, the record of one baked
// release: every input pinned and every output's digest, enough to rebuild
// the same bytes (`imagebake verify`).
//
// # Schema
//
//	format        = 1
//	family        = "example"
//	release       = "1.0.0"
//	epoch         = 1735732800        # build epoch, seconds since 1970
//	builder       = "oci" | "rootfs"
//	environment   = "/etc/puppetlabs/code/environments/production"
//	inputs_digest = "sha256:..."      # of this document with outputs left out; also in release.toml
//	index_digest  = "sha256:..."      # oci: the image index over all arches
//
//	[imagebake]   version, go
//	[repo]        url, tag, commit
//	[puppetfile]  sha256, lock_committed, forge, moduledir,
//	              [[puppetfile.module]] one pin each (see manifests/lockfile)
//	[[image]]     arch, os, name ("example-1.0.0-amd64"), digest, artifact (path in the release dir)
//	  [image.base]   ref ("scratch", "oci:PATH@sha256:...", "rootfs:PATH@sha256:..."), digest
//	  [image.agent]  name, version, os, arch, size, sha256, source (store), path (in the store)
//	  [[image.layer]] role ("base", "environment", "agents"), media_type, diff_id, digest, size
//	[[artifact]]  build, builder_id, id; [[artifact.file]] path, sha256  (Packer builds)
//
// Images are sorted by arch; nothing in it is a wall-clock time, so baking
// the same inputs twice writes the same bytes.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"

	"github.com/BurntSushi/toml"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/strict"
	"github.com/imagebake/imagebake/manifests/lockfile"
)

// Format is the manifest format this package writes.
const Format = 1

// FileName is the manifest's name in a release directory.
const FileName = "manifest.toml"

// ErrInvalid marks a manifest that cannot be used.
var ErrInvalid = fmt.Errorf("invalid manifest: %w", failure.ErrUsage)

// Manifest is one release's manifest.
type Manifest struct {
	Format       int        `toml:"format" json:"format"`
	Family       string     `toml:"family" json:"family"`
	Release      string     `toml:"release" json:"release"`
	Epoch        int64      `toml:"epoch" json:"epoch"`
	Builder      string     `toml:"builder" json:"builder"`
	Environment  string     `toml:"environment" json:"environment"`
	InputsDigest string     `toml:"inputs_digest" json:"inputs_digest"`
	IndexDigest  string     `toml:"index_digest,omitempty" json:"index_digest,omitempty"`
	Imagebake    Tool       `toml:"imagebake" json:"imagebake"`
	Repo         Repo       `toml:"repo" json:"repo"`
	Puppetfile   Puppetfile `toml:"puppetfile" json:"puppetfile"`
	Images       []Image    `toml:"image" json:"images"`
	// Artifacts are what Packer builds produced from this release
	// (post-processor imagebake-manifest); outputs, not inputs.
	Artifacts []Artifact `toml:"artifact,omitempty" json:"artifacts,omitempty"`
}

// Artifact is one Packer artifact.
type Artifact struct {
	Build     string         `toml:"build" json:"build"`
	BuilderID string         `toml:"builder_id" json:"builder_id"`
	ID        string         `toml:"id" json:"id"`
	Files     []ArtifactFile `toml:"file,omitempty" json:"files,omitempty"`
}

// ArtifactFile is a file of an artifact.
type ArtifactFile struct {
	Path   string `toml:"path" json:"path"`
	SHA256 string `toml:"sha256" json:"sha256"`
}

// Tool is the imagebake that baked the release.
type Tool struct {
	Version string `toml:"version" json:"version"`
	Go      string `toml:"go" json:"go"`
}

// Repo is the control repo at the release.
type Repo struct {
	URL    string `toml:"url" json:"url"`
	Tag    string `toml:"tag" json:"tag"`
	Commit string `toml:"commit" json:"commit"`
}

// Puppetfile is the release's Puppetfile and its pins.
type Puppetfile struct {
	SHA256        string            `toml:"sha256" json:"sha256"`
	LockCommitted bool              `toml:"lock_committed" json:"lock_committed"`
	Forge         string            `toml:"forge,omitempty" json:"forge,omitempty"`
	Moduledir     string            `toml:"moduledir" json:"moduledir"`
	Modules       []lockfile.Module `toml:"module" json:"modules"`
}

// Image is one arch's image.
type Image struct {
	Arch     string  `toml:"arch" json:"arch"`
	OS       string  `toml:"os" json:"os"`
	Name     string  `toml:"name" json:"name"`
	Digest   string  `toml:"digest,omitempty" json:"digest,omitempty"`
	Artifact string  `toml:"artifact,omitempty" json:"artifact,omitempty"`
	Base     Base    `toml:"base" json:"base"`
	Agent    Agent   `toml:"agent" json:"agent"`
	Layers   []Layer `toml:"layer,omitempty" json:"layers,omitempty"`
}

// Base is an image's base, pinned.
type Base struct {
	Ref    string `toml:"ref" json:"ref"`
	Digest string `toml:"digest,omitempty" json:"digest,omitempty"`
}

// Agent is the agent binaries an image carries.
type Agent struct {
	Name    string `toml:"name" json:"name"`
	Version string `toml:"version" json:"version"`
	OS      string `toml:"os" json:"os"`
	Arch    string `toml:"arch" json:"arch"`
	Size    int64  `toml:"size" json:"size"`
	SHA256  string `toml:"sha256" json:"sha256"`
	Source  string `toml:"source" json:"source"`
	Path    string `toml:"path" json:"path"`
}

// Layer is one layer of an image.
type Layer struct {
	Role      string `toml:"role" json:"role"`
	MediaType string `toml:"media_type" json:"media_type"`
	DiffID    string `toml:"diff_id" json:"diff_id"`
	Digest    string `toml:"digest" json:"digest"`
	Size      int64  `toml:"size" json:"size"`
}

// Encode returns the manifest's canonical bytes.
func (m *Manifest) Encode() ([]byte, error) {
	m.Format = Format
	sort.Slice(m.Images, func(i, j int) bool { return m.Images[i].Arch < m.Images[j].Arch })
	sort.Slice(m.Puppetfile.Modules, func(i, j int) bool { return m.Puppetfile.Modules[i].Name < m.Puppetfile.Modules[j].Name })
	var buf bytes.Buffer
	buf.WriteString("# manifest.toml: every input of this release pinned, every output's digest.\n# `imagebake verify` rebuilds from it alone.\n\n")
	if err := toml.NewEncoder(&buf).Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Inputs returns a copy without outputs (digests, layers, artifacts).
func (m *Manifest) Inputs() *Manifest {
	c := *m
	c.InputsDigest, c.IndexDigest, c.Artifacts = "", "", nil
	c.Imagebake.Go = ""
	c.Images = nil
	for _, im := range m.Images {
		im.Digest, im.Artifact, im.Layers, im.Base.Digest = "", "", nil, ""
		c.Images = append(c.Images, im)
	}
	c.Puppetfile.Modules = append([]lockfile.Module(nil), m.Puppetfile.Modules...)
	return &c
}

// ComputeInputsDigest is the sha256 of the canonical encoding of Inputs().
func (m *Manifest) ComputeInputsDigest() (string, error) {
	b, err := m.Inputs().Encode()
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:]), nil
}

// Write stores the manifest atomically.
func (m *Manifest) Write(name string) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(name, b, 0o644)
}

// Read loads and checks a manifest.
func Read(name string) (*Manifest, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// Parse decodes and checks manifest bytes; unknown keys are errors.
func Parse(b []byte) (*Manifest, error) {
	var m Manifest
	if err := strict.DecodeTOML(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%w: format %d, this imagebake reads %d", ErrInvalid, m.Format, Format)
	}
	if m.Family == "" || m.Release == "" || len(m.Repo.Commit) != 40 || len(m.Images) == 0 {
		return nil, fmt.Errorf("%w: family, release, repo.commit and at least one image are required", ErrInvalid)
	}
	for _, im := range m.Images {
		if im.Arch == "" || im.Agent.Version == "" || len(im.Agent.SHA256) != 64 {
			return nil, fmt.Errorf("%w: image %q: arch and agent version and sha256 are required", ErrInvalid, im.Name)
		}
	}
	return &m, nil
}
