//go:build linux

package bake

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/agents/activate"
	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet"
	"github.com/imagebake/imagebake/puppet/puppetfile"
	"github.com/imagebake/imagebake/release"
)

var ctx = context.Background()

// example generates the embedded example under a temp dir and publishes
// agent binaries (shell scripts) for the given arch -> versions.
func example(t *testing.T, published map[string][]string) (root, repo string) {
	t.Helper()
	root = t.TempDir()
	return root, exampleAt(t, root, published)
}

// exampleAt generates the example in root and returns the control repo.
func exampleAt(t *testing.T, root string, published map[string][]string) (repo string) {
	t.Helper()
	repo = testutil.Example(t, root)
	store := agentstest.Store(t, filepath.Join(root, "store"))
	for arch, versions := range published {
		for _, v := range versions {
			agentstest.Publish(t, store, agents.PublishOptions{Name: "mozagent", Version: v, OS: "linux", Arch: arch}, "")
		}
	}
	return repo
}

func opts(root, repo, out string) Options {
	return Options{Repo: repo, Release: "1.0.0", Out: out, Cache: filepath.Join(root, "cache"), Context: root, Version: "test"}
}

func TestBakeOCIReadByRealTools(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.3.0", "2.4.1"}, "arm64": {"2.3.0", "2.4.1"}})
	out := filepath.Join(root, "dist")
	m, err := Bake(ctx, opts(root, repo, out))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "example-1.0.0")
	if len(m.Images) != 2 || m.Images[0].Name != "example-1.0.0-amd64" || m.Images[1].Name != "example-1.0.0-arm64" {
		t.Fatalf("images = %+v", m.Images)
	}
	if m.Images[0].Agent.Version != "2.4.1" || m.Images[1].Agent.Version != "2.4.1" {
		t.Errorf("agents = %s, %s; want the newest, 2.4.1, for both", m.Images[0].Agent.Version, m.Images[1].Agent.Version)
	}
	if m.Repo.Tag != "v1.0.0" || len(m.Repo.Commit) != 40 || len(m.Puppetfile.Modules) != 3 {
		t.Errorf("repo %+v, %d modules", m.Repo, len(m.Puppetfile.Modules))
	}
	// the epoch is the release commit's time (gen.sh commits at 2025-04-01T12:00:00Z)
	if got := time.Unix(m.Epoch, 0).UTC(); !got.Equal(time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("epoch = %v, want the commit time 2025-04-01T12:00:00Z", got)
	}

	var insp struct {
		Digest, Architecture, Os, Created string
		Layers                            []string
	}
	if err := json.Unmarshal([]byte(testutil.Run(t, "skopeo", "inspect", "oci:"+dir+":example-1.0.0-arm64")), &insp); err != nil {
		t.Fatal(err)
	}
	if insp.Digest != m.Images[1].Digest || insp.Architecture != "arm64" || insp.Os != "linux" || len(insp.Layers) != 4 || !strings.HasPrefix(insp.Created, "2025-04-01T12:00:00") {
		t.Errorf("skopeo inspect = %+v, manifest digest %s", insp, m.Images[1].Digest)
	}
	raw := testutil.Run(t, "skopeo", "inspect", "--raw", "oci:"+dir+":example-1.0.0-amd64")
	for _, want := range []string{`"application/vnd.oci.image.manifest.v1+json"`, `"application/vnd.oci.image.config.v1+json"`, `"application/vnd.oci.image.layer.v1.tar+gzip"`, `"org.opencontainers.image.revision":"` + m.Repo.Commit} {
		if !strings.Contains(raw, want) {
			t.Errorf("raw manifest lacks %s:\n%s", want, raw)
		}
	}

	bundle := filepath.Join(t.TempDir(), "bundle")
	testutil.Run(t, "umoci", "unpack", "--rootless", "--image", dir+":example-1.0.0-amd64", bundle)
	rootfs := filepath.Join(bundle, "rootfs")
	env := filepath.Join(rootfs, DefaultEnvironment)
	for _, p := range []string{"Puppetfile", "hiera.yaml", "site-modules/role/manifests/init.pp", "modules/ntp/manifests/init.pp", "modules/motd/files/run.sh", "modules/profile/manifests/extra.pp"} {
		if _, err := os.Stat(filepath.Join(env, p)); err != nil {
			t.Errorf("environment lacks %s: %v", p, err)
		}
	}
	if l, _ := os.Readlink(filepath.Join(rootfs, "opt/mozagent/tools/current")); l != "2.4.1-amd64" {
		t.Errorf("current -> %q, want 2.4.1-amd64", l)
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "opt/mozagent/tools/current/bin/mozagent")); string(b) != agentstest.Binary("amd64", "2.4.1") {
		t.Errorf("agent binary = %q", b)
	}
	rel, _ := os.ReadFile(filepath.Join(rootfs, "etc/imagebake/release.toml"))
	for _, want := range []string{`release = "1.0.0"`, `arch = "amd64"`, `commit = "` + m.Repo.Commit + `"`, `content_digest = "` + m.Images[0].ContentDigest + `"`} {
		if !strings.Contains(string(rel), want) {
			t.Errorf("release.toml lacks %s:\n%s", want, rel)
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc/os-release")); err != nil {
		t.Errorf("base content missing: %v", err)
	}
	validSPDX(t, filepath.Join(dir, SBOMName))

	// verify rebuilds from the manifest alone and matches
	if _, err := Verify(ctx, filepath.Join(dir, manifest.FileName), Options{Cache: filepath.Join(root, "cache2"), Context: root, Version: "test"}); err != nil {
		t.Errorf("Verify = %v", err)
	}
	// a second bake with nothing changed is up to date and keeps the bytes
	before, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	m2, err := Bake(ctx, opts(root, repo, out))
	if err != nil || m2.IndexDigest != m.IndexDigest {
		t.Errorf("second bake = %v, index %s want %s", err, m2.IndexDigest, m.IndexDigest)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if !bytes.Equal(before, after) {
		t.Error("second bake changed index.json")
	}
}

// TestBakeReproducible bakes the same release in two processes with other
// out dirs, caches, working dirs, umasks, time zones and GOMAXPROCS.
func TestBakeReproducible(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	var digests []string
	for i, env := range [][]string{
		{"TZ=UTC", "GOMAXPROCS=1", "HELPER_UMASK=022"},
		{"TZ=Pacific/Chatham", "GOMAXPROCS=2", "HELPER_UMASK=077"},
	} {
		work := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBake$")
		cmd.Dir = work
		cmd.Env = append(os.Environ(), append(env, "IMAGEBAKE_HELPER=1", "HELPER_ROOT="+root, "HELPER_REPO="+repo,
			fmt.Sprintf("HELPER_OUT=%s/dist%d", work, i), fmt.Sprintf("HELPER_CACHE=%s/cache%d", work, i))...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bake %d: %v\n%s", i, err, out)
		}
		m, err := manifest.Read(filepath.Join(work, fmt.Sprintf("dist%d", i), "example-1.0.0", manifest.FileName))
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, m.IndexDigest+" "+m.Images[0].Digest+" "+m.Images[1].Digest)
	}
	if digests[0] != digests[1] {
		t.Errorf("two bakes differ:\n%s\n%s", digests[0], digests[1])
	}
}

func TestHelperBake(t *testing.T) {
	if os.Getenv("IMAGEBAKE_HELPER") != "1" {
		t.Skip("helper process for TestBakeReproducible")
	}
	var mask int
	fmt.Sscanf(os.Getenv("HELPER_UMASK"), "%o", &mask)
	syscall.Umask(mask)
	o := Options{Repo: os.Getenv("HELPER_REPO"), Release: "1.0.0", Out: os.Getenv("HELPER_OUT"), Cache: os.Getenv("HELPER_CACHE"), Context: os.Getenv("HELPER_ROOT"), Version: "test"}
	if _, err := Bake(ctx, o); err != nil {
		t.Fatal(err)
	}
}

func TestBakeRootfs(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Builder, o.Arches = "rootfs", []string{"arm64"}
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Images) != 1 || m.Images[0].Artifact != "example-1.0.0-arm64.rootfs.tar.gz" {
		t.Fatalf("images = %+v", m.Images)
	}
	f, err := os.Open(filepath.Join(root, "dist", "example-1.0.0", m.Images[0].Artifact))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, _ := gzip.NewReader(f)
	tr := tar.NewReader(zr)
	seen := map[string]*tar.Header{}
	prev := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name < prev {
			t.Errorf("%s after %s: not in lexical order", h.Name, prev)
		}
		prev = h.Name
		seen[strings.TrimSuffix(h.Name, "/")] = h
	}
	for _, p := range []string{"etc/os-release", "etc/imagebake/release.toml", "opt/mozagent/tools/current", "etc/puppetlabs/code/environments/production/modules/ntp/manifests/init.pp"} {
		if seen[p] == nil {
			t.Errorf("rootfs lacks %s", p)
		}
	}
	if h := seen["tmp"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("base /tmp mode not kept: %+v", h)
	}
	if _, err := Verify(ctx, filepath.Join(root, "dist", "example-1.0.0", manifest.FileName), Options{Cache: o.Cache, Context: root, Version: "test"}); err != nil {
		t.Errorf("Verify rootfs = %v", err)
	}
}

func TestBakeBadInput(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}})
	out := filepath.Join(root, "dist")
	check := func(name string, o Options, is error, contains ...string) {
		t.Helper()
		_, err := Bake(ctx, o)
		if !errors.Is(err, is) {
			t.Errorf("%s: Bake = %v, want %v", name, err, is)
			return
		}
		for _, c := range contains {
			if !strings.Contains(err.Error(), c) {
				t.Errorf("%s: error %q does not contain %q", name, err, c)
			}
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("%s: a failed bake left %v in the out dir", name, ents)
		}
	}
	o := opts(root, repo, out)
	o.Release = "1.0.1"
	check("missing tag", o, failure.ErrNotFound, "no tag v1.0.1 or 1.0.1 in "+repo, "nearest release tags: v1.0.0")

	check("no agents for arm64", opts(root, repo, out), agents.ErrNoMatch, "mozagent 2.x on linux/arm64", filepath.Join(root, "store", "tools"), "mozagent-2.4.1-amd64 (other arch)")

	o = opts(root, repo, out)
	o.Arches = []string{"amd64"}
	testutil.Must(t, os.WriteFile(filepath.Join(root, "base", "rootfs.tar.gz"), []byte("tampered"), 0o644))
	check("base digest mismatch", o, builders.ErrDigestMismatch, "base rootfs", "rootfs.tar.gz", "imagebake.toml pins")

	o.Arches = []string{"s390x"}
	check("arch not configured", o, failure.ErrUsage, "s390x is not configured")

	o = opts(root, repo, filepath.Join(root, "base", "rootfs.tar.gz", "dist"))
	if _, err := Bake(ctx, o); err == nil || !strings.Contains(err.Error(), "out dir") {
		t.Errorf("unwritable out dir: Bake = %v, want an error naming the out dir", err)
	}
}

func TestVerifyNamesFirstDifference(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Arches = []string{"amd64"}
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "dist", "example-1.0.0")
	// the release on disk is tampered: the environment layer holds another Puppetfile
	env := m.Images[0].Layers[1]
	blob := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(env.Digest, "sha256:"))
	rewriteTar(t, blob, "etc/puppetlabs/code/environments/production/Puppetfile", "mod 'evil'\n")
	m.Images[0].Digest = "sha256:" + strings.Repeat("0", 64)
	m.Images[0].Layers[1].DiffID = "sha256:" + strings.Repeat("1", 64)
	m.IndexDigest = "sha256:" + strings.Repeat("2", 64)
	if err := m.Write(filepath.Join(dir, manifest.FileName)); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(ctx, filepath.Join(dir, manifest.FileName), Options{Cache: o.Cache, Context: root, Version: "test"})
	if !errors.Is(err, ErrMismatch) || !errors.Is(err, failure.ErrVerify) {
		t.Fatalf("Verify of a tampered release = %v, want ErrMismatch", err)
	}
	for _, want := range []string{"image example-1.0.0-amd64", "layer 1 (environment)", "first difference: etc/puppetlabs/code/environments/production/Puppetfile: size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Verify error:\n%v\nwant it to contain %q", err, want)
		}
	}
}

// rewriteTar replaces the content of one file in a gzip tar.
func rewriteTar(t *testing.T, p, name, content string) {
	t.Helper()
	in, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("rewriting %s: %v", p, err)
		}
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		body, err := io.ReadAll(tr)
		must(err)
		if h.Name == name {
			body = []byte(content)
			h.Size = int64(len(body))
		}
		must(tw.WriteHeader(h))
		_, err = tw.Write(body)
		must(err)
	}
	must(tw.Close())
	must(zw.Close())
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBakeCommittedLockIsLaw(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	git := func(args ...string) { t.Helper(); testutil.Git(t, repo, args...) }
	pfPath := filepath.Join(repo, "Puppetfile")
	pf, err := puppetfile.ReadFile(pfPath)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := puppet.Lock(ctx, pf, puppet.WithCache(filepath.Join(root, "cache")))
	if err != nil {
		t.Fatal(err)
	}
	lk.Write(pfPath + ".lock")
	git("add", "-A")
	git("commit", "-qm", "lock")
	git("tag", "v1.1.0")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release = "1.1.0"
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Puppetfile.LockCommitted || len(m.Puppetfile.Modules) != 3 {
		t.Errorf("manifest puppetfile = %+v, want the committed lock's 3 pins", m.Puppetfile)
	}
	// the Puppetfile changes, the lock does not: the release is refused
	b, _ := os.ReadFile(pfPath)
	testutil.Must(t, os.WriteFile(pfPath, []byte(strings.Replace(string(b), "tag: 'v1.1.0'", "tag: 'v1.0.0'", 1)), 0o644))
	git("commit", "-qam", "unlocked change")
	git("tag", "v1.2.0")
	o.Release = "1.2.0"
	_, err = Bake(ctx, o)
	if !errors.Is(err, puppet.ErrLockStale) || !strings.Contains(err.Error(), `module "motd": ref "v1.0.0" in the Puppetfile`) {
		t.Errorf("bake with a stale committed lock = %v, want ErrLockStale naming motd", err)
	}
}

// TestBakeOnOCILayoutBase builds on a base given as an OCI layout pinned by
// its index digest: the base's layers are kept as they are, per arch.
func TestBakeOnOCILayoutBase(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	// a two-arch base image index, written as an OCI layout
	idx, imgs := testutil.BaseIndex(t, "amd64", "arm64")
	baseLayers := map[string]string{}
	for arch, img := range imgs {
		baseLayers[arch] = testutil.FirstLayer(t, img)
	}
	lp := filepath.Join(root, "base-layout")
	lpath, err := layout.Write(lp, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lpath.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	digest, _ := idx.Digest()
	// a release whose imagebake.toml names the layout
	cfgPath := filepath.Join(repo, "imagebake.toml")
	b, _ := os.ReadFile(cfgPath)
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "rootfs = "):
			lines[i] = `layout = "base-layout"`
		case strings.HasPrefix(l, "sha256 = "):
			lines[i] = fmt.Sprintf("digest = %q", digest)
		}
	}
	testutil.Must(t, os.WriteFile(cfgPath, []byte(strings.Join(lines, "\n")), 0o644))
	for _, args := range [][]string{{"commit", "-qam", "layout base"}, {"tag", "v1.3.0"}} {
		testutil.Git(t, repo, args...)
	}
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release = "1.3.0"
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range m.Images {
		if len(im.Layers) != 5 || im.Layers[0].Role != "base" || im.Layers[0].Digest != baseLayers[im.Arch] {
			t.Errorf("%s layers = %+v, want the base's 2 layers (first %s) then environment, agents and release", im.Name, im.Layers, baseLayers[im.Arch])
		}
		if !strings.HasPrefix(im.Base.Digest, "sha256:") || im.Base.Ref != "oci:base-layout@"+digest.String() {
			t.Errorf("%s base = %+v", im.Name, im.Base)
		}
	}
	var insp struct{ Architecture string }
	json.Unmarshal([]byte(testutil.Run(t, "skopeo", "inspect", "oci:"+filepath.Join(root, "dist", "example-1.3.0")+":example-1.3.0-arm64")), &insp)
	if insp.Architecture != "arm64" {
		t.Errorf("skopeo sees arch %q", insp.Architecture)
	}
	// a tampered base blob is refused
	testutil.Must(t, os.WriteFile(filepath.Join(lp, "blobs", "sha256", digest.Hex), []byte(`{"tampered":true}`), 0o644))
	o.Out = filepath.Join(root, "dist2")
	if _, err := Bake(ctx, o); !errors.Is(err, builders.ErrDigestMismatch) || !strings.Contains(err.Error(), "base layout") {
		t.Errorf("bake on a tampered layout = %v, want ErrDigestMismatch", err)
	}
}

// TestBakeChecksReleaseNumber refuses a number too small for the changes
// since the previous release, before anything is written.
func TestBakeChecksReleaseNumber(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	out := filepath.Join(root, "dist")
	prev, err := Bake(ctx, opts(root, repo, out))
	if err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(repo, "Puppetfile")
	b, _ := os.ReadFile(pf)
	testutil.Must(t, os.WriteFile(pf, append(b, []byte("\nmod 'extra', :git => 'file://"+filepath.Join(root, "remotes", "ntp.git")+"', :tag => 'v1.1.0'\n")...), 0o644))
	for _, args := range [][]string{{"commit", "-qam", "add a module"}, {"tag", "v1.0.1"}, {"tag", "v1.1.0"}} {
		testutil.Git(t, repo, args...)
	}
	o := opts(root, repo, out)
	o.Release, o.Previous = "1.0.1", prev
	_, err = Bake(ctx, o)
	if !errors.Is(err, release.ErrNumber) || !strings.Contains(err.Error(), "module extra: added (MINOR)") {
		t.Fatalf("SECURITY release adding a module = %v, want ErrNumber naming the module", err)
	}
	if _, err := os.Stat(filepath.Join(out, "example-1.0.1")); err == nil {
		t.Error("a refused release was written to dist/")
	}
	// the same check with the previous release looked up in a catalog
	// (bake --catalog without --previous)
	var asked string
	o.Previous = nil
	o.PreviousFrom = func(_ context.Context, family, release string) (*manifest.Manifest, error) {
		asked = family + " " + release
		return prev, nil
	}
	if _, err := Bake(ctx, o); !errors.Is(err, release.ErrNumber) || asked != "example 1.0.1" {
		t.Fatalf("bake with the previous release from a catalog = %v (asked for %q), want ErrNumber after looking up example 1.0.1", err, asked)
	}
	o.PreviousFrom = nil
	o.Previous = prev
	o.Release = "1.1.0"
	if _, err := Bake(ctx, o); err != nil {
		t.Errorf("MINOR release adding a module = %v, want it baked", err)
	}
	// a release candidate that is not there names what is
	p := opts(root, repo, out)
	p.Ref = "v1.2"
	if _, _, err := Plan(ctx, p); err == nil || !strings.Contains(err.Error(), "nearest tags and branches: v1.") {
		t.Errorf("Plan of a missing candidate = %v, want the nearest refs", err)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGoldenDigests bakes the example at a fixed path (paths are recorded
// in the manifest and the image annotations) and compares every digest
// with testdata/golden/example.digests: a change to the staging, the
// builders or the tar writer that moves a byte shows here (go test
// -update if on purpose).
//
// Why they last moved: defaults 2 puts release.toml in a layer of its own
// ("release") and gives the agents layer its archive's time instead of
// the release commit's, so two releases with the same agents share that
// layer byte for byte (the store keeps it once). Every image digest moved
// once; releases baked with defaults 1 rebuild with their own rules.
func TestGoldenDigests(t *testing.T) {
	// the same digests under another umask and another TMPDIR
	for _, c := range []struct {
		name  string
		umask int
		tmp   string
	}{{"umask 022", 0o022, ""}, {"umask 002, other TMPDIR", 0o002, t.TempDir()}} {
		t.Run(c.name, func(t *testing.T) {
			old := syscall.Umask(c.umask)
			defer syscall.Umask(old)
			if c.tmp != "" {
				t.Setenv("TMPDIR", c.tmp)
			}
			goldenDigests(t)
		})
	}
}

func goldenDigests(t *testing.T) {
	// a fixed path, whatever TMPDIR says: the example's root enters its
	// Puppetfile (the remotes' URLs)
	root := "/tmp/imagebake-golden-example"
	lf, err := flock.Lock(root + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	testutil.Must(t, os.RemoveAll(root))
	defer os.RemoveAll(root)
	repo := exampleAt(t, root, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	var got strings.Builder
	for _, builder := range []string{"oci", "rootfs"} {
		o := Options{Repo: repo, Release: "1.0.0", Out: filepath.Join(root, "dist-"+builder), Cache: t.TempDir(), Context: root, Version: "golden", Builder: builder}
		m, err := Bake(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&got, "%s inputs %s\n%s index %s\n", builder, m.InputsDigest, builder, m.IndexDigest)
		for _, im := range m.Images {
			fmt.Fprintf(&got, "%s %s %s\n", builder, im.Name, im.Digest)
			for _, l := range im.Layers {
				fmt.Fprintf(&got, "%s %s %s layer %s\n", builder, im.Name, l.Role, l.DiffID)
			}
		}
	}
	p := filepath.Join("testdata", "golden", "example.digests")
	if *update {
		testutil.Must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		testutil.Must(t, os.WriteFile(p, []byte(got.String()), 0o644))
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("the example's digests changed (go test ./bake -run TestGoldenDigests -update if on purpose):\n--- got\n%s--- want\n%s", got.String(), want)
	}
}

// flipByte changes one byte in the middle of the file at p.
func flipByte(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A byte flipped in a file of a release on disk is found by verify (and
// by verify --artifacts-only, without a rebuild), naming the file and
// both digests; an untouched release passes.
func TestVerifyHashesFilesOnDisk(t *testing.T) {
	t.Parallel()
	for _, builder := range []string{"oci", "rootfs"} {
		t.Run(builder, func(t *testing.T) {
			root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
			o := opts(root, repo, filepath.Join(root, "dist"))
			o.Builder = builder
			m, err := Bake(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "dist", "example-1.0.0")
			name := filepath.Join(dir, manifest.FileName)
			if _, err := CheckArtifacts(ctx, name); err != nil {
				t.Fatalf("untouched release: %v", err)
			}
			var flipped []string
			if builder == "oci" {
				flipped = append(flipped, filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(m.Images[1].Layers[len(m.Images[1].Layers)-1].Digest, "sha256:")))
			} else {
				flipped = append(flipped, filepath.Join(dir, m.Images[0].Artifact))
			}
			flipped = append(flipped, filepath.Join(dir, SBOMName))
			for _, p := range flipped {
				flipByte(t, p)
			}
			_, err = CheckArtifacts(ctx, name)
			if !errors.Is(err, ErrArtifact) || !errors.Is(err, failure.ErrVerify) {
				t.Fatalf("--artifacts-only of a flipped release = %v, want ErrArtifact", err)
			}
			_, verr := Verify(ctx, name, Options{Cache: o.Cache, Context: root, Version: "test"})
			if !errors.Is(verr, failure.ErrVerify) {
				t.Fatalf("verify of a flipped release = %v, want a verification failure", verr)
			}
			for _, e := range []error{err, verr} {
				for _, p := range flipped {
					if !strings.Contains(e.Error(), p+": sha256 sha256:") {
						t.Errorf("error\n%v\ndoes not name %s with its digest", e, p)
					}
				}
			}
		})
	}
}

// agents status on a freshly baked image reports the baked version as
// running, from the current link the bake laid out.
func TestBakedAgentStatus(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Builder, o.Arches = "rootfs", []string{"arm64"}
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(root, "img")
	testutil.Must(t, os.MkdirAll(img, 0o755))
	testutil.Run(t, "tar", "-xzf", filepath.Join(root, "dist", "example-1.0.0", m.Images[0].Artifact), "-C", img)
	s, err := activate.NewMachine(img, m.Images[0].Agent.Name, time.Now).Status()
	if err != nil {
		t.Fatal(err)
	}
	if s.Running != "2.4.1" || !s.Baked || s.Current != "2.4.1-arm64" {
		t.Errorf("status of a baked image: running %q baked %v current %q, want 2.4.1 as baked, current 2.4.1-arm64", s.Running, s.Baked, s.Current)
	}
}

// :control_branch means the branch of the image's environment
// (production) unless imagebake.toml's [puppetfile] control_branch says
// otherwise; the manifest records it. [puppetfile] exclude_spec sets the
// default of modules that do not set :exclude_spec.
func TestControlBranchAndExcludeSpecSettings(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	remote := filepath.Join(root, "remotes", "ntp.git")
	work := filepath.Join(t.TempDir(), "ntp")
	testutil.Git(t, "", "clone", "-q", remote, work)
	defBranch := strings.TrimSpace(testutil.Git(t, work, "rev-parse", "--abbrev-ref", "HEAD"))
	defHead := strings.TrimSpace(testutil.Git(t, work, "rev-parse", "HEAD"))
	testutil.Git(t, work, "checkout", "-q", "-b", "production")
	testutil.Must(t, os.WriteFile(filepath.Join(work, "production.txt"), []byte("on production\n"), 0o644))
	testutil.Git(t, work, "add", ".")
	testutil.Git(t, work, "commit", "-qm", "production only")
	testutil.Git(t, work, "push", "-q", "origin", "production")
	prodHead := strings.TrimSpace(testutil.Git(t, work, "rev-parse", "HEAD"))

	pf := filepath.Join(repo, "Puppetfile")
	b, _ := os.ReadFile(pf)
	testutil.Must(t, os.WriteFile(pf, append(b, []byte("\nmod 'cb', :git => 'file://"+remote+"', :branch => :control_branch, :default_branch => '"+defBranch+"'\n")...), 0o644))
	testutil.Git(t, repo, "commit", "-qam", "a module on the control branch")
	testutil.Git(t, repo, "tag", "v1.1.0")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release = "1.1.0"
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	pins := map[string]lockfile.Module{}
	for _, mod := range m.Puppetfile.Modules {
		pins[mod.Name] = mod
	}
	if m.Puppetfile.ControlBranch != "production" || pins["cb"].Commit != prodHead || pins["cb"].Ref != ":control_branch" {
		t.Errorf("control branch %q, cb pinned %+v; want production at %s, ref kept as written", m.Puppetfile.ControlBranch, pins["cb"], prodHead)
	}
	if pins["cb"].ExcludeSpec {
		t.Errorf("exclude_spec defaults to true without the setting")
	}

	cfg := filepath.Join(repo, ConfigName)
	c, _ := os.ReadFile(cfg)
	testutil.Must(t, os.WriteFile(cfg, append(c, []byte("\n[puppetfile]\ncontrol_branch = \""+defBranch+"\"\nexclude_spec = true\n")...), 0o644))
	testutil.Git(t, repo, "commit", "-qam", "settings")
	testutil.Git(t, repo, "tag", "v1.2.0")
	o.Release = "1.2.0"
	if m, err = Bake(ctx, o); err != nil {
		t.Fatal(err)
	}
	for _, mod := range m.Puppetfile.Modules {
		pins[mod.Name] = mod
		if mod.Kind != "local" && !mod.ExcludeSpec {
			t.Errorf("module %s: exclude_spec false with [puppetfile] exclude_spec = true", mod.Name)
		}
	}
	if m.Puppetfile.ControlBranch != defBranch || pins["cb"].Commit != defHead {
		t.Errorf("with control_branch = %q: recorded %q, cb at %s; want %s", defBranch, m.Puppetfile.ControlBranch, pins["cb"].Commit, defHead)
	}
	testutil.Must(t, os.WriteFile(cfg, append(c, []byte("\n[puppetfile]\ncontrol_branch = \"-x..y\"\n")...), 0o644))
	testutil.Git(t, repo, "commit", "-qam", "bad branch")
	testutil.Git(t, repo, "tag", "v1.3.0")
	o.Release = "1.3.0"
	if _, err := Bake(ctx, o); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "control_branch") {
		t.Errorf("a bad control_branch = %v, want ErrConfig naming it", err)
	}
}

// A control repo whose imagebake.toml has no [agents] bakes images that
// carry no agent binaries: the manifest records none, each image has its
// environment and release layers and no agents layer, the SBOM and the
// kept sources list no agent, release.toml names none, and verify
// rebuilds the same bytes.
func TestBakeWithoutAgents(t *testing.T) {
	t.Parallel()
	root, repo := example(t, nil)
	cfg := filepath.Join(repo, ConfigName)
	c, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(c, []byte("\n[agents]\n"))
	j := bytes.Index(c[i+1:], []byte("\n\n"))
	if i < 0 || j < 0 {
		t.Fatalf("no [agents] section in the example's %s", ConfigName)
	}
	testutil.Must(t, os.WriteFile(cfg, append(c[:i+1], c[i+1+j+2:]...), 0o644))
	testutil.Git(t, repo, "commit", "-qam", "no agents")
	testutil.Git(t, repo, "tag", "v1.1.0")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release = "1.1.0"
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "dist", "example-1.1.0")
	for _, im := range m.Images {
		if !im.Agent.None() {
			t.Errorf("%s: agent %+v, want none", im.Name, im.Agent)
		}
		var roles []string
		for _, l := range im.Layers {
			roles = append(roles, l.Role)
		}
		if got := strings.Join(roles, ","); got != "base,environment,release" {
			t.Errorf("%s: layers %s, want base,environment,release", im.Name, got)
		}
	}
	for _, name := range []string{SBOMName, manifest.SourcesFileName} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("mozagent")) || bytes.Contains(b, []byte(`"SPDXRef-Agent`)) || bytes.Contains(b, []byte(`kind = "agent"`)) {
			t.Errorf("%s lists agent binaries the images do not carry", name)
		}
	}
	if _, err := Verify(ctx, filepath.Join(dir, manifest.FileName), Options{Cache: o.Cache, Context: root, Version: "test"}); err != nil {
		t.Errorf("verify of images without agent binaries = %v", err)
	}
	o.Stores = []string{filepath.Join(root, "store")}
	o.Release, o.Out = "1.1.0", filepath.Join(root, "dist2")
	if _, err := Bake(ctx, o); !errors.Is(err, failure.ErrUsage) || !strings.Contains(err.Error(), "no [agents]") {
		t.Errorf("bake --store without [agents] = %v, want a usage error naming it", err)
	}
}
