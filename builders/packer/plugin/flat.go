package plugin

import "github.com/hashicorp/hcl/v2/hcldec"

// The flat types below are what `packer-sdc mapstructure-to-hcl2` would
// generate: Packer decodes an HCL block into them (every attribute of the
// spec, as pointers) before mapstructure fills the real config.

// FlatProvisionerConfig is the HCL2 form of ProvisionerConfig.
type FlatProvisionerConfig struct {
	PackerBuildName     *string           `mapstructure:"packer_build_name" cty:"packer_build_name" hcl:"packer_build_name"`
	PackerBuilderType   *string           `mapstructure:"packer_builder_type" cty:"packer_builder_type" hcl:"packer_builder_type"`
	PackerCoreVersion   *string           `mapstructure:"packer_core_version" cty:"packer_core_version" hcl:"packer_core_version"`
	PackerDebug         *bool             `mapstructure:"packer_debug" cty:"packer_debug" hcl:"packer_debug"`
	PackerForce         *bool             `mapstructure:"packer_force" cty:"packer_force" hcl:"packer_force"`
	PackerOnError       *string           `mapstructure:"packer_on_error" cty:"packer_on_error" hcl:"packer_on_error"`
	PackerUserVars      map[string]string `mapstructure:"packer_user_variables" cty:"packer_user_variables" hcl:"packer_user_variables"`
	PackerSensitiveVars []string          `mapstructure:"packer_sensitive_variables" cty:"packer_sensitive_variables" hcl:"packer_sensitive_variables"`
	Manifest            *string           `mapstructure:"manifest" cty:"manifest" hcl:"manifest"`
	Arch                *string           `mapstructure:"arch" cty:"arch" hcl:"arch"`
	Context             *string           `mapstructure:"context" cty:"context" hcl:"context"`
	Cache               *string           `mapstructure:"cache" cty:"cache" hcl:"cache"`
	TrustedKeys         []string          `mapstructure:"trusted_keys" cty:"trusted_keys" hcl:"trusted_keys"`
	RemoteDir           *string           `mapstructure:"remote_dir" cty:"remote_dir" hcl:"remote_dir"`
}

// HCL2Spec is the provisioner's HCL2 schema.
func (*FlatProvisionerConfig) HCL2Spec() map[string]hcldec.Spec { return new(Provisioner).ConfigSpec() }

// FlatMapstructure returns the HCL2 form of the config.
func (*ProvisionerConfig) FlatMapstructure() interface{ HCL2Spec() map[string]hcldec.Spec } {
	return new(FlatProvisionerConfig)
}

// FlatChrootConfig is the HCL2 form of ChrootConfig.
type FlatChrootConfig struct {
	PackerBuildName     *string           `mapstructure:"packer_build_name" cty:"packer_build_name" hcl:"packer_build_name"`
	PackerBuilderType   *string           `mapstructure:"packer_builder_type" cty:"packer_builder_type" hcl:"packer_builder_type"`
	PackerCoreVersion   *string           `mapstructure:"packer_core_version" cty:"packer_core_version" hcl:"packer_core_version"`
	PackerDebug         *bool             `mapstructure:"packer_debug" cty:"packer_debug" hcl:"packer_debug"`
	PackerForce         *bool             `mapstructure:"packer_force" cty:"packer_force" hcl:"packer_force"`
	PackerOnError       *string           `mapstructure:"packer_on_error" cty:"packer_on_error" hcl:"packer_on_error"`
	PackerUserVars      map[string]string `mapstructure:"packer_user_variables" cty:"packer_user_variables" hcl:"packer_user_variables"`
	PackerSensitiveVars []string          `mapstructure:"packer_sensitive_variables" cty:"packer_sensitive_variables" hcl:"packer_sensitive_variables"`
	Rootfs              *string           `mapstructure:"rootfs" cty:"rootfs" hcl:"rootfs"`
	RootfsSHA256        *string           `mapstructure:"rootfs_sha256" cty:"rootfs_sha256" hcl:"rootfs_sha256"`
	Output              *string           `mapstructure:"output" cty:"output" hcl:"output"`
	SourceDateEpoch     *string           `mapstructure:"source_date_epoch" cty:"source_date_epoch" hcl:"source_date_epoch"`
}

// HCL2Spec is the builder's HCL2 schema.
func (*FlatChrootConfig) HCL2Spec() map[string]hcldec.Spec { return new(ChrootBuilder).ConfigSpec() }

// FlatMapstructure returns the HCL2 form of the config.
func (*ChrootConfig) FlatMapstructure() interface{ HCL2Spec() map[string]hcldec.Spec } {
	return new(FlatChrootConfig)
}
