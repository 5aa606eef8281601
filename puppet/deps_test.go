//go:build linux

package puppet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/puppet/metadata"
	"github.com/imagebake/imagebake/puppet/puppetfile"
)

// moduleRepo is a module repository with one tag per version, each with a
// real metadata.json (the fields Puppet's own modules carry).
func moduleRepo(t *testing.T, root, name string, versions map[string]string) *upstream {
	t.Helper()
	u := &upstream{work: filepath.Join(root, "src", name), bare: filepath.Join(root, "remotes", name+".git")}
	testutil.Must(t, os.MkdirAll(u.work, 0o755))
	testutil.Git(t, u.work, "init", "-q", "-b", "main")
	for _, v := range sortedVersions(versions) {
		md := fmt.Sprintf(`{"name": "puppetlabs-%s", "version": %q, "author": "puppetlabs", "license": "Apache-2.0",
  "dependencies": [%s],
  "requirements": [{"name": "puppet", "version_requirement": ">= 7.0.0 < 9.0.0"}]}`, name, v, versions[v])
		u.commit(t, map[string]string{"manifests/init.pp": "class " + name + " {}\n", "metadata.json": md}, v)
		testutil.Git(t, u.work, "tag", "v"+v)
	}
	testutil.Must(t, os.MkdirAll(filepath.Dir(u.bare), 0o755))
	testutil.Git(t, root, "clone", "-q", "--bare", u.work, u.bare)
	u.url = "file://" + u.bare
	return u
}

func sortedVersions(m map[string]string) []string {
	var out []string
	for v := range m {
		out = append(out, v)
	}
	sort.Strings(out) // the tests' versions sort as strings
	return out
}

// Every dependency a module's metadata.json names must be pinned, in its
// range: stdlib 8.6.0 under concat 9.0.1 (which needs >= 9.0.0 < 10.0.0)
// and inifile's missing dependency are both named, with their Puppetfile
// lines, in one exit-4 error; --ignore-dependencies installs anyway; the
// right pins install, and the report carries each module's metadata.
func TestDependenciesChecked(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	stdlib := moduleRepo(t, root, "stdlib", map[string]string{"8.6.0": "", "9.6.0": ""})
	concat := moduleRepo(t, root, "concat", map[string]string{"9.0.1": `{"name": "puppetlabs/stdlib", "version_requirement": ">= 9.0.0 < 10.0.0"}`})
	inifile := moduleRepo(t, root, "inifile", map[string]string{"6.1.0": `{"name": "puppetlabs-translate", "version_requirement": ">= 1.0.0"}`})
	serve(t, "git", stdlib, concat, inifile)
	env := filepath.Join(root, "env")
	write := func(stdlibTag string, withInifile bool) string {
		src := fmt.Sprintf("mod 'stdlib', :git => '%s', :tag => '%s'\nmod 'concat', :git => '%s', :tag => 'v9.0.1'\n", stdlib.url, stdlibTag, concat.url)
		if withInifile {
			src += fmt.Sprintf("mod 'inifile', :git => '%s', :ref => 'v6.1.0'\n", inifile.url)
		}
		return src
	}
	opts := []Option{WithCache(filepath.Join(root, "cache"))}
	pf := writePuppetfile(t, env, write("v8.6.0", true))
	_, err := Install(context.Background(), pf, nil, env, filepath.Join(env, "modules"), opts...)
	if !errors.Is(err, ErrDependencies) || failure.Code(err) != failure.ExitVerify {
		t.Fatalf("Install with stdlib 8.6.0 under concat 9.0.1 = %v (exit %d), want exit 4", err, failure.Code(err))
	}
	for _, want := range []string{
		"Puppetfile:2:5: module concat 9.0.1 needs puppetlabs-stdlib >= 9.0.0 < 10.0.0: stdlib (" + filepath.Join(env, "Puppetfile") + ":1:5) is pinned at 8.6.0",
		"Puppetfile:3:5: module inifile 6.1.0 needs puppetlabs-translate >= 1.0.0: no module of that name is in the Puppetfile",
		"(2)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	// lock checks them too, from the pinned commits' metadata.json
	if _, err := Lock(context.Background(), pf, opts...); !errors.Is(err, ErrDependencies) || !strings.Contains(err.Error(), "stdlib (") {
		t.Errorf("Lock with stdlib 8.6.0 under concat 9.0.1 = %v", err)
	}
	if _, err := Install(context.Background(), pf, nil, env, filepath.Join(env, "modules"), append(opts, WithoutDependencyCheck())...); err != nil {
		t.Errorf("Install --ignore-dependencies = %v", err)
	}
	pf = writePuppetfile(t, env, write("v9.6.0", false))
	rep, err := Install(context.Background(), pf, nil, env, filepath.Join(env, "modules"), opts...)
	if err != nil {
		t.Fatalf("Install with the dependency in range = %v", err)
	}
	if md := rep.Metadata["concat"]; md == nil || md.Version != "9.0.1" || metadata.Slug(md.Name) != "puppetlabs-concat" {
		t.Errorf("report metadata of concat = %+v", md)
	}
	lk, err := Lock(context.Background(), pf, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := lk.Find("concat"); c.ModuleName != "puppetlabs-concat" || c.ModuleVersion != "9.0.1" {
		t.Errorf("the lock records concat as %q %q", c.ModuleName, c.ModuleVersion)
	}
}

// A metadata.json that is not JSON, or is 10 MB, is a note naming the
// module and the file, never a failed install.
func TestBadMetadataIsANote(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for name, body := range map[string]string{"broken": "{not json", "huge": `{"name": "a-huge", "version": "1.0.0", "x": "` + strings.Repeat("y", 10<<20) + `"}`} {
		u := &upstream{work: filepath.Join(root, "src", name), bare: filepath.Join(root, "remotes", name+".git")}
		testutil.Must(t, os.MkdirAll(u.work, 0o755))
		testutil.Git(t, u.work, "init", "-q", "-b", "main")
		u.commit(t, map[string]string{"metadata.json": body}, "one")
		testutil.Git(t, u.work, "tag", "v1.0.0")
		testutil.Must(t, os.MkdirAll(filepath.Dir(u.bare), 0o755))
		testutil.Git(t, root, "clone", "-q", "--bare", u.work, u.bare)
	}
	env := filepath.Join(root, "env")
	pf := writePuppetfile(t, env, fmt.Sprintf("mod 'broken', :git => 'file://%s/remotes/broken.git', :tag => 'v1.0.0'\nmod 'huge', :git => 'file://%s/remotes/huge.git', :tag => 'v1.0.0'\n", root, root))
	rep, err := Install(context.Background(), pf, nil, env, filepath.Join(env, "modules"), WithCache(filepath.Join(root, "cache")))
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, want := range []string{`module "broken": ` + filepath.Join(env, "modules", "broken", "metadata.json") + " is not JSON", `module "huge": `, "is larger than"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes do not say %q:\n%s", want, notes)
		}
	}
}

// BenchmarkDependencyCheck reads the metadata.json of 150 installed
// modules (each depending on the one before) and checks every dependency.
func BenchmarkDependencyCheck(b *testing.B) {
	env := b.TempDir()
	var src strings.Builder
	for i := range 150 {
		dep := ""
		if i > 0 {
			dep = fmt.Sprintf(`{"name": "acme/m%03d", "version_requirement": ">= 1.0.0 < 2.0.0"}`, i-1)
		}
		dir := filepath.Join(env, "modules", fmt.Sprintf("m%03d", i))
		testutil.Must(b, os.MkdirAll(dir, 0o755))
		testutil.Must(b, os.WriteFile(filepath.Join(dir, "metadata.json"), []byte(fmt.Sprintf(`{"name": "acme-m%03d", "version": "1.%d.0", "dependencies": [%s], "requirements": [{"name": "puppet", "version_requirement": ">= 7.0.0 < 9.0.0"}]}`, i, i, dep)), 0o644))
		fmt.Fprintf(&src, "mod 'm%03d', :git => 'git://h/m%03d.git', :tag => 'v1.%d.0'\n", i, i, i)
	}
	testutil.Must(b, os.WriteFile(filepath.Join(env, "Puppetfile"), []byte(src.String()), 0o644))
	pf, err := puppetfile.ReadFile(filepath.Join(env, "Puppetfile"))
	if err != nil {
		b.Fatal(err)
	}
	t, err := openTargets(env, filepath.Join(env, "modules"), pf.Path)
	if err != nil {
		b.Fatal(err)
	}
	defer t.close()
	b.ResetTimer()
	for range b.N {
		metas, notes := readMetadata(pf, t)
		if len(notes) > 0 || len(metas) != 150 {
			b.Fatalf("%d metadata, notes %v", len(metas), notes)
		}
		if err := CheckDependencies(pf, nil, metas); err != nil {
			b.Fatal(err)
		}
	}
}

// A module installed as modules/fake whose metadata.json says it is
// puppetlabs-stdlib is not stdlib to Puppet: a note says so, and another
// module's dependency on stdlib counts as missing.
func TestMetadataNameMustMatchDirectory(t *testing.T) {
	t.Parallel()
	env := t.TempDir()
	write := func(dir, meta string) {
		testutil.Must(t, os.MkdirAll(filepath.Join(env, "modules", dir), 0o755))
		testutil.Must(t, os.WriteFile(filepath.Join(env, "modules", dir, "metadata.json"), []byte(meta), 0o644))
	}
	write("fake", `{"name": "puppetlabs-stdlib", "version": "9.9.9", "dependencies": []}`)
	write("app", `{"name": "acme-app", "version": "1.0.0", "dependencies": [{"name": "puppetlabs/stdlib", "version_requirement": ">= 9.0.0 < 10.0.0"}]}`)
	testutil.Must(t, os.WriteFile(filepath.Join(env, "Puppetfile"), []byte("mod 'fake', :git => 'git://h/fake.git', :tag => 'v1.0.0'\nmod 'app', :git => 'git://h/app.git', :tag => 'v1.0.0'\n"), 0o644))
	pf, err := puppetfile.ReadFile(filepath.Join(env, "Puppetfile"))
	if err != nil {
		t.Fatal(err)
	}
	tg, err := openTargets(env, filepath.Join(env, "modules"), pf.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	metas, notes := readMetadata(pf, tg)
	if len(notes) != 1 || !strings.Contains(notes[0], `is installed as fake, and its metadata.json names it "puppetlabs-stdlib"`) {
		t.Errorf("notes = %q", notes)
	}
	err = CheckDependencies(pf, nil, metas)
	if !errors.Is(err, ErrDependencies) || !strings.Contains(err.Error(), "needs puppetlabs-stdlib >= 9.0.0 < 10.0.0: no module of that name is in the Puppetfile") {
		t.Errorf("CheckDependencies = %v, want stdlib missing", err)
	}
}
