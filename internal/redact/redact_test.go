package redact

import (
	"net/url"
	"testing"
)

func TestWithoutUser(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://bot:s3cret@git.example/control.git": "https://git.example/control.git",
		"http://key@127.0.0.1:9000":                  "http://127.0.0.1:9000",
		"/srv/git/control":                           "/srv/git/control",
		"oci:base@sha256:ab":                         "oci:base@sha256:ab",
	} {
		if got := WithoutUser(in); got != want {
			t.Errorf("WithoutUser(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	u, err := url.Parse("https://bot:tok@store.example/b/k.tar.gz?X-Amz-Signature=abc#frag")
	if err != nil {
		t.Fatal(err)
	}
	if got := URL(u); got != "https://store.example/b/k.tar.gz" {
		t.Errorf("URL = %q, want no user, query or fragment", got)
	}
	if u.User == nil || u.RawQuery == "" {
		t.Error("URL changed the URL it was given")
	}
}
