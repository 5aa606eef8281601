package bake

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/imagebake/imagebake/builders"
	_ "github.com/imagebake/imagebake/builders/oci"    // registers "oci"
	_ "github.com/imagebake/imagebake/builders/rootfs" // registers "rootfs"
	"github.com/imagebake/imagebake/internal/attest"
	"github.com/imagebake/imagebake/internal/distro"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/tarball"
)

// buildRelease turns a staged payload into the release in dir (new or empty):
// the payload layers, one image per arch on its base by the configured
// builder, manifest.toml and the SBOM. It returns the whole manifest:
// in's inputs with every output digest.
func buildRelease(ctx context.Context, in *Inputs, p *staged, dir string, o Options) (*manifest.Manifest, error) {
	b, err := builders.Lookup(in.Config.Builder)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// the manifest is in's inputs and what each phase found: the
	// modules' metadata (staging), each base's Puppet, the outputs
	m := *in.Manifest
	m.Images = append([]manifest.Image(nil), in.Manifest.Images...)
	m.Puppetfile.Modules = withModuleMetadata(in.Manifest.Puppetfile.Modules, p.Metadata)
	blobDir := b.BlobDir(dir)
	envLayer, err := builders.WriteLayer(ctx, blobDir, "environment", in.Epoch, func(tw *tarball.Writer) error {
		tw.AtEpoch = true
		return tw.AddTree(p.Env, in.Config.Environment)
	})
	if err != nil {
		return nil, err
	}
	req := &builders.Request{Dir: dir, BlobDir: blobDir, Family: m.Family, Release: m.Release,
		Revision: m.Repo.Commit, Epoch: in.Epoch, Log: o.Log, Defaults: m.Imagebake.Defaults}
	for _, im := range m.Images {
		layers, err := archLayers(ctx, blobDir, in, p, im.Arch, envLayer)
		if err != nil {
			return nil, err
		}
		bb, err := o.base(in.Config, im.Arch)
		if err != nil {
			return nil, err
		}
		bb.CompressPlain = m.Imagebake.Defaults >= 1
		bb.Verbose = o.Verbose
		req.Images = append(req.Images, builders.Image{Arch: im.Arch, Name: im.Name, Base: bb, Layers: layers})
	}
	res, err := b.Build(ctx, req)
	if err != nil {
		return nil, err
	}
	m.IndexDigest = res.IndexDigest
	for i, r := range res.Images {
		im := &m.Images[i]
		im.Digest, im.Artifact, im.Base.Digest = r.Digest, r.Artifact, r.Base.Digest
		im.Base.OS, im.Base.Packages = baseContent(r.Base.Info, m.Imagebake.Defaults)
		for _, l := range r.Layers {
			im.Layers = append(im.Layers, manifest.Layer{Role: l.Role, MediaType: string(l.MediaType), DiffID: l.DiffID.String(), Digest: l.Digest.String(), Size: l.Size})
		}
	}
	for i := range m.Images {
		m.Images[i].Puppet = basePuppet(m.Images[i].Base.Packages)
		if m.Imagebake.Defaults >= 3 && !m.Images[i].Agent.None() {
			m.Images[i].Agent.GoBuild = p.GoBuild[m.Images[i].Arch]
		}
	}
	if err := checkBasePuppet(&m, p.Metadata, o.Compile.Enabled, o.logf); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(dir, builders.ScratchDir)); err != nil {
		return nil, err
	}
	if err := m.Write(filepath.Join(dir, manifest.FileName)); err != nil {
		return nil, err
	}
	if err := attest.WriteSBOM(&m, filepath.Join(dir, SBOMName)); err != nil {
		return nil, err
	}
	if err := attest.WriteProvenance(&m, dir, o.started, time.Now(), o.BuilderID); err != nil {
		return nil, err
	}
	return &m, publicModes(dir)
}

// archLayers are an arch's image layers above its base. From defaults 2
// on, each layer's bytes depend on its own content only, so a layer
// repeats (and a store keeps it once) when its content does: the
// environment at the release commit's time; the agents (opt/NAME/tools)
// at the time of their archive's newest entry; release.toml, which names
// the release, in a layer of its own. Before, release.toml was in the
// agents layer and every entry had the release commit's time, so each
// release had agents layers of its own; a release baked so is rebuilt so.
func archLayers(ctx context.Context, blobDir string, in *Inputs, p *staged, arch string, env builders.Layer) ([]builders.Layer, error) {
	dir := p.Arches[arch]
	if in.Manifest.Imagebake.Defaults < 2 {
		al, err := builders.WriteLayer(ctx, blobDir, "agents", in.Epoch, func(tw *tarball.Writer) error {
			tw.AtEpoch = true
			return tw.AddTree(dir, "")
		})
		return []builders.Layer{env, al}, err
	}
	rl, err := builders.WriteLayer(ctx, blobDir, "release", in.Epoch, func(tw *tarball.Writer) error {
		tw.AtEpoch = true
		return tw.AddTree(filepath.Join(dir, "etc", "imagebake"), "etc/imagebake")
	})
	if err != nil {
		return nil, err
	}
	file, ok := p.AgentFiles[arch]
	if !ok { // no agent binaries: no agents layer
		return []builders.Layer{env, rl}, nil
	}
	at, err := newestEntry(file)
	if err != nil {
		return nil, fmt.Errorf("agent binaries %s: %w", file, err)
	}
	if at.IsZero() {
		at = in.Epoch
	}
	al, err := builders.WriteLayer(ctx, blobDir, "agents", at, func(tw *tarball.Writer) error {
		tw.AtEpoch = true
		return tw.AddTree(filepath.Join(dir, "opt"), "opt")
	})
	return []builders.Layer{env, al, rl}, err
}

// newestEntry is the newest modification time among the entries of the
// gzip-compressed tar at name (zero for none).
func newestEntry(name string) (time.Time, error) {
	f, err := os.Open(name)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return time.Time{}, err
	}
	var newest time.Time
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return newest.UTC().Truncate(time.Second), nil
		}
		if err != nil {
			return time.Time{}, err
		}
		if h.ModTime.After(newest) {
			newest = h.ModTime
		}
	}
}

// base resolves the base of arch with paths inside the context.
func (o *Options) base(cfg *Config, arch string) (builders.Base, error) {
	base, err := cfg.BaseFor(arch)
	if err != nil {
		return builders.Base{}, err
	}
	bb := builders.Base{Scratch: base.Scratch, Digest: base.Digest, SHA256: base.SHA256, Image: base.Image, Remote: o.Registry, Cache: o.Cache}
	if bb.Layout, err = o.inContext("base layout", base.Layout); err != nil {
		return builders.Base{}, err
	}
	if bb.Rootfs, err = o.inContext("base rootfs", base.Rootfs); err != nil {
		return builders.Base{}, err
	}
	if r, ok := o.Stored.base(base.SHA256); ok && base.Rootfs != "" {
		if _, err := os.Stat(bb.Rootfs); errors.Is(err, fs.ErrNotExist) {
			o.logf("base rootfs %s of %s is gone: taken from the release's sources (sha256 %s)\n", base.Rootfs, arch, base.SHA256[:12])
			bb.Rootfs = r
		}
	}
	for what, p := range map[string][2]string{"layout": {base.Layout, bb.Layout}, "rootfs": {base.Rootfs, bb.Rootfs}} {
		if p[0] == "" {
			continue
		}
		if _, err := os.Stat(p[1]); errors.Is(err, fs.ErrNotExist) {
			return builders.Base{}, fmt.Errorf("base %s %q of %s (in imagebake.toml) is not in the context directory %s (looked for %s); pass --context with the directory it is relative to: %w",
				what, p[0], arch, o.Context, p[1], failure.ErrNotFound)
		}
	}
	return bb, nil
}

// baseContent is what a manifest of defaults records of a base's files:
// its OS and packages (nil for what it does not have), without what later
// defaults added (manifest.OSAt, manifest.PackagesAt).
func baseContent(info *distro.Info, defaults int) (*manifest.OS, *manifest.Packages) {
	switch {
	case info == nil:
		return nil, nil
	case info.Format == "":
		return manifest.OSAt(info.OS, defaults), nil
	}
	return manifest.OSAt(info.OS, defaults), manifest.PackagesAt(&manifest.Packages{Format: info.Format, Count: len(info.Packages), Digest: distro.PackagesDigest(info.Packages), List: append([]manifest.Package{}, info.Packages...)}, defaults)
}
