//go:build linux

package testutil

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// LocalKMS starts local-kms (the AWS KMS API; make test builds it into
// .cache/local-kms, or IMAGEBAKE_LOCAL_KMS names it) on a loopback port,
// points the AWS settings of the test (and of the commands it runs) at
// it, and returns a client of it.
func LocalKMS(t testing.TB) *kms.Client {
	t.Helper()
	bin := os.Getenv("IMAGEBAKE_LOCAL_KMS")
	if bin == "" {
		bin = filepath.Join(ModuleRoot(t), ".cache", "local-kms", "local-kms")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("local-kms is needed: make test builds it (scripts/ensure-local-kms)")
	}
	var out bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "PORT=0", "KMS_DATA_PATH="+t.TempDir(),
		"KMS_REGION=eu-west-1", "KMS_ACCOUNT_ID=111122223333")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := ListeningAddr(t, cmd, &out)
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL_KMS", "http://"+addr)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	return kms.New(kms.Options{Region: "eu-west-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: aws.AnonymousCredentials{}})
}

// NewKMSKey creates a signing key of spec under alias in c and returns
// the PEM of its public half.
func NewKMSKey(t testing.TB, c *kms.Client, spec kmstypes.KeySpec, alias string) []byte {
	t.Helper()
	ctx := context.Background()
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
