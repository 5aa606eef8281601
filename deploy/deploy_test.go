package deploy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/catalog"
)

var update = flag.Bool("update", false, "rewrite golden files")

func fixture(t testing.TB) *catalog.Catalog {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "catalog.toml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		testutil.Must(t, os.WriteFile(p, []byte(got), 0o644))
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update if on purpose):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func load(t *testing.T, name string) *File {
	t.Helper()
	f, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSelectGolden(t *testing.T) {
	t.Parallel()
	c := fixture(t)
	var b strings.Builder
	for _, name := range []string{"deploy.yaml", "single.yaml"} {
		for _, s := range load(t, name).Selections {
			r, err := Resolve(c, "catalog.toml", s)
			if err != nil {
				fmt.Fprintf(&b, "%s %q: %v\n", s.Family, s.Version, err)
				continue
			}
			for _, im := range r.Images {
				fmt.Fprintf(&b, "%s %q -> %s %s %s\n", label(s), s.Version, r.Release, im.Name, im.Digest)
			}
		}
	}
	golden(t, "select.txt", b.String())
}

func label(s Selection) string {
	if s.Key == "" {
		return "(single)"
	}
	return s.Key
}

func TestCheckGolden(t *testing.T) {
	t.Parallel()
	c := fixture(t)
	var b strings.Builder
	for _, day := range []string{"2026-10-10", "2026-10-20", "2026-12-15", "2027-02-01"} {
		now, _ := time.Parse("2006-01-02", day)
		fmt.Fprintf(&b, "== at %s\n", day)
		for _, s := range load(t, "deploy.yaml").Selections {
			r, err := Resolve(c, "catalog.toml", s)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range Check(r, now) {
				fmt.Fprintln(&b, f)
			}
		}
	}
	golden(t, "check.txt", b.String())
}

func TestUpgradeGoldenAndRewrite(t *testing.T) {
	t.Parallel()
	c := fixture(t)
	f := load(t, "deploy.yaml")
	var b strings.Builder
	for _, sc := range []struct {
		name  string
		scope Scope
	}{{"patch", Patch}, {"minor", Minor}, {"major", Major}} {
		steps, err := Upgrade(context.Background(), c, "catalog.toml", f, sc.scope, nil)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "== %s\n", sc.name)
		for _, s := range steps {
			fmt.Fprintf(&b, "%s: %s -> %s value %q security %v major %v %s\n", s.Key, s.From, s.To, s.NewValue, s.Security, s.MajorMove, s.Note)
		}
		out := Write(f, steps)
		golden(t, "deploy."+sc.name+".yaml", string(out))
		// the rewrite is still a valid deploy file whose selections mean the targets
		g, err := Parse("rewritten", out)
		if err != nil {
			t.Fatalf("%s rewrite does not parse: %v", sc.name, err)
		}
		for i, s := range g.Selections {
			r, err := Resolve(c, "catalog.toml", s)
			if err != nil {
				t.Fatal(err)
			}
			if steps[i].NewValue != "" && r.Release != steps[i].To {
				t.Errorf("%s: after rewrite %s selects %s, want %s", sc.name, s.Key, r.Release, steps[i].To)
			}
		}
		// only version values changed: every comment line is still there
		for _, line := range strings.Split(string(f.src), "\n") {
			if i := strings.Index(line, "#"); i >= 0 && !strings.Contains(string(out), line[i:]) {
				t.Errorf("%s rewrite lost the comment %q", sc.name, line[i:])
			}
		}
	}
	golden(t, "upgrade.txt", b.String())
}

func TestNoMatchAndArch(t *testing.T) {
	t.Parallel()
	c := fixture(t)
	tests := []struct{ src, want string }{
		{"image: refspec\nversion: \"3\"\n", `file:2:10: no release of refspec matches "3" in catalog.toml; it has 1.3.0 (obsolete), 1.4.0, 1.4.1 (revoked), 1.4.2, 1.5.0, 2.0.0, 2.1.0-rc.1`},
		{"image: nope\nversion: \"1\"\n", "file:1:1: image nope is not in the catalog catalog.toml (families: refspec, tools)"},
		{"image: tools\nversion: \"1\"\narch: arm64\n", "tools 1.0.0 (for \"1\") has no arm64 image (it has amd64)"},
		{"image: refspec\nversion: \"2.1\"\n", "no release of refspec matches \"2.1\""}, // pre-releases only when named
	}
	for _, tt := range tests {
		f, err := Parse("file", []byte(tt.src))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Resolve(c, "catalog.toml", f.Selections[0])
		if !errors.Is(err, ErrNoMatch) || !errors.Is(err, failure.ErrNotFound) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Resolve(%q) = %v, want ErrNoMatch containing %q", tt.src, err, tt.want)
		}
	}
	f, _ := Parse("file", []byte("image: refspec\nversion: \"2.1.0-rc.1\"\n"))
	if r, err := Resolve(c, "c", f.Selections[0]); err != nil || r.Release != "2.1.0-rc.1" {
		t.Errorf("a named pre-release = %v, %v", r, err)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src       string
		line, col int
		want      string
	}{
		{"images:\n  web:\n    image: refspec\n    verison: \"1\"\n", 4, 5, `unknown key "verison"`},
		{"images:\n  web:\n    image: refspec\n", 2, 3, "needs image: and version:"},
		{"image: [a, b]\nversion: \"1\"\n", 1, 8, "image wants a string"},
		{"image: refspec\nversion: \"x.2\"\n", 2, 10, "left-anchored"},
		{"images: [1, 2]\n", 1, 9, "wants a mapping"},
		{"image: refspec\nversion: \"1\"\narch: {a: b}\n", 3, 7, "arch wants a name or a list"},
		{"image: refspec\n  version: : :\n", 1, 1, "not YAML"},
		{"- a\n- b\n", 1, 1, "a deploy file is a mapping"},
		{"image: refspec\nversion: \"1\"\nimages: {}\n", 1, 8, "top-level image: with images:"},
		{"images:\n  web:\n    image: a\n    version: \"1\"\n  db:\n    image: b\n    version: \"1\"\n  web:\n    image: c\n    version: \"2\"\n", 8, 3, `selection "web" given twice, at lines 2 and 8`},
		{"image: a\nversion: \"1\"\nimage: b\n", 3, 1, `key "image" given twice, at lines 1 and 3`},
		{"images:\n  web: &w\n    image: r\n    version: \"1\"\n  db: *w\n", 2, 8, "anchor &w: a deploy file has no anchors or aliases"},
		{"image: !!binary cmVmc3BlYw==\nversion: \"1\"\n", 1, 8, "YAML tag !!binary: a deploy file holds plain strings"},
		{"image: !custom r\nversion: \"1\"\n", 1, 8, "YAML tag !custom"},
		{"image: r\nversion: !!int 1\n", 2, 10, "YAML tag !!int"},
		{"image: r\nversion: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n", 1, 1, "exceeded max depth"},
		{yamlBomb(), 1, 4, "anchor &a"},
	}
	for _, tt := range tests {
		f, err := Parse("d.yaml", []byte(tt.src))
		if err == nil {
			_, err = Resolve(fixture(t), "c", f.Selections[0])
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.Pos.Line != tt.line || pe.Pos.Col != tt.col || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want d.yaml:%d:%d ... %q", tt.src, err, tt.line, tt.col, tt.want)
		}
	}
}

// Every problem of a deploy file is reported in one run, in file order,
// a misspelt key with the key it is nearest to; each is a usage error.
func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	src := "catalog: s\nimages:\n  web:\n    imgae: refspec\n    version: \"1\"\n  db:\n    image: refspec\n    version: \"x.2\"\n  cache:\n    image: refspec\n    verison: \"2\"\n    arhc: amd64\n"
	_, err := Parse("d.yaml", []byte(src))
	var es Errors
	if !errors.As(err, &es) || !errors.Is(err, failure.ErrUsage) {
		t.Fatalf("Parse = %v, want Errors (usage errors)", err)
	}
	want := []string{
		`d.yaml:4:5: unknown key "imgae": did you mean "image"?`,
		`d.yaml:8:14: version "x.2": versions are left-anchored`,
		`d.yaml:11:5: unknown key "verison": did you mean "version"?`,
		`d.yaml:12:5: unknown key "arhc": did you mean "arch"?`,
	}
	if len(es) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(es), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(es[i].Error(), w) {
			t.Errorf("problem %d = %q, want it to start %q", i+1, es[i].Error(), w)
		}
	}
	if _, err := Parse("d.yaml", []byte("image: r\nversion: \"1\"\nfoo: bar\n")); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("a key near none = %v, want it unknown without a suggestion", err)
	}
}

// yamlBomb is the billion laughs: nine levels of nine aliases each.
func yamlBomb() string {
	b := "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n"
	prev := "a"
	for i := range 9 {
		n := string(rune('b' + i))
		b += n + ": &" + n + " [" + strings.Repeat("*"+prev+",", 8) + "*" + prev + "]\n"
		prev = n
	}
	return b + "image: r\nversion: \"1\"\n"
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"deploy.yaml", "single.yaml"} {
		b, _ := os.ReadFile(filepath.Join("testdata", n))
		f.Add(b)
	}
	for _, brk := range []string{"\r", "\u0085", "\u2028", "\u2029"} {
		f.Add([]byte("# a" + brk + "# b\nimages:\n  web:\n    image: r\n    version: \"1.4\"\n#   version: \"1.4\"\n"))
	}
	f.Add([]byte("\ufeffimage: r\nversion: 1.4\n"))
	f.Add([]byte(yamlBomb()))
	f.Add([]byte("images:\n  web: &w\n    image: r\n    version: !!str \"1\"\n  db: *w\n"))
	f.Add([]byte{0xff, 0xfe, 'i', 0, ':', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse("fuzz", b)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not positioned", err)
			}
			return
		}
		vals := map[int]string{}
		for i := range d.Selections {
			vals[i] = "9.9.9"
		}
		out := d.Rewrite(vals)
		g, err := Parse("rewritten", out)
		if err != nil {
			t.Fatalf("rewriting versions broke the file: %v\n%s", err, out)
		}
		for _, s := range g.Selections {
			if s.Version != "9.9.9" {
				t.Fatalf("rewritten version = %q\n%s", s.Version, out)
			}
		}
	})
}

// BenchmarkCheck1000Files checks 1,000 deploy files against a catalog of
// 10,000 releases.
func BenchmarkCheck1000Files(b *testing.B) {
	c := &catalog.Catalog{Format: catalog.Format}
	for fam := range 10 {
		f := catalog.Family{Name: fmt.Sprintf("fam%d", fam), GraceDays: 14}
		for i := range 1000 {
			v := fmt.Sprintf("%d.%d.%d", i/100, (i/10)%10, i%10)
			f.Releases = append(f.Releases, catalog.Release{Version: v, Date: time.Unix(int64(1.7e9)+int64(i)*3600, 0), Security: i%10 > 0, State: catalog.Active,
				ManifestDigest: "sha256:" + strings.Repeat("a", 64), Images: []catalog.Image{{Arch: "amd64", Name: "x", Digest: "d"}, {Arch: "arm64", Name: "y", Digest: "e"}}})
		}
		c.Families = append(c.Families, f)
	}
	data, err := c.Encode()
	if err != nil {
		b.Fatal(err)
	}
	var files [][]byte
	for i := range 1000 {
		files = append(files, []byte(fmt.Sprintf("catalog: c\nimages:\n  a:\n    image: fam%d\n    version: \"%d.%d\"\n    arch: [amd64, arm64]\n  b:\n    image: fam%d\n    version: \"~%d.2\"\n", i%10, i%10, i%7, (i+1)%10, i%9)))
	}
	now := time.Unix(2e9, 0)
	b.ResetTimer()
	for range b.N {
		cat, err := catalog.Parse(data) // the catalog is read once per run, as the CLI would
		if err != nil {
			b.Fatal(err)
		}
		for _, src := range files {
			d, err := Parse("f", src)
			if err != nil {
				b.Fatal(err)
			}
			for _, s := range d.Selections {
				r, err := Resolve(cat, "c", s)
				if err != nil {
					b.Fatal(err)
				}
				Check(r, now)
			}
		}
	}
}

// BenchmarkLargeFile parses and checks one deploy file with many
// selections: the cost must grow linearly (SELECTIONS=300000 for the
// hardening figure; `go test ./deploy -run '^$' -bench LargeFile -benchtime 1x`).
func BenchmarkLargeFile(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("SELECTIONS")); err == nil {
		n = v
	}
	var src strings.Builder
	src.WriteString("catalog: catalog.toml\nimages:\n")
	for i := range n {
		fmt.Fprintf(&src, "  s%d:\n    image: refspec\n    version: \"1.4\"\n", i)
	}
	data, err := os.ReadFile(filepath.Join("testdata", "catalog.toml"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1.79e9, 0)
	b.ResetTimer()
	for range b.N {
		cat, err := catalog.Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		d, err := Parse("big.yaml", []byte(src.String()))
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range d.Selections {
			r, err := Resolve(cat, "catalog.toml", s)
			if err != nil {
				b.Fatal(err)
			}
			Check(r, now)
		}
	}
	b.ReportMetric(float64(n), "selections")
}

// select hands out nothing revoked or obsolete: an exact pin to one is
// refused naming the replacement; a deprecated release comes with a warning.
func TestUsableRefusesRevokedAndObsolete(t *testing.T) {
	t.Parallel()
	c := fixture(t)
	for v, want := range map[string]string{"1.4.1": "revoked", "1.3.0": "obsolete"} {
		r, err := Resolve(c, "catalog.toml", Selection{Family: "refspec", Version: v})
		if err != nil {
			t.Fatal(err)
		}
		warn, err := Usable(r)
		if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "is "+want) || !strings.Contains(err.Error(), "replacement: 1.4.2") || warn != "" {
			t.Errorf("%s: %q, %v; want a policy error naming the replacement", v, warn, err)
		}
	}
	r, err := Resolve(c, "catalog.toml", Selection{Family: "refspec", Version: "1.4"})
	if err != nil {
		t.Fatal(err)
	}
	if warn, err := Usable(r); err != nil || warn != "" || r.Release != "1.4.2" {
		t.Errorf("1.4 -> %s: %q %v; want 1.4.2 with no word", r.Release, warn, err)
	}
	if r, err = Resolve(c, "catalog.toml", Selection{Family: "tools", Version: "0.9.0"}); err != nil {
		t.Fatal(err)
	}
	if warn, err := Usable(r); err != nil || !strings.Contains(warn, "deprecated since 2026-08-01: replaced by the 1.x line; replacement: 1.0.0") {
		t.Errorf("deprecated: %q %v", warn, err)
	}
}

// Revoking the security releases of a line moves a tracking selection
// back; check says which release was revoked and that its advisories are
// open again. upgrade on a revoked pin names the revocation and, when no
// release in scope replaces it, the flag the move needs.
func TestRevokedSecurityReleases(t *testing.T) {
	t.Parallel()
	c := fixture(t)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if err := c.SetState("refspec", "1.4.2", catalog.Revoked, "a broken openssl build", "", at); err != nil {
		t.Fatal(err)
	}
	r, err := Resolve(c, "catalog.toml", Selection{Family: "refspec", Version: "1.4"})
	if err != nil || r.Release != "1.4.0" {
		t.Fatalf("1.4 with 1.4.1 and 1.4.2 revoked = %+v, %v; want 1.4.0", r, err)
	}
	var msgs []string
	for _, f := range Check(r, at) {
		msgs = append(msgs, f.Severity+": "+f.Msg)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"warning: security release refspec 1.4.2 was revoked on 2026-11-01 (a broken openssl build): CVE-2026-2222, DSA-5999-1 open again for refspec 1.4.0",
		"warning: security release refspec 1.4.1 was revoked on 2026-05-03 (the agent binaries crash on arm64): CVE-2026-1111 open again for refspec 1.4.0",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("check of 1.4.0 does not say %q:\n%s", want, all)
		}
	}

	f := &File{Selections: []Selection{{Family: "refspec", Version: "1.4.1"}}}
	steps, err := Upgrade(context.Background(), fixture(t), "catalog.toml", f, Patch, nil)
	if err != nil || len(steps) != 1 || steps[0].To != "1.4.2" || !strings.Contains(steps[0].Withdrawn, "refspec 1.4.1 is revoked since 2026-05-03: the agent binaries crash on arm64; replacement: 1.4.2") ||
		strings.Join(steps[0].Advisories, ",") != "CVE-2026-2222,DSA-5999-1" {
		t.Errorf("upgrade --patch of the revoked 1.4.1 = %+v, %v", steps, err)
	}
	steps, err = Upgrade(context.Background(), c, "catalog.toml", f, Patch, nil)
	if err != nil || len(steps) != 1 || steps[0].To != "1.4.1" || !strings.Contains(steps[0].Withdrawn, "no release in this scope replaces it: pass --minor") {
		t.Errorf("upgrade --patch of 1.4.1 with 1.4.2 revoked too = %+v, %v; want the revocation and --minor named", steps, err)
	}
}

// End of life with no newer major to move to: check says none exists and
// who to ask, not to run an upgrade that finds nothing.
func TestEndOfLifeWithoutNewerMajor(t *testing.T) {
	t.Parallel()
	c := fixture(t)
	f := c.Family("refspec", false)
	var keep []catalog.Release
	for _, r := range f.Releases {
		if r.SemVer().Major() < 2 {
			keep = append(keep, r)
		}
	}
	f.Releases = keep
	r, err := Resolve(c, "catalog.toml", Selection{Family: "refspec", Version: "1.4.2"})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, fd := range Check(r, time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)) {
		all = append(all, fd.Msg)
	}
	if got := strings.Join(all, "\n"); !strings.Contains(got, "no supported major above 1 of refspec has a release yet") || strings.Contains(got, "upgrade --major") {
		t.Errorf("end of life with no major 2 release:\n%s", got)
	}
}

// FuzzParseLock: any bytes give a lock or a usage error, never a panic.
func FuzzParseLock(f *testing.F) {
	f.Add([]byte("version = 1\ndeploy_file = \"deploy.yaml\"\ncatalog = \"c\"\n[[selection]]\nfamily = \"r\"\nversion = \"1\"\nrelease = \"1.0.0\"\n[[selection.image]]\narch = \"amd64\"\nname = \"r-1.0.0-amd64\"\ndigest = \"sha256:00\"\n"))
	f.Add([]byte("version = 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseLock(b); err != nil && !errors.Is(err, failure.ErrUsage) {
			t.Errorf("ParseLock error %v is not a usage error", err)
		}
	})
}
