// Package cosignkey reads and writes cosign's key files (`cosign
// generate-key-pair`: an ECDSA P-256 key, PKCS#8, encrypted with scrypt
// and NaCl secretbox as an "ENCRYPTED SIGSTORE PRIVATE KEY" PEM block, and
// its PKIX "PUBLIC KEY"), and signs DSSE envelopes as Sigstore bundles
// (v0.3) in the form cosign v3 verifies offline with a key.
package cosignkey

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
)

const (
	privateType = "ENCRYPTED SIGSTORE PRIVATE KEY"
	publicType  = "PUBLIC KEY"
	// BundleType is the Sigstore bundle's media type (an OCI artifact's
	// artifactType and layer type).
	BundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// InTotoType is the DSSE payload type of an in-toto statement.
	InTotoType = "application/vnd.in-toto+json"
	// SignPredicate is the predicate type of cosign's image signature.
	SignPredicate = "https://sigstore.dev/cosign/sign/v1"
)

// ErrKey marks a key that cannot be used: another type, a wrong password.
var ErrKey = fmt.Errorf("cosign key: %w", failure.ErrUsage)

// Load reads the cosign private key at path with password (cosign's
// COSIGN_PASSWORD).
func Load(path string, password []byte) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cosign key %s: %w", path, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != privateType {
		return nil, fmt.Errorf("%w: %s is not a cosign private key (want a PEM block %q, as cosign generate-key-pair or imagebake key generate --cosign write)", ErrKey, path, privateType)
	}
	der, err := encrypted.Decrypt(blk.Bytes, password)
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not open with the password given (COSIGN_PASSWORD): %v", ErrKey, path, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKey, path, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: %s holds a %T; cosign verifies offline with ECDSA P-256 keys", ErrKey, path, k)
	}
	return ec, nil
}

// LoadPublic reads a cosign public key (PKIX PEM, ECDSA P-256).
func LoadPublic(path string) (*ecdsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cosign public key %s: %w", path, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != publicType {
		return nil, fmt.Errorf("%w: %s is not a PEM public key", ErrKey, path)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKey, path, err)
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: %s holds a %T, not an ECDSA P-256 key", ErrKey, path, k)
	}
	return ec, nil
}

// Generate writes dir/name.key (encrypted with password) and dir/name.pub,
// readable by cosign; an existing key is not overwritten.
func Generate(dir, name string, password []byte) (pub, key string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", "", err
	}
	enc, err := encrypted.Encrypt(der, password)
	if err != nil {
		return "", "", err
	}
	pder, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return "", "", err
	}
	key, pub = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	for _, p := range []string{key, pub} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("%w: %s exists; not overwritten", failure.ErrUsage, p)
		}
	}
	if err := atomicfile.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: privateType, Bytes: enc}), 0o600); err != nil {
		return "", "", err
	}
	return pub, key, atomicfile.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: publicType, Bytes: pder}), 0o644)
}

// Hint is the bundle's key hint: the base64 sha256 of the public key's
// PKIX DER, as cosign writes it.
func Hint(pub *ecdsa.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	s := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(s[:])
}

// Bundle is the part of a Sigstore bundle v0.3 imagebake writes and reads:
// the key's hint and the DSSE envelope (go-securesystemslib's dsse).
type Bundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial struct {
		PublicKey struct {
			Hint string `json:"hint"`
		} `json:"publicKey"`
	} `json:"verificationMaterial"`
	DSSEEnvelope dsse.Envelope `json:"dsseEnvelope"`
}

// ecdsaDSSE signs and verifies DSSE's pre-authentication encoding (which
// the dsse package computes) as cosign does: sha256, then ECDSA, ASN.1 DER.
type ecdsaDSSE struct {
	k   crypto.Signer    // nil when it only verifies
	pub *ecdsa.PublicKey // the key
}

func (e ecdsaDSSE) Sign(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return e.k.Sign(rand.Reader, sum[:], crypto.SHA256)
}

func (e ecdsaDSSE) Verify(_ context.Context, data, sig []byte) error {
	sum := sha256.Sum256(data)
	if !ecdsa.VerifyASN1(e.pub, sum[:], sig) {
		return errors.New("no signature by the key given")
	}
	return nil
}

func (e ecdsaDSSE) KeyID() (string, error)   { return "", nil } // cosign's bundles name the key by hint
func (e ecdsaDSSE) Public() crypto.PublicKey { return e.pub }

// Sign wraps the in-toto statement in a DSSE envelope signed by k (a
// key file's ECDSA key, or a KMS key: see Open), as a Sigstore bundle.
func Sign(k crypto.Signer, statement []byte) ([]byte, error) {
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T key; cosign verifies offline with ECDSA P-256 keys", ErrKey, k.Public())
	}
	signer, err := dsse.NewEnvelopeSigner(ecdsaDSSE{k: k, pub: pub})
	if err != nil {
		return nil, err
	}
	env, err := signer.SignPayload(context.Background(), InTotoType, statement)
	if err != nil {
		return nil, err
	}
	var b Bundle
	b.MediaType = BundleType
	b.VerificationMaterial.PublicKey.Hint = Hint(pub)
	b.DSSEEnvelope = *env
	return json.Marshal(b)
}

// Verify checks a bundle's DSSE signature with pub and returns its
// statement.
func Verify(pub *ecdsa.PublicKey, bundle []byte) ([]byte, error) {
	var b Bundle
	if err := json.Unmarshal(bundle, &b); err != nil {
		return nil, fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	if b.DSSEEnvelope.PayloadType != InTotoType || len(b.DSSEEnvelope.Signatures) == 0 {
		return nil, errors.New("not a DSSE envelope of an in-toto statement")
	}
	v, err := dsse.NewEnvelopeVerifier(ecdsaDSSE{pub: pub})
	if err != nil {
		return nil, err
	}
	if _, err := v.Verify(context.Background(), &b.DSSEEnvelope); err != nil {
		return nil, fmt.Errorf("no signature by the key given: %w", err)
	}
	return b.DSSEEnvelope.DecodeB64Payload()
}

// Statement makes an in-toto Statement v1 about one digest (sha256 hex).
func Statement(hex, predicateType string, predicate json.RawMessage) ([]byte, error) {
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"digest": map[string]string{"sha256": hex}, "annotations": map[string]string{}}},
		"predicateType": predicateType,
	}
	if predicate != nil {
		st["predicate"] = predicate
	}
	return json.Marshal(st)
}
