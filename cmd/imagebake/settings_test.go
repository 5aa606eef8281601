package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/signing"
)

// Every setting with an environment variable is read by every command
// that takes its flag: the variable names something that is not there,
// and the command's error names it. (The flag wins over the variable:
// each case is run again with the flag naming another missing thing.)
func TestEnvironmentSettingsPerCommand(t *testing.T) {
	root := t.TempDir()
	repo := testutil.Example(t, filepath.Join(root, "example"))
	prev := fakeRelease(t, "1.0.0")
	deploy := filepath.Join(root, "deploy.yaml")
	testutil.Must(t, os.WriteFile(deploy, []byte("catalog: "+root+"/store\nimages:\n  web:\n    image: example\n    version: \"1\"\n"), 0o644))
	missing := filepath.Join(root, "missing")
	for _, c := range []struct {
		env, flag, value string
		args             []string
	}{
		{envStores, "--store", missing + "-stores", []string{"bake", "--repo", repo, "--release", "1.0.0", "--out", filepath.Join(root, "dist")}},
		{envStores, "--store", missing + "-stores", []string{"release", "plan", "--repo", repo, "--release-candidate", "v1.0.0", "--previous", filepath.Join(prev, "manifest.toml")}},
		{envStores, "--store", missing + "-stores", []string{"release", "check", "--release", "1.0.1", "--repo", repo, "--release-candidate", "v1.0.0", "--previous", filepath.Join(prev, "manifest.toml")}},
		{envStores, "--store", missing + "-stores", []string{"agents", "list", "--name", "mozagent"}},
		{envAdvisories, "--advisory", "not-an-advisory", []string{"bake", "--repo", repo, "--release", "1.0.0", "--out", filepath.Join(root, "dist")}},
		{envAdvisories, "--advisory", "not-an-advisory", []string{"release", "plan", "--repo", repo, "--release-candidate", "v1.0.0", "--previous", filepath.Join(prev, "manifest.toml")}},
		{envTrusted, "--trusted-key", missing + ".pub", []string{"catalog", "list", "--store", filepath.Join(root, "store")}},
		{envTrusted, "--trusted-key", missing + ".pub", []string{"check", deploy}},
		{envTrusted, "--trusted-key", missing + ".pub", []string{"select", deploy}},
		{envTrusted, "--trusted-key", missing + ".pub", []string{"catalog", "audit", "--store", filepath.Join(root, "store")}},
		{envKey, "--key", missing + ".key", []string{"publish", prev, "--store", filepath.Join(root, "store")}},
		{envCache, "--cache", filepath.Join(prev, "manifest.toml", "cache"), []string{"bake", "--repo", repo, "--release", "1.0.0", "--out", filepath.Join(root, "dist")}},
	} {
		name := c.env + " " + strings.Join(c.args[:2], " ")
		t.Run(name, func(t *testing.T) {
			for _, viaFlag := range []bool{false, true} {
				t.Setenv(envStores, "")
				t.Setenv(envTrusted, "")
				t.Setenv(envKey, "")
				t.Setenv(envAdvisories, "")
				t.Setenv(envCache, filepath.Join(root, "cache"))
				args := append([]string(nil), c.args...)
				want := c.value
				if viaFlag {
					t.Setenv(c.env, c.value+"-from-the-environment")
					args = append(args, c.flag, c.value)
				} else {
					t.Setenv(c.env, c.value)
				}
				root := newRootCommand()
				var out strings.Builder
				root.SetOut(&out)
				root.SetErr(&out)
				root.SetArgs(args)
				err := root.ExecuteContext(context.Background())
				if err == nil || !strings.Contains(err.Error(), want) || (viaFlag && strings.Contains(err.Error(), "-from-the-environment")) {
					t.Errorf("imagebake %s (via flag %v): %v; want an error naming %s", strings.Join(args, " "), viaFlag, err, want)
				}
			}
		})
	}
}

// The provenance's builder is the CI workflow the environment names; the
// library reads no environment (bake.Options.BuilderID).
func TestBuilderIdentity(t *testing.T) {
	for _, k := range []string{"GITHUB_WORKFLOW_REF", "GITHUB_SERVER_URL", "CI_PROJECT_URL", "CI_CONFIG_PATH", "CI_COMMIT_SHA"} {
		t.Setenv(k, "")
	}
	if got := builderIdentity(); got != "" {
		t.Errorf("no CI: %q", got)
	}
	t.Setenv("CI_PROJECT_URL", "https://gitlab.example/acme/control")
	t.Setenv("CI_CONFIG_PATH", ".gitlab-ci.yml")
	t.Setenv("CI_COMMIT_SHA", "abc")
	if got := builderIdentity(); got != "https://gitlab.example/acme/control/-/blob/abc/.gitlab-ci.yml" {
		t.Errorf("GitLab CI: %q", got)
	}
	t.Setenv("GITHUB_WORKFLOW_REF", "acme/control/.github/workflows/golden.yml@refs/tags/v1.0.0")
	if got := builderIdentity(); got != "https://github.com/acme/control/.github/workflows/golden.yml@refs/tags/v1.0.0" {
		t.Errorf("GitHub Actions: %q", got)
	}
}

// A password-protected key is decrypted once per command run, however many
// steps sign, and held by the command alone: another command (another
// keyFlags) decrypts it again, and no process-wide cache keeps it.
func TestSignerHeldByTheCommand(t *testing.T) {
	dir := t.TempDir()
	_, key, err := signing.GenerateWith(dir, "k", "pw", signing.Interactive)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("IMAGEBAKE_KEY", key)
	t.Setenv("IMAGEBAKE_KEY_PASSWORD", "pw")
	f := &keyFlags{}
	a, err := f.signer(mustKeyring(t))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := f.signer(mustKeyring(t))
	if a != b {
		t.Error("one command decrypted its key twice")
	}
	other := &keyFlags{}
	c, err := other.signer(mustKeyring(t))
	if err != nil || c == a {
		t.Errorf("another command got the first one's decrypted key (%v)", err)
	}
}

func mustKeyring(t *testing.T) *signing.Keyring {
	t.Helper()
	kr, err := signing.LoadKeyring()
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// Bars are off in CI (CI set, not "false") and on a dumb terminal.
func TestNoBars(t *testing.T) {
	for _, c := range []struct {
		ci, term string
		want     bool
	}{{"", "xterm", false}, {"true", "xterm", true}, {"false", "xterm", false}, {"1", "", true}, {"", "dumb", true}} {
		t.Setenv("CI", c.ci)
		t.Setenv("TERM", c.term)
		if got := noBars(); got != c.want {
			t.Errorf("CI=%q TERM=%q: noBars %v, want %v", c.ci, c.term, got, c.want)
		}
	}
}

// A string setting given on the command line wins even when empty
// (--key="" is no key, whatever IMAGEBAKE_KEY says); one not given falls
// back to its variable.
func TestEmptyFlagIsAChoice(t *testing.T) {
	t.Setenv(envKey, "/keys/from-env.key")
	for _, c := range []struct {
		args []string
		want string
	}{{nil, "/keys/from-env.key"}, {[]string{"--key="}, ""}, {[]string{"--key", "/keys/flag.key"}, "/keys/flag.key"}} {
		var s setting
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		fs.Var(&s, "key", "")
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if got := stringSetting(s, envKey); got != c.want {
			t.Errorf("%v: key %q, want %q", c.args, got, c.want)
		}
	}
}
