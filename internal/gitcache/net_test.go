package gitcache

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, shown, basic string }{
		{"https://alice:s3cret@git.example.com/x.git", "https://git.example.com/x.git", "alice:s3cret"},
		{"https://ghp_T0KEN@github.example/x.git", "https://github.example/x.git", "ghp_T0KEN:"},
		{"http://a%40b:p%2Fw@h:8080/r", "http://h:8080/r", "a@b:p/w"},
		{"ssh://git:pw@host/x.git", "ssh://git@host/x.git", ""},
		{"ssh://git@host/x.git", "ssh://git@host/x.git", ""},
		{"git://host/x.git", "git://host/x.git", ""},
		{"git@host:org/x.git", "git@host:org/x.git", ""},
		{"/srv/git/x.git", "/srv/git/x.git", ""},
		{"file:///srv/git/x.git", "file:///srv/git/x.git", ""},
	} {
		r := splitRemote(c.in)
		if r.shown != c.shown || Redact(c.in) != c.shown {
			t.Errorf("Redact(%q) = %q, want %q", c.in, r.shown, c.shown)
		}
		var basic string
		for _, e := range r.env() {
			if v, ok := strings.CutPrefix(e, "GIT_CONFIG_VALUE_0=Authorization: Basic "); ok {
				b, _ := base64.StdEncoding.DecodeString(v)
				basic = string(b)
			}
		}
		if basic != c.basic {
			t.Errorf("%q: credential sent %q, want %q", c.in, basic, c.basic)
		}
	}
	r := splitRemote("https://alice:s3cretpw@h/x.git")
	if got := r.redact("fatal: unable to access 'https://alice:s3cretpw@h/x.git/': s3cretpw"); strings.Contains(got, "s3cretpw") {
		t.Errorf("redact left the password: %q", got)
	}
}

// FuzzRedact: never a panic, and never the password of a URL in what is shown.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"https://u:p@h/x", "ssh://git:pw@host/x", "git@host:x", "http://%zz@h", "s3://k:s@b/p"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		shown := Redact(s)
		u, err := url.Parse(s)
		if err != nil || u.User == nil || u.Host == "" {
			return
		}
		if p, ok := u.User.Password(); ok && len(p) > 3 && strings.Contains(shown, u.User.String()) {
			t.Errorf("Redact(%q) = %q shows the password", s, shown)
		}
	})
}
