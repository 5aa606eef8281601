package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/cosignkey"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
)

// A cosign key that cannot sign (a wrong password, a KMS that cannot be
// reached, a KMS this build does not speak) stops push before anything
// reaches the registry, with an error naming the key.
func TestPushRefusesAnUnusableCosignKeyFirst(t *testing.T) {
	signingEnv(t)
	root := t.TempDir()
	ctl := testutil.Example(t, root)
	store := agentstest.Store(t, filepath.Join(root, "store"))
	for _, a := range []string{"amd64", "arm64"} {
		agentstest.Publish(t, store, agents.PublishOptions{Name: "mozagent", Version: "2.4.1", OS: "linux", Arch: a}, "")
	}
	if code := run(context.Background(), []string{"bake", "--repo", ctl, "--release", "1.0.0", "--context", root, "--out", filepath.Join(root, "dist"), "--quiet"}); code != 0 {
		t.Fatalf("bake exit %d", code)
	}
	_, keyFile, err := cosignkey.Generate(t.TempDir(), "cosign", []byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	repo := testutil.Registry(t) + "/golden/example"
	t.Setenv("COSIGN_PASSWORD", "wrong")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	t.Setenv("AWS_ENDPOINT_URL_KMS", fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t)))
	for _, c := range []struct {
		key  string
		want int
	}{
		{keyFile, failure.ExitUsage},
		{"awskms:///alias/release", failure.ExitError},
		{"hashivault://release", failure.ExitUsage},
	} {
		cmd := newRootCommand()
		cmd.SetArgs([]string{"push", filepath.Join(root, "dist", "example-1.0.0"), repo, "--cosign-key", c.key, "--quiet"})
		err := cmd.ExecuteContext(context.Background())
		if failure.Code(err) != c.want || !strings.Contains(fmt.Sprint(err), c.key) {
			t.Errorf("push --cosign-key %s = %v (exit %d), want exit %d naming the key", c.key, err, failure.Code(err), c.want)
		}
	}
	rp, _ := name.NewRepository(repo)
	if tags, err := remote.List(rp); err == nil && len(tags) > 0 {
		t.Errorf("a push refused for its cosign key left tags %v", tags)
	}
}
