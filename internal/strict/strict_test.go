package strict

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

type doc struct {
	Family string            `toml:"family"`
	Images []image           `toml:"images"`
	Bases  map[string]*image `toml:"bases"`
}

type image struct {
	Arch string `toml:"arch"`
}

func TestDecodeTOML(t *testing.T) {
	t.Parallel()
	tests := []struct{ src, want string }{
		{"family = \"a\"\n[[images]]\narch = \"amd64\"\n[bases.ARM64]\narch = \"arm64\"\n", ""},
		{"family = \"a\"\nFamily = \"b\"\n", "Family is not a key; did you mean family?"},
		{"Family = \"b\"\n", "Family is not a key; did you mean family?"},
		{"[[images]]\nArch = \"amd64\"\n", "images.Arch is not a key; did you mean images.arch?"},
		{"[bases.x]\nARCH = \"amd64\"\n", "bases.x.ARCH is not a key; did you mean bases.x.arch?"},
		{"colour = 1\n", "unknown keys colour"},
	}
	for _, tt := range tests {
		var d doc
		err := DecodeTOML([]byte(tt.src), &d)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("DecodeTOML(%q) = %v, want no error", tt.src, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("DecodeTOML(%q) = %v, want an error containing %q", tt.src, err, tt.want)
		}
	}
}

// FuzzDecodeTOML: any bytes give a verdict, never a panic, and a document
// accepted has no key that differs from a field's name only in case.
func FuzzDecodeTOML(f *testing.F) {
	f.Add([]byte("family = \"a\"\n[[images]]\narch = \"x\"\n"))
	f.Add([]byte("Family = \"a\"\n[bases.q]\nARCH = 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d doc
		if DecodeTOML(b, &d) != nil {
			return
		}
		var raw map[string]any
		if _, err := toml.Decode(string(b), &raw); err != nil {
			t.Fatalf("accepted a document the TOML library does not decode: %v", err)
		}
		for k := range raw {
			for _, field := range []string{"family", "images", "bases"} {
				if k != field && strings.EqualFold(k, field) {
					t.Fatalf("accepted top-level key %q for %q", k, field)
				}
			}
		}
	})
}
