package cosignkey

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	awskms "github.com/sigstore/sigstore/pkg/signature/kms/aws"
)

// ErrKMS marks a KMS key that cannot be reached or used.
var ErrKMS = errors.New("cosign KMS key")

// checkKMS says what to check when a KMS key cannot be used.
const checkKMS = " (check the key's URI, AWS_REGION and the credentials, and that the KMS is reachable: AWS_ENDPOINT_URL_KMS or the URI's HOST:PORT)"

// why says what to check about a KMS error: the stall timeout when the
// KMS did not answer in time, else checkKMS.
func why(err error, requestTimeout time.Duration) string {
	var ne interface{ Timeout() bool }
	if requestTimeout > 0 && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Sprintf(" (the KMS gave no answer within %s, the stall timeout: --stall-timeout or IMAGEBAKE_STALL_TIMEOUT)", requestTimeout)
	}
	return checkKMS
}

// kmsSchemes are the KMS URI schemes cosign knows, and whether this build
// signs with them.
var kmsSchemes = map[string]bool{"awskms": true, "gcpkms": false, "azurekms": false, "hashivault": false}

// IsKMS says whether ref names a KMS key (awskms://, gcpkms://,
// azurekms://, hashivault://) rather than a key file.
func IsKMS(ref string) bool {
	scheme, _, ok := strings.Cut(ref, "://")
	_, known := kmsSchemes[scheme]
	return ok && known
}

// Open returns the signer of the KMS key ref, through sigstore's KMS
// providers, after reading its public key: a key that cannot be reached,
// or is not ECDSA P-256, is refused here, before anything is pushed. AWS
// keys take the usual AWS settings (AWS_REGION, credentials,
// AWS_ENDPOINT_URL_KMS or an endpoint in the URI:
// awskms://HOST:PORT/KEY).
//
// Each request to the KMS (a few hundred bytes each way) is given up after
// requestTimeout (0: the SDK's own rules), so that a KMS that stops
// answering stops the push. The SDK's own client is kept, with its
// AWS_CA_BUNDLE.
func Open(ctx context.Context, ref string, requestTimeout time.Duration) (crypto.Signer, error) {
	scheme, _, _ := strings.Cut(ref, "://")
	if supported, known := kmsSchemes[scheme]; !known || !supported {
		return nil, fmt.Errorf("%w: %s: %s:// keys are not supported by this build (awskms:// is); sign with awskms:// or a cosign key file", ErrKey, ref, scheme)
	}
	var opts []func(*config.LoadOptions) error
	if requestTimeout > 0 {
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(requestTimeout)))
	}
	sv, err := awskms.LoadSignerVerifier(ctx, ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v%s", ErrKMS, ref, err, why(err, requestTimeout))
	}
	var pubErr error
	signer, _, err := sv.CryptoSigner(ctx, func(err error) { pubErr = err })
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v%s", ErrKMS, ref, err, why(err, requestTimeout))
	}
	pub, ok := signer.Public().(*ecdsa.PublicKey) // read from the KMS: errors go to pubErr
	if pubErr != nil {
		return nil, fmt.Errorf("%w %s: reading its public key: %v%s", ErrKMS, ref, pubErr, why(pubErr, requestTimeout))
	}
	if !ok || pub == nil || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: %s is a %T key; cosign verifies offline with ECDSA P-256 keys (an ECC_NIST_P256 SIGN_VERIFY key in AWS KMS)", ErrKey, ref, signer.Public())
	}
	return signer, nil
}
