//go:build linux

package registry

import (
	"crypto/ecdsa"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/internal/cosignkey"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// cosignBin is the real cosign make test builds (IMAGEBAKE_COSIGN).
func cosignBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("IMAGEBAKE_COSIGN")
	if p == "" {
		p = filepath.Join(testutil.ModuleRoot(t), ".cache", "cosign", "cosign")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal("cosign v3.0.4 is needed: make test builds it (scripts/ensure-cosign)")
	}
	return p
}

// A release pushed with a cosign key, on the Debian docker-registry: the
// real cosign v3.0.4 verifies the index's and every image's signature and
// both attestations offline with the public key; another key is refused
// by cosign and by VerifyCosign; a second push adds nothing; an
// attestation about another digest does not count.
func TestCosignSignaturesAndAttestations(t *testing.T) {
	t.Parallel()
	cosign := cosignBin(t)
	b := bakeExample(t)
	host := testutil.Registry(t)
	repo := host + "/golden/example"
	dir := t.TempDir()
	pub, keyPath, key := cosignTestKey(t, dir)
	if _, err := cosignkey.Load(keyPath, []byte("wrong")); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), keyPath) {
		t.Errorf("a wrong password = %v, want exit 2 naming the key", err)
	}
	pushed, err := Push(ctx, b.dir, repo, b.sig(t), Options{Cosign: key})
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(cosign, args...)
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=pw", "HOME="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	targets := []string{b.m.IndexDigest}
	for _, im := range b.m.Images {
		targets = append(targets, im.Digest)
	}
	for _, d := range targets {
		if out, err := run("verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", repo+"@"+d); err != nil {
			t.Errorf("cosign verify %s: %v\n%s", d, err, out)
		}
	}
	for _, d := range targets { // the index and each arch's image
		for _, ty := range []string{"slsaprovenance1", "spdxjson"} {
			if out, err := run("verify-attestation", "--type", ty, "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", repo+"@"+d); err != nil {
				t.Errorf("cosign verify-attestation --type %s of %s: %v\n%s", ty, d, err, out)
			}
		}
	}
	rp, _ := name.NewRepository(repo)
	images := map[string]string{}
	for _, im := range b.m.Images {
		images[im.Arch] = im.Digest
	}
	pk, _ := cosignkey.LoadPublic(pub)
	if err := VerifyCosign(ctx, rp, b.m.IndexDigest, images, pk, Options{}); err != nil {
		t.Errorf("VerifyCosign: %v", err)
	}

	// another key: refused by both, every missing piece named
	otherPub, _, _ := cosignkey.Generate(t.TempDir(), "other", []byte("x"))
	if out, err := run("verify", "--key", otherPub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", repo+"@"+b.m.IndexDigest); err == nil {
		t.Errorf("cosign verify with another key passed:\n%s", out)
	}
	opk, _ := cosignkey.LoadPublic(otherPub)
	err = VerifyCosign(ctx, rp, b.m.IndexDigest, images, opk, Options{})
	if want := 3 * len(targets); failure.Code(err) != failure.ExitVerify || strings.Count(err.Error(), "no cosign") != want {
		t.Errorf("VerifyCosign with another key = %v, want exit 4 naming %d: a signature and 2 attestations of the index and of each image", err, want)
	}

	// a second push signs nothing again
	again, err := Push(ctx, b.dir, repo, b.sig(t), Options{Cosign: key})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range again {
		if p.New {
			t.Errorf("a second push wrote %s again", p.Name)
		}
	}
	if len(again) != len(pushed) {
		t.Errorf("the second push listed %d, the first %d", len(again), len(pushed))
	}

	// an attestation whose statement is about another digest (an image's)
	// attached to the index of a release pushed unsigned does not count
	bare := host + "/golden/bare"
	if _, err := Push(ctx, b.dir, bare, b.sig(t), Options{}); err != nil {
		t.Fatal(err)
	}
	st, _ := cosignkey.Statement(strings.TrimPrefix(b.m.Images[0].Digest, "sha256:"), ProvenancePredicate, []byte(`{"buildDefinition":{}}`))
	bundle, _ := cosignkey.Sign(key, st)
	brp, _ := name.NewRepository(bare)
	idxRaw, _ := os.ReadFile(filepath.Join(b.dir, "blobs", "sha256", strings.TrimPrefix(b.m.IndexDigest, "sha256:")))
	subject := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: mustHash(b.m.IndexDigest), Size: int64(len(idxRaw))}
	if _, err := putBundle(brp, subject, ProvenancePredicate, "2025-01-01T00:00:00Z", bundle, Options{}.Remote(ctx)); err != nil {
		t.Fatal(err)
	}
	if err := VerifyCosign(ctx, brp, b.m.IndexDigest, images, pk, Options{}); err == nil || !strings.Contains(err.Error(), "no cosign attestation https://slsa.dev/provenance/v1") {
		t.Errorf("an attestation about another digest = %v, want it not counted", err)
	}
	if out, err := run("verify-attestation", "--type", "slsaprovenance1", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", bare+"@"+b.m.IndexDigest); err == nil {
		t.Errorf("cosign accepted an attestation about another digest:\n%s", out)
	}
}

// CI runners push their arch's image signed: each per-arch push signs and
// attests its image at once (cosign accepts it before any merge), and the
// merged release's push signs the index and keeps the images' bundles.
func TestCosignPerArchPushes(t *testing.T) {
	t.Parallel()
	cosign := cosignBin(t)
	b := bakeExample(t)
	repo := testutil.Registry(t) + "/golden/parts"
	dir := t.TempDir()
	pub, _, key := cosignTestKey(t, dir)
	cosignOK := func(ref string, args ...string) {
		t.Helper()
		cmd := exec.Command(cosign, append(args, "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", ref)...)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cosign %s %s: %v\n%s", strings.Join(args, " "), ref, err, out)
		}
	}
	var refs, dirs []string
	for _, arch := range []string{"amd64", "arm64"} {
		part := b.bakePart(t, arch)
		pushed, err := Push(ctx, part, repo, nil, Options{Cosign: key})
		if err != nil {
			t.Fatal(err)
		}
		signed := 0
		for _, p := range pushed {
			if strings.Contains(p.Name, "sigstore") || strings.Contains(p.Name, "slsa") || strings.Contains(p.Name, "spdx") {
				signed++
			}
		}
		if signed != 3 {
			t.Errorf("the %s push attached %d cosign bundles, want its image's signature and 2 attestations: %+v", arch, signed, pushed)
		}
		var d string
		for _, im := range b.m.Images {
			if im.Arch == arch {
				d = im.Digest
			}
		}
		cosignOK(repo+"@"+d, "verify")
		cosignOK(repo+"@"+d, "verify-attestation", "--type", "slsaprovenance1")
		cosignOK(repo+"@"+d, "verify-attestation", "--type", "spdxjson")
		refs = append(refs, repo+":1.0.0-"+arch)
		pd := t.TempDir()
		if _, err := PullPartial(ctx, repo+":1.0.0-"+arch, pd, Options{}); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, pd)
	}
	out := filepath.Join(b.root, "merged-signed")
	m, err := bake.MergeNamed(ctx, bake.Options{Out: out}, dirs, refs)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := Push(ctx, filepath.Join(out, "example-1.0.0"), repo, b.sig(t), Options{Cosign: key})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pushed {
		if p.New && strings.Contains(p.Name, "example-1.0.0-") {
			t.Errorf("the merged push signed an image again: %s", p.Name)
		}
	}
	cosignOK(repo+"@"+m.IndexDigest, "verify")
	images := map[string]string{}
	for _, im := range m.Images {
		images[im.Arch] = im.Digest
	}
	rp, _ := name.NewRepository(repo)
	pk, _ := cosignkey.LoadPublic(pub)
	if err := VerifyCosign(ctx, rp, m.IndexDigest, images, pk, Options{}); err != nil {
		t.Errorf("VerifyCosign of the merged release: %v", err)
	}
}

// cosignTestKey writes a cosign key pair (password "pw") into dir and
// returns the public key's path, the private key's path and the key.
func cosignTestKey(t *testing.T, dir string) (string, string, *ecdsa.PrivateKey) {
	t.Helper()
	pub, keyPath, err := cosignkey.Generate(dir, "cosign", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := cosignkey.Load(keyPath, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	return pub, keyPath, key
}

// Bundles that carry the key's hint but are about other digests (an
// earlier release's, copied onto this release's digests, which are known
// before the push) or whose signature is not the key's do not make a push
// skip its signing: it signs and attests every digest anew, and cosign
// v3.0.4 then verifies them.
func TestCosignPushIgnoresCopiedBundles(t *testing.T) {
	t.Parallel()
	cosign := cosignBin(t)
	b := bakeExample(t)
	host := testutil.Registry(t)
	repo := host + "/golden/copied"
	dir := t.TempDir()
	pub, _, key := cosignTestKey(t, dir)
	if _, err := Push(ctx, b.dir, repo, b.sig(t), Options{}); err != nil {
		t.Fatal(err)
	}
	rp, _ := name.NewRepository(repo)
	opts := Options{}.Remote(ctx)
	other := strings.Repeat("ab", 32) // "2.0.0"'s digest
	targets := []v1.Descriptor{}
	idxRaw, _ := os.ReadFile(filepath.Join(b.dir, "blobs", "sha256", strings.TrimPrefix(b.m.IndexDigest, "sha256:")))
	targets = append(targets, v1.Descriptor{MediaType: types.OCIImageIndex, Digest: mustHash(b.m.IndexDigest), Size: int64(len(idxRaw))})
	for _, im := range b.m.Images {
		raw, _ := os.ReadFile(filepath.Join(b.dir, "blobs", "sha256", strings.TrimPrefix(im.Digest, "sha256:")))
		targets = append(targets, v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: mustHash(im.Digest), Size: int64(len(raw))})
	}
	for i, d := range targets {
		for _, p := range []string{cosignkey.SignPredicate, ProvenancePredicate, SPDXPredicate} {
			st, _ := cosignkey.Statement(other, p, []byte(`{}`))
			bundle, _ := cosignkey.Sign(key, st)
			if i%2 == 1 { // the key's hint, another signature
				st, _ = cosignkey.Statement(strings.TrimPrefix(d.Digest.String(), "sha256:"), p, []byte(`{}`))
				good, _ := cosignkey.Sign(key, st)
				var bd cosignkey.Bundle
				json.Unmarshal(good, &bd)
				bd.DSSEEnvelope.Signatures[0].Sig = "MEUCIQD" + strings.Repeat("A", 89)
				bundle, _ = json.Marshal(bd)
			}
			if _, err := putBundle(rp, d, p, "2025-01-01T00:00:00Z", bundle, opts); err != nil {
				t.Fatal(err)
			}
		}
	}
	pushed, err := Push(ctx, b.dir, repo, b.sig(t), Options{Cosign: key})
	if err != nil {
		t.Fatal(err)
	}
	fresh := 0
	for _, p := range pushed {
		if p.New {
			fresh++
		}
	}
	if want := 3 * len(targets); fresh != want {
		t.Errorf("the push signed and attested %d digests anew, want %d (no copied or forged bundle counts)", fresh, want)
	}
	images := map[string]string{}
	for _, im := range b.m.Images {
		images[im.Arch] = im.Digest
	}
	pk, _ := cosignkey.LoadPublic(pub)
	if err := VerifyCosign(ctx, rp, b.m.IndexDigest, images, pk, Options{}); err != nil {
		t.Errorf("VerifyCosign after the push: %v", err)
	}
	cmd := exec.Command(cosign, "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", repo+"@"+b.m.IndexDigest)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("cosign verify after the push: %v\n%s", err, out)
	}
}
