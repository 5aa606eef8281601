package release

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagebake/imagebake/manifests/manifest"
)

// One finding per release and advisory: the catalog's finding and the
// OSV finding of the same advisory (by alias) are one, its packages
// folded, its aliases and related ids shown; grouped by line, each line
// naming the release to cut once.
func TestGroup(t *testing.T) {
	t.Parallel()
	lack := func(adv, name, have, fixed string) Lack {
		return Lack{Advisory: adv, Kind: "package", Name: name, Have: have, Fixed: fixed}
	}
	found := []Finding{
		{Family: "example", Release: "1.1.0", Lack: lack("DSA-6001-1", "openssl", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1"), FixedIn: "1.0.1", Cut: "1.1.1", From: "catalog"},
		{Family: "example", Release: "1.1.0", Lack: lack("DSA-6001-1", "libssl3", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1"), FixedIn: "1.0.1", Cut: "1.1.1", From: "catalog"},
		{Family: "example", Release: "1.1.0", Lack: lack("DEBIAN-CVE-2026-1111", "openssl", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1"), Aliases: []string{"DSA-6001-1", "CVE-2026-1111"}, Cut: "1.1.1", From: "debian.zip:DEBIAN-CVE-2026-1111.json"},
		{Family: "example", Release: "1.1.0", Lack: lack("DSA-6002-1", "libc-bin", "2.36-9+deb12u3", "2.36-9+deb12u4"), Aliases: []string{"CVE-2026-2222"}, FixedIn: "1.0.2", Cut: "1.1.1", From: "catalog"},
		{Family: "example", Release: "1.0.0", Lack: lack("DSA-6002-1", "libc-bin", "2.36-9+deb12u3", "2.36-9+deb12u4"), Cut: "1.0.3", From: "catalog"},
	}
	lines := Group(found)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Family + " " + l.Line + ": cut " + l.Cut + "\n")
		for _, f := range l.Findings {
			b.WriteString("  " + f.String() + "\n")
		}
	}
	want := `example 1.0: cut 1.0.3
  1.0.0 lacks DSA-6002-1: libc-bin 2.36-9+deb12u3 < 2.36-9+deb12u4 (catalog)
example 1.1: cut 1.1.1
  1.1.0 lacks DSA-6001-1 (CVE-2026-1111, DEBIAN-CVE-2026-1111): libssl3, openssl 3.0.11-1~deb12u2 < 3.0.13-1~deb12u1; fixed in 1.0.1 (catalog, debian.zip:DEBIAN-CVE-2026-1111.json)
  1.1.0 lacks DSA-6002-1 (CVE-2026-2222): libc-bin 2.36-9+deb12u3 < 2.36-9+deb12u4; fixed in 1.0.2 (catalog)
`
	if b.String() != want {
		t.Errorf("grouped:\n%s\nwant:\n%s", b.String(), want)
	}
	j, _ := json.Marshal(lines)
	if !strings.Contains(string(j), `"packages":["libssl3, openssl 3.0.11-1~deb12u2 \u003c 3.0.13-1~deb12u1"]`) || !strings.Contains(string(j), `"cut":"1.1.1"`) {
		t.Errorf("--json: %s", j)
	}
}

// Memo reads a manifest once even when many goroutines ask for it at
// once.
func TestMemoReadsOnce(t *testing.T) {
	t.Parallel()
	var reads atomic.Int32
	gate := make(chan struct{})
	read := Memo(func(ctx context.Context, family, version string) (*manifest.Manifest, error) {
		reads.Add(1)
		<-gate // every caller arrives before the first read ends
		return &manifest.Manifest{Family: family, Release: version}, nil
	})
	var wg sync.WaitGroup
	got := make([]*manifest.Manifest, 16)
	for i := range got {
		wg.Go(func() { got[i], _ = read(context.Background(), "example", "1.0.0") })
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Errorf("16 concurrent asks read the manifest %d times, want once", n)
	}
	for _, m := range got {
		if m != got[0] || m == nil {
			t.Fatalf("callers got different manifests")
		}
	}
}
