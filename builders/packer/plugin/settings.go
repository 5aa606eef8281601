package plugin

import "os"

// The plugin's settings from the environment, read here and nowhere else:
// Packer runs the plugin with packer build's environment. A setting in the
// template wins over its variable.
const (
	envSourceDateEpoch = "SOURCE_DATE_EPOCH" // the build epoch (reproducible-builds.org)
	envCache           = "IMAGEBAKE_CACHE"   // the cache the provisioner fetches into
)

// envSetting is the variable name's value.
func envSetting(name string) string { return os.Getenv(name) }
