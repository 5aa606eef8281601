//go:build linux

package bake

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
	"github.com/imagebake/imagebake/puppet"
	"github.com/imagebake/imagebake/puppet/puppetfile"
)

// The same release baked from three places of the control repo (the
// work tree, a clone elsewhere, git:// from a daemon), from two places of
// the agent store, and one arch at a time, is the same bytes.
func TestImageBytesDependOnContentOnly(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	clone := filepath.Join(t.TempDir(), "b", "control")
	testutil.Git(t, root, "clone", "-q", repo, clone)
	served := t.TempDir()
	testutil.Git(t, root, "clone", "-q", "--bare", repo, filepath.Join(served, "control.git"))
	daemon := testutil.GitDaemon(t, served) + "/control.git"
	store1 := filepath.Join(root, "store")
	store2 := filepath.Join(t.TempDir(), "store-mirror")
	testutil.Run(t, "cp", "-a", store1, store2)

	type bake struct {
		name, repo, store string
		arches            []string
	}
	digests := map[string]map[string]string{} // arch -> digest -> first bake with it
	index := map[string]string{}
	for i, b := range []bake{
		{"work tree, store 1", repo, store1, nil},
		{"clone elsewhere, store 1", clone, store1, nil},
		{"git:// daemon, store 2", daemon, store2, nil},
		{"work tree, store 2, amd64 alone", repo, store2, []string{"amd64"}},
		{"git:// daemon, store 1, arm64 alone", daemon, store1, []string{"arm64"}},
	} {
		o := opts(root, b.repo, filepath.Join(t.TempDir(), "dist"))
		o.Stores, o.Arches = []string{b.store}, b.arches
		m, err := Bake(ctx, o)
		if err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		if b.arches == nil {
			index[m.IndexDigest] = b.name
		}
		for _, im := range m.Images {
			if digests[im.Arch] == nil {
				digests[im.Arch] = map[string]string{}
			}
			digests[im.Arch][im.Digest] = b.name
		}
		if i == 2 && m.Repo.URL != daemon {
			t.Errorf("the manifest's provenance says %s, want %s", m.Repo.URL, daemon)
		}
	}
	if len(index) != 1 {
		t.Errorf("index digests differ by where the inputs came from: %v", index)
	}
	for arch, ds := range digests {
		if len(ds) != 1 {
			t.Errorf("%s image digests differ: %v", arch, ds)
		}
	}
}

// skopeo copies the release's index without re-serialising it: the digest
// in the manifest is the digest users pull. The layout's files are 0644
// and every mtime in the payload layers is the epoch.
func TestIndexCopiesUnchangedAndFilesAtEpoch(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Fatal("skopeo is needed: make test installs it (apt-get install skopeo)")
	}
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	m, err := Bake(ctx, opts(root, repo, filepath.Join(root, "dist")))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "dist", "example-1.0.0")
	dst := filepath.Join(t.TempDir(), "copy")
	testutil.Run(t, "skopeo", "copy", "--quiet", "--all", "--preserve-digests", "oci:"+dir+":example-1.0.0", "oci:"+dst+":copied")
	var ix struct{ Manifests []struct{ Digest string } }
	if err := json.Unmarshal(mustReadFile(t, filepath.Join(dst, "index.json")), &ix); err != nil || len(ix.Manifests) != 1 {
		t.Fatalf("copied index.json: %v %+v", err, ix)
	}
	if ix.Manifests[0].Digest != m.IndexDigest {
		t.Errorf("skopeo copy --all --preserve-digests gave index %s, the manifest says %s", ix.Manifests[0].Digest, m.IndexDigest)
	}
	for _, f := range []string{"index.json", "oci-layout", manifest.FileName, SBOMName} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v (%v), want 0644", f, fi.Mode().Perm(), err)
		}
	}
	epoch := time.Unix(m.Epoch, 0)
	for _, l := range m.Images[0].Layers {
		if l.Role == "base" {
			continue
		}
		want := epoch
		if l.Role == "agents" {
			// the agents layer takes its archive's time (the test store's
			// archives are at 1970): its bytes depend on the agents alone
			want = time.Unix(0, 0)
		}
		tr := tar.NewReader(mustGunzipFile(t, filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:"))))
		n := 0
		for ; ; n++ {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s layer, after %d entries: %v", l.Role, n, err)
			}
			if !h.ModTime.Equal(want) {
				t.Errorf("%s layer: %s has mtime %v, want %v", l.Role, h.Name, h.ModTime.UTC(), want.UTC())
				break
			}
		}
		if n == 0 {
			t.Errorf("%s layer has no entries", l.Role)
		}
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustGunzipFile(t *testing.T, p string) io.Reader {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(mustReadFile(t, p)))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

// A release number names one content: a re-bake after a newer agent was
// published is refused naming the change (exit 4) unless --force; a bake
// of one arch into an out holding others keeps them, byte for byte.
func TestReleaseInOutIsPinned(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	out := filepath.Join(root, "dist")
	one := func(arches ...string) (*manifest.Manifest, error) {
		o := opts(root, repo, out)
		o.Arches = arches
		return Bake(ctx, o)
	}
	amd, err := one("amd64")
	if err != nil {
		t.Fatal(err)
	}
	both, err := one("arm64")
	if err != nil {
		t.Fatal(err)
	}
	if len(both.Images) != 2 || both.Images[0].Digest != amd.Images[0].Digest {
		t.Fatalf("baking arm64 into an out holding amd64: images %+v, want amd64 kept as %s", both.Images, amd.Images[0].Digest)
	}
	full, err := Bake(ctx, opts(root, repo, filepath.Join(root, "dist-all")))
	if err != nil {
		t.Fatal(err)
	}
	if full.IndexDigest != both.IndexDigest {
		t.Errorf("one arch at a time gives index %s, both at once %s", both.IndexDigest, full.IndexDigest)
	}
	// a release missing a blob is baked again, not called up to date
	index := filepath.Join(out, "example-1.0.0", "blobs", "sha256", strings.TrimPrefix(both.IndexDigest, "sha256:"))
	testutil.Must(t, os.Remove(index))
	if _, err := one(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(index); err != nil {
		t.Errorf("a re-bake of a release missing its index blob left it missing: %v", err)
	}

	for _, a := range []string{"amd64", "arm64"} {
		agentstest.Publish(t, agentstest.Store(t, filepath.Join(root, "store")), agents.PublishOptions{Name: "mozagent", Version: "2.4.2", OS: "linux", Arch: a}, "")
	}
	_, err = one()
	if !errors.Is(err, ErrReleaseChanged) || failure.Code(err) != 4 || !strings.Contains(err.Error(), "agent binaries of amd64: mozagent 2.4.1") || !strings.Contains(err.Error(), "-> mozagent 2.4.2") {
		t.Fatalf("re-bake after a newer agent: %v (exit %d), want exit 4 naming the agent change", err, failure.Code(err))
	}
	if m, _ := manifest.Read(filepath.Join(out, "example-1.0.0", manifest.FileName)); m == nil || m.IndexDigest != both.IndexDigest {
		t.Error("the refused bake changed the release in --out")
	}
	o := opts(root, repo, out)
	o.Force = true
	if m, err := Bake(ctx, o); err != nil || m.IndexDigest == both.IndexDigest {
		t.Errorf("--force: %v; the release should be replaced", err)
	}
	// a release whose manifest cannot be read is not overwritten blindly
	testutil.Must(t, os.WriteFile(filepath.Join(out, "example-1.0.0", manifest.FileName), []byte("not a manifest"), 0o644))
	if _, err := one(); !errors.Is(err, ErrReleaseChanged) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("bake over an unreadable manifest: %v, want a refusal naming --force", err)
	}
	// a manifest that cannot be read at all (an I/O error: EACCES, EIO;
	// here EISDIR, which root meets too) is not a changed release: exit 1
	// with the error as it came, and --force does not replace it either
	mpath := filepath.Join(out, "example-1.0.0", manifest.FileName)
	if err := os.Remove(mpath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mpath, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		o := opts(root, repo, out)
		o.Arches, o.Force = []string{"amd64"}, force
		_, err := Bake(ctx, o)
		if err == nil || errors.Is(err, ErrReleaseChanged) || failure.Code(err) != 1 || !errors.Is(err, syscall.EISDIR) || !strings.Contains(err.Error(), out) {
			t.Errorf("bake (--force %v) over a manifest that cannot be read: %v (exit %d); want exit 1 carrying EISDIR and naming %s", force, err, failure.Code(err), out)
		}
	}
	if fi, err := os.Stat(mpath); err != nil || !fi.IsDir() {
		t.Errorf("the refused bakes touched %s: %v", mpath, err)
	}
}

// One agent version per release: the newest every arch has, said aloud
// when the newest differs per arch; --agents-per-arch takes each arch's
// newest; no common version is an error naming what each arch has.
func TestOneAgentVersionPerRelease(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.3.0", "2.4.0"}, "arm64": {"2.3.0"}})
	var log strings.Builder
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Log = &log
	m, _, err := Plan(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if m.Images[0].Agent.Version != "2.3.0" || m.Images[1].Agent.Version != "2.3.0" {
		t.Errorf("agents = %s (amd64), %s (arm64); want 2.3.0 for both", m.Images[0].Agent.Version, m.Images[1].Agent.Version)
	}
	if !strings.Contains(log.String(), "newest differ per arch (amd64 2.4.0, arm64 2.3.0); using 2.3.0") {
		t.Errorf("the log does not say the newest differ per arch:\n%s", log.String())
	}
	o.AgentsPerArch = true
	if m, _, err = Plan(ctx, o); err != nil || m.Images[0].Agent.Version != "2.4.0" || m.Images[1].Agent.Version != "2.3.0" {
		t.Errorf("--agents-per-arch: %v %+v", err, m)
	}

	root, repo = example(t, map[string][]string{"amd64": {"2.4.0"}, "arm64": {"2.3.0"}})
	_, _, err = Plan(ctx, opts(root, repo, filepath.Join(root, "dist")))
	if !errors.Is(err, agents.ErrNoMatch) || !strings.Contains(err.Error(), "amd64 has 2.4.0; arm64 has 2.3.0") {
		t.Errorf("no common version: %v", err)
	}
}

// A bake says which inputs floated and what they resolved to; --locked
// refuses them until the control repo pins everything.
func TestFloatingInputsAndLocked(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	var log strings.Builder
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Log = &log
	if _, err := Bake(ctx, o); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"floating inputs", "module ntp: no committed Puppetfile.lock; tag v1.0.0 resolved to commit", "agent binaries mozagent 2.x (a range) on arm64: resolved to 2.4.1"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the bake's log lacks %q:\n%s", want, log.String())
		}
	}
	o.Locked, o.Log = true, nil
	_, _, err := Plan(ctx, o)
	if !errors.Is(err, ErrFloating) || failure.Code(err) != 4 || !strings.Contains(err.Error(), "module ntp") {
		t.Fatalf("--locked with floating inputs: %v", err)
	}

	// pin everything in the control repo: a committed lock, an exact agent version
	pf, err := puppetfile.ReadFile(filepath.Join(repo, "Puppetfile"))
	if err != nil {
		t.Fatal(err)
	}
	lk, err := puppet.Lock(ctx, pf, puppet.WithCache(filepath.Join(root, "cache")))
	if err != nil {
		t.Fatal(err)
	}
	if err := lk.Write(filepath.Join(repo, "Puppetfile.lock")); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(repo, ConfigName)
	testutil.Must(t, os.WriteFile(cfg, []byte(strings.Replace(string(mustReadFile(t, cfg)), `major = "2"`, `major = "2.4.1"`, 1)), 0o644))
	testutil.Git(t, repo, "add", "-A")
	testutil.Git(t, repo, "commit", "-qm", "pin everything")
	testutil.Git(t, repo, "tag", "v1.0.1")
	o.Release = "1.0.1"
	m, _, err := Plan(ctx, o)
	if err != nil {
		t.Fatalf("--locked with everything pinned: %v", err)
	}
	if !m.Puppetfile.LockCommitted {
		t.Error("the lock is not recorded as committed")
	}
}

// A base named relative to --context, looked for in the wrong directory,
// is an error naming the directory it was resolved against.
func TestMissingBaseNamesTheContext(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Context, o.Stores = t.TempDir(), []string{filepath.Join(root, "store")}
	_, err := Bake(ctx, o)
	if !errors.Is(err, failure.ErrNotFound) || !strings.Contains(err.Error(), "not in the context directory "+o.Context) || !strings.Contains(err.Error(), "--context") {
		t.Errorf("bake with the wrong --context: %v", err)
	}
}

// The agent binaries must run on the image's arch: a shell script, or an
// amd64 binary published as arm64, is refused naming the file.
func TestAgentMachineChecked(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"a script":        agentstest.Script("2.4.1"),
		"an amd64 binary": agentstest.Binary("amd64", "2.4.1"),
	} {
		root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
		agentstest.Publish(t, agentstest.Store(t, filepath.Join(root, "store")), agents.PublishOptions{Name: "mozagent", Version: "2.4.1", OS: "linux", Arch: "arm64"}, content)
		_, err := Bake(ctx, opts(root, repo, filepath.Join(root, "dist")))
		if !errors.Is(err, agents.ErrWrongMachine) || failure.Code(err) != 4 || !strings.Contains(err.Error(), "bin/mozagent") || !strings.Contains(err.Error(), "linux/arm64") {
			t.Errorf("%s as arm64 agent binaries: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(root, "dist", "example-1.0.0")); err == nil {
			t.Errorf("%s: a refused bake left a release", name)
		}
	}
}

// Given the release's manifest, a bake rebuilds exactly its pins: a newer
// agent published since changes nothing.
func TestBakeFromManifestKeepsItsPins(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	first, err := Bake(ctx, opts(root, repo, filepath.Join(root, "dist")))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"amd64", "arm64"} {
		agentstest.Publish(t, agentstest.Store(t, filepath.Join(root, "store")), agents.PublishOptions{Name: "mozagent", Version: "2.4.2", OS: "linux", Arch: a}, "")
	}
	o := opts(root, repo, filepath.Join(root, "dist-again"))
	o.Pinned = first
	again, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if again.IndexDigest != first.IndexDigest || again.Images[0].Agent.Version != "2.4.1" {
		t.Errorf("rebuilt from the manifest: index %s agent %s; want %s with 2.4.1", again.IndexDigest, again.Images[0].Agent.Version, first.IndexDigest)
	}
}

// With a catalog holding the release, a bake rebuilds exactly its signed
// manifest's pins: a newer agent published since changes nothing. A
// release not in the catalog is baked as usual.
func TestBakePublishedReleaseKeepsItsPins(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	first, err := Bake(ctx, opts(root, repo, filepath.Join(root, "dist")))
	if err != nil {
		t.Fatal(err)
	}
	pub, key, err := signing.Generate(t.TempDir(), "k", "")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := signing.LoadSigner(key, "")
	kr, _ := signing.LoadKeyring(pub)
	st := &catalog.Store{Root: filepath.Join(root, "published"), Keys: kr}
	if _, _, err := st.Publish(t.Context(), filepath.Join(root, "dist", "example-1.0.0"), signer); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"amd64", "arm64"} {
		agentstest.Publish(t, agentstest.Store(t, filepath.Join(root, "store")), agents.PublishOptions{Name: "mozagent", Version: "2.4.2", OS: "linux", Arch: a}, "")
	}
	o := opts(root, repo, filepath.Join(root, "dist-again"))
	o.Published = func(ctx context.Context, family, release string) (*manifest.Manifest, error) {
		return catalog.PublishedManifest(ctx, st.Root, family, release, kr, nil, nil)
	}
	again, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if again.IndexDigest != first.IndexDigest || again.Images[0].Agent.Version != "2.4.1" {
		t.Errorf("rebuilt from the catalog: index %s agent %s; want %s with 2.4.1", again.IndexDigest, again.Images[0].Agent.Version, first.IndexDigest)
	}
	testutil.Git(t, repo, "tag", "v1.0.1")
	o.Release = "1.0.1"
	next, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if next.Images[0].Agent.Version != "2.4.2" {
		t.Errorf("unpublished 1.0.1 took agent %s, want the newest 2.4.2", next.Images[0].Agent.Version)
	}
}
