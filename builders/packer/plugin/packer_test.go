package plugin

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/zclconf/go-cty/cty"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

var ctx = context.Background()

// release bakes the embedded example for amd64 and arm64 and returns the
// manifest path, the context dir and the cache.
func release(t *testing.T) (string, string, string) {
	t.Helper()
	root := t.TempDir()
	repo := testutil.Example(t, root)
	store := agentstest.Store(t, filepath.Join(root, "store"))
	for _, arch := range []string{"amd64", "arm64"} {
		agentstest.Publish(t, store, agents.PublishOptions{Name: "mozagent", Version: "2.4.1", OS: "linux", Arch: arch}, "")
	}
	cache := filepath.Join(root, "cache")
	if _, err := bake.Bake(ctx, bake.Options{Repo: repo, Release: "1.0.0", Out: filepath.Join(root, "dist"), Cache: cache, Context: root, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "dist", "example-1.0.0", manifest.FileName), root, cache
}

func TestProvisionerThroughMockCommunicator(t *testing.T) {
	m, dir, cache := release(t)
	p := &Provisioner{Payload: func(ctx context.Context, m, arch, dst, cache, dir string) error {
		return bake.Payload(ctx, m, arch, dst, bake.Options{Cache: cache, Context: dir})
	}}
	if err := p.Prepare(map[string]interface{}{"manifest": m, "arch": "arm64", "context": dir, "cache": cache}); err != nil {
		t.Fatal(err)
	}
	comm := new(packersdk.MockCommunicator)
	ui := packersdk.TestUi(t)
	if err := p.Provision(ctx, ui, comm, nil); err != nil {
		t.Fatal(err)
	}
	if comm.UploadPath != "/tmp/imagebake-payload.tar" {
		t.Errorf("uploaded to %q", comm.UploadPath)
	}
	if !comm.StartCalled || comm.StartCmd.Command != "tar -xf /tmp/imagebake-payload.tar -C / && rm -f /tmp/imagebake-payload.tar" {
		t.Errorf("remote command = %+v", comm.StartCmd)
	}
	entries := map[string]string{}
	tr := tar.NewReader(strings.NewReader(comm.UploadData))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		entries[h.Name] = string(b) + h.Linkname
	}
	for name, want := range map[string]string{
		"opt/mozagent/tools/current":                                                "2.4.1-arm64",
		"opt/mozagent/tools/2.4.1-arm64/bin/mozagent":                               "mozagent 2.4.1",
		"etc/imagebake/release.toml":                                                `arch = "arm64"`,
		"etc/puppetlabs/code/environments/production/modules/ntp/manifests/init.pp": "class ntp",
	} {
		if !strings.Contains(entries[name], want) {
			t.Errorf("payload %s = %q, want it to contain %q", name, entries[name], want)
		}
	}
	// a failing remote unpack fails the provisioner with imagebake's message
	comm = &packersdk.MockCommunicator{StartExitStatus: 2}
	if err := p.Provision(ctx, ui, comm, nil); err == nil || !strings.Contains(err.Error(), "exited with 2") {
		t.Errorf("Provision with a failing tar = %v", err)
	}
}

func TestPrepareStopsEarly(t *testing.T) {
	m, dir, cache := release(t)
	pub, _, err := signing.Generate(t.TempDir(), "k", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cfg  map[string]interface{}
		want string
	}{
		{map[string]interface{}{}, "manifest is required"},
		{map[string]interface{}{"manifest": filepath.Join(dir, "missing.toml")}, "missing.toml"},
		{map[string]interface{}{"manifest": m, "arch": "s390x"}, "has no s390x image (it has [amd64 arm64])"},
		{map[string]interface{}{"manifest": m, "trusted_keys": []string{pub}}, "is not signed"},
	}
	for _, tt := range tests {
		tt.cfg["cache"], tt.cfg["context"] = cache, dir
		err := new(Provisioner).Prepare(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Prepare(%v) = %v, want an error containing %q", tt.cfg, err, tt.want)
		}
	}
	if _, _, err := new(ChrootBuilder).Prepare(map[string]interface{}{"rootfs": "x"}); err == nil || !strings.Contains(err.Error(), "rootfs_sha256") {
		t.Errorf("chroot Prepare without a pin = %v", err)
	}
}

// TestPackerAcceptance runs a real packer 1.9.4 (built from the module
// cache by make test, path in IMAGEBAKE_PACKER) with the chroot builder, the
// imagebake provisioner and a shell provisioner, twice, and checks the
// tarball's content and that both builds give the same bytes.
func TestPackerAcceptance(t *testing.T) {
	pk := os.Getenv("IMAGEBAKE_PACKER")
	if pk == "" {
		// go test ./... alone: said loudly; make test sets it, and sets
		// IMAGEBAKE_NO_SKIP so a skip there is a failure
		if os.Getenv("IMAGEBAKE_NO_SKIP") != "" {
			t.Fatal("IMAGEBAKE_PACKER is not set, and IMAGEBAKE_NO_SKIP says the real-Packer test must run")
		}
		t.Skip("SKIPPED, THE ONLY REAL-PACKER TEST: IMAGEBAKE_PACKER is not set; `make test` builds packer 1.9.4 and sets it")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the real-Packer test runs the chroot builder, which needs root: run make test as root (CI does)")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox (Debian busybox-static) is needed for a base with /bin/sh and tar; make test installs it")
	}
	m, dir, cache := release(t)
	w := t.TempDir()
	// imagebake and its plugin binary, side by side
	bin := filepath.Join(w, "imagebake")
	// imagebake from the main module (three levels up), the plugin from this one
	for c, dir := range map[string]string{"imagebake": "../../..", "packer-plugin-imagebake": "."} {
		if out, err := exec.Command("go", "build", "-C", dir, "-o", filepath.Join(w, c), "./cmd/"+c).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", c, err, out)
		}
	}
	plugins := filepath.Join(w, "plugins")
	if out, err := exec.Command(bin, "packer", "install-plugin", "--dir", plugins).CombinedOutput(); err != nil {
		t.Fatalf("install-plugin: %v\n%s", err, out)
	}
	// a small base: busybox as /bin/sh and tar
	base := filepath.Join(w, "base")
	for _, d := range []string{"bin", "etc", "tmp"} {
		testutil.Must(t, os.MkdirAll(filepath.Join(base, d), 0o755))
	}
	testutil.Must(t, os.Chmod(filepath.Join(base, "tmp"), 0o1777))
	b, _ := os.ReadFile(busybox)
	testutil.Must(t, os.WriteFile(filepath.Join(base, "bin", "busybox"), b, 0o755))
	for _, c := range []string{"sh", "tar", "rm", "cat", "echo"} {
		testutil.Must(t, os.Symlink("busybox", filepath.Join(base, "bin", c)))
	}
	rootfs := filepath.Join(w, "base.tar.gz")
	if out, err := exec.Command("tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "-C", base, "-czf", rootfs, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(mustRead(t, rootfs)))
	arch := runtime.GOARCH
	var digests []string
	for i := range 2 {
		outFile := filepath.Join(w, fmt.Sprintf("out%d", i), "example.rootfs.tar.gz")
		tmpl := filepath.Join(w, "build.pkr.hcl")
		testutil.Must(t, os.WriteFile(tmpl, []byte(fmt.Sprintf(`
source "imagebake-chroot" "example" {
  rootfs            = %q
  rootfs_sha256     = %q
  output            = %q
  source_date_epoch = "1735732800"
}
build {
  sources = ["source.imagebake-chroot.example"]
  provisioner "imagebake" {
    manifest = %q
    arch     = %q
    context  = %q
    cache    = %q
  }
  provisioner "shell" {
    inline = ["echo provisioned > /etc/motd", "test -L /opt/mozagent/tools/current"]
  }
}
`, rootfs, sum, outFile, m, arch, dir, cache)), 0o644))
		cmd := exec.Command(pk, "build", "-color=false", tmpl)
		cmd.Dir = w
		cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "PACKER_PLUGIN_PATH="+plugins, "PACKER_CONFIG_DIR="+filepath.Join(w, "packer-config"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("packer build: %v\n%s", err, out)
		}
		data := mustRead(t, outFile)
		digests = append(digests, fmt.Sprintf("%x", sha256.Sum256(data)))
		if i == 0 {
			files := testutil.Untar(t, data)
			for name, want := range map[string]string{
				"etc/motd":                   "provisioned\n",
				"opt/mozagent/tools/current": "-> 2.4.1-" + arch,
				"etc/imagebake/release.toml": `arch = "` + arch + `"`,
				"bin/sh":                     "-> busybox",
				"etc/puppetlabs/code/environments/production/modules/profile/manifests/extra.pp": "class profile::extra",
			} {
				if !strings.Contains(files[name], want) {
					t.Errorf("rootfs %s = %q, want it to contain %q", name, files[name], want)
				}
			}
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("two packer builds gave different tarballs: %v", digests)
	}

	// the whole flow through the CLI: bake --builder packer --template chroot
	// on a release whose base is the busybox rootfs
	repo := filepath.Join(dir, "control")
	cfg := mustRead(t, filepath.Join(repo, "imagebake.toml"))
	// imagebake.toml names files inside --context only
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "base", "busybox.tar.gz"), mustRead(t, rootfs), 0o644))
	lines := strings.Split(string(cfg), "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "rootfs = "):
			lines[i] = fmt.Sprintf("rootfs = %q", "base/busybox.tar.gz")
		case strings.HasPrefix(l, "sha256 = "):
			lines[i] = fmt.Sprintf("sha256 = %q", sum)
		}
	}
	testutil.Must(t, os.WriteFile(filepath.Join(repo, "imagebake.toml"), []byte(strings.Join(lines, "\n")), 0o644))
	for _, args := range [][]string{{"commit", "-qam", "busybox base"}, {"tag", "v1.1.0"}} {
		testutil.Git(t, repo, args...)
	}
	dist := filepath.Join(w, "dist")
	cmd := exec.Command(bin, "bake", "--repo", repo, "--release", "1.1.0", "--builder", "packer", "--template", "chroot",
		"--packer", pk, "--context", dir, "--cache", cache, "--out", dist)
	cmd.Env = append(os.Environ(), "PACKER_CONFIG_DIR="+filepath.Join(w, "packer-config"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bake --builder packer: %v\n%s", err, out)
	}
	pm, err := manifest.Read(filepath.Join(dist, "example-1.1.0", manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if pm.Builder != "packer" || len(pm.Artifacts) != 2 {
		t.Fatalf("packer release manifest: builder %s, %d artifacts, want packer and 2 (one per arch)", pm.Builder, len(pm.Artifacts))
	}
	for _, a := range pm.Artifacts {
		if a.BuilderID != BuilderID || len(a.Files) != 1 {
			t.Errorf("artifact %+v", a)
			continue
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(mustRead(t, a.Files[0].Path))); got != a.Files[0].SHA256 || "sha256:"+got != a.ID {
			t.Errorf("artifact %s records sha256 %s, the file has %s", a.Files[0].Path, a.Files[0].SHA256, got)
		}
	}

	// one arch again into the same out keeps the other; a newer agent
	// published since is refused (a release number names one content)
	rebake := func(force bool) ([]byte, error) {
		args := []string{"bake", "--repo", repo, "--release", "1.1.0", "--builder", "packer", "--template", "chroot",
			"--packer", pk, "--context", dir, "--cache", cache, "--out", dist, "--arch", "amd64"}
		if force {
			args = append(args, "--force")
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "PACKER_CONFIG_DIR="+filepath.Join(w, "packer-config"))
		return cmd.CombinedOutput()
	}
	if out, err := rebake(false); err != nil {
		t.Fatalf("bake --arch amd64 again: %v\n%s", err, out)
	}
	if pm, err = manifest.Read(filepath.Join(dist, "example-1.1.0", manifest.FileName)); err != nil || len(pm.Images) != 2 || len(pm.Artifacts) != 2 {
		t.Fatalf("after a per-arch re-bake: %v; want 2 images and 2 artifacts", err)
	}
	store := agentstest.Store(t, filepath.Join(dir, "store"))
	for _, a := range []string{"amd64", "arm64"} {
		agentstest.Publish(t, store, agents.PublishOptions{Name: "mozagent", Version: "2.4.2", OS: "linux", Arch: a}, "")
	}
	out, err := rebake(false)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 || !strings.Contains(string(out), "mozagent 2.4.1") {
		t.Errorf("a packer re-bake with a newer agent = %v, want exit 4 naming the agent change\n%s", err, out)
	}
	if pm, err = manifest.Read(filepath.Join(dist, "example-1.1.0", manifest.FileName)); err != nil || pm.Images[0].Agent.Version != "2.4.1" {
		t.Errorf("a refused packer re-bake changed the manifest: %v", err)
	}
}

func TestDatasource(t *testing.T) {
	m, _, _ := release(t)
	d := new(Datasource)
	if err := d.Configure(map[string]interface{}{"manifest": m}); err != nil {
		t.Fatal(err)
	}
	v, err := d.Execute()
	if err != nil {
		t.Fatal(err)
	}
	if got := v.GetAttr("image_names").Index(cty.StringVal("arm64")).AsString(); got != "example-1.0.0-arm64" {
		t.Errorf("image_names[arm64] = %s", got)
	}
	if got := v.GetAttr("agent_versions").Index(cty.StringVal("amd64")).AsString(); got != "2.4.1" {
		t.Errorf("agent_versions[amd64] = %s", got)
	}
	if v.GetAttr("release").AsString() != "1.0.0" || len(v.GetAttr("commit").AsString()) != 40 {
		t.Errorf("release/commit = %v", v)
	}
	empty := t.TempDir()
	if err := new(Datasource).Configure(map[string]interface{}{"store": empty, "family": "example", "version": "1.0.0"}); err == nil || !strings.Contains(err.Error(), "no catalog in store "+empty) {
		t.Errorf("a store without a catalog = %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
