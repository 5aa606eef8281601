// Package registry moves releases between the release directory and OCI
// registries: push (images, index, the SBOM and the signed manifest as
// referrers) and verify (pull and check every digest against the signed
// manifest). It speaks the distribution API through go-containerregistry.
package registry

import (
	"crypto"
	"fmt"
	"io"

	"github.com/imagebake/imagebake/internal/ociremote"
)

// Options say how to reach registries and how to push.
type Options struct {
	ociremote.Options
	// Force lets a push move an existing tag to other content.
	Force bool
	// Cosign, when set, signs the pushed release for cosign: the index and
	// every image, and attests its provenance and SBOM (Sigstore bundles
	// as referrers, as cosign v3 writes them): a key file's ECDSA P-256
	// key or a KMS key (cosignkey.Open).
	Cosign crypto.Signer
	Log    io.Writer
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format, args...)
	}
}
