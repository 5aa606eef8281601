package agents

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

// BenchmarkSelect4Arches10k reads an index of 10,000 entries from a
// directory store and selects one major for 4 arches: the whole cost a
// bake pays.
func BenchmarkSelect4Arches10k(b *testing.B) {
	d, _ := NewDirStore(b.TempDir())
	ix := &Index{}
	arches := []string{"amd64", "arm64", "ppc64le", "s390x"}
	for i := 0; len(ix.Agents) < 10000; i++ {
		for _, a := range arches {
			ix.Agents = append(ix.Agents, Entry{Name: fmt.Sprintf("agent%d", i%5), Version: fmt.Sprintf("%d.%d.%d", i%7, i%50, i), OS: "linux", Arch: a, Size: 1, SHA256: strings.Repeat("a", 64), Path: fmt.Sprintf("f%d-%s.tar.gz", i, a)})
		}
	}
	testutil.Must(b, os.MkdirAll(d.Tools(), 0o755))
	blob, err := ix.Encode()
	if err != nil {
		b.Fatal(err)
	}
	testutil.Must(b, os.WriteFile(filepath.Join(d.Tools(), IndexName), blob, 0o644))
	b.ResetTimer()
	for range b.N {
		c := NewChain(d)
		if _, err := c.SelectArches(ctx, Query{Name: "agent3", Want: "3", OS: "linux"}, arches); err != nil {
			b.Fatal(err)
		}
	}
}
