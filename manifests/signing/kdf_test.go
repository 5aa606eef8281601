package signing

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
)

// A key written with --kdf interactive opens with its password, in
// imagebake (the library's DecryptKey) and in the minisign tool, records
// the interactive limits, and refuses a wrong password.
func TestInteractiveKDF(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pubPath, keyPath, err := GenerateWith(dir, "k", "s3cret", Interactive)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !minisign.IsEncrypted(b) {
		t.Fatal("the interactive key is not encrypted")
	}
	start := time.Now()
	s, err := LoadSigner(keyPath, "s3cret")
	if err != nil {
		t.Fatalf("opening the interactive key: %v", err)
	}
	t.Logf("opened in %s", time.Since(start))
	if _, err := LoadSigner(keyPath, "wrong"); err == nil {
		t.Error("a wrong password opened the key")
	}
	data := []byte("manifest")
	sig := s.Sign(data, "m.toml", "")
	pb, _ := os.ReadFile(pubPath)
	var pub minisign.PublicKey
	if err := pub.UnmarshalText(pb); err != nil {
		t.Fatal(err)
	}
	if !minisign.Verify(pub, data, sig) {
		t.Error("a signature of the interactive key does not verify with its public key")
	}
	if _, err := exec.LookPath("minisign"); err != nil {
		t.Skip("the minisign tool is not installed")
	}
	msg := filepath.Join(dir, "msg")
	if err := os.WriteFile(msg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("minisign", "-S", "-s", keyPath, "-m", msg)
	cmd.Stdin = strings.NewReader("s3cret\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("minisign -S with the interactive key: %v\n%s", err, out)
	}
	if out, err := exec.Command("minisign", "-V", "-p", pubPath, "-m", msg).CombinedOutput(); err != nil {
		t.Fatalf("minisign -V of its signature: %v\n%s", err, out)
	}
}

func TestKDFNamed(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"sensitive", "interactive"} {
		if k, err := KDFNamed(n); err != nil || k.Name != n {
			t.Errorf("KDFNamed(%q) = %v, %v", n, k, err)
		}
	}
	if _, err := KDFNamed("fast"); err == nil || !strings.Contains(err.Error(), "interactive") {
		t.Errorf("an unknown KDF = %v, want an error naming the choices", err)
	}
}
