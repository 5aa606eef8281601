package bake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/imagebake/imagebake/builders"
	_ "github.com/imagebake/imagebake/builders/oci"    // registers "oci"
	_ "github.com/imagebake/imagebake/builders/rootfs" // registers "rootfs"
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
	m := *in.Manifest
	m.Images = append([]manifest.Image(nil), in.Manifest.Images...)
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
		al, err := builders.WriteLayer(ctx, blobDir, "agents", in.Epoch, func(tw *tarball.Writer) error {
			tw.AtEpoch = true // the store's tarball carries its own times
			return tw.AddTree(p.Arches[im.Arch], "")
		})
		if err != nil {
			return nil, err
		}
		bb, err := o.base(in.Config, im.Arch)
		if err != nil {
			return nil, err
		}
		bb.CompressPlain = m.Imagebake.Defaults >= 1
		req.Images = append(req.Images, builders.Image{Arch: im.Arch, Name: im.Name, Base: bb, Layers: []builders.Layer{envLayer, al}})
	}
	res, err := b.Build(ctx, req)
	if err != nil {
		return nil, err
	}
	m.IndexDigest = res.IndexDigest
	for i, r := range res.Images {
		im := &m.Images[i]
		im.Digest, im.Artifact, im.Base.Digest = r.Digest, r.Artifact, r.Base.Digest
		im.Base.OS, im.Base.Packages = baseContent(r.Base.Info)
		for _, l := range r.Layers {
			im.Layers = append(im.Layers, manifest.Layer{Role: l.Role, MediaType: string(l.MediaType), DiffID: l.DiffID.String(), Digest: l.Digest.String(), Size: l.Size})
		}
	}
	if err := checkBasePuppet(&m, in.Metadata, o.Compile.Enabled, o.logf); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(dir, builders.ScratchDir)); err != nil {
		return nil, err
	}
	if err := m.Write(filepath.Join(dir, manifest.FileName)); err != nil {
		return nil, err
	}
	if err := writeSBOM(&m, filepath.Join(dir, SBOMName)); err != nil {
		return nil, err
	}
	if err := writeProvenance(&m, dir, o.started, time.Now()); err != nil {
		return nil, err
	}
	return &m, publicModes(dir)
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

// baseContent is what the manifest records of a base's files: its OS and
// packages (nil for what it does not have).
func baseContent(info *distro.Info) (*manifest.OS, *manifest.Packages) {
	switch {
	case info == nil:
		return nil, nil
	case info.Format == "":
		return info.OS, nil
	}
	return info.OS, &manifest.Packages{Format: info.Format, Count: len(info.Packages), Digest: distro.PackagesDigest(info.Packages), List: append([]manifest.Package{}, info.Packages...)}
}
