package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

// base pin --write puts the index digest of a tag into imagebake.toml,
// in place of the old base, keeping the comments; an arch the index lacks
// leaves the file as it was.
func TestBasePinWrite(t *testing.T) {
	_, host := testutil.MemRegistry(t, nil)
	idx, _ := testutil.BaseIndex(t, "amd64", "arm64")
	tag, _ := name.NewTag(host + "/library/debian:12")
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	cfg := filepath.Join(t.TempDir(), "imagebake.toml")
	src := "# the golden image\nfamily = \"example\"\narches = [\"amd64\", \"arm64\"]\n\n[base]  # what we build on\nrootfs = \"base/rootfs.tar.gz\" # old\nsha256 = \"" + strings.Repeat("a", 64) + "\"\n\n[agents]\nname = \"mozagent\"\nmajor = \"2\"\n"
	os.WriteFile(cfg, []byte(src), 0o644)
	if code := run(context.Background(), []string{"base", "pin", host + "/library/debian:12", "--write", "--config", cfg}); code != failure.ExitOK {
		t.Fatalf("base pin --write exit %d", code)
	}
	got, _ := os.ReadFile(cfg)
	want := strings.Replace(src, "rootfs = \"base/rootfs.tar.gz\" # old\nsha256 = \""+strings.Repeat("a", 64)+"\"\n", "image = \""+host+"/library/debian@"+d.String()+"\"\n", 1)
	if string(got) != want {
		t.Errorf("imagebake.toml after base pin --write:\n%s\nwant:\n%s", got, want)
	}
	// an arch the index lacks: exit 3, the file untouched
	os.WriteFile(cfg, []byte(strings.Replace(src, `"arm64"]`, `"arm64", "riscv64"]`, 1)), 0o644)
	before, _ := os.ReadFile(cfg)
	if code := run(context.Background(), []string{"base", "pin", host + "/library/debian:12", "--write", "--config", cfg}); code != failure.ExitNotFound {
		t.Errorf("base pin --write with an arch the index lacks: exit %d, want %d", code, failure.ExitNotFound)
	}
	if after, _ := os.ReadFile(cfg); string(after) != string(before) {
		t.Errorf("a refused base pin --write changed imagebake.toml")
	}
}
