package signing

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"

	"aead.dev/minisign"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/scrypt"

	"github.com/imagebake/imagebake/internal/failure"
)

// KDF is how hard a password-protected secret key is to open: the scrypt
// cost minisign's key file records (libsodium's opslimit and memlimit).
// Every publish, push and revoke opens the key once.
type KDF struct {
	Name     string
	Ops, Mem uint64
	// N, R, P are the scrypt parameters the two limits stand for (as
	// minisign derives them from opslimit and memlimit).
	N, R, P int
}

var (
	// Sensitive is minisign's own choice (libsodium's SENSITIVE limits):
	// 1 GiB of memory and several seconds per opening. The default.
	Sensitive = KDF{Name: "sensitive", Ops: 1 << 25, Mem: 1 << 30, N: 1 << 20, R: 8, P: 1}
	// Interactive is libsodium's INTERACTIVE limits: 16 MiB and tens of
	// milliseconds per opening, and as much less for whoever tries
	// passwords on a stolen key file.
	Interactive = KDF{Name: "interactive", Ops: 1 << 19, Mem: 1 << 24, N: 1 << 14, R: 8, P: 1}
)

// KDFNamed is the KDF called name ("sensitive", "interactive").
func KDFNamed(name string) (KDF, error) {
	for _, k := range []KDF{Sensitive, Interactive} {
		if k.Name == name {
			return k, nil
		}
	}
	return KDF{}, fmt.Errorf("%w: --kdf %q: want sensitive (minisign's default: 1 GiB, seconds to open) or interactive (16 MiB, milliseconds)", failure.ErrUsage, name)
}

// encryptWith is priv's key file encrypted under password with kdf's
// cost, in minisign's layout: the unencrypted key file's 104 bytes (key
// id, secret key, and their BLAKE2b checksum) XORed with scrypt's keystream of the
// password and a new salt, the salt and both limits recorded before them.
// minisign.DecryptKey and the minisign tool open it.
func encryptWith(password string, priv minisign.PrivateKey, kdf KDF) ([]byte, error) {
	if kdf == Sensitive {
		return minisign.EncryptKey(password, priv) // the library's own path
	}
	text, err := priv.MarshalText()
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	b, err := base64.StdEncoding.DecodeString(lines[len(lines)-1])
	if err != nil || len(b) != 158 {
		return nil, fmt.Errorf("minisign's unencrypted key file is not the 158-byte layout (%d bytes, %v)", len(b), err)
	}
	// the checksum the unencrypted file leaves zero: BLAKE2b-256 of the
	// signature algorithm, key id and secret key
	sum := blake2b.Sum256(append(append([]byte{}, b[0:2]...), b[54:126]...))
	copy(b[126:], sum[:])
	salt := b[6:38]
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	copy(b[2:4], "Sc") // scrypt, where the unencrypted file says none
	binary.LittleEndian.PutUint64(b[38:], kdf.Ops)
	binary.LittleEndian.PutUint64(b[46:], kdf.Mem)
	stream, err := scrypt.Key([]byte(password), salt, kdf.N, kdf.R, kdf.P, len(b)-54)
	if err != nil {
		return nil, err
	}
	for i, k := range stream {
		b[54+i] ^= k
	}
	return []byte("untrusted comment: minisign encrypted secret key\n" + base64.StdEncoding.EncodeToString(b)), nil
}
