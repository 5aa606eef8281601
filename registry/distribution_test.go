//go:build linux

package registry

import (
	"crypto/sha256"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

// Against the real Debian docker-registry (distribution 2.8, no
// referrers API): push, a second push that writes nothing, verify, and
// skopeo (a peer tool) reading and copying what was pushed with the
// digests kept.
func TestPushToDistribution(t *testing.T) {
	t.Parallel()
	b := bakeExample(t)
	repo := testutil.Registry(t) + "/golden/example"
	if _, err := Push(ctx, b.dir, repo, b.sig(t), Options{}); err != nil {
		t.Fatal(err)
	}
	again, err := Push(ctx, b.dir, repo, b.sig(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range again {
		if p.New {
			t.Errorf("a second push wrote %+v", p)
		}
	}
	if _, err := Verify(ctx, repo+":1.0.0", b.keys, Options{}); err != nil {
		t.Fatal(err)
	}
	skopeo := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := skopeo("inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+repo+":1.0.0-arm64"); strings.TrimSpace(out) != b.m.Images[1].Digest {
		t.Errorf("skopeo inspect 1.0.0-arm64 = %s, want %s", out, b.m.Images[1].Digest)
	}
	fallback := "docker://" + repo + ":sha256-" + strings.TrimPrefix(b.m.IndexDigest, "sha256:")
	if out := skopeo("inspect", "--tls-verify=false", "--raw", fallback); !strings.Contains(out, SBOMArtifact) || !strings.Contains(out, ManifestArtifact) {
		t.Errorf("referrers tag = %s", out)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false", "docker://"+repo+":1.0.0", "oci:"+dst+":1.0.0")
	raw, err := exec.Command("skopeo", "inspect", "--raw", "oci:"+dst+":1.0.0").Output()
	if d := fmt.Sprintf("sha256:%x", sha256.Sum256(raw)); err != nil || d != b.m.IndexDigest {
		t.Errorf("skopeo copy --preserve-digests of the pushed index: %s, %v; want %s", d, err, b.m.IndexDigest)
	}
}
