//go:build linux

package bake

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/gate"
	"github.com/imagebake/imagebake/internal/testutil"
)

// debianPuppetTarball is the real Debian 12 base with Debian's puppet
// (IMAGEBAKE_DEBIAN_PUPPET_BASE, else .cache/debian/bookworm-puppet.tar).
func debianPuppetTarball(t *testing.T) string {
	t.Helper()
	p := os.Getenv("IMAGEBAKE_DEBIAN_PUPPET_BASE")
	if p == "" {
		p = filepath.Join(testutil.ModuleRoot(t), ".cache", "debian", "bookworm-puppet.tar")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("a real Debian base with puppet is needed: make test builds it (scripts/ensure-debian-puppet-base): %v", err)
	}
	return p
}

// The compile gate on a real Debian base with Debian's puppet 7.23: the
// example's environment compiles (and the manifest says so); a site.pp
// including a class that exists nowhere refuses the bake (exit 4) with
// Puppet's error at manifests/site.pp:3, and no release is written. The
// base's Puppet reads /etc/puppet/code, where the environment goes.
func TestCompileGate(t *testing.T) {
	t.Parallel()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("the Debian base here is amd64; this machine is %s", runtime.GOARCH)
	}
	src := debianPuppetTarball(t)
	arch := runtime.GOARCH
	root, repo := example(t, map[string][]string{arch: {"2.4.1"}})
	rel := filepath.Join("base", "bookworm-puppet.tar")
	copyFile(t, src, filepath.Join(root, rel))
	cfg := filepath.Join(repo, "imagebake.toml")
	b, _ := os.ReadFile(cfg)
	b = regexp.MustCompile(`(?m)^environment = .*$`).ReplaceAll(b, []byte(`environment = "/etc/puppet/code/environments/production"`))
	testutil.Must(t, os.WriteFile(cfg, b, 0o644))
	useBase(t, repo, rel, strings.TrimPrefix(sha256File(t, filepath.Join(root, rel)), "sha256:"), "1.1.0")

	var log strings.Builder
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches, o.Release, o.Log = []string{arch}, "1.1.0", &log
	o.Compile.Enabled = true
	start := time.Now()
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatalf("bake --compile of the example: %v\n%s", err, log.String())
	}
	t.Logf("bake --compile took %s", time.Since(start))
	im := m.Images[0]
	if !strings.Contains(im.Compiled, "catalogs compiled by puppet 7.23") || im.Puppet == nil || im.Puppet.CodeDir != "/etc/puppet/code" || im.Puppet.Binary != "/usr/bin/puppet" {
		t.Errorf("manifest: compiled %q, puppet %+v", im.Compiled, im.Puppet)
	}
	// the base's facts, read once and kept beside the unpacked base, say
	// what the image is, not what the machine that baked it has
	cache, err := gate.CacheDir(o.Cache)
	if err != nil {
		t.Fatal(err)
	}
	found, _ := filepath.Glob(filepath.Join(cache, "*", "facts.json"))
	if len(found) == 0 {
		t.Fatalf("no base facts kept in %s", cache)
	}
	for _, f := range found {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), `"os":`) || strings.Contains(string(b), `"memory":`) || strings.Contains(string(b), `"processors":`) || strings.Contains(string(b), `"networking":`) {
			t.Errorf("%s: want the image's os, none of the build host's memory, processors or networking:\n%.300s", f, b)
		}
	}
	relDir := filepath.Join(o.Out, "example-1.1.0")
	if b, _ := os.ReadFile(filepath.Join(relDir, "manifest.toml")); !strings.Contains(string(b), "compiled = ") {
		t.Errorf("manifest.toml does not record the gate")
	}
	// the node's catalog is kept, normalised, and checked by verify
	node := "example-" + arch
	if len(im.Catalogs) != 1 || im.Catalogs[0].Node != node || im.Catalogs[0].File != "catalog-"+node+".json" || im.Catalogs[0].Resources < 3 {
		t.Fatalf("catalogs recorded: %+v", im.Catalogs)
	}
	cat, err := os.ReadFile(filepath.Join(relDir, im.Catalogs[0].File))
	if err != nil || !strings.Contains(string(cat), `"Role::Base"`) || strings.Contains(string(cat), "catalog_uuid") {
		t.Fatalf("the kept catalog (%v):\n%.1400s", err, cat)
	}
	if _, err := CheckArtifacts(ctx, filepath.Join(relDir, "manifest.toml")); err != nil {
		t.Fatalf("verify of the compiled release: %v", err)
	}
	testutil.Must(t, os.WriteFile(filepath.Join(relDir, im.Catalogs[0].File), []byte(strings.Replace(string(cat), "Role::Base", "Role::Other", 1)), 0o644))
	if _, err := CheckArtifacts(ctx, filepath.Join(relDir, "manifest.toml")); !errors.Is(err, ErrArtifact) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "catalog of node "+node+" was changed") {
		t.Errorf("verify of a release whose catalog was edited = %v", err)
	}
	testutil.Must(t, os.WriteFile(filepath.Join(relDir, im.Catalogs[0].File), cat, 0o644))

	site := filepath.Join(repo, "manifests", "site.pp")
	testutil.Must(t, os.WriteFile(site, []byte("# the site\n\nnode default { include nosuch::klass }\n"), 0o644))
	testutil.Git(t, repo, "commit", "-qam", "a class that exists nowhere")
	testutil.Git(t, repo, "tag", "v1.2.0")
	o.Release = "1.2.0"
	_, err = Bake(ctx, o)
	if !errors.Is(err, ErrCompile) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "manifests/site.pp:3") || !strings.Contains(err.Error(), "nosuch::klass") {
		t.Fatalf("bake --compile of a site.pp including a missing class = %v (exit %d)", err, failure.Code(err))
	}
	if _, err := os.Stat(filepath.Join(o.Out, "example-1.2.0")); err == nil {
		t.Error("the refused release was written")
	}
	// a Puppet that does not finish in time is stopped and named
	o.Compile.Timeout = 50 * time.Millisecond
	o.Release = "1.1.0"
	o.Force = true
	o.Epoch = time.Unix(1700000001, 0)
	if _, err := Bake(ctx, o); !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), "stopped after 50ms") {
		t.Errorf("bake --compile with a 50ms timeout = %v", err)
	}
}

// The gate on an AIO-style base (puppet-agent 7.23.0-1bookworm in the
// dpkg database, puppet at /opt/puppetlabs/bin/puppet and none in
// /usr/bin: scripts/ensure-aio-puppet-base): the environment under
// /etc/puppetlabs/code compiles with that program, which the manifest
// records; an environment under /etc/puppet, which that Puppet does not
// read, refuses the gated bake (exit 4) and is only a warning without
// the gate.
func TestCompileGateOnAIOBase(t *testing.T) {
	t.Parallel()
	if runtime.GOARCH != "amd64" {
		t.Skipf("the Debian base here is amd64; this machine is %s", runtime.GOARCH)
	}
	src := os.Getenv("IMAGEBAKE_AIO_PUPPET_BASE")
	if src == "" {
		src = filepath.Join(testutil.ModuleRoot(t), ".cache", "debian", "bookworm-aio.tar")
	}
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("an AIO-style base is needed: make test makes it (scripts/ensure-aio-puppet-base): %v", err)
	}
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	rel := filepath.Join("base", "aio.tar")
	copyFile(t, src, filepath.Join(root, rel))
	useBase(t, repo, rel, strings.TrimPrefix(sha256File(t, filepath.Join(root, rel)), "sha256:"), "1.1.0")
	var log strings.Builder
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches, o.Release, o.Log = []string{"amd64"}, "1.1.0", &log
	o.Compile.Enabled = true
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatalf("bake --compile on the AIO base: %v\n%s", err, log.String())
	}
	im := m.Images[0]
	if im.Puppet == nil || im.Puppet.Package != "puppet-agent" || im.Puppet.Binary != "/opt/puppetlabs/bin/puppet" || im.Puppet.CodeDir != "/etc/puppetlabs/code" || !strings.Contains(im.Compiled, "puppet-agent 7.23.0-1bookworm") || len(im.Catalogs) != 1 {
		t.Errorf("manifest: puppet %+v, compiled %q, catalogs %+v", im.Puppet, im.Compiled, im.Catalogs)
	}
	if b, _ := os.ReadFile(filepath.Join(o.Out, "example-1.1.0", "manifest.toml")); !strings.Contains(string(b), `binary = "/opt/puppetlabs/bin/puppet"`) {
		t.Errorf("manifest.toml does not record the puppet program:\n%s", b)
	}

	cfg := filepath.Join(repo, "imagebake.toml")
	b, _ := os.ReadFile(cfg)
	b = regexp.MustCompile(`(?m)^environment = .*$`).ReplaceAll(b, []byte(`environment = "/etc/puppet/code/environments/production"`))
	testutil.Must(t, os.WriteFile(cfg, b, 0o644))
	testutil.Git(t, repo, "commit", "-qam", "the environment where Debian's puppet reads")
	testutil.Git(t, repo, "tag", "v1.2.0")
	o.Release = "1.2.0"
	if _, err := Bake(ctx, o); !errors.Is(err, ErrCompile) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "reads /etc/puppetlabs/code") {
		t.Errorf("a gated bake of an environment the base's Puppet does not read = %v", err)
	}
	log.Reset()
	o.Compile.Enabled = false
	if _, err := Bake(ctx, o); err != nil || !strings.Contains(log.String(), "warning: ") || !strings.Contains(log.String(), "will not find it") {
		t.Errorf("the same bake without the gate = %v, want a warning:\n%s", err, log.String())
	}
}

// A facts file is a mapping of fact names to scalars; each becomes
// FACTER_NAME in Puppet's environment, so a name that could be read as
// another variable (or hold '=') is refused.
func TestReadFacts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct{ src, want string }{
		{"role: web\nport: 8080\n", ""},
		{"'a=b': x\n", `"a=b" is not a fact name`},
		{"os:\n  family: Debian\n", `fact "os" is not a string, number or boolean`},
		{"[1, 2]\n", "is not a YAML or JSON mapping"},
	} {
		p := filepath.Join(dir, "facts.yaml")
		testutil.Must(t, os.WriteFile(p, []byte(c.src), 0o644))
		facts, err := readFacts(p)
		switch {
		case c.want == "" && (err != nil || facts["role"] != "web" || facts["port"] != "8080"):
			t.Errorf("readFacts(%q) = %v, %v", c.src, facts, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("readFacts(%q) = %v, want an error saying %q", c.src, err, c.want)
		}
	}
}

// A node name reaches Puppet as --certname's value: one Puppet would not
// take as a certname, or would read as an option, is refused (exit 2).
func TestCheckNode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		node string
		ok   bool
	}{{"", true}, {"web01.example.org", true}, {"example-1.0.0-amd64", true}, {"--confdir=/x", false}, {"-v", false}, {"Web01", false}, {"a b", false}} {
		if err := checkNode(c.node); (err == nil) != c.ok || (err != nil && failure.Code(err) != failure.ExitUsage) {
			t.Errorf("checkNode(%q) = %v", c.node, err)
		}
	}
}
