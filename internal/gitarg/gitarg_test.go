package gitarg

import (
	"strings"
	"testing"
	"unicode"
)

func TestRemoteAndRef(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		s      string
		remote string // "" accepted, else part of the error
		ref    string
	}{
		{"git://h/x.git", "", `holds ':'`},
		{"v1.2.3", "", ""},
		{"feature/x#1", "", ""},
		{"0123456789abcdef0123456789abcdef01234567", "", ""},
		{"--upload-pack=touch x", `starts with "-"`, `starts with "-"`},
		{"-oProxyCommand=x", `starts with "-"`, `starts with "-"`},
		{"a\nb", "U+000A", "U+000A"},
		{"a\x7fb", "U+007F", "U+007F"},
		{"a\u2028b", "U+2028", "U+2028"},
		{"a\xffb", "not valid UTF-8", "not valid UTF-8"},
		{"", "is empty", "is empty"},
		{"a b", "", "U+0020"},
		{"main:refs/heads/x", "", `holds ':'`},
		{"a..b", "", `".."`},
		{"a@{1}", "", `"@{"`},
		{"x.lock", "", ".lock"},
		{"/x", "", `starts or ends`},
		{"a//b", "", `"//"`},
		{"a/.b", "", `starts with "."`},
	} {
		for _, k := range []struct {
			f    func(string) error
			want string
			what string
		}{{Remote, c.remote, "Remote"}, {Ref, c.ref, "Ref"}} {
			err := k.f(c.s)
			if (k.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), k.want) {
				t.Errorf("%s(%q) = %v, want %q", k.what, c.s, err, k.want)
			}
		}
	}
}

// FuzzRef: whatever Ref accepts can never be read by git as an option or
// split into two refspecs, and Remote accepts it too.
func FuzzRef(f *testing.F) {
	for _, s := range []string{"v1", "-x", "a:b", "a\x00b", "refs/tags/v1", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Ref(s) != nil {
			return
		}
		if strings.HasPrefix(s, "-") || strings.ContainsAny(s, ": \t\n") || strings.ContainsFunc(s, unicode.IsControl) {
			t.Fatalf("Ref accepted %q", s)
		}
		if err := Remote(s); err != nil {
			t.Fatalf("Ref accepted %q but Remote refused it: %v", s, err)
		}
	})
}
