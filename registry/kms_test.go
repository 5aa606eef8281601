//go:build linux

package registry

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/imagebake/imagebake/internal/cosignkey"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// A release signed with an AWS KMS key (awskms://, through sigstore's
// provider, against local-kms): the real cosign verifies every signature
// and attestation with the key's public half, as imagebake does. A key of
// another curve and a KMS that cannot be reached are refused by Open,
// naming the key, before anything could be pushed.
func TestCosignKMSKey(t *testing.T) {
	cosign := cosignBin(t)
	c := testutil.LocalKMS(t)
	pubPEM := testutil.NewKMSKey(t, c, kmstypes.KeySpecEccNistP256, "alias/imagebake-release")
	dir := t.TempDir()
	pub := filepath.Join(dir, "kms.pub")
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	signer, err := cosignkey.Open(context.Background(), "awskms:///alias/imagebake-release", 0)
	if err != nil {
		t.Fatal(err)
	}
	b := bakeExample(t)
	host := testutil.Registry(t)
	repo := host + "/golden/kms"
	if _, err := Push(ctx, b.dir, repo, b.sig(t), Options{Cosign: signer}); err != nil {
		t.Fatal(err)
	}
	targets := []string{b.m.IndexDigest}
	images := map[string]string{}
	for _, im := range b.m.Images {
		targets = append(targets, im.Digest)
		images[im.Arch] = im.Digest
	}
	for _, d := range targets {
		for _, args := range [][]string{{"verify"}, {"verify-attestation", "--type", "slsaprovenance1"}, {"verify-attestation", "--type", "spdxjson"}} {
			args = append(args, "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", repo+"@"+d)
			cmd := exec.Command(cosign, args...)
			cmd.Env = append(os.Environ(), "HOME="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
	rp, _ := name.NewRepository(repo)
	ecpk, err := cosignkey.LoadPublic(pub)
	if err != nil {
		t.Fatalf("the KMS key's public half does not read as a cosign public key: %v", err)
	}
	if err := VerifyCosign(ctx, rp, b.m.IndexDigest, images, ecpk, Options{}); err != nil {
		t.Errorf("VerifyCosign with the KMS key's public half: %v", err)
	}

	// a key cosign cannot verify offline: refused, named
	testutil.NewKMSKey(t, c, kmstypes.KeySpecEccNistP384, "alias/imagebake-p384")
	if _, err := cosignkey.Open(context.Background(), "awskms:///alias/imagebake-p384", 0); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "awskms:///alias/imagebake-p384") || !strings.Contains(err.Error(), "P-256") {
		t.Errorf("a P-384 KMS key = %v, want exit 2 naming the key and P-256", err)
	}
	// no such alias, and no KMS at all: errors naming the key
	if _, err := cosignkey.Open(context.Background(), "awskms:///alias/nothing-here", 0); err == nil || !strings.Contains(err.Error(), "alias/nothing-here") {
		t.Errorf("a missing KMS key = %v, want an error naming it", err)
	}
	t.Setenv("AWS_ENDPOINT_URL_KMS", "http://"+testutil.RefusedAddr(t))
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	if _, err := cosignkey.Open(context.Background(), "awskms:///alias/imagebake-release", 0); !errors.Is(err, cosignkey.ErrKMS) || !strings.Contains(err.Error(), "reachable") {
		t.Errorf("an unreachable KMS = %v, want ErrKMS naming the key and what to check", err)
	}
	// a KMS that accepts and never answers: given up after the stall
	// timeout, naming the key
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	t.Setenv("AWS_ENDPOINT_URL_KMS", "http://"+ln.Addr().String())
	start := time.Now()
	_, err = cosignkey.Open(context.Background(), "awskms:///alias/imagebake-release", 300*time.Millisecond)
	if !errors.Is(err, cosignkey.ErrKMS) || !strings.Contains(err.Error(), "alias/imagebake-release") || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Errorf("a stalled KMS = %v, want ErrKMS naming the key and the stall", err)
	}
	t.Logf("a stalled KMS, after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a stalled KMS was given up after %v", d)
	}
	// the schemes this build does not sign with: refused, saying which does
	if _, err := cosignkey.Open(context.Background(), "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", 0); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "awskms://") {
		t.Errorf("a gcpkms:// key = %v, want exit 2 saying awskms:// is supported", err)
	}
}
