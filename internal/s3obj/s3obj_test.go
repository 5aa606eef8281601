//go:build linux

package s3obj

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, bucket, prefix string }{
		{"s3://b", "b", ""},
		{"s3://b/", "b", ""},
		{"s3://b/p/q/", "b", "p/q/"},
	} {
		b, p, err := parse(c.in)
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("parse(%q) = %q, %q, %v; want %q, %q", c.in, b, p, err, c.bucket, c.prefix)
		}
	}
	for _, in := range []string{"s3://", "s3:///x", "s3://b/../x", "s3://b/a//c", "s3://AKIA:SECRET@b/x", "s3://b/x?versionId=1", "http://b/x"} {
		_, _, err := parse(in)
		if !errors.Is(err, failure.ErrUsage) {
			t.Errorf("parse(%q) = %v, want a usage error", in, err)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("parse(%q) shows the secret: %v", in, err)
		}
	}
}

// Conditional writes on a real S3 gateway: a second create of a key is
// refused, a replace with a stale ETag is refused, the right ETag wins.
func TestConditionalWrites(t *testing.T) {
	srv := testutil.S3(t, "store")
	srv.Setenv(t)
	ctx := context.Background()
	b, err := Open(ctx, "s3://store/some/prefix")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckConditional(ctx); err != nil {
		t.Fatalf("versitygw has conditional writes, but: %v", err)
	}
	if _, _, err := b.Get(ctx, "k"); !errors.Is(err, failure.ErrNotFound) {
		t.Fatalf("Get of a missing key = %v, want not found", err)
	}
	if err := b.CreateBytes(ctx, "k", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBytes(ctx, "k", []byte("two")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create = %v, want ErrExists", err)
	}
	data, etag, err := b.Get(ctx, "k")
	if err != nil || string(data) != "one" {
		t.Fatalf("Get = %q, %v", data, err)
	}
	if info, err := b.Head(ctx, "k"); err != nil || info.SHA256 != Sum([]byte("one")) || info.Size != 3 {
		t.Fatalf("Head = %+v, %v", info, err)
	}
	if err := b.Replace(ctx, "k", []byte("three"), etag); err != nil {
		t.Fatal(err)
	}
	if err := b.Replace(ctx, "k", []byte("four"), etag); !errors.Is(err, ErrChanged) {
		t.Fatalf("replace with a stale ETag = %v, want ErrChanged", err)
	}
	r, err := b.Open(ctx, "k", 2)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	r.Close()
	if string(rest) != "ree" {
		t.Errorf("Open at 2 = %q, want %q", rest, "ree")
	}

	// many writers, one compare-and-swap counter: no update is lost
	const writers, each = 8, 5
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for {
					data, etag, err := b.Get(ctx, "counter")
					if errors.Is(err, failure.ErrNotFound) {
						data, etag, err = nil, "", nil
					}
					if err != nil {
						t.Error(err)
						return
					}
					if err = b.Replace(ctx, "counter", append(data, 'x'), etag); err == nil {
						break
					}
					if !errors.Is(err, ErrChanged) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if data, _, err := b.Get(ctx, "counter"); err != nil || len(data) != writers*each {
		t.Errorf("counter after %d compare-and-swap increments = %d, %v", writers*each, len(data), err)
	}
}

// A server that ignores If-None-Match and If-Match is found before
// anything relies on it, and the message says what it lacks.
func TestServerWithoutConditionalWrites(t *testing.T) {
	var mu sync.Mutex
	objs := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			objs[r.URL.Path] = b
			w.Header().Set("ETag", `"e"`)
		case http.MethodDelete:
			delete(objs, r.URL.Path)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotImplemented)
		}
	}))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	b, err := Open(context.Background(), "s3://store/x")
	if err != nil {
		t.Fatal(err)
	}
	err = b.CheckConditional(context.Background())
	if !errors.Is(err, ErrNoConditionalWrites) || !strings.Contains(err.Error(), "s3://store/x") || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("CheckConditional on a server without conditional writes = %v", err)
	}
	if len(objs) != 0 {
		t.Errorf("the probe left %d objects", len(objs))
	}
}

// A server that is down is named, with what to check.
func TestEndpointDown(t *testing.T) {
	srv := testutil.S3(t, "store")
	srv.Setenv(t)
	srv.Stop()
	b, err := Open(context.Background(), "s3://store/x")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = b.Get(context.Background(), "catalog/catalog.toml")
	if err == nil || !strings.Contains(err.Error(), "s3://store/x/catalog/catalog.toml") || !strings.Contains(err.Error(), srv.Endpoint) {
		t.Fatalf("Get from a stopped server = %v", err)
	}
}

// Wrong credentials are named as such; the secret never shows.
func TestAccessDenied(t *testing.T) {
	srv := testutil.S3(t, "store")
	srv.Setenv(t)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-PLANTED")
	b, err := Open(context.Background(), "s3://store")
	if err != nil {
		t.Fatal(err)
	}
	err = b.CreateBytes(context.Background(), "k", []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "access denied") || strings.Contains(err.Error(), "PLANTED") {
		t.Fatalf("create with a wrong secret = %v", err)
	}
}

// An endpoint with user info in it is shown without it.
func TestEndpointShownWithoutCredentials(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://AKIA:PLANTED@127.0.0.1:9/")
	t.Setenv("AWS_ACCESS_KEY_ID", "a")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	b, err := Open(context.Background(), "s3://store/p")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.Endpoint(), "PLANTED") || !strings.Contains(b.Endpoint(), "127.0.0.1:9") {
		t.Errorf("endpoint shown as %q", b.Endpoint())
	}
	_, _, err = b.Get(context.Background(), "k")
	if err == nil || strings.Contains(err.Error(), "PLANTED") {
		t.Errorf("a failed request to the endpoint = %v; want an error without the credential", err)
	}
}

// A large object goes up in parts (a single PUT stops at 5 GiB), still
// created only if absent, and reads back whole: on versitygw, with parts
// of 5 MiB (S3's smallest) for a 12 MiB object.
func TestMultipartCreate(t *testing.T) {
	srv := testutil.S3(t, "store")
	srv.Setenv(t)
	ctx := context.Background()
	b, err := Open(ctx, "s3://store/mp")
	if err != nil {
		t.Fatal(err)
	}
	b.PartSize, b.MultipartThreshold = 5<<20, 6<<20
	data := make([]byte, 12<<20+123)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	if err := b.CreateBytes(ctx, "big", data); err != nil {
		t.Fatal(err)
	}
	got, _, err := b.Get(ctx, "big")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading the multipart object back: %d bytes, %v; want the %d written", len(got), err, len(data))
	}
	// a multipart object's ETag ends in -PARTS
	if info, err := b.Head(ctx, "big"); err != nil || info.SHA256 != Sum(data) || info.Size != int64(len(data)) || !strings.HasSuffix(strings.Trim(info.ETag, `"`), "-3") {
		t.Errorf("Head = %+v, %v; want the sha256 recorded, the size and the ETag of a 3-part upload", info, err)
	}
	other := append([]byte(nil), data...)
	other[0] ^= 1
	if err := b.CreateBytes(ctx, "big", other); !errors.Is(err, ErrExists) {
		t.Errorf("a second multipart create over it = %v, want ErrExists", err)
	}
	if got, _, _ := b.Get(ctx, "big"); !bytes.Equal(got, data) {
		t.Error("the refused multipart create changed the object")
	}
	if _, err := b.EnsureBytes(ctx, "big", data); err != nil {
		t.Errorf("Ensure of the same bytes again: %v", err)
	}
}
