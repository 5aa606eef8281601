// Package s3obj is imagebake's access to S3-compatible object storage:
// stores named s3://BUCKET/PREFIX, configured the AWS way (the shared
// config and credentials files, profiles, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL_S3 or
// AWS_ENDPOINT_URL; path-style addressing when an endpoint is set).
//
// Many writers share a store without a lock server: a new object is
// written with If-None-Match: * (Create) and a shared one is replaced with
// If-Match: ETAG (Replace), so a lost race is an error the writer sees and
// retries, never a silent overwrite. A server that ignores these headers
// would let two writers both "win"; CheckConditional finds such a server
// before anything is published.
package s3obj

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/redact"
	"github.com/imagebake/imagebake/internal/stall"
)

// Scheme prefixes every S3 store argument.
const Scheme = "s3://"

// IsURL says whether s names an S3 store.
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

var (
	// ErrExists marks a Create of a key that exists.
	ErrExists = errors.New("object exists")
	// ErrChanged marks a Replace that lost a race: the object is no longer
	// the one read.
	ErrChanged = errors.New("object changed since it was read")
	// ErrNoConditionalWrites marks a server that does not honour
	// If-None-Match or If-Match on PUT.
	ErrNoConditionalWrites = fmt.Errorf("the S3 server does not support conditional writes (If-None-Match, If-Match): %w", failure.ErrUsage)
)

// MaxDocument bounds what Get reads into memory (indexes, catalogs,
// manifests, signatures).
const MaxDocument = 64 << 20

// Bucket is one s3://BUCKET/PREFIX.
type Bucket struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or "a/b/" (with the trailing slash)
	endpoint string // for messages: where the requests go

	probe    sync.Once
	probeErr error

	// PartSize and MultipartThreshold say when and how an object goes up
	// in parts (one PutObject stops at 5 GiB): DefaultPartSize and
	// DefaultMultipartThreshold when 0.
	PartSize, MultipartThreshold int64
}

// An object of DefaultMultipartThreshold bytes or more goes up in parts of
// DefaultPartSize (10,000 parts: objects up to 160 GiB), five at a time.
const (
	DefaultPartSize           = 16 << 20
	DefaultMultipartThreshold = 64 << 20
)

// Open parses an s3://BUCKET/PREFIX URL and configures a client from the
// environment. No request is made.
func Open(ctx context.Context, raw string) (*Bucket, error) {
	bucket, prefix, err := parse(raw)
	if err != nil {
		return nil, err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: S3 configuration for %s: %v", failure.ErrUsage, raw, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // S3-compatible servers accept any region; AWS needs one to sign
	}
	endpoint := s3Endpoint(ctx, cfg)
	// a server that stops sending stops the request (the command's stall
	// timeout, stall.Current)
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.HTTPClient = stall.Client(0)
		if endpoint != "" {
			o.UsePathStyle = true
		}
		// Checksums only where the API requires them: S3-compatible
		// servers differ in which newer checksum headers they accept.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	shown := "AWS S3 (" + cfg.Region + ")"
	if endpoint != "" {
		shown = redact.WithoutUser(endpoint)
	}
	return &Bucket{client: client, bucket: bucket, prefix: prefix, endpoint: shown}, nil
}

// s3Endpoint is the endpoint the AWS configuration names for S3
// (AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL or the profile's
// endpoint_url), as the SDK read it; "" for AWS itself.
func s3Endpoint(ctx context.Context, cfg aws.Config) string {
	for _, src := range cfg.ConfigSources {
		if e, ok := src.(config.EnvConfig); ok {
			if v, found, err := e.GetServiceBaseEndpoint(ctx, s3.ServiceID); err == nil && found && v != "" {
				return v
			}
		}
	}
	if cfg.BaseEndpoint != nil {
		return *cfg.BaseEndpoint
	}
	return ""
}

func parse(raw string) (bucket, prefix string, err error) {
	if !IsURL(raw) {
		return "", "", fmt.Errorf("%w: %q is not an s3://BUCKET/PREFIX URL", failure.ErrUsage, raw)
	}
	rest := strings.TrimPrefix(raw, Scheme)
	if strings.ContainsAny(rest, "?#@") {
		return "", "", fmt.Errorf("%w: %s: an S3 store is s3://BUCKET/PREFIX, without credentials, query or fragment (credentials come from the AWS environment)", failure.ErrUsage, redactS3(raw))
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%w: %s names no bucket (want s3://BUCKET/PREFIX)", failure.ErrUsage, raw)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if path.Clean(prefix) != prefix || strings.HasPrefix(prefix, "../") || prefix == ".." {
			return "", "", fmt.Errorf("%w: %s: the prefix must be a clean path", failure.ErrUsage, raw)
		}
		prefix += "/"
	}
	return bucket, prefix, nil
}

// redactS3 keeps what a person needs of a malformed S3 URL: everything
// before an @ is taken for a credential and dropped.
func redactS3(raw string) string {
	rest := strings.TrimPrefix(raw, Scheme)
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "…@" + rest[i+1:]
	}
	return Scheme + rest
}

// URL names key for people: s3://BUCKET/PREFIX/KEY.
func (b *Bucket) URL(key string) string { return Scheme + b.bucket + "/" + b.prefix + key }

// Root is the store's own URL, s3://BUCKET/PREFIX.
func (b *Bucket) Root() string { return strings.TrimSuffix(b.URL(""), "/") }

// Endpoint is where requests go, for messages.
func (b *Bucket) Endpoint() string { return b.endpoint }

func (b *Bucket) key(k string) *string { return aws.String(b.prefix + k) }

// Info is what HEAD tells of an object.
type Info struct {
	Size   int64
	ETag   string
	SHA256 string // the sha256 imagebake recorded when it wrote the object; "" if none
}

// MetaSHA256 is the user metadata key holding an object's sha256 (hex).
const MetaSHA256 = "sha256"

// Get reads a small object whole (at most MaxDocument) with its ETag.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, string, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: b.key(key)})
	if err != nil {
		return nil, "", b.describe("GET", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, MaxDocument+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", b.URL(key), err)
	}
	if len(data) > MaxDocument {
		return nil, "", fmt.Errorf("%s: more than %d MiB", b.URL(key), MaxDocument>>20)
	}
	return data, aws.ToString(out.ETag), nil
}

// Open streams an object from offset on.
func (b *Bucket) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: b.key(key)}
	if offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		return nil, b.describe("GET", key, err)
	}
	return out.Body, nil
}

// Head tells an object's size, ETag and recorded sha256.
func (b *Bucket) Head(ctx context.Context, key string) (Info, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: b.key(key)})
	if err != nil {
		return Info{}, b.describe("HEAD", key, err)
	}
	return Info{Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), SHA256: out.Metadata[MetaSHA256]}, nil
}

// Create writes a new object from body (size bytes, sha256 sum in hex),
// only if key does not exist: ErrExists otherwise. A large object goes up
// in parts (the SDK's transfer manager), created by a conditional
// CompleteMultipartUpload, so it appears whole or not at all.
func (b *Bucket) Create(ctx context.Context, key string, body io.ReadSeeker, size int64, sum string) error {
	threshold, part := b.MultipartThreshold, b.PartSize
	if threshold <= 0 {
		threshold = DefaultMultipartThreshold
	}
	if part <= 0 {
		part = DefaultPartSize
	}
	if size < threshold {
		_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &b.bucket, Key: b.key(key), Body: body, ContentLength: aws.Int64(size),
			IfNoneMatch: aws.String("*"), Metadata: map[string]string{MetaSHA256: sum},
		})
		if err != nil {
			return b.describe("PUT (If-None-Match: *)", key, err)
		}
		return nil
	}
	tm := transfermanager.New(b.client, func(o *transfermanager.Options) {
		o.PartSizeBytes, o.MultipartUploadThreshold = part, threshold
	})
	_, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket: &b.bucket, Key: b.key(key), Body: body, ContentLength: aws.Int64(size),
		IfNoneMatch: aws.String("*"), Metadata: map[string]string{MetaSHA256: sum},
	})
	if err != nil {
		return b.describe(fmt.Sprintf("multipart upload of %d bytes (If-None-Match: *)", size), key, err)
	}
	return nil
}

// CreateBytes is Create for data in memory.
func (b *Bucket) CreateBytes(ctx context.Context, key string, data []byte) error {
	return b.Create(ctx, key, bytes.NewReader(data), int64(len(data)), Sum(data))
}

// Replace writes data over the object whose ETag is etag: ErrChanged when
// another writer replaced it since. etag "" creates the object instead
// (ErrChanged when one appeared meanwhile).
func (b *Bucket) Replace(ctx context.Context, key string, data []byte, etag string) error {
	in := &s3.PutObjectInput{
		Bucket: &b.bucket, Key: b.key(key), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		Metadata: map[string]string{MetaSHA256: Sum(data)},
	}
	op := "PUT (If-Match)"
	if etag == "" {
		in.IfNoneMatch, op = aws.String("*"), "PUT (If-None-Match: *)"
	} else {
		in.IfMatch = aws.String(etag)
	}
	_, err := b.client.PutObject(ctx, in)
	if err != nil {
		err = b.describe(op, key, err)
		if errors.Is(err, ErrExists) {
			err = fmt.Errorf("%s: %w", b.URL(key), ErrChanged)
		}
		return err
	}
	return nil
}

// Put writes data unconditionally: only for copies readers do not rely on
// (the authoritative object is written with Create or Replace).
func (b *Bucket) Put(ctx context.Context, key string, data []byte) error {
	return b.PutAs(ctx, key, data, "")
}

// PutAs is Put with the object's Content-Type (none: S3's default), for a
// file a browser shows.
func (b *Bucket) PutAs(ctx context.Context, key string, data []byte, contentType string) error {
	in := &s3.PutObjectInput{
		Bucket: &b.bucket, Key: b.key(key), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		Metadata: map[string]string{MetaSHA256: Sum(data)},
	}
	if contentType != "" {
		in.ContentType = &contentType
	}
	_, err := b.client.PutObject(ctx, in)
	if err != nil {
		return b.describe("PUT", key, err)
	}
	return nil
}

// Delete removes an object (missing is fine).
func (b *Bucket) Delete(ctx context.Context, key string) error {
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: b.key(key)})
	if err != nil {
		return b.describe("DELETE", key, err)
	}
	return nil
}

// CheckConditional makes sure the server honours conditional writes
// before a publisher relies on them: it creates a probe object twice with
// If-None-Match: * (the second must be refused) and replaces it with a
// stale If-Match (which must be refused too). The answer is kept for the
// Bucket's life.
func (b *Bucket) CheckConditional(ctx context.Context) error {
	b.probe.Do(func() { b.probeErr = b.checkConditional(ctx) })
	return b.probeErr
}

func (b *Bucket) checkConditional(ctx context.Context) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	key := ".imagebake-probe-" + hex.EncodeToString(rnd[:])
	defer b.Delete(context.WithoutCancel(ctx), key)
	if err := b.CreateBytes(ctx, key, []byte("1")); err != nil {
		return err
	}
	no := func(what string) error {
		return fmt.Errorf("%w: %s at %s accepted %s; publishing there could let two writers both win, so imagebake refuses it (use a server with conditional writes: AWS S3, MinIO, versitygw, Ceph RGW 18+)",
			ErrNoConditionalWrites, b.Root(), b.endpoint, what)
	}
	switch err := b.CreateBytes(ctx, key, []byte("2")); {
	case err == nil:
		return no("a second PUT with If-None-Match: * on an existing key")
	case !errors.Is(err, ErrExists):
		return err
	}
	switch err := b.Replace(ctx, key, []byte("3"), `"0123456789abcdef0123456789abcdef"`); {
	case err == nil:
		return no("a PUT with a stale If-Match")
	case !errors.Is(err, ErrChanged):
		return err
	}
	return nil
}

// Sum is the hex sha256 of data.
func Sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// describe turns an SDK error into one that names the operation, the
// object and the endpoint, and wraps the condition imagebake acts on.
func (b *Bucket) describe(op, key string, err error) error {
	where := fmt.Sprintf("%s %s (at %s)", op, b.URL(key), b.endpoint)
	var re *smithyhttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch {
	case status == http.StatusNotFound || code == "NoSuchKey" || code == "NotFound":
		if code == "NoSuchBucket" {
			return fmt.Errorf("%s: no bucket %s there: %w", where, b.bucket, failure.ErrNotFound)
		}
		return fmt.Errorf("%s: not found: %w", where, failure.ErrNotFound)
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed":
		return fmt.Errorf("%s: %w", where, ErrExists)
	case status == http.StatusConflict && code == "ConditionalRequestConflict":
		return fmt.Errorf("%s: %w", where, ErrExists)
	case status == http.StatusNotImplemented || code == "NotImplemented":
		return fmt.Errorf("%s: %w", where, ErrNoConditionalWrites)
	case status == http.StatusForbidden || code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
		return fmt.Errorf("%s: access denied (%s): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and the bucket's policy", where, orStatus(code, status))
	case status != 0:
		return fmt.Errorf("%s: the server answered %s", where, orStatus(code, status))
	}
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", where, err)
	}
	var se *stall.Error
	if errors.As(err, &se) {
		return fmt.Errorf("%s: %w", where, se)
	}
	return fmt.Errorf("%s: %w (is the endpoint right and the server up? set AWS_ENDPOINT_URL_S3 for S3-compatible servers)", where, err)
}

func orStatus(code string, status int) string {
	if code != "" {
		return fmt.Sprintf("%s, HTTP %d", code, status)
	}
	return fmt.Sprintf("HTTP %d", status)
}

// MaxAttempts bounds the compare-and-swap rounds of one Swap.
const MaxAttempts = 64

// Swap replaces the object at key with what change makes of it, by
// compare-and-swap: change gets the current content (nil when there is
// none) and returns the new one; if another writer replaced the object
// meanwhile, it reads the object again and calls change again, after a
// short random pause. change returning its input unchanged writes
// nothing. It returns how many races were lost.
func (b *Bucket) Swap(ctx context.Context, key string, change func(old []byte) ([]byte, error)) (int, error) {
	if err := b.CheckConditional(ctx); err != nil {
		return 0, err
	}
	for attempt := 1; ; attempt++ {
		old, etag, err := b.Get(ctx, key)
		if errors.Is(err, failure.ErrNotFound) {
			old, etag, err = nil, "", nil
		}
		if err != nil {
			return attempt - 1, err
		}
		data, err := change(old)
		if err != nil {
			return attempt - 1, err
		}
		if old != nil && bytes.Equal(data, old) {
			return attempt - 1, nil
		}
		err = b.Replace(ctx, key, data, etag)
		if !errors.Is(err, ErrChanged) {
			return attempt - 1, err
		}
		if attempt == MaxAttempts {
			return attempt, fmt.Errorf("%s: %d writers in a row changed it before this one could: %w", b.URL(key), MaxAttempts, err)
		}
		pause := time.Millisecond + time.Duration(mrand.Int64N(int64(min(attempt, 10))*int64(20*time.Millisecond)))
		select { // racing writers spread out
		case <-time.After(pause):
		case <-ctx.Done():
			return attempt, ctx.Err()
		}
	}
}

// OtherContentError marks an object that exists with other content than
// the one Ensure was to write.
type OtherContentError struct {
	URL             string
	Size, WantSize  int64
	SHA256, WantSum string // SHA256 "" when the object carries no recorded sha256
}

func (e *OtherContentError) Error() string {
	have := e.SHA256
	if have == "" {
		have = "not recorded"
	}
	return fmt.Sprintf("%s holds other content (%d bytes, sha256 %s) than the %d bytes with sha256 %s written there", e.URL, e.Size, have, e.WantSize, e.WantSum)
}

// Ensure creates key from body (size bytes, hex sha256 sum) unless it
// exists; an object already there with the same size and recorded sha256
// is fine (a resumed or concurrent identical write); other content is an
// *OtherContentError. It says whether it wrote the object.
func (b *Bucket) Ensure(ctx context.Context, key string, body io.ReadSeeker, size int64, sum string) (bool, error) {
	err := b.Create(ctx, key, body, size, sum)
	if !errors.Is(err, ErrExists) {
		return err == nil, err
	}
	info, err := b.Head(ctx, key)
	if err != nil {
		return false, err
	}
	if info.SHA256 != sum || info.Size != size {
		return false, &OtherContentError{URL: b.URL(key), Size: info.Size, WantSize: size, SHA256: info.SHA256, WantSum: sum}
	}
	return false, nil
}

// EnsureFile is Ensure for the file at path, hashed first.
func (b *Bucket) EnsureFile(ctx context.Context, key, path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	return b.Ensure(ctx, key, f, size, hex.EncodeToString(h.Sum(nil)))
}

// EnsureBytes is Ensure for data in memory.
func (b *Bucket) EnsureBytes(ctx context.Context, key string, data []byte) (bool, error) {
	return b.Ensure(ctx, key, bytes.NewReader(data), int64(len(data)), Sum(data))
}

// Object is one listed object.
type Object struct {
	Key      string // relative to the bucket's prefix
	Size     int64
	Modified time.Time
}

// List lists the objects whose keys start with prefix (relative to the
// bucket's prefix), every page.
func (b *Bucket) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: b.key(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, b.describe("LIST", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, Object{Key: strings.TrimPrefix(aws.ToString(o.Key), b.prefix), Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}
