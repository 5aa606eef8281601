// Package plugin is imagebake's Packer plugin, for cloud and VM images:
//
//   - provisioner "imagebake": installs the pinned payload of a release
//     (environment with modules, the agent binaries of the build's arch with
//     the current link, release.toml) through whatever communicator the
//     build uses: it uploads one tar and unpacks it with the target's tar;
//   - builder "imagebake-chroot": unpacks a pinned base root file system into
//     a work directory, runs the build's provisioners in it through the SDK's
//     chroot communicator (root and a /bin/sh inside are needed), and writes a
//     deterministic root file system tarball, so any provisioner runs locally;
//   - data source "imagebake-release": a manifest, or a store's catalog with
//     family and version (signatures checked), as family, release, tag,
//     commit, arches, image_names, image_digests and agent_versions;
//   - post-processor "imagebake-manifest": records the artifact's id and
//     files with their sha256 in the release manifest ([[artifact]]).
//
// The plugin is its own binary, packer-plugin-imagebake
// (cmd/packer-plugin-imagebake in this module), which hands the provisioner the bake's
// payload stage; `imagebake packer install-plugin` copies it into Packer's
// plugin layout.
package plugin

import (
	"github.com/hashicorp/packer-plugin-sdk/plugin"
	"github.com/hashicorp/packer-plugin-sdk/version"

	"github.com/imagebake/imagebake/builders/packer"
)

// PluginVersion is the plugin's version as Packer sees it.
var PluginVersion = version.NewPluginVersion(packer.PluginVersion, "", "")

// Serve runs the plugin protocol (Packer starts the binary with "describe"
// or "start ..."); payload stages a release for the provisioner.
func Serve(payload PayloadFunc) error {
	s := plugin.NewSet()
	s.RegisterProvisioner(plugin.DEFAULT_NAME, &Provisioner{Payload: payload})
	s.RegisterBuilder("chroot", new(ChrootBuilder))
	s.RegisterDatasource("release", new(Datasource))
	s.RegisterPostProcessor("manifest", new(PostProcessor))
	s.SetVersion(PluginVersion)
	return s.Run()
}
