package plugin

import (
	"context"
	"fmt"
	"sort"

	"github.com/imagebake/imagebake/internal/filehash"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/imagebake/imagebake/manifests/manifest"
)

//go:generate go tool packer-sdc mapstructure-to-hcl2 -type PostProcessorConfig

// PostProcessorConfig configures post-processor "imagebake-manifest".
type PostProcessorConfig struct {
	common.PackerConfig `mapstructure:",squash"`
	// Manifest is the release's manifest.toml to record the artifact in.
	Manifest string `mapstructure:"manifest"`
}

// PostProcessor is post-processor "imagebake-manifest": it records the
// artifact's id and files (with sha256) in the release manifest.
type PostProcessor struct {
	config PostProcessorConfig
}

// ConfigSpec implements packersdk.PostProcessor (postprocessor.hcl2spec.go, go generate).
func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Configure implements packersdk.PostProcessor.
func (p *PostProcessor) Configure(raws ...interface{}) error {
	if err := config.Decode(&p.config, &config.DecodeOpts{PluginType: "imagebake-manifest"}, raws...); err != nil {
		return err
	}
	if p.config.Manifest == "" {
		return fmt.Errorf("imagebake-manifest: manifest is required")
	}
	if _, err := manifest.Read(p.config.Manifest); err != nil {
		return fmt.Errorf("imagebake-manifest: %w", err)
	}
	return nil
}

// PostProcess implements packersdk.PostProcessor. The artifact is kept.
func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, a packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	m, err := manifest.Read(p.config.Manifest)
	if err != nil {
		return a, true, false, err
	}
	art := manifest.Artifact{Build: p.config.PackerBuildName, BuilderID: a.BuilderId(), ID: a.Id()}
	files := append([]string(nil), a.Files()...)
	sort.Strings(files)
	for _, f := range files {
		sum, err := filehash.SHA256(f)
		if err != nil {
			return a, true, false, fmt.Errorf("imagebake-manifest: %w", err)
		}
		art.Files = append(art.Files, manifest.ArtifactFile{Path: f, SHA256: sum})
	}
	// a rebuild of the same files replaces its earlier record; other builds
	// (one per arch, say) are kept
	kept := m.Artifacts[:0]
	for _, x := range m.Artifacts {
		if x.Build != art.Build || x.BuilderID != art.BuilderID || filesKey(x) != filesKey(art) {
			kept = append(kept, x)
		}
	}
	m.Artifacts = append(kept, art)
	sort.Slice(m.Artifacts, func(i, j int) bool {
		a, b := m.Artifacts[i], m.Artifacts[j]
		if a.Build != b.Build {
			return a.Build < b.Build
		}
		return filesKey(a) < filesKey(b)
	})
	if err := m.Write(p.config.Manifest); err != nil {
		return a, true, false, err
	}
	ui.Say(fmt.Sprintf("imagebake-manifest: recorded %s (%d files) in %s", art.ID, len(art.Files), p.config.Manifest))
	return a, true, false, nil
}

func filesKey(a manifest.Artifact) string {
	var k string
	for _, f := range a.Files {
		k += f.Path + "\x00"
	}
	if k == "" {
		k = a.ID
	}
	return k
}
