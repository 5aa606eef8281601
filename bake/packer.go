package bake

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	packerrun "github.com/imagebake/imagebake/builders/packer"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/templates"
)

// PackerOptions say which embedded template drives Packer and which packer
// binary runs it.
type PackerOptions struct {
	Template string    // chroot, qemu, amazon-ebs
	Packer   string    // "": packer on PATH
	Output   io.Writer // Packer's own output
}

// BuilderPacker is the builder Packer is: it runs outside imagebake (an
// embedded template per arch, with imagebake's plugin), so it is not in
// the builders registry; Bake hands it to bakeWithPacker.
const BuilderPacker = "packer"

// bakeWithPacker resolves the release, writes its inputs into
// Out/NAME-X.Y.Z/manifest.toml and runs the template once per arch; the
// template's imagebake-manifest post-processor records what Packer built
// in that manifest, which is returned.
func bakeWithPacker(ctx context.Context, o Options) (*manifest.Manifest, error) {
	po := o.Packer
	if po.Template == "" {
		return nil, fmt.Errorf("%w: --builder packer needs --template (%s)", failure.ErrUsage, strings.Join(templates.Names(), ", "))
	}
	if _, err := templates.Get(po.Template); err != nil {
		return nil, err
	}
	o.Builder = ""
	if err := o.normalise(); err != nil {
		return nil, err
	}
	in, err := resolve(ctx, o, nil) // o is normalised above
	if err != nil {
		return nil, err
	}
	m := in.Manifest
	m.Builder = BuilderPacker
	if err := m.SetContentDigests(); err != nil { // the builder is content
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Join(o.Out, in.Name()))
	if err != nil {
		return nil, err
	}
	lf, err := o.lockOut(ctx)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	// Packer writes into the release directory itself (its post-processor
	// records each artifact in the manifest there), so no staging swap
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mpath := filepath.Join(dir, manifest.FileName)
	baking := append([]manifest.Image(nil), m.Images...)
	if err := keepPackerRelease(mpath, in, o); err != nil {
		return nil, err
	}
	if err := m.Write(mpath); err != nil {
		return nil, err
	}
	plugin, err := packerrun.FindPlugin()
	if err != nil {
		return nil, err
	}
	for _, im := range baking {
		vars := map[string]string{"manifest": mpath, "arch": im.Arch, "context": o.Context, "cache": o.Cache,
			"output_dir": dir, "source_date_epoch": fmt.Sprint(m.Epoch)}
		if po.Template == "chroot" {
			base, err := o.base(in.Config, im.Arch)
			if err != nil {
				return nil, err
			}
			if base.Rootfs == "" {
				return nil, fmt.Errorf("%w: template chroot needs a rootfs base; %s has base %s", failure.ErrUsage, im.Name, im.Base.Ref)
			}
			vars["rootfs"], vars["rootfs_sha256"] = base.Rootfs, base.SHA256
		}
		work, err := os.MkdirTemp("", "imagebake-packer-")
		if err != nil {
			return nil, err
		}
		err = packerrun.Run(ctx, packerrun.RunOptions{Packer: po.Packer, Template: po.Template, Plugin: plugin, WorkDir: work, Vars: vars, Stdout: po.Output})
		os.RemoveAll(work)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Name, err)
		}
	}
	return manifest.Read(mpath)
}

// keepPackerRelease compares the release being baked (m) with one already
// at mpath: other inputs are refused unless o.Force (a release number
// names one content); arches there that this bake does not build are kept
// in m with their artifacts, so per-arch bakes into one out add up.
func keepPackerRelease(mpath string, in *Inputs, o Options) error {
	m := in.Manifest
	old, err := oldRelease(filepath.Dir(mpath), o.Force)
	if old == nil || err != nil {
		return err
	}
	keep, err := against(old, m, "", o.Force, o.logf)
	if err != nil {
		return err
	}
	for _, a := range keep {
		for _, im := range old.Images {
			if im.Arch == a {
				m.Images = append(m.Images, im)
			}
		}
	}
	if len(sharedChanges(old, m)) == 0 {
		m.Artifacts = old.Artifacts // the post-processor replaces the rebuilt ones
	}
	in.setPartial()
	return m.SetContentDigests()
}
