// Package signing signs and verifies imagebake's documents (manifests,
// catalogs) with ed25519 keys in minisign's format, so the stock
// `minisign -V` verifies them too. A document D is signed into D.minisig.
package signing

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"aead.dev/minisign"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
)

// ErrUntrusted marks a document without a valid signature by a trusted key.
var ErrUntrusted = fmt.Errorf("signature not trusted: %w", failure.ErrVerify)

// Generate writes a new key pair: dir/NAME.key (private; encrypted with
// minisign's default cost when password is not empty) and dir/NAME.pub.
// It refuses to overwrite a key.
func Generate(dir, name, password string) (pubPath, keyPath string, err error) {
	return GenerateWith(dir, name, password, Sensitive)
}

// GenerateWith is Generate with the password's KDF cost chosen.
func GenerateWith(dir, name, password string, kdf KDF) (pubPath, keyPath string, err error) {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	keyPath, pubPath = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("%w: %s exists; not overwriting a key", failure.ErrUsage, p)
		}
	}
	var kb []byte
	if password != "" {
		kb, err = encryptWith(password, priv, kdf)
	} else {
		kb, err = priv.MarshalText()
	}
	if err != nil {
		return "", "", err
	}
	pb, err := pub.MarshalText()
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	if err := atomicfile.WriteFile(keyPath, kb, 0o600); err != nil {
		return "", "", err
	}
	return pubPath, keyPath, atomicfile.WriteFile(pubPath, append(pb, '\n'), 0o644)
}

// Signer signs with one private key.
type Signer struct {
	key minisign.PrivateKey
}

// LoadSigner reads a private key file (password for an encrypted one).
func LoadSigner(path, password string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	var k minisign.PrivateKey
	if minisign.IsEncrypted(b) {
		if password == "" {
			return nil, fmt.Errorf("%w: signing key %s is encrypted: set IMAGEBAKE_KEY_PASSWORD", failure.ErrUsage, path)
		}
		if k, err = minisign.DecryptKey(password, b); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", path, err)
		}
	} else if err := k.UnmarshalText(b); err != nil {
		return nil, fmt.Errorf("%w: signing key %s: %v", failure.ErrUsage, path, err)
	}
	return &Signer{key: k}, nil
}

// KeyID is the key's minisign id, as minisign prints it.
func (s *Signer) KeyID() string { return fmt.Sprintf("%016X", s.key.ID()) }

// Public is the signer's public key, which it trusts.
func (s *Signer) Public() minisign.PublicKey { return s.key.Public().(minisign.PublicKey) }

// Sign returns the minisign signature file content for data. subject,
// when not empty, says what the document is (for a manifest: "family:F
// release:X.Y.Z"); it goes into the trusted comment, which the signature
// covers, so a document copied to another place does not pass for another.
func (s *Signer) Sign(data []byte, name, subject string) []byte {
	trusted := "file:" + filepath.Base(name)
	if subject != "" {
		trusted += " " + subject
	}
	return minisign.SignWithComments(s.key, data, trusted, "signature from imagebake key "+s.KeyID())
}

// Subject returns the subject part of a verified signature's trusted
// comment ("" when it has none).
func Subject(sig []byte) string {
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return ""
	}
	_, rest, _ := strings.Cut(s.TrustedComment, " ")
	return rest
}

// Keyring is the set of trusted public keys.
type Keyring struct {
	keys  []minisign.PublicKey
	files []string
}

// LoadKeyring reads trusted public keys (minisign .pub files).
func LoadKeyring(paths ...string) (*Keyring, error) {
	kr := &Keyring{}
	for _, p := range paths {
		k, err := minisign.PublicKeyFromFile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: trusted key %s: %v", failure.ErrUsage, p, err)
		}
		kr.keys = append(kr.keys, k)
		kr.files = append(kr.files, p)
	}
	return kr, nil
}

// Add trusts one more key.
func (kr *Keyring) Add(k minisign.PublicKey, from string) {
	kr.keys = append(kr.keys, k)
	kr.files = append(kr.files, from)
}

// Verify checks that sig is a valid signature of data (named name for
// messages) by a trusted key.
func (kr *Keyring) Verify(name string, data, sig []byte) error {
	if len(kr.keys) == 0 {
		return fmt.Errorf("%w: %s: no trusted keys configured (--trusted-key or IMAGEBAKE_TRUSTED_KEYS)", ErrUntrusted, name)
	}
	if sig == nil {
		return fmt.Errorf("%w: %s is not signed (no %s.minisig)", ErrUntrusted, name, filepath.Base(name))
	}
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return fmt.Errorf("%w: %s.minisig is not a minisign signature: %v", ErrUntrusted, name, err)
	}
	id := fmt.Sprintf("%016X", s.KeyID)
	for _, k := range kr.keys {
		if k.ID() != s.KeyID {
			continue
		}
		if minisign.Verify(k, data, sig) {
			return nil
		}
		return fmt.Errorf("%w: %s does not match its signature by key %s: the document was changed after signing", ErrUntrusted, name, id)
	}
	var ids []string
	for _, k := range kr.keys {
		ids = append(ids, fmt.Sprintf("%016X", k.ID()))
	}
	return fmt.Errorf("%w: %s is signed by key %s, which is not trusted (trusted: %s from %s)", ErrUntrusted, name, id, strings.Join(ids, ", "), strings.Join(kr.files, ", "))
}

// VerifyFile reads name and name.minisig and verifies them.
func (kr *Keyring) VerifyFile(name string) ([]byte, error) {
	data, _, err := kr.VerifyFileSubject(name)
	return data, err
}

// VerifyFileSubject is VerifyFile that also returns the signature's subject.
func (kr *Keyring) VerifyFileSubject(name string) ([]byte, string, error) {
	data, err := kr.verifyFile(name)
	if err != nil {
		return nil, "", err
	}
	sig, _ := os.ReadFile(name + ".minisig")
	return data, Subject(sig), nil
}

func (kr *Keyring) verifyFile(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	sig, err := os.ReadFile(name + ".minisig")
	if errors.Is(err, os.ErrNotExist) {
		sig, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	return data, kr.Verify(name, data, sig)
}

// KeyIDOf returns the ID of the key that made sig, as Verify names keys
// ("" when sig is not a minisign signature).
func KeyIDOf(sig []byte) string {
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return ""
	}
	return fmt.Sprintf("%016X", s.KeyID)
}
