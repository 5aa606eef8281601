package lockfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
)

func sample() *Lock {
	return &Lock{
		Puppetfile: strings.Repeat("a", 64),
		Forge:      "https://forge.example.org",
		Moduledir:  "modules",
		Modules: []Module{
			{Name: "zeta", Kind: "git", Source: "file:///z.git", Path: "modules/zeta", RefType: "tag", Ref: "v1", Commit: strings.Repeat("1", 40)},
			{Name: "acme/alpha", Kind: "forge", Source: "https://forge.example.org", Path: "modules/alpha", Ref: "1.0.0", Version: "1.0.0", URL: "https://forge.example.org/v3/files/acme-alpha-1.0.0.tar.gz", SHA256: strings.Repeat("b", 64)},
			{Name: "mine", Kind: "local", Path: "modules/mine"},
		},
	}
}

func TestRoundTripIsCanonical(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "Puppetfile.lock")
	if err := sample().Write(name); err != nil {
		t.Fatal(err)
	}
	l, err := Read(name)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{l.Modules[0].Name, l.Modules[1].Name, l.Modules[2].Name}; strings.Join(got, ",") != "acme/alpha,mine,zeta" {
		t.Errorf("modules = %v, want sorted by name", got)
	}
	b1, _ := os.ReadFile(name)
	b2, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Errorf("re-encoding changed the bytes:\n%s\n---\n%s", b1, b2)
	}
	if m, ok := l.Find("zeta"); !ok || m.Commit != strings.Repeat("1", 40) {
		t.Errorf("Find(zeta) = %+v, %v", m, ok)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	good, err := sample().Encode()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, edit, want string }{
		{"unknown key", "version = 1\ncolour = 'red'", "unknown keys colour"},
		{"short commit", `commit = "` + strings.Repeat("1", 40) + `"` + "\x00" + `commit = "1111"`, "40-digit commit"},
		{"bad kind", `kind = "local"` + "\x00" + `kind = "svn"`, `unknown kind "svn"`},
		{"future format", "version = 1\x00version = 2", "format version 2"},
		{"escaping path", `path = "modules/mine"` + "\x00" + `path = "../mine"`, "not inside the environment"},
		{"remote as an option", `source = "file:///z.git"` + "\x00" + `source = "--upload-pack=touch /tmp/x #"`, `source "--upload-pack=touch /tmp/x #" starts with "-"`},
		{"ref as an option", `ref = "v1"` + "\x00" + `ref = "-v1"`, `ref "-v1" starts with "-"`},
		{"ref as a refspec", `ref = "v1"` + "\x00" + `ref = "v1:refs/heads/x"`, `holds ':'`},
		{"remote with a control character", `source = "file:///z.git"` + "\x00" + `source = "file:///z.git\u001b"`, "control character U+001B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := string(good)
			if from, to, ok := strings.Cut(tt.edit, "\x00"); ok {
				src = strings.Replace(src, from, to, 1)
			} else {
				src = strings.Replace(src, "version = 1", tt.edit, 1)
			}
			_, err := Parse([]byte(src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want error containing %q", err, tt.want)
			}
			if !errors.Is(err, failure.ErrUsage) {
				t.Errorf("error %v is not classified as usage", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	good, _ := sample().Encode()
	f.Add(good)
	f.Add([]byte("version = 1\n[[module]]\nname='x'"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err != nil {
			return
		}
		out, err := l.Encode()
		if err != nil {
			t.Fatalf("a lock that parsed does not encode: %v", err)
		}
		l2, err := Parse(out)
		if err != nil {
			t.Fatalf("encoded lock does not parse: %v\n%s", err, out)
		}
		out2, _ := l2.Encode()
		if !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not stable")
		}
	})
}
