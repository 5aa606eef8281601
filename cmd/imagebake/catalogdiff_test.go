package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
)

// puppetExample is the example control repo on the real Debian base with
// Debian's puppet 7.23, for this machine's arch only, its environment
// where that Puppet reads code.
func puppetExample(t *testing.T) (root, ctl string) {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skipf("the Debian base here is amd64; this machine is %s", runtime.GOARCH)
	}
	src := os.Getenv("IMAGEBAKE_DEBIAN_PUPPET_BASE")
	if src == "" {
		src = filepath.Join(testutil.ModuleRoot(t), ".cache", "debian", "bookworm-puppet.tar")
	}
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("a real Debian base with puppet is needed: make test builds it (scripts/ensure-debian-puppet-base): %v", err)
	}
	root = t.TempDir()
	testutil.Searchable(t, root)
	ctl = testutil.Example(t, root)
	store := agentstest.Store(t, filepath.Join(root, "store"))
	agentstest.Publish(t, store, agents.PublishOptions{Name: "mozagent", Version: "2.4.1", OS: "linux", Arch: "amd64"}, "")
	if err := os.Link(src, filepath.Join(root, "base", "puppet.tar")); err != nil {
		testutil.Run(t, "cp", src, filepath.Join(root, "base", "puppet.tar"))
	}
	sum, err := filehash.SHA256(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(ctl, "imagebake.toml")
	b, _ := os.ReadFile(cfg)
	s := regexp.MustCompile(`(?m)^rootfs = .*$`).ReplaceAllString(string(b), `rootfs = "base/puppet.tar"`)
	s = regexp.MustCompile(`(?m)^sha256 = .*$`).ReplaceAllString(s, `sha256 = "`+sum+`"`)
	s = regexp.MustCompile(`(?m)^arches = .*$`).ReplaceAllString(s, `arches = ["amd64"]`)
	s = regexp.MustCompile(`(?m)^environment = .*$`).ReplaceAllString(s, `environment = "/etc/puppet/code/environments/production"`)
	testutil.Must(t, os.WriteFile(cfg, []byte(s), 0o644))
	return root, ctl
}

func runCmd(args ...string) (string, error) {
	c := newRootCommand()
	c.SetArgs(append(args, "--quiet"))
	var out strings.Builder
	c.SetOut(&out)
	err := c.ExecuteContext(context.Background())
	return out.String(), err
}

// What a release does to the nodes: 3.0.0 is baked with the compile gate
// and published with its catalog; the plan of the next candidate compiles
// it and shows, per node, the resources added and the parameters changed,
// as text and as JSON. A catalog edited in the store is refused; a
// previous release that keeps no catalogs says how to get them.
func TestReleasePlanShowsCatalogChanges(t *testing.T) {
	signingEnv(t)
	root, ctl := puppetExample(t)
	releases := filepath.Join(root, "releases")
	site := filepath.Join(ctl, "manifests", "site.pp")
	testutil.Must(t, os.WriteFile(site, []byte("node default {\n  include role::base\n  file { '/etc/app.conf': content => 'level=info', tag => ['a'] }\n  package { 'telnet': ensure => absent }\n}\n"), 0o644))
	testutil.Git(t, ctl, "commit", "-qam", "3.0.0")
	testutil.Git(t, ctl, "tag", "v3.0.0")
	if out, err := runCmd("bake", "--repo", ctl, "--release", "3.0.0", "--context", root, "--out", filepath.Join(root, "dist"), "--compile"); err != nil {
		t.Fatalf("bake --compile 3.0.0: %v\n%s", err, out)
	}
	if _, err := runCmd("publish", filepath.Join(root, "dist", "example-3.0.0"), "--store", releases); err != nil {
		t.Fatalf("publish 3.0.0: %v", err)
	}
	// the candidate: a parameter changed, a file added, a package gone,
	// a tag changed (no effect) and a line moved (no effect)
	testutil.Must(t, os.WriteFile(site, []byte("# 1.1.0\nnode default {\n  include role::base\n  file { '/etc/app.conf': content => 'level=debug', tag => ['b'] }\n  file { '/etc/golden-new': ensure => file }\n}\n"), 0o644))
	testutil.Git(t, ctl, "commit", "-qam", "candidate")
	plan := []string{"release", "plan", "--repo", ctl, "--release-candidate", "production", "--previous", "3.0.0", "--catalog", releases, "--context", root, "--compile"}
	out, err := runCmd(plan...)
	for _, want := range []string{"node example-amd64: 1 added, 1 removed, 1 changed", "+ File[/etc/golden-new]", "- Package[telnet]", "~ File[/etc/app.conf] content: 'level=info' -> 'level=debug'"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("plan --compile = %v, lacks %q:\n%s", err, want, out)
		}
	}
	if strings.Contains(out, "tag") || strings.Contains(out, "Class[") {
		t.Errorf("plan --compile shows what has no effect:\n%s", out)
	}
	js, err := runCmd(append(plan, "--json")...)
	var v struct {
		Next     string `json:"next"`
		Catalogs struct {
			Against string `json:"against"`
			Nodes   []struct {
				Node    string   `json:"node"`
				Added   []string `json:"added"`
				Changed []struct {
					Resource   string `json:"resource"`
					Parameters []struct {
						Name     string `json:"name"`
						Old, New any
					} `json:"parameters"`
				} `json:"changed"`
			} `json:"nodes"`
		} `json:"catalogs"`
	}
	if err != nil || json.Unmarshal([]byte(js), &v) != nil || v.Catalogs.Against != "3.0.0" || len(v.Catalogs.Nodes) != 1 ||
		fmt.Sprint(v.Catalogs.Nodes[0].Added) != "[File[/etc/golden-new]]" || v.Catalogs.Nodes[0].Changed[0].Parameters[0].New != "level=debug" {
		t.Errorf("plan --compile --json = %v, %+v:\n%s", err, v, js)
	}

	// a catalog edited in the store is not diffed against
	stored := filepath.Join(releases, "images", "example-3.0.0", "catalog-example-amd64.json")
	b, err := os.ReadFile(stored)
	if err != nil {
		t.Fatalf("the published release keeps no catalog: %v", err)
	}
	testutil.Must(t, os.WriteFile(stored, []byte(strings.Replace(string(b), "level=info", "level=debug", 1)), 0o644))
	if _, err := runCmd(plan...); failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "catalog-example-amd64.json") || !strings.Contains(err.Error(), "its manifest records") {
		t.Errorf("plan --compile against an edited catalog = %v", err)
	}
	testutil.Must(t, os.WriteFile(stored, b, 0o644))

	// a previous release baked without the gate keeps no catalogs
	if _, err := runCmd("bake", "--repo", ctl, "--release", "3.0.0", "--context", root, "--out", filepath.Join(root, "plain")); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd("release", "plan", "--repo", ctl, "--release-candidate", "production", "--previous", filepath.Join(root, "plain", "example-3.0.0", "manifest.toml"), "--context", root, "--compile")
	if err != nil || !strings.Contains(out, "keeps no compiled catalogs") || !strings.Contains(out, "--release 3.0.0 --compile") {
		t.Errorf("plan --compile against a release without catalogs = %v\n%s", err, out)
	}
}

// [compile] nodes: each node is compiled with its fact set (what facter
// --yaml prints on it) and keeps its own catalog; a fact set that is not
// YAML or JSON, and a node name with '/', are exit 2 naming them.
func TestCompileNodesWithFactSets(t *testing.T) {
	t.Parallel()
	root, ctl := puppetExample(t)
	testutil.Must(t, os.MkdirAll(filepath.Join(root, "facts"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(root, "facts", "web1.yaml"), []byte("os:\n  family: Debian\n  architecture: amd64\n  release: {major: '12'}\nnetworking:\n  fqdn: web1.example.com\nrole: web\n"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(root, "facts", "db1.json"), []byte(`{"name": "db1.example.com", "values": {"os": {"family": "RedHat", "architecture": "x86_64"}, "role": "db"}}`), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(ctl, "manifests", "site.pp"), []byte("node default {\n  include role::base\n  file { \"/etc/role-${facts['role']}\": content => $facts['os']['family'] }\n}\n"), 0o644))
	cfg := filepath.Join(ctl, "imagebake.toml")
	b, _ := os.ReadFile(cfg)
	testutil.Must(t, os.WriteFile(cfg, append(b, "\n[compile]\nnodes = [{name = \"web1.example.com\", facts = \"facts/web1.yaml\"}, {name = \"db1.example.com\", facts = \"facts/db1.json\"}]\n"...), 0o644))
	testutil.Git(t, ctl, "commit", "-qam", "nodes")
	testutil.Git(t, ctl, "tag", "v3.0.0")
	dist := filepath.Join(root, "dist")
	if out, err := runCmd("bake", "--repo", ctl, "--release", "3.0.0", "--context", root, "--out", dist, "--compile"); err != nil {
		t.Fatalf("bake --compile with two nodes: %v\n%s", err, out)
	}
	for node, want := range map[string]string{"web1.example.com": `"/etc/role-web"`, "db1.example.com": `"/etc/role-db"`} {
		b, err := os.ReadFile(filepath.Join(dist, "example-3.0.0", "catalog-"+node+".json"))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("the catalog of %s (%v) lacks %s", node, err, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dist, "example-3.0.0", "catalog-db1.example.com.json")); !strings.Contains(string(b), `"content": "RedHat"`) {
		t.Errorf("db1's catalog does not use its fact set")
	}

	// a fact set changed since: the release in --out is not up to date
	testutil.Must(t, os.WriteFile(filepath.Join(root, "facts", "web1.yaml"), []byte("os:\n  family: Debian\n  architecture: amd64\nrole: cache\n"), 0o644))
	if out, err := runCmd("bake", "--repo", ctl, "--release", "3.0.0", "--context", root, "--out", dist, "--compile"); err != nil {
		t.Fatalf("bake --compile after web1's facts changed: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dist, "example-3.0.0", "catalog-web1.example.com.json")); !strings.Contains(string(b), `"/etc/role-cache"`) {
		t.Errorf("web1's catalog was not compiled again with its new facts")
	}

	testutil.Must(t, os.WriteFile(filepath.Join(root, "facts", "db1.json"), []byte("{\"os\": [unclosed\n"), 0o644))
	_, err := runCmd("bake", "--repo", ctl, "--release", "3.0.0", "--context", root, "--out", filepath.Join(root, "d2"), "--compile")
	if failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "facts/db1.json") || !strings.Contains(err.Error(), "not YAML or JSON") {
		t.Errorf("a fact set that is not YAML or JSON = %v", err)
	}
	b, _ = os.ReadFile(cfg)
	testutil.Must(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), `nodes = [{name = "web1.example.com"`, `nodes = [{name = "../web1"`, 1)), 0o644))
	testutil.Git(t, ctl, "commit", "-qam", "bad node")
	testutil.Git(t, ctl, "tag", "v3.0.1")
	_, err = runCmd("bake", "--repo", ctl, "--release", "3.0.1", "--context", root, "--out", filepath.Join(root, "d3"), "--compile")
	if failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), `node "../web1" is not a Puppet certname`) {
		t.Errorf("a node named ../web1 = %v", err)
	}
}

// Puppet requirements before any bake: a module whose metadata.json needs
// openvox >= 8.19.0 (as voxpupuli's systemd 9 writes it), for a base with
// Debian's puppet 7.23, is refused by puppetfile check --deep and by lock
// (exit 4), with its Puppetfile line and the requirement as written.
func TestPuppetRequirementsBeforeBake(t *testing.T) {
	t.Parallel()
	root, ctl := puppetExample(t)
	work := filepath.Join(root, "profile-work")
	testutil.Git(t, root, "clone", "-q", "-b", "develop", filepath.Join(root, "remotes", "profile.git"), work)
	testutil.Must(t, os.WriteFile(filepath.Join(work, "metadata.json"), []byte(`{"name": "example-profile", "version": "0.3.0", "author": "example", "summary": "s", "license": "Apache-2.0", "source": "https://example.invalid/profile", "dependencies": [], "requirements": [{"name": "openvox", "version_requirement": ">= 8.19.0 < 9.0.0"}]}`), 0o644))
	testutil.Git(t, work, "add", "-A")
	testutil.Git(t, work, "commit", "-qm", "openvox 8 only")
	testutil.Git(t, work, "push", "-q", "origin", "develop")
	pf := filepath.Join(ctl, "Puppetfile")
	_, err := runCmd("puppetfile", "check", "--deep", "--puppetfile", pf, "--context", root, "--cache", filepath.Join(root, "cache"))
	for _, want := range []string{pf + ":11", "module profile 0.3.0 needs openvox >= 8.19.0 < 9.0.0", "the amd64 base has Puppet 7.23.0 (package puppet 7.23.0"} {
		if failure.Code(err) != failure.ExitVerify || !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("puppetfile check --deep = %v (exit %d), lacks %q", err, failure.Code(err), want)
		}
	}
	_, err = runCmd("puppetfile", "lock", "--puppetfile", pf, "--context", root, "--cache", filepath.Join(root, "cache"))
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(fmt.Sprint(err), "needs openvox >= 8.19.0") {
		t.Errorf("puppetfile lock = %v", err)
	}
	if _, err := os.Stat(pf + ".lock"); err == nil {
		t.Error("lock wrote a lock whose modules do not run on the base")
	}
}

// cache prune takes sizes as people write them and refuses others
// (exit 2); cache du says where the gate's cache is and how large.
func TestCachePruneSizes(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	testutil.Searchable(t, cache)
	if _, err := runCmd("cache", "prune", "--max-size", "lots", "--cache", cache); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), `"lots"`) || !strings.Contains(err.Error(), "is not a size like 4GiB") {
		t.Errorf("cache prune --max-size lots = %v", err)
	}
	out, err := runCmd("cache", "prune", "--max-size", "500MB", "--older-than", "720h", "--cache", cache)
	if err != nil || !strings.Contains(out, "removed 0 unpacked bases") {
		t.Errorf("cache prune of an empty cache = %v\n%s", err, out)
	}
	out, err = runCmd("cache", "du", "--cache", cache)
	if err != nil || !strings.Contains(out, "in 0 unpacked bases") {
		t.Errorf("cache du = %v\n%s", err, out)
	}
}
