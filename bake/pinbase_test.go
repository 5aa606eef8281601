package bake

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

const pinRef = "registry.example.com/debian@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// base pin --write edits imagebake.toml in place: the old base's keys
// give way to image = REF, every comment and other line stays.
func TestSetBaseImage(t *testing.T) {
	t.Parallel()
	in, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "testdata", "example", "control", "imagebake.toml.in"))
	if err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(string(in), "@BASE_SHA256@", strings.Repeat("a", 64))
	out, err := SetBaseImage([]byte(src), "base", pinRef)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	want := strings.Replace(src, "rootfs = \"base/rootfs.tar.gz\"\nsha256 = \""+strings.Repeat("a", 64)+"\"\n", "image = \""+pinRef+"\"\n", 1)
	if got != want {
		t.Errorf("edited imagebake.toml:\n%s\nwant:\n%s", got, want)
	}
	// again: a no-op
	if again, err := SetBaseImage(out, "base", pinRef); err != nil || string(again) != got {
		t.Errorf("a second edit changed the file (%v):\n%s", err, again)
	}
	// a per-arch table is added when missing, after everything else
	per, err := SetBaseImage(out, "bases.arm64", pinRef)
	if err != nil || !strings.HasSuffix(string(per), "\n[bases.arm64]\nimage = \""+pinRef+"\"\n") || !strings.HasPrefix(string(per), got) {
		t.Errorf("per-arch edit (%v):\n%s", err, per)
	}
	// a base written as a dotted key is not edited behind the user's back
	dotted := "family = \"x\"\narches = [\"amd64\"]\nbase.scratch = true\n[agents]\nname = \"a\"\nmajor = \"1\"\n"
	if _, err := SetBaseImage([]byte(dotted), "base", pinRef); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("dotted base = %v, want a config error naming line 3", err)
	}
	// a reference that is no digest is refused: the result must parse
	if _, err := SetBaseImage([]byte(src), "base", "registry.example.com/debian:12"); !errors.Is(err, ErrConfig) {
		t.Errorf("a tag reference = %v, want a config error", err)
	}
}

func FuzzSetBaseImage(f *testing.F) {
	f.Add([]byte("family = \"x\"\narches = [\"amd64\"]\n[base]\nscratch = true # none\n[agents]\nname = \"a\"\nmajor = \"1\"\n"))
	f.Add([]byte("[base]\r\nrootfs = \"r\"\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := SetBaseImage(b, "base", pinRef)
		if err != nil {
			return
		}
		c, err := ParseConfig(out)
		if err != nil || c.Base == nil || c.Base.Image != pinRef {
			t.Fatalf("SetBaseImage returned a file that does not pin the base: %v", err)
		}
	})
}
