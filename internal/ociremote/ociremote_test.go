package ociremote

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Plain HTTP goes to loopback registries and named ones only.
func TestPlainHTTPOnlyWhereAllowed(t *testing.T) {
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
	g.o.Insecure = []string{"10.1.2.3:5000"}
	req, _ := http.NewRequest(http.MethodGet, "http://10.1.2.3:5000/v2/", nil)
	if _, err := g.RoundTrip(req); err != nil {
		t.Errorf("plain HTTP to a registry named insecure: %v", err)
	}
	if r, err := (Options{}).Reference("127.0.0.1:5000/x:1"); err != nil || r.Context().Scheme() != "http" {
		t.Errorf("loopback reference: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
