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

// BakeWithPacker resolves the release, writes its inputs into
// Out/NAME-X.Y.Z/manifest.toml and runs the template once per arch; the
// template's imagebake-manifest post-processor records what Packer built
// in that manifest, which is returned.
func BakeWithPacker(ctx context.Context, o Options, po PackerOptions) (*manifest.Manifest, error) {
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
	m.Builder = "packer"
	dir, err := filepath.Abs(filepath.Join(o.Out, in.Name()))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mpath := filepath.Join(dir, manifest.FileName)
	if err := m.Write(mpath); err != nil {
		return nil, err
	}
	plugin, err := packerrun.FindPlugin()
	if err != nil {
		return nil, err
	}
	for _, im := range m.Images {
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
