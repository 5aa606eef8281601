package catalogpage

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/browser"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// fixture is family web: 1.0.0 (revoked for 1.0.1), 1.0.1 a security
// release fixing ADV-1 (module apache 1.2.0 -> 1.2.1), 1.1.0 deprecated
// and without the fix, 2.0.0 with it; major 1 ends 2027-01-10.
func fixture(t *testing.T) (*catalog.Catalog, map[string]*manifest.Manifest) {
	t.Helper()
	day := func(d int) time.Time { return time.Date(2026, 9, d, 0, 0, 0, 0, time.UTC) }
	ms := map[string]*manifest.Manifest{}
	mk := func(v, apache, stdlib string) {
		ms[v] = &manifest.Manifest{Family: "web", Release: v, Repo: manifest.Repo{Commit: strings.Repeat(v[:1], 40)},
			Images: []manifest.Image{{Arch: "amd64", Base: manifest.Base{Ref: "rootfs:debian-12@sha256:1"}, Agent: manifest.Agent{Name: "moz", Version: "2.4.0"}}},
			Puppetfile: manifest.Puppetfile{Modules: []lockfile.Module{
				{Name: "puppetlabs/apache", Kind: "forge", Source: "f", Version: apache},
				{Name: "puppetlabs/stdlib", Kind: "forge", Source: "f", Version: stdlib},
			}}}
	}
	mk("1.0.0", "1.2.0", "9.6.0")
	mk("1.0.1", "1.2.1", "9.6.0")
	mk("1.1.0", "1.2.0", "9.7.0")
	mk("2.0.0", "1.2.1", "10.0.0")
	ms["1.0.1"].Advisories = []string{"ADV-1"}
	fix := manifest.Fix{Advisory: "ADV-1", Modules: []manifest.ModuleFix{{Name: "puppetlabs/apache", Old: "1.2.0", New: "1.2.1"}}}
	digest := func(i int) string { return fmt.Sprintf("sha256:%064x", i) }
	c := &catalog.Catalog{Serial: 7, Families: []catalog.Family{{Name: "web", GraceDays: 14,
		Support: []catalog.Support{{Major: 1, EOL: time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC), NoticeDays: 90}},
		Releases: []catalog.Release{
			{Version: "1.0.0", Date: day(1), State: catalog.Revoked, Reason: "a broken agent <script>alert(1)</script>", Replacement: "1.0.1", StateDate: day(20), ManifestDigest: digest(1)},
			{Version: "1.0.1", Date: day(10), Security: true, Advisories: []string{"ADV-1"}, Fixes: []manifest.Fix{fix}, State: catalog.Active, ManifestDigest: digest(2)},
			{Version: "1.1.0", Date: day(5), State: catalog.Deprecated, StateDate: day(25), Reason: "use 2.0", ManifestDigest: digest(3)},
			{Version: "2.0.0", Date: day(15), State: catalog.Active, ManifestDigest: digest(4)},
		}}}}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	c, err = catalog.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return c, ms
}

func build(t *testing.T) *Page {
	t.Helper()
	c, ms := fixture(t)
	p, err := Build(context.Background(), c, "/srv/store/catalog/catalog.toml", func(_ context.Context, family, version string) (*manifest.Manifest, error) {
		return ms[version], nil
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuild(t *testing.T) {
	t.Parallel()
	p := build(t)
	if len(p.Families) != 1 {
		t.Fatalf("families: %+v", p.Families)
	}
	f := p.Families[0]
	var lines []string
	for _, l := range f.Lines {
		var vs []string
		for _, r := range l.Releases {
			vs = append(vs, r.Version+" "+r.State)
		}
		lines = append(lines, fmt.Sprintf("%s [%s] %s soon=%v", l.Name, strings.Join(vs, ", "), l.Countdown, l.Soon))
	}
	want := "1.0 [1.0.0 revoked, 1.0.1 active] ends in 33 days soon=true; 1.1 [1.1.0 deprecated] ends in 33 days soon=true; 2.0 [2.0.0 active]  soon=false"
	if got := strings.Join(lines, "; "); got != want {
		t.Errorf("lines:\n got %s\nwant %s", got, want)
	}
	if len(f.Advisories) != 1 {
		t.Fatalf("advisories: %+v", f.Advisories)
	}
	a := f.Advisories[0]
	if got := fmt.Sprint(a.ID, " ", a.FixedIn, a.Fix, a.Carried, a.Lacking); got != "ADV-1 [1.0.1] [module puppetlabs/apache 1.2.0 → 1.2.1] [1.0.1 2.0.0] [1.1.0]" {
		t.Errorf("advisory = %s (the revoked 1.0.0 lacks it too, and is left out)", got)
	}
	var levels []string
	for _, r := range f.Releases {
		levels = append(levels, r.Version+" "+r.Level)
	}
	if got := strings.Join(levels, ", "); got != "2.0.0 MAJOR, 1.1.0 MINOR, 1.0.1 SECURITY, 1.0.0 first release" {
		t.Errorf("release levels, newest first = %s", got)
	}
	// 1.1.0 was made before 1.0.1: it followed 1.0.0, and changed stdlib
	// only; 2.0.0 followed 1.1.0, the highest version made before it
	var follows []string
	for _, r := range f.Releases {
		follows = append(follows, fmt.Sprintf("%s<-%s(%d)", r.Version, r.Previous, len(r.Changes)))
	}
	if got := strings.Join(follows, " "); got != "2.0.0<-1.1.0(3) 1.1.0<-1.0.0(1) 1.0.1<-1.0.0(1) 1.0.0<-(0)" {
		t.Errorf("what each release followed (and its number of changes) = %s", got)
	}
	if len(f.Revoked) != 1 || f.Revoked[0].Version != "1.0.0" || f.Revoked[0].Replacement != "1.0.1" || f.Revoked[0].Date != "2026-09-20" {
		t.Errorf("revoked = %+v", f.Revoked)
	}
}

// The page renders the same bytes twice, escapes what the catalog says,
// and holds no script and no reference to anything outside it.
func TestRenderSelfContained(t *testing.T) {
	t.Parallel()
	p := build(t)
	a, err := p.Render()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := build(t).Render()
	if !bytes.Equal(a, b) {
		t.Error("two renders of the same catalog differ")
	}
	for _, bad := range []string{"<script", "http://", "https://", "src=", "@import", "url("} {
		if bytes.Contains(a, []byte(bad)) {
			t.Errorf("the page holds %q", bad)
		}
	}
	if !bytes.Contains(a, []byte("a broken agent &lt;script&gt;")) {
		t.Error("the revocation reason is not on the page, escaped")
	}
}

// Chromium renders the page: a person reads each section, the
// accessibility tree has its headings, lists and tables, the page asks
// the network for nothing, and the screenshot is kept in
// .cache/test-artifacts/catalog-page.png.
func TestPageInChromium(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name, err := build(t).Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	shot, err := filepath.Abs(filepath.Join(testutil.ModuleRoot(t), ".cache", "test-artifacts", "catalog-page.png"))
	if err != nil {
		t.Fatal(err)
	}
	r := browser.Render(t, name, shot, 1280, 900)
	t.Logf("screenshot: %s", shot)
	for _, want := range []string{
		"Family web", "Line 1.0", "end of life 2027-01-10: ends in 33 days", "no end of life set",
		"1.0.0 REVOKED", "revoked since 2026-09-20", "1.0.1 ACTIVE security",
		"ADV-1\t1.0.1\t\nmodule puppetlabs/apache 1.2.0 → 1.2.1\n\t1.0.1, 2.0.0\t1.1.0",
		"1.0.1 2026-09-10\tSECURITY\tsince 1.0.0:", "MAJOR module puppetlabs/stdlib",
		"1.0.0\t2026-09-20\ta broken agent <script>alert(1)</script>\t1.0.1",
	} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("the rendered page lacks %q; its text:\n%s", want, r.Text)
		}
	}
	for _, n := range []browser.Node{
		{Role: "heading", Name: "Family web"}, {Role: "heading", Name: "Advisories"}, {Role: "heading", Name: "Revoked releases"},
		{Role: "list", Name: "Releases of line 1.0, oldest first"}, {Role: "group", Name: "Line 1.1"},
		{Role: "table", Name: "Each advisory"}, {Role: "rowheader", Name: "ADV-1"}, {Role: "columnheader", Name: "Releases that lack it"},
	} {
		if !r.Has(n.Role, n.Name) {
			t.Errorf("the accessibility tree has no %s named %q", n.Role, n.Name)
		}
	}
	if len(r.Requests) != 0 {
		t.Errorf("the page asked the network for %v", r.Requests)
	}
}
