package attest

import (
	"net/url"
	"testing"
)

func TestPlainURL(t *testing.T) {
	t.Parallel()
	if plainURL("https://bot:s3cret@git.example/control.git") != "https://git.example/control.git" {
		t.Error("credentials stay in a URI")
	}
}

// Remotes become URIs a scanner reads as download locations.
func TestGitURI(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://bot:tok@git.example/control.git": "git+https://git.example/control.git",
		"/srv/git/control":                        "git+file:///srv/git/control",
		"git://127.0.0.1:9418/stdlib.git":         "git://127.0.0.1:9418/stdlib.git",
		"git@github.com:acme/control.git":         "git+ssh://git@github.com/acme/control.git",
		"ssh://git@host/acme/control.git":         "git+ssh://git@host/acme/control.git",
		"/srv/git/with space":                     "git+file:///srv/git/with%20space",
	} {
		if got := GitURI(in); got != want {
			t.Errorf("GitURI(%q) = %q, want %q", in, got, want)
		}
		if _, err := url.Parse(GitURI(in)); err != nil {
			t.Errorf("GitURI(%q) is not a URI: %v", in, err)
		}
	}
}
