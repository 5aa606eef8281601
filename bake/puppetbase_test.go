//go:build linux

package bake

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// The base's Puppet, read from its packages: a module whose metadata.json
// requirements exclude it is refused (exit 4) naming module, range, the
// base's Puppet and package, and nothing is written; an environment the
// base's Puppet does not read is warned about; with --ignore-dependencies
// the bake goes through and the manifest records the Puppet per arch and
// that dependencies were not checked.
func TestBasePuppetChecked(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	w := filepath.Join(root, "src", "apt")
	testutil.Git(t, root, "init", "-q", "-b", "main", w)
	testutil.Must(t, os.MkdirAll(filepath.Join(w, "manifests"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(w, "manifests", "init.pp"), []byte("class apt {}\n"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(w, "metadata.json"), []byte(`{"name": "puppetlabs-apt", "version": "11.3.2",
  "dependencies": [], "requirements": [{"name": "puppet", "version_requirement": ">= 8.0.0 < 9.0.0"}]}`), 0o644))
	testutil.Git(t, w, "add", "-A")
	testutil.Git(t, w, "commit", "-q", "-m", "apt")
	testutil.Git(t, w, "tag", "v11.3.2")
	testutil.Git(t, root, "clone", "-q", "--bare", w, filepath.Join(root, "remotes", "apt.git"))
	pf := filepath.Join(repo, "Puppetfile")
	b, _ := os.ReadFile(pf)
	testutil.Must(t, os.WriteFile(pf, append(b, fmt.Sprintf("\nmod 'apt', :git => 'file://%s/remotes/apt.git', :tag => 'v11.3.2'\n", root)...), 0o644))
	rel, sum := writeBase(t, root, "deb-puppet", bookworm, dpkg("puppet 7.23.0-1", "ruby3.1 3.1.2-7+deb12u1"))
	useBase(t, repo, rel, sum, "1.1.0")

	var log strings.Builder
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches, o.Release, o.Log = []string{"amd64"}, "1.1.0", &log
	_, err := Bake(ctx, o)
	if !errors.Is(err, ErrPuppetVersion) || failure.Code(err) != failure.ExitVerify ||
		!strings.Contains(err.Error(), "module apt 11.3.2 needs puppet >= 8.0.0 < 9.0.0; the amd64 base has Puppet 7.23.0 (package puppet 7.23.0-1)") {
		t.Fatalf("bake of apt 11.3.2 onto Puppet 7.23 = %v (exit %d)", err, failure.Code(err))
	}
	if _, err := os.Stat(filepath.Join(o.Out, "example-1.1.0")); err == nil {
		t.Error("the refused release was written")
	}
	if !strings.Contains(log.String(), "reads /etc/puppet/code: puppet in the image will not find it") {
		t.Errorf("no warning that Debian's puppet reads /etc/puppet/code:\n%s", log.String())
	}
	o.IgnoreDependencies = true
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	want := &manifest.Puppet{Package: "puppet", PackageVersion: "7.23.0-1", Version: "7.23.0", CodeDir: "/etc/puppet/code", Binary: "/usr/bin/puppet"}
	if p := m.Images[0].Puppet; p == nil || *p != *want || !m.Puppetfile.IgnoreDependencies {
		t.Errorf("manifest puppet %+v, ignore_dependencies %v", p, m.Puppetfile.IgnoreDependencies)
	}
	var apt bool
	for _, mod := range m.Puppetfile.Modules {
		apt = apt || mod.Name == "apt" && mod.ModuleName == "puppetlabs-apt" && mod.ModuleVersion == "11.3.2"
	}
	if !apt {
		t.Errorf("manifest modules do not record apt's metadata: %+v", m.Puppetfile.Modules)
	}
	// an imagebake.toml that sets no environment: it follows the base's Puppet
	cfg := filepath.Join(repo, ConfigName)
	b, _ = os.ReadFile(cfg)
	testutil.Must(t, os.WriteFile(cfg, regexp.MustCompile(`(?m)^environment = .*\n`).ReplaceAll(b, nil), 0o644))
	testutil.Git(t, repo, "commit", "-qam", "no environment")
	testutil.Git(t, repo, "tag", "v1.2.0")
	log.Reset()
	o.Release = "1.2.0"
	if m, err = Bake(ctx, o); err != nil {
		t.Fatal(err)
	}
	if m.Environment != "/etc/puppet/code/environments/production" || strings.Contains(log.String(), "will not find it") {
		t.Errorf("environment %s with Debian's puppet and none set; log:\n%s", m.Environment, log.String())
	}
}

// Which Puppet a base carries and where it reads code.
func TestBasePuppetPackages(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		format, name, version string
		want                  string
	}{
		{"dpkg", "puppet", "7.23.0-1", "7.23.0 /etc/puppet/code"},
		{"dpkg", "puppet-agent", "8.10.0-1", "8.10.0 /etc/puppet/code"},             // Debian's own (trixie)
		{"dpkg", "puppet-agent", "7.28.0-1bookworm", "7.28.0 /etc/puppetlabs/code"}, // Puppet's AIO
		{"rpm", "puppet-agent", "8.4.0-1.el9", "8.4.0 /etc/puppetlabs/code"},
		{"dpkg", "openvox-agent", "8.11.0-1+debian12", "8.11.0 /etc/puppetlabs/code"},
		{"dpkg", "puppet-module-x", "1.0.0-1", "none"},
	} {
		got := "none"
		if p := basePuppet(&manifest.Packages{Format: c.format, List: []manifest.Package{{Name: c.name, Version: c.version}}}); p != nil {
			got = p.Version + " " + p.CodeDir
		}
		if got != c.want {
			t.Errorf("%s %s %s: %s, want %s", c.format, c.name, c.version, got, c.want)
		}
	}
}
