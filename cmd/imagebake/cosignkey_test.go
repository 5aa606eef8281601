//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
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
	root := bakedExample(t)
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
	t.Setenv("AWS_ENDPOINT_URL_KMS", "http://"+testutil.RefusedAddr(t))
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

// The whole path through the commands with an AWS KMS key (local-kms):
// push signs with awskms:///alias/..., and verify checks the release's
// signatures and attestations with the same URI (the key's public half
// read from the KMS) or with the public key file; another key's public
// half is refused (exit 4).
func TestPushAndVerifyWithAKMSKey(t *testing.T) {
	root := bakedExample(t)
	c := testutil.LocalKMS(t)
	pubPEM := testutil.NewKMSKey(t, c, kmstypes.KeySpecEccNistP256, "alias/golden")
	pub := filepath.Join(root, "kms.pub")
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	otherPub, _, err := cosignkey.Generate(t.TempDir(), "other", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	repo := testutil.Registry(t) + "/golden/example"
	cli := func(args ...string) error {
		cmd := newRootCommand()
		cmd.SetArgs(append(args, "--quiet"))
		cmd.SetOut(io.Discard)
		return cmd.ExecuteContext(context.Background())
	}
	if err := cli("push", filepath.Join(root, "dist", "example-1.0.0"), repo, "--cosign-key", "awskms:///alias/golden"); err != nil {
		t.Fatalf("push with a KMS key: %v", err)
	}
	for _, key := range []string{"awskms:///alias/golden", pub} {
		if err := cli("verify", repo+":1.0.0", "--cosign-key", key); err != nil {
			t.Errorf("verify --cosign-key %s: %v", key, err)
		}
	}
	if err := cli("verify", repo+":1.0.0", "--cosign-key", otherPub); failure.Code(err) != failure.ExitVerify {
		t.Errorf("verify with another key's public half = %v, want exit 4", err)
	}
}

// bakedExample bakes the embedded example's 1.0.0 into ROOT/dist (its
// agent binaries in ROOT/store, signing keys in the environment) and
// returns ROOT.
func bakedExample(t *testing.T) string {
	t.Helper()
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
	return root
}
