//go:build linux

package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// TestCIPipeline runs examples/ci/steps.sh as a CI system would: agent
// binaries published to S3, one bake per arch as separate processes with
// their own caches and work dirs (started together), each pushing its
// per-arch image to a real registry; a release job merges them from the
// registry, publishes to the S3 store and pushes the release. The jobs
// share only the control repository, the registry and the S3 store. A user's deploy file
// then resolves to pullable references, and the pushed release verifies.
func TestCIPipeline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	work := t.TempDir()
	bin := filepath.Join(work, "imagebake")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	steps := filepath.Join(testutil.ModuleRoot(t), "examples", "ci", "steps.sh")
	example := filepath.Join(work, "example")
	ctl := testutil.Example(t, example)
	s3 := testutil.S3(t, "golden")
	reg := testutil.Registry(t)
	repo := reg + "/golden/example"

	env := append(os.Environ(), s3.Environ()...)
	env = append(env, "IMAGEBAKE="+bin, "CONTROL_REPO="+ctl, "RELEASE=1.0.0", "CONTEXT="+example,
		"STORE=s3://golden/releases", "AGENTS=s3://golden/agents", "REGISTRY_REPO="+repo,
		"IMAGEBAKE_TRUSTED_KEYS=", "IMAGEBAKE_INSECURE_REGISTRIES=")
	run := func(dir string, extra []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Env = append(append([]string(nil), env...), extra...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
		}
		return string(out)
	}
	run(work, nil, bin, "key", "generate", "--dir", work, "--name", "release", "--unencrypted")
	key, pub := filepath.Join(work, "release.key"), filepath.Join(work, "release.pub")
	// the runners read the store's catalog to check the number before they push
	env = append(env, "IMAGEBAKE_TRUSTED_KEYS="+pub)

	for _, arch := range []string{"amd64", "arm64"} {
		src := filepath.Join(work, "agent-"+arch)
		testutil.Must(t, os.MkdirAll(filepath.Join(src, "bin"), 0o755))
		testutil.Must(t, os.WriteFile(filepath.Join(src, "bin", "mozagent"), []byte(agentstest.Binary(arch, "2.4.1")), 0o755))
		run(work, nil, bin, "agents", "publish", "--from", src, "--store", "s3://golden/agents", "--name", "mozagent", "--version", "2.4.1", "--arch", arch, "--source-date-epoch", "1735689600")
	}

	// the bake jobs: two runners at once, each with its own cache
	release := filepath.Join(work, "runner-release")
	var wg sync.WaitGroup
	for _, arch := range []string{"amd64", "arm64"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(work, "runner-"+arch)
			testutil.Must(t, os.MkdirAll(dir, 0o755))
			run(dir, []string{"ARCH=" + arch, "IMAGEBAKE_CACHE=" + filepath.Join(dir, "cache")}, steps, "bake")
		}()
	}
	testutil.Must(t, os.MkdirAll(release, 0o755))
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	relEnv := []string{"ARCHES=amd64 arm64", "IMAGEBAKE_KEY=" + key, "IMAGEBAKE_CACHE=" + filepath.Join(release, "cache")}
	run(release, relEnv, steps, "merge")
	m, err := manifest.Read(filepath.Join(release, "dist", "example-1.0.0", manifest.FileName))
	if err != nil || len(m.Images) != 2 || len(m.PartialOf) != 0 {
		t.Fatalf("merged manifest: %v (images %d, partial_of %v)", err, len(m.Images), m.PartialOf)
	}
	out := run(release, relEnv, steps, "publish")
	if !strings.Contains(out, "recorded in s3://golden/releases") {
		t.Errorf("publish step did not record the push in the store:\n%s", out)
	}

	// a user: a deploy file naming the S3 catalog selects pullable images
	user := filepath.Join(work, "user")
	testutil.Must(t, os.MkdirAll(user, 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(user, "deploy.yaml"), []byte("catalog: s3://golden/releases\nimages:\n  web:\n    image: example\n    version: \"1\"\n"), 0o644))
	sel := run(user, nil, bin, "select", "deploy.yaml", "--trusted-key", pub)
	for _, im := range m.Images {
		if want := repo + "@" + im.Digest; !strings.Contains(sel, want) {
			t.Errorf("select does not print %s:\n%s", want, sel)
		}
	}
	var js []struct {
		Images []struct{ Arch, Digest, Pull string }
	}
	if err := json.Unmarshal([]byte(run(user, nil, bin, "select", "deploy.yaml", "--trusted-key", pub, "--json", "--lock", "deploy.lock")), &js); err != nil || len(js) != 1 || len(js[0].Images) != 2 {
		t.Fatalf("select --json: %v %+v", err, js)
	}
	for _, im := range js[0].Images {
		if im.Pull != repo+"@"+im.Digest {
			t.Errorf("select --json: %s pull = %q, want %s@%s", im.Arch, im.Pull, repo, im.Digest)
		}
	}
	if lock, _ := os.ReadFile(filepath.Join(user, "deploy.lock")); strings.Count(string(lock), "pull = \""+repo+"@sha256:") != 2 {
		t.Errorf("deploy.lock does not carry both pull references:\n%s", lock)
	}
	run(user, nil, bin, "check", "deploy.yaml", "--trusted-key", pub)
	v := run(user, nil, bin, "verify", repo+":1.0.0", "--trusted-key", pub)
	if !strings.Contains(v, "match the manifest") || !strings.Contains(v, m.IndexDigest) {
		t.Errorf("verify of the pushed release said:\n%s", v)
	}
	// the second run of the whole release job writes nothing new
	again := run(release, relEnv, steps, "publish")
	if !strings.Contains(again, "already") || strings.Contains(again, "recorded in") {
		t.Errorf("a second publish step was not a no-op:\n%s", again)
	}

	// a security release through the same steps: a control repo fix,
	// tagged v1.0.1, ADVISORIES given to the runners; each runner checks
	// 1.0.1 against 1.0.0 in the store's catalog before it pushes
	change := func(tag, text string) {
		testutil.Must(t, os.WriteFile(filepath.Join(ctl, "manifests", "fix.pp"), []byte(text), 0o644))
		testutil.Git(t, ctl, "add", "-A")
		testutil.Git(t, ctl, "commit", "-qm", "fix "+tag)
		testutil.Git(t, ctl, "tag", tag)
	}
	change("v1.0.1", "# CVE-2026-1111: a fix\n")
	secEnv := []string{"RELEASE=1.0.1", "ADVISORIES=CVE-2026-1111"}
	for _, arch := range []string{"amd64", "arm64"} {
		dir := filepath.Join(work, "runner-"+arch)
		out := run(dir, append([]string{"ARCH=" + arch, "IMAGEBAKE_CACHE=" + filepath.Join(dir, "cache")}, secEnv...), steps, "bake")
		if !strings.Contains(out, "checking 1.0.1 against example-1.0.0") {
			t.Errorf("the %s runner did not check 1.0.1 against the catalog:\n%s", arch, out)
		}
	}
	run(release, append(relEnv, secEnv...), steps, "merge")
	run(release, append(relEnv, secEnv...), steps, "publish")
	sel = run(user, nil, bin, "catalog", "list", "--store", "s3://golden/releases", "--trusted-key", pub)
	if !strings.Contains(sel, "1.0.1") || !strings.Contains(sel, "true") {
		t.Errorf("the security release is not in the catalog as one:\n%s", sel)
	}

	// one arch's image verifies against its release's signed manifest
	v = run(user, nil, bin, "verify", repo+":1.0.1-arm64", "--trusted-key", pub)
	if !strings.Contains(v, "the arm64 image of example-1.0.1, signed") {
		t.Errorf("verify of one arch's tag said:\n%s", v)
	}
	// a revoked release matches its manifest, and verify --catalog says
	// it must not be used (exit 4)
	run(release, relEnv, bin, "catalog", "revoke", "example", "1.0.1", "--store", "s3://golden/releases", "--reason", "a bad fix")
	vc := exec.CommandContext(ctx, bin, "verify", repo+":1.0.1", "--trusted-key", pub, "--catalog", "s3://golden/releases")
	vc.Env = env
	vout, err := vc.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 || !strings.Contains(string(vout), "revoked") || !strings.Contains(string(vout), "a bad fix") {
		t.Errorf("verify --catalog of a revoked release: %v\n%s; want exit 4 naming the revocation", err, vout)
	}
	// the end of life of the only major warns the release engineer
	eol := run(release, relEnv, bin, "catalog", "eol", "example", "1", "--store", "s3://golden/releases", "--date", "2027-12-31")
	if !strings.Contains(eol, "major 1 of example reaches end of life on 2027-12-31") || !strings.Contains(eol, "no major of example above 1") {
		t.Errorf("catalog eol of the only major said:\n%s", eol)
	}

	// the same without ADVISORIES: every runner stops before it pushes
	change("v1.0.2", "# another fix\n")
	dir := filepath.Join(work, "runner-amd64")
	cmd := exec.CommandContext(ctx, steps, "bake")
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), env...), "ARCH=amd64", "RELEASE=1.0.2", "IMAGEBAKE_CACHE="+filepath.Join(dir, "cache"))
	refused, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 || !strings.Contains(string(refused), "no advisory declares it") {
		t.Errorf("a SECURITY number without advisories through steps.sh: %v\n%s; want exit 4 before any push", err, refused)
	}
	if _, err := crane.Digest(repo+":1.0.2-amd64", crane.Insecure); err == nil {
		t.Error("the refused runner pushed 1.0.2-amd64")
	} else if _, err := crane.Digest(repo+":1.0.1-amd64", crane.Insecure); err != nil {
		t.Errorf("the registry lookup itself fails: %v", err)
	}
}
