package plugin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
	"github.com/imagebake/imagebake/tarball"
)

//go:generate go tool packer-sdc mapstructure-to-hcl2 -type ProvisionerConfig

// ProvisionerConfig configures provisioner "imagebake".
type ProvisionerConfig struct {
	common.PackerConfig `mapstructure:",squash"`
	// Manifest is the release's manifest.toml (required).
	Manifest string `mapstructure:"manifest"`
	// Arch is the arch whose agent binaries go in (default: this machine's).
	Arch string `mapstructure:"arch"`
	// Context is the directory relative paths of imagebake.toml are relative to.
	Context string `mapstructure:"context"`
	// Cache is imagebake's cache directory (default $IMAGEBAKE_CACHE or ~/.cache/imagebake).
	Cache string `mapstructure:"cache"`
	// TrustedKeys, when set, must have signed the manifest (manifest.toml.minisig).
	TrustedKeys []string `mapstructure:"trusted_keys"`
	// RemoteDir is where the payload tar is uploaded before unpacking (default /tmp).
	RemoteDir string `mapstructure:"remote_dir"`
}

// Provisioner is provisioner "imagebake".
type Provisioner struct {
	config ProvisionerConfig
	// Payload writes the payload of one arch of the release whose manifest
	// is at manifest into dst (the bake's Payload stage). The plugin binary
	// sets it; the plugin itself does not depend on the bake.
	Payload PayloadFunc
}

// PayloadFunc stages one arch of a release from its manifest alone;
// cacheDir and contextDir are the provisioner's cache and context.
type PayloadFunc func(ctx context.Context, manifest, arch, dst, cacheDir, contextDir string) error

// ConfigSpec implements packersdk.Provisioner: the schema generated from
// ProvisionerConfig (provisioner.hcl2spec.go, go generate).
func (p *Provisioner) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Prepare implements packersdk.Provisioner: bad input stops the build
// before it starts, with imagebake's message.
func (p *Provisioner) Prepare(raws ...interface{}) error {
	if err := config.Decode(&p.config, &config.DecodeOpts{PluginType: "imagebake"}, raws...); err != nil {
		return err
	}
	c := &p.config
	if c.Manifest == "" {
		return fmt.Errorf("imagebake provisioner: manifest is required (the release's manifest.toml)")
	}
	if c.Arch == "" {
		c.Arch = runtime.GOARCH
	}
	if c.RemoteDir == "" {
		c.RemoteDir = "/tmp"
	}
	if c.Cache == "" {
		c.Cache = defaultCache()
	}
	if c.Context == "" {
		c.Context = "."
	}
	m, err := p.readManifest()
	if err != nil {
		return fmt.Errorf("imagebake provisioner: %w", err)
	}
	for _, im := range m.Images {
		if im.Arch == c.Arch {
			return nil
		}
	}
	var has []string
	for _, im := range m.Images {
		has = append(has, im.Arch)
	}
	return fmt.Errorf("imagebake provisioner: %s %s has no %s image (it has %v); set arch", m.Family, m.Release, c.Arch, has)
}

func defaultCache() string {
	if env := envSetting(envCache); env != "" {
		return env
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "imagebake")
	}
	return filepath.Join(os.TempDir(), "imagebake-cache")
}

// readManifest reads the manifest, verifying its signature when trusted
// keys are configured.
func (p *Provisioner) readManifest() (*manifest.Manifest, error) {
	if len(p.config.TrustedKeys) == 0 {
		return manifest.Read(p.config.Manifest)
	}
	kr, err := signing.LoadKeyring(p.config.TrustedKeys...)
	if err != nil {
		return nil, err
	}
	return catalog.ReadSignedManifest(p.config.Manifest, kr)
}

// Provision implements packersdk.Provisioner.
func (p *Provisioner) Provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, _ map[string]interface{}) error {
	c := &p.config
	ui.Say(fmt.Sprintf("imagebake: staging the %s payload of %s", c.Arch, c.Manifest))
	tmp, err := os.MkdirTemp("", "imagebake-provision-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	if p.Payload == nil {
		return fmt.Errorf("imagebake provisioner: no payload stage configured (a bug in the plugin binary)")
	}
	if err := p.Payload(ctx, c.Manifest, c.Arch, root, c.Cache, c.Context); err != nil {
		return fmt.Errorf("imagebake provisioner: %w", err)
	}
	m, err := p.readManifest()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tarball.NewWriter(&buf, time.Unix(m.Epoch, 0))
	if err := tw.AddTree(root, ""); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	remote := c.RemoteDir + "/imagebake-payload.tar"
	ui.Say(fmt.Sprintf("imagebake: uploading %d bytes and unpacking into /", buf.Len()))
	if err := comm.Upload(remote, &buf, nil); err != nil {
		return fmt.Errorf("imagebake provisioner: uploading %s: %w", remote, err)
	}
	cmd := &packersdk.RemoteCmd{Command: fmt.Sprintf("tar -xf %s -C / && rm -f %s", remote, remote)}
	if err := cmd.RunWithUi(ctx, comm, ui); err != nil {
		return fmt.Errorf("imagebake provisioner: unpacking: %w", err)
	}
	if s := cmd.ExitStatus(); s != 0 {
		return fmt.Errorf("imagebake provisioner: `%s` exited with %d on the target (is tar installed there?)", cmd.Command, s)
	}
	return nil
}
