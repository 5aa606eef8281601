package registry

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/imagebake/imagebake/internal/cosignkey"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// localKMS starts local-kms (the AWS KMS API) on a loopback port and
// points the AWS settings of this test at it.
func localKMS(t *testing.T) *kms.Client {
	t.Helper()
	bin := os.Getenv("IMAGEBAKE_LOCAL_KMS")
	if bin == "" {
		bin = filepath.Join(testutil.ModuleRoot(t), ".cache", "local-kms", "local-kms")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("local-kms is needed: make test builds it (scripts/ensure-local-kms)")
	}
	port := testutil.FreePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "KMS_DATA_PATH="+t.TempDir(),
		"KMS_REGION=eu-west-1", "KMS_ACCOUNT_ID=111122223333")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("local-kms did not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL_KMS", "http://"+addr)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	return kms.New(kms.Options{Region: "eu-west-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: aws.AnonymousCredentials{}})
}

// newKMSKey creates a signing key of spec under alias and returns the PEM
// of its public key.
func newKMSKey(t *testing.T, c *kms.Client, spec kmstypes.KeySpec, alias string) []byte {
	t.Helper()
	k, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: spec, KeyUsage: kmstypes.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: k.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	p, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: k.KeyMetadata.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p.PublicKey})
}

// A release signed with an AWS KMS key (awskms://, through sigstore's
// provider, against local-kms): the real cosign verifies every signature
// and attestation with the key's public half, as imagebake does. A key of
// another curve and a KMS that cannot be reached are refused by Open,
// naming the key, before anything could be pushed.
func TestCosignKMSKey(t *testing.T) {
	cosign := cosignBin(t)
	c := localKMS(t)
	pubPEM := newKMSKey(t, c, kmstypes.KeySpecEccNistP256, "alias/imagebake-release")
	dir := t.TempDir()
	pub := filepath.Join(dir, "kms.pub")
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	signer, err := cosignkey.Open(context.Background(), "awskms:///alias/imagebake-release")
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
	newKMSKey(t, c, kmstypes.KeySpecEccNistP384, "alias/imagebake-p384")
	if _, err := cosignkey.Open(context.Background(), "awskms:///alias/imagebake-p384"); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "awskms:///alias/imagebake-p384") || !strings.Contains(err.Error(), "P-256") {
		t.Errorf("a P-384 KMS key = %v, want exit 2 naming the key and P-256", err)
	}
	// no such alias, and no KMS at all: errors naming the key
	if _, err := cosignkey.Open(context.Background(), "awskms:///alias/nothing-here"); err == nil || !strings.Contains(err.Error(), "alias/nothing-here") {
		t.Errorf("a missing KMS key = %v, want an error naming it", err)
	}
	t.Setenv("AWS_ENDPOINT_URL_KMS", fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t)))
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	if _, err := cosignkey.Open(context.Background(), "awskms:///alias/imagebake-release"); !errors.Is(err, cosignkey.ErrKMS) || !strings.Contains(err.Error(), "reachable") {
		t.Errorf("an unreachable KMS = %v, want ErrKMS naming the key and what to check", err)
	}
	// the schemes this build does not sign with: refused, saying which does
	if _, err := cosignkey.Open(context.Background(), "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "awskms://") {
		t.Errorf("a gcpkms:// key = %v, want exit 2 saying awskms:// is supported", err)
	}
}
