package ociremote

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// Plain HTTP goes to loopback registries and named ones only.
func TestPlainHTTPOnlyWhereAllowed(t *testing.T) {
	t.Parallel()
	g := httpGuard{base: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(""))}, nil
	})}
	for host, ok := range map[string]bool{"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:5000": true, "10.1.2.3:5000": false, "registry.local": false} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/v2/", nil)
		_, err := g.RoundTrip(req)
		if (err == nil) != ok {
			t.Errorf("plain HTTP to %s: %v, want allowed=%v", host, err, ok)
		}
	}
	for _, c := range []struct {
		named, host string
		ok          bool
	}{
		{"10.1.2.3:5000", "10.1.2.3:5000", true},
		{"10.1.2.3:5000", "10.1.2.3:5001", false},
		{"10.1.2.3", "10.1.2.3:5000", true}, // a host without a port: any port
		{"registry.local", "registry.local:443", true},
		{"Registry.Local", "registry.local", true},
		{"registry.local", "registry.local.evil:5000", false},
		{"::5", "[::5]:5000", true},
	} {
		g.o.Insecure = []string{c.named}
		req, _ := http.NewRequest(http.MethodGet, "http://"+c.host+"/v2/", nil)
		if _, err := g.RoundTrip(req); (err == nil) != c.ok {
			t.Errorf("--insecure-registry %s, plain HTTP to %s: %v, want allowed=%v", c.named, c.host, err, c.ok)
		}
	}
	if r, err := (Options{}).Reference("127.0.0.1:5000/x:1"); err != nil || r.Context().Scheme() != "http" {
		t.Errorf("loopback reference: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// base pin resolves a tag to the index digest and each arch's image; an
// arch the index lacks is named with the platforms it has.
func TestPin(t *testing.T) {
	t.Parallel()
	_, host := testutil.MemRegistry(t, nil)
	idx, imgs := testutil.BaseIndex(t, "amd64", "arm64")
	want := map[string]string{}
	for arch, img := range imgs {
		d, _ := img.Digest()
		want[arch] = d.String()
	}
	tag, _ := name.NewTag(host+"/library/debian:bookworm", name.Insecure)
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	p, err := Options{}.Pin(context.Background(), host+"/library/debian:bookworm", []string{"amd64", "arm64"})
	if err != nil || p.Ref != host+"/library/debian@"+d.String() || p.Platforms["arm64"] != want["arm64"] || p.Platforms["amd64"] != want["amd64"] {
		t.Fatalf("Pin = %+v, %v", p, err)
	}
	_, err = Options{}.Pin(context.Background(), host+"/library/debian:bookworm", []string{"s390x", "riscv64"})
	if !errors.Is(err, failure.ErrNotFound) || !strings.Contains(err.Error(), "no linux/s390x image (it has linux/amd64, linux/arm64)") || !strings.Contains(err.Error(), "riscv64") {
		t.Errorf("Pin of missing arches = %v", err)
	}
	if _, err := (Options{}).Pin(context.Background(), host+"/library/debian:trixie", nil); !errors.Is(err, failure.ErrNotFound) {
		t.Errorf("Pin of a missing tag = %v, want not found", err)
	}
}

// A reference with credentials in it is refused as a usage error that
// does not repeat the credential; digests (an @ after the repository)
// stay references.
func TestReferenceCredentialsRefused(t *testing.T) {
	t.Parallel()
	var o Options
	for _, ref := range []string{"alice:TOKEN@registry.example/golden/x", "https://alice:TOKEN@registry.example/golden/x:1.0.0", "https://registry.example/golden/x", "TOKEN@127.0.0.1:5000/x"} {
		_, err1 := o.Reference(ref)
		_, err2 := o.Repository(ref)
		for _, err := range []error{err1, err2} {
			if failure.Code(err) != failure.ExitUsage || strings.Contains(err.Error(), "TOKEN") || !strings.Contains(err.Error(), "Docker config") {
				t.Errorf("reference %q: %v; want a usage error pointing at the Docker config, without the token", ref, err)
			}
		}
	}
	if _, err := o.Reference("registry.example/golden/x@sha256:" + strings.Repeat("a", 64)); err != nil {
		t.Errorf("a digest reference: %v", err)
	}
}
