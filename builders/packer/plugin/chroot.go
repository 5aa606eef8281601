package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/chroot"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/tarball"
)

// BuilderID identifies artifacts of the chroot builder.
const BuilderID = "imagebake.chroot"

//go:generate go tool packer-sdc mapstructure-to-hcl2 -type ChrootConfig

// ChrootConfig configures builder "imagebake-chroot".
type ChrootConfig struct {
	common.PackerConfig `mapstructure:",squash"`
	// Rootfs is the base root file system tarball (.tar or .tar.gz), with a /bin/sh.
	Rootfs string `mapstructure:"rootfs"`
	// RootfsSHA256 pins it (required).
	RootfsSHA256 string `mapstructure:"rootfs_sha256"`
	// Output is the root file system tarball to write (.tar.gz).
	Output string `mapstructure:"output"`
	// SourceDateEpoch is the mtime ceiling of the output (default $SOURCE_DATE_EPOCH, else 0).
	SourceDateEpoch string `mapstructure:"source_date_epoch"`
}

// ChrootBuilder is builder "imagebake-chroot".
type ChrootBuilder struct {
	config ChrootConfig
	epoch  time.Time
}

// ConfigSpec implements packersdk.Builder (chroot.hcl2spec.go, go generate).
func (b *ChrootBuilder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare implements packersdk.Builder.
func (b *ChrootBuilder) Prepare(raws ...interface{}) ([]string, []string, error) {
	if err := config.Decode(&b.config, &config.DecodeOpts{PluginType: BuilderID}, raws...); err != nil {
		return nil, nil, err
	}
	c := &b.config
	if c.Rootfs == "" || len(c.RootfsSHA256) != 64 || c.Output == "" {
		return nil, nil, fmt.Errorf("imagebake-chroot: rootfs, rootfs_sha256 (64 hex digits) and output are required")
	}
	ep := c.SourceDateEpoch
	if ep == "" {
		ep = envSetting(envSourceDateEpoch)
	}
	if ep != "" {
		n, err := strconv.ParseInt(ep, 10, 64)
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("imagebake-chroot: source_date_epoch %q is not seconds since 1970", ep)
		}
		b.epoch = time.Unix(n, 0)
	} else {
		b.epoch = time.Unix(0, 0)
	}
	return nil, nil, nil
}

// Run implements packersdk.Builder: unpack, provision in a chroot, pack.
func (b *ChrootBuilder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	c := &b.config
	if err := checkSHA256(c.Rootfs, c.RootfsSHA256); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "imagebake-chroot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	ui.Say(fmt.Sprintf("imagebake-chroot: unpacking %s", c.Rootfs))
	if err := tarball.ExtractFile(c.Rootfs, root, tarball.ExtractOptions{RootFS: true, MaxBytes: 64 << 30}); err != nil {
		return nil, fmt.Errorf("imagebake-chroot: %w", err)
	}
	comm := &chroot.Communicator{Chroot: root, CmdWrapper: func(s string) (string, error) { return s, nil }}
	if err := hook.Run(ctx, packersdk.HookProvision, ui, comm, nil); err != nil {
		return nil, err
	}
	ui.Say(fmt.Sprintf("imagebake-chroot: writing %s", c.Output))
	if err := os.MkdirAll(filepath.Dir(c.Output), 0o755); err != nil {
		return nil, err
	}
	var sum string
	err = atomicfile.Write(c.Output, 0o644, func(w io.Writer) error {
		h := sha256.New()
		zw := tarball.NewGzip(io.MultiWriter(w, h))
		tw := tarball.NewWriter(zw, b.epoch)
		tw.KeepModes = true
		if err := tw.AddTree(root, ""); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		sum = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("imagebake-chroot: writing %s: %w", c.Output, err)
	}
	return &Artifact{Path: c.Output, SHA256: sum}, nil
}

func checkSHA256(p, want string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("imagebake-chroot: base rootfs: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("imagebake-chroot: base rootfs %s has sha256 %s, the template pins %s", p, got, want)
	}
	return nil
}

// Artifact is the chroot builder's root file system tarball.
type Artifact struct {
	Path   string
	SHA256 string
}

// BuilderId implements packersdk.Artifact.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files implements packersdk.Artifact.
func (a *Artifact) Files() []string { return []string{a.Path} }

// Id implements packersdk.Artifact: the tarball's sha256.
func (a *Artifact) Id() string { return "sha256:" + a.SHA256 }

// String implements packersdk.Artifact.
func (a *Artifact) String() string {
	return fmt.Sprintf("root file system %s (sha256:%s)", a.Path, a.SHA256)
}

// State implements packersdk.Artifact.
func (a *Artifact) State(string) interface{} { return nil }

// Destroy implements packersdk.Artifact.
func (a *Artifact) Destroy() error { return os.Remove(a.Path) }
