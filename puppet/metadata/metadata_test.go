package metadata

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const concat = `{
  "name": "puppetlabs-concat",
  "version": "9.0.1",
  "author": "puppetlabs",
  "dependencies": [{"name": "puppetlabs/stdlib", "version_requirement": ">= 9.0.0 < 10.0.0"}],
  "operatingsystem_support": [{"operatingsystem": "Debian", "operatingsystemrelease": ["10", "11", "12"]}],
  "requirements": [{"name": "puppet", "version_requirement": ">= 7.0.0 < 9.0.0"}],
  "pdk-version": "3.0.0"
}`

func TestParse(t *testing.T) {
	t.Parallel()
	m, err := Parse("metadata.json", []byte(concat))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "puppetlabs-concat" || m.Version != "9.0.1" || len(m.Dependencies) != 1 || len(m.OSSupport) != 1 {
		t.Fatalf("Parse = %+v", m)
	}
	d := m.Dependencies[0]
	for v, want := range map[string]bool{"9.0.0": true, "9.6.0": true, "8.6.0": false, "10.0.0": false, "main": false} {
		if d.Allows(v) != want {
			t.Errorf("%s %q allows %s = %v, want %v", d.Name, d.Range, v, !want, want)
		}
	}
	p, ok := m.Puppet()
	if !ok || !p.Allows("7.23.0") || p.Allows("9.0.0") {
		t.Errorf("Puppet() = %+v, %v", p, ok)
	}
	for _, c := range []struct{ r, v string }{{"1.x", "1.9.0"}, {">= 4.13.1", "9.0.0"}, {"1.2.3", "1.2.3"}, {"", "0.1.0"}, {">= 1.0.0 < 2.0.0 || >= 3.0.0", "3.1.0"}} {
		if !(Dependency{Name: "x", Range: c.r}).Allows(c.v) {
			t.Errorf("%q does not allow %s", c.r, c.v)
		}
	}
	if Slug("PuppetLabs/stdlib") != "puppetlabs-stdlib" || Short("puppetlabs/stdlib") != "stdlib" {
		t.Error("Slug/Short")
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ src, want string }{
		{"{", "is not JSON"},
		{`{"name": "a-b", "version": 1}`, "version is a JSON number, want a string"},
		{`{"name": "a-b", "version": "1.0"}`, `version "1.0" is not X.Y.Z`},
		{`{"name": "a-b", "version": "1.0.0", "dependencies": [{"name": "x-y", "version_requirement": ">= banana"}]}`, `x-y: version_requirement ">= banana" does not parse`},
		{`{"name": "a-b", "version": "1.0.0", "dependencies": {"name": "x"}}`, "dependencies is a JSON object"},
		{`{"version": "1.0.0"} {}`, "more than one JSON value"},
		{`{"name": "a-b", "version": "1.0.0", "x": "` + strings.Repeat("y", MaxSize) + `"}`, "larger than 1024 KiB"},
	} {
		if _, err := Parse("m/metadata.json", []byte(c.src)); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "m/metadata.json") {
			t.Errorf("Parse(%.60q) = %v, want an error naming the file and saying %q", c.src, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(concat))
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse("f", b)
		if err != nil {
			return
		}
		for _, d := range append(m.Dependencies, m.Requirements...) {
			d.Allows(m.Version)
			if _, err := d.Constraint(); err != nil {
				t.Fatalf("accepted a range that does not parse: %q", d.Range)
			}
		}
	})
}

// Ranges as SemanticPuppet's grammar writes them, and the versions each
// must refuse: a module outside its dependency's range is never taken
// for in it.
func TestRangesRefuse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		rng     string
		in, out []string
	}{
		{">= 1.0.0 < 2.0.0", []string{"1.0.0", "1.9.9"}, []string{"0.9.9", "2.0.0", "2.1.0", "1.0.0-rc1"}},
		{"1.x", []string{"1.0.0", "1.7.3"}, []string{"0.9.0", "2.0.0"}},
		{"1.2.x", []string{"1.2.0", "1.2.9"}, []string{"1.3.0", "1.1.9"}},
		{"^1.2.3", []string{"1.2.3", "1.9.0"}, []string{"1.2.2", "2.0.0"}},
		{"~1.2.3", []string{"1.2.3", "1.2.9"}, []string{"1.3.0"}},
		{"1.2.3 - 2.3.4", []string{"1.2.3", "2.3.4"}, []string{"1.2.2", "2.3.5"}},
		{">= 4.13.0 < 10.0.0 || >= 11.0.0", []string{"9.6.0", "11.2.0"}, []string{"10.0.0", "4.12.0"}},
	} {
		d := Dependency{Name: "puppetlabs/stdlib", Range: c.rng}
		for _, v := range c.in {
			if !d.Allows(v) {
				t.Errorf("%q does not allow %s", c.rng, v)
			}
		}
		for _, v := range c.out {
			if d.Allows(v) {
				t.Errorf("%q allows %s", c.rng, v)
			}
		}
		if d.Allows("main") {
			t.Errorf("%q allows the branch name main", c.rng)
		}
	}
}
