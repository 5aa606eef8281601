package s3obj

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/stall"
)

// An S3 server that accepts a request and never answers is stopped after
// the stall timeout with an error naming the object and endpoint.
func TestStalledS3Stopped(t *testing.T) {
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(done)
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	old := stall.Current() // the command line's setting (--stall-timeout, IMAGEBAKE_STALL_TIMEOUT)
	stall.SetCurrent(300 * time.Millisecond)
	defer stall.SetCurrent(old)
	b, err := Open(context.Background(), "s3://bucket/prefix")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = b.Get(context.Background(), "catalog/catalog.toml")
	var se *stall.Error
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "s3://bucket/prefix/catalog/catalog.toml") || !strings.Contains(err.Error(), "nothing received for 300ms") {
		t.Fatalf("Get from a stalled server = %v, want the stall error naming the object", err)
	}
}
