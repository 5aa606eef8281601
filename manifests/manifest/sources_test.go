package manifest

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestSourcesRoundTrip(t *testing.T) {
	t.Parallel()
	s := &Sources{Version: 1, Source: []Source{
		{Kind: SourceControl, Name: "control repo", URL: "/x", Commit: strings.Repeat("a", 40), Tree: strings.Repeat("b", 40), Blob: "sha256:" + strings.Repeat("c", 64), Size: 10},
		{Kind: SourceForge, Name: "puppetlabs/stdlib", SHA256: strings.Repeat("d", 64), File: "puppetlabs-stdlib-9.4.1.tar.gz", Blob: "sha256:" + strings.Repeat("d", 64), Size: 5},
	}}
	p := filepath.Join(t.TempDir(), SourcesFileName)
	if err := s.Write(p); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSources(p)
	if err != nil || len(got.Source) != 2 || got.Source[1].File != "puppetlabs-stdlib-9.4.1.tar.gz" {
		t.Fatalf("read back: %+v, %v", got, err)
	}
}

// Every problem of a sources.toml is named in one error.
func TestSourcesRefused(t *testing.T) {
	t.Parallel()
	_, err := ParseSources([]byte("version = 1\n[[source]]\nkind = \"git\"\nname = \"ntp\"\nblob = \"x\"\nsize = 1\n[[source]]\nkind = \"forge\"\nname = \"a\"\nfile = \"../x.tar.gz\"\nsha256 = \"" + strings.Repeat("e", 64) + "\"\nblob = \"sha256:" + strings.Repeat("e", 64) + "\"\nsize = 1\n"))
	if err == nil || !strings.Contains(err.Error(), `source 1 (git "ntp"): blob "x"`) || !strings.Contains(err.Error(), "source 2 (forge") {
		t.Errorf("ParseSources = %v", err)
	}
}

func FuzzParseSources(f *testing.F) {
	f.Add([]byte("version = 1\n"))
	f.Add([]byte("version = 1\n[[source]]\nkind = \"agent\"\nname = \"amd64\"\nsha256 = \"" + strings.Repeat("e", 64) + "\"\nblob = \"sha256:" + strings.Repeat("e", 64) + "\"\nsize = 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSources(b)
		if err != nil {
			return
		}
		for _, x := range s.Source {
			if x.problem() != "" {
				t.Fatalf("accepted a source with a problem: %+v", x)
			}
		}
	})
}
