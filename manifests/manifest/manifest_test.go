package manifest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/manifests/lockfile"
)

func sample() *Manifest {
	return &Manifest{Family: "example", Release: "1.0.0", Epoch: 1, Builder: "oci", Environment: "/e",
		Imagebake: Tool{Version: "v1", Go: "go1"}, Repo: Repo{URL: "file:///r", Tag: "v1.0.0", Commit: strings.Repeat("c", 40)},
		Puppetfile: Puppetfile{SHA256: strings.Repeat("d", 64), Moduledir: "modules", Modules: []lockfile.Module{{Name: "b", Kind: "local", Path: "modules/b"}, {Name: "a", Kind: "local", Path: "modules/a"}}},
		Images: []Image{
			{Arch: "arm64", OS: "linux", Name: "example-1.0.0-arm64", Digest: "sha256:1", Agent: Agent{Name: "m", Version: "2.0.0", SHA256: strings.Repeat("e", 64)}},
			{Arch: "amd64", OS: "linux", Name: "example-1.0.0-amd64", Digest: "sha256:2", Agent: Agent{Name: "m", Version: "2.0.0", SHA256: strings.Repeat("f", 64)}},
		}}
}

func TestEncodeSortedAndStable(t *testing.T) {
	b, err := sample().Encode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Images[0].Arch != "amd64" || m.Puppetfile.Modules[0].Name != "a" {
		t.Errorf("not sorted: %s %s", m.Images[0].Arch, m.Puppetfile.Modules[0].Name)
	}
	b2, _ := m.Encode()
	if !bytes.Equal(b, b2) {
		t.Error("re-encoding changed the bytes")
	}
}

func TestInputsDigestIgnoresOutputs(t *testing.T) {
	a, b := sample(), sample()
	b.Images[0].Digest, b.IndexDigest, b.Imagebake.Go = "sha256:other", "sha256:x", "go2"
	da, _ := a.ComputeInputsDigest()
	db, _ := b.ComputeInputsDigest()
	if da != db {
		t.Errorf("outputs changed the inputs digest: %s vs %s", da, db)
	}
	b.Images[0].Agent.Version = "2.0.1"
	if dc, _ := b.ComputeInputsDigest(); dc == da {
		t.Error("another agent version gives the same inputs digest")
	}
}

func FuzzParse(f *testing.F) {
	// Small seeds: the fuzzer minimises every input that finds new
	// coverage, in time quadratic in its size, and counts no executions
	// meanwhile; a 2 KB seed kept it minimising (6 executions in 45 s).
	f.Add([]byte("format = 1\nfamily = \"f\"\nrelease = \"1.0.0\"\n[repo]\ncommit = \"" + strings.Repeat("c", 40) + "\"\n[[image]]\narch = \"amd64\"\n[image.agent]\nversion = \"2.0.0\"\nsha256 = \"" + strings.Repeat("e", 64) + "\"\n"))
	f.Add([]byte("format = 1\nepoch = 1\n[puppetfile]\nmoduledir = \"modules\"\n[[puppetfile.module]]\nname = \"a\"\nkind = \"local\"\n"))
	f.Add([]byte("[[image]]\n[[image.layer]]\nrole = \"base\"\nsize = 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("an encoded manifest does not parse: %v", err)
		}
	})
}
