package main

import (
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/imagebake/imagebake/internal/gitcache"
)

// Every setting resolves the same way, in every command: the flag, then
// the environment variable, then the file (imagebake.toml, the deploy
// file), then the default. These are the environment half; the README's
// settings table lists each setting with its flag, variable and file.
const (
	envStores     = "IMAGEBAKE_STORES"              // agent binaries stores, a chain
	envTrusted    = "IMAGEBAKE_TRUSTED_KEYS"        // trusted public keys
	envKey        = "IMAGEBAKE_KEY"                 // the signing key
	envKeyPass    = "IMAGEBAKE_KEY_PASSWORD"        // its password
	envCache      = "IMAGEBAKE_CACHE"               // the cache
	envInsecure   = "IMAGEBAKE_INSECURE_REGISTRIES" // registries over plain HTTP
	envAdvisories = "IMAGEBAKE_ADVISORIES"          // advisories a security release fixes
	envCosignKey  = "IMAGEBAKE_COSIGN_KEY"          // the cosign key push signs with
	// the compile gate's cache cap
	envCompileCacheMax = "IMAGEBAKE_COMPILE_CACHE_MAX"
	// moved remotes: OLD=NEW rules, comma- or space-separated
	envRemap = "IMAGEBAKE_REMAP"
	// the build epoch (reproducible-builds.org)
	envSourceDateEpoch = "SOURCE_DATE_EPOCH"
	// the password of a cosign key file (cosign's own variable)
	envCosignPassword = "COSIGN_PASSWORD"
)

// envSetting is the variable name's value: every setting the commands
// read from the environment is read here.
func envSetting(name string) string { return os.Getenv(name) }

// listSetting is a repeatable flag's values, else the variable env's
// (comma- or space-separated), else nil (the file or the default decide).
func listSetting(flag []string, env string) []string {
	if len(flag) > 0 {
		return flag
	}
	return splitList(envSetting(env))
}

// setting is a string flag that knows whether it was given: --key="" is
// the user's choice of none, not a fall-back to $IMAGEBAKE_KEY.
type setting struct {
	v   string
	set bool
}

func (s *setting) String() string     { return s.v }
func (s *setting) Set(v string) error { s.v, s.set = v, true; return nil }
func (s *setting) Type() string       { return "string" }

// stringSetting is the flag's value when it was given (even empty), else
// the variable env's.
func stringSetting(flag setting, env string) string {
	if flag.set {
		return flag.v
	}
	return envSetting(env)
}

// splitList splits a list setting's value at commas and white space.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// addRemapFlag adds --remap, which points moved remotes at their new home.
func addRemapFlag(f *pflag.FlagSet, to *[]string) {
	f.StringArrayVar(to, "remap", nil, "OLD=NEW: fetch a remote whose URL starts with OLD from NEW instead (a moved control repo or module remote, as git's insteadOf); the pins (commit, tree) are checked as ever; repeatable (default $IMAGEBAKE_REMAP)")
}

// remaps are --remap's rules, else $IMAGEBAKE_REMAP's.
func remaps(flag []string) ([]gitcache.Remap, error) {
	return gitcache.ParseRemaps(listSetting(flag, envRemap))
}

// noBars says the environment wants no progress bars: a CI run (the CI
// variable most CI systems set) or a dumb terminal.
func noBars() bool {
	ci := envSetting("CI")
	return ci != "" && ci != "false" || envSetting("TERM") == "dumb"
}

// builderIdentity is who runs a bake, for its provenance: the CI workflow
// the environment names (GitHub Actions, GitLab CI), else "" (imagebake).
func builderIdentity() string {
	switch {
	case os.Getenv("GITHUB_WORKFLOW_REF") != "":
		server := os.Getenv("GITHUB_SERVER_URL")
		if server == "" {
			server = "https://github.com"
		}
		return server + "/" + os.Getenv("GITHUB_WORKFLOW_REF")
	case os.Getenv("CI_PROJECT_URL") != "" && os.Getenv("CI_CONFIG_PATH") != "":
		return os.Getenv("CI_PROJECT_URL") + "/-/blob/" + os.Getenv("CI_COMMIT_SHA") + "/" + os.Getenv("CI_CONFIG_PATH")
	}
	return ""
}
