package redact

import "testing"

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
