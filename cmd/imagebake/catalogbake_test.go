//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// bake --catalog needs no --repo for a published release: its signed
// manifest names the control repo, and the rebuild is byte for byte the
// published release.
func TestBakeFromCatalogWithoutRepo(t *testing.T) {
	root := bakedExample(t)
	run := func(args ...string) error {
		c := newRootCommand()
		c.SetArgs(append(args, "--quiet"))
		var out strings.Builder
		c.SetOut(&out)
		return c.ExecuteContext(context.Background())
	}
	releases := filepath.Join(root, "releases")
	if err := run("publish", filepath.Join(root, "dist", "example-1.0.0"), "--store", releases); err != nil {
		t.Fatal(err)
	}
	if err := run("bake", "--catalog", releases, "--release", "1.0.0", "--context", root, "--out", filepath.Join(root, "again")); err != nil {
		t.Fatalf("bake --catalog without --repo: %v", err)
	}
	a, _ := manifest.Read(filepath.Join(root, "dist", "example-1.0.0", manifest.FileName))
	b, err := manifest.Read(filepath.Join(root, "again", "example-1.0.0", manifest.FileName))
	if err != nil || a.IndexDigest != b.IndexDigest {
		t.Errorf("rebuilt index %v (%v), published %s", b, err, a.IndexDigest)
	}
	if err := run("bake", "--catalog", releases, "--release", "9.9.9", "--context", root, "--out", filepath.Join(root, "none")); failure.Code(err) != failure.ExitNotFound || !strings.Contains(err.Error(), "no release 9.9.9 in") {
		t.Errorf("bake --catalog of an unpublished release without --repo = %v", err)
	}
}

// release plan and check know the catalog: --previous names a published
// version, a number already published is neither proposed nor accepted,
// and a plan on a maintenance branch gets the next free number of its
// line (the MINOR 1.1.0 is taken: 1.2.0; with an advisory, 1.0.1).
func TestReleasePlanKnowsTheCatalog(t *testing.T) {
	signingEnv(t)
	root := t.TempDir()
	ctl := testutil.Example(t, root)
	store := agentstest.Store(t, filepath.Join(root, "store"))
	for _, a := range []string{"amd64", "arm64"} {
		agentstest.Publish(t, store, agents.PublishOptions{Name: "mozagent", Version: "2.4.1", OS: "linux", Arch: a}, "")
	}
	releases := filepath.Join(root, "releases")
	cmdline := func(args ...string) (string, error) {
		c := newRootCommand()
		c.SetArgs(append(args, "--quiet"))
		var out strings.Builder
		c.SetOut(&out)
		err := c.ExecuteContext(context.Background())
		return out.String(), err
	}
	site := filepath.Join(ctl, "manifests", "site.pp")
	for i, v := range []string{"1.0.0", "1.1.0"} {
		if i > 0 {
			testutil.Must(t, os.WriteFile(site, []byte(fmt.Sprintf("# release %s\nnode default { include role::base }\n", v)), 0o644))
			testutil.Git(t, ctl, "commit", "-qam", "release "+v)
			testutil.Git(t, ctl, "tag", "v"+v)
		}
		if _, err := cmdline("bake", "--repo", ctl, "--release", v, "--context", root, "--out", filepath.Join(root, "dist"), "--catalog", releases); err != nil {
			t.Fatalf("bake %s: %v", v, err)
		}
		if _, err := cmdline("publish", filepath.Join(root, "dist", "example-"+v), "--store", releases); err != nil {
			t.Fatalf("publish %s: %v", v, err)
		}
	}
	// a maintenance branch of 1.0 with a fix in the control repo
	testutil.Git(t, ctl, "checkout", "-q", "-b", "maint-1.0", "v1.0.0")
	testutil.Must(t, os.WriteFile(site, []byte("# a fix on 1.0\nnode default { include role::base }\n"), 0o644))
	testutil.Git(t, ctl, "commit", "-qam", "a fix on 1.0")
	base := []string{"release", "plan", "--repo", ctl, "--release-candidate", "maint-1.0", "--previous", "1.0.0", "--catalog", releases, "--context", root}
	out, err := cmdline(base...)
	if err != nil || !strings.Contains(out, "next release: 1.2.0 (MINOR after 1.0.0)") || !strings.Contains(out, "1.1.0 is published in") {
		t.Errorf("plan on the maintenance branch = %v\n%s", err, out)
	}
	out, err = cmdline(append(base, "--advisory", "DSA-6001-1")...)
	if err != nil || !strings.Contains(out, "next release: 1.0.1 (SECURITY after 1.0.0)") {
		t.Errorf("plan with an advisory = %v\n%s", err, out)
	}
	// --repo relative to the working directory lists the changed files too
	t.Chdir(root)
	rel, _ := filepath.Rel(root, ctl)
	out, err = cmdline("release", "plan", "--repo", rel, "--release-candidate", "maint-1.0", "--previous", "1.0.0", "--catalog", releases, "--context", ".")
	if err != nil || !strings.Contains(out, "manifests/site.pp") {
		t.Errorf("plan with --repo %s (relative) = %v; want the changed file listed:\n%s", rel, err, out)
	}
	// a version --previous names must be published there, and needs --catalog
	if _, err := cmdline("release", "plan", "--repo", ctl, "--release-candidate", "maint-1.0", "--previous", "9.9.9", "--catalog", releases, "--context", root); failure.Code(err) != failure.ExitNotFound || !strings.Contains(err.Error(), "no release 9.9.9 is published in") || !strings.Contains(err.Error(), "example 1.0.0") {
		t.Errorf("--previous of an unpublished version = %v", err)
	}
	if _, err := cmdline("release", "plan", "--repo", ctl, "--release-candidate", "maint-1.0", "--previous", "1.0.0", "--context", root); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "add --catalog STORE") {
		t.Errorf("--previous 1.0.0 without --catalog = %v", err)
	}
	_, err = cmdline("release", "check", "--release", "1.1.0", "--repo", ctl, "--release-candidate", "maint-1.0", "--previous", "1.0.0", "--catalog", releases, "--context", root)
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "example 1.1.0 is published in") {
		t.Errorf("release check of a published number = %v", err)
	}
}

// A candidate whose module dependencies are unmet still gets its plan
// (the level and every change), then exit 4 listing the dependencies and
// suggesting only what exists; the candidate's own [puppetfile]
// ignore_dependencies = true is honoured.
func TestReleasePlanWithUnmetDependencies(t *testing.T) {
	root := bakedExample(t)
	ctl := filepath.Join(root, "control")
	src := filepath.Join(root, "src", "profile")
	testutil.Git(t, src, "checkout", "-q", "develop")
	testutil.Must(t, os.WriteFile(filepath.Join(src, "metadata.json"), []byte(`{"name": "example-profile", "version": "1.1.0", "author": "example", "summary": "s", "license": "Apache-2.0", "source": "https://example.invalid/p", "dependencies": [{"name": "example/ntp", "version_requirement": ">= 2.0.0"}]}`), 0o644))
	testutil.Git(t, src, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "needs ntp 2")
	testutil.Git(t, src, "push", "-q", filepath.Join(root, "remotes", "profile.git"), "develop")
	prev := filepath.Join(root, "dist", "example-1.0.0", manifest.FileName)
	plan := func() (string, error) {
		c := newRootCommand()
		c.SetArgs([]string{"release", "plan", "--repo", ctl, "--release-candidate", "production", "--previous", prev, "--context", root, "--quiet"})
		var out strings.Builder
		c.SetOut(&out)
		err := c.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := plan()
	if !strings.Contains(out, "next release: 1.1.0 (MINOR after 1.0.0)") || failure.Code(err) != failure.ExitVerify ||
		!strings.Contains(err.Error(), "needs example-ntp >= 2.0.0") || strings.Contains(err.Error(), "pass --ignore-dependencies") {
		t.Errorf("plan with an unmet dependency: %v\n%s", err, out)
	}
	cfg := filepath.Join(ctl, "imagebake.toml")
	b, _ := os.ReadFile(cfg)
	testutil.Must(t, os.WriteFile(cfg, append(b, "\n[puppetfile]\nignore_dependencies = true\n"...), 0o644))
	testutil.Git(t, ctl, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "dependencies known better")
	if out, err := plan(); err != nil || !strings.Contains(out, "next release: 1.1.0") {
		t.Errorf("plan with [puppetfile] ignore_dependencies: %v\n%s", err, out)
	}
}

// A boolean flag given false overrides imagebake.toml: --compile=false
// turns off [compile] enabled = true (the gate would refuse the example's
// base, which has no Puppet), --ignore-dependencies=false turns off
// [puppetfile] ignore_dependencies = true.
func TestBooleanFlagsOverrideTheFile(t *testing.T) {
	root := bakedExample(t)
	ctl := filepath.Join(root, "control")
	cfg := filepath.Join(ctl, "imagebake.toml")
	b, _ := os.ReadFile(cfg)
	testutil.Must(t, os.WriteFile(cfg, append(b, "\n[compile]\nenabled = true\n"...), 0o644))
	testutil.Git(t, ctl, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "the gate on")
	testutil.Git(t, ctl, "tag", "v1.1.0")
	bake := func(args ...string) error {
		c := newRootCommand()
		c.SetArgs(append([]string{"bake", "--repo", ctl, "--context", root, "--out", filepath.Join(root, "out"), "--quiet"}, args...))
		c.SetOut(io.Discard)
		return c.ExecuteContext(context.Background())
	}
	if err := bake("--release", "1.1.0"); err == nil || !strings.Contains(err.Error(), "--compile needs the Puppet") {
		t.Errorf("bake with [compile] enabled = true on a base without Puppet = %v", err)
	}
	if err := bake("--release", "1.1.0", "--compile=false"); err != nil {
		t.Errorf("bake --compile=false over [compile] enabled = true: %v", err)
	}

	// a module needing what the Puppetfile does not pin, known better in the file
	src := filepath.Join(root, "src", "profile")
	testutil.Git(t, src, "checkout", "-q", "develop")
	testutil.Must(t, os.WriteFile(filepath.Join(src, "metadata.json"), []byte(`{"name": "example-profile", "version": "1.1.0", "author": "example", "summary": "s", "license": "Apache-2.0", "source": "https://example.invalid/p", "dependencies": [{"name": "example/ntp", "version_requirement": ">= 2.0.0"}]}`), 0o644))
	testutil.Git(t, src, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "needs ntp 2")
	testutil.Git(t, src, "push", "-q", filepath.Join(root, "remotes", "profile.git"), "develop")
	b, _ = os.ReadFile(cfg)
	testutil.Must(t, os.WriteFile(cfg, append(b, "\n[puppetfile]\nignore_dependencies = true\n"...), 0o644))
	testutil.Git(t, ctl, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "dependencies known better")
	testutil.Git(t, ctl, "tag", "v1.2.0")
	if err := bake("--release", "1.2.0", "--compile=false"); err != nil {
		t.Errorf("bake with [puppetfile] ignore_dependencies = true: %v", err)
	}
	if err := bake("--release", "1.2.0", "--compile=false", "--ignore-dependencies=false", "--force"); failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "needs example-ntp >= 2.0.0") {
		t.Errorf("bake --ignore-dependencies=false over the file = %v", err)
	}
}
