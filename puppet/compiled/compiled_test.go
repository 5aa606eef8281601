package compiled

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

func read(t *testing.T, name string) *Catalog {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromPuppet(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// What Puppet prints, read twice with other timestamps and UUIDs, is the
// same bytes; a Sensitive value is kept as its digest, never in clear.
func TestNormalised(t *testing.T) {
	t.Parallel()
	c := read(t, "old.json")
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"catalog_uuid", "1796624875", "old-secret"} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("the normalised catalog holds %q:\n%s", s, b)
		}
	}
	if !bytes.Contains(b, []byte(`"password": "Sensitive [sha256 `)) {
		t.Errorf("the Sensitive password is not kept as its digest:\n%s", b)
	}
	again, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := again.Marshal()
	if !bytes.Equal(b, b2) {
		t.Errorf("a normalised catalog read back writes other bytes:\n%s\n---\n%s", b, b2)
	}
	if c.Node != "web1.example.com" || len(c.Resources) != 10 || c.Resources[0].Type != "Apt::Source" || c.Classes[0] != "Profile::App" {
		t.Errorf("catalog: node %q, %d resources, first %+v, classes %v", c.Node, len(c.Resources), c.Resources[0], c.Classes)
	}
}

// The diff a release engineer reads: parameters with old and new values,
// added and removed resources; tags, manifest lines, ordering parameters,
// the order of subscribe and exported resources are no change.
func TestCompare(t *testing.T) {
	t.Parallel()
	d := Compare(read(t, "old.json"), read(t, "new.json"))
	got := strings.Join(d.Lines(), "\n")
	want := []string{
		"+ File[/etc/golden-new]",
		"- Package[telnet]",
		"~ Apt::Source[debian] pin.priority: 500 -> 990",
		"~ File[/etc/app.conf] mode: '0644' -> '0640'",
		"~ Ini_setting[app] value: 'info' -> 'debug'",
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("the diff lacks %q:\n%s", w, got)
		}
	}
	for _, no := range []string{"Exec[tagonly]", "Service[app]", "Host[", "Class[", "require", "old-secret", "new-secret"} {
		if strings.Contains(got, no) {
			t.Errorf("the diff shows %q, which has no effect or is secret:\n%s", no, got)
		}
	}
	if !strings.Contains(got, "~ User[deploy] password: 'Sensitive [sha256 ") || len(d.Changed) != 4 {
		t.Errorf("a changed Sensitive value is shown as changed digests (%d changes):\n%s", len(d.Changed), got)
	}
	if same := Compare(read(t, "old.json"), read(t, "old.json")); !same.Empty() {
		t.Errorf("a catalog against itself: %v", same.Lines())
	}
}

// octocatalog-diff (Debian's 2.1) on the same two catalogs finds the same
// resources and parameters changed, but for the tag metaparameter, which
// imagebake leaves out as it leaves out tags.
func TestSameAsOctocatalogDiff(t *testing.T) {
	t.Parallel()
	od, err := exec.LookPath("octocatalog-diff")
	if err != nil {
		if os.Getenv("IMAGEBAKE_NO_SKIP") != "" {
			t.Fatalf("octocatalog-diff is needed (make test installs it): %v", err)
		}
		t.Skip("octocatalog-diff not installed")
	}
	dir := t.TempDir()
	for _, n := range []string{"old.json", "new.json"} {
		b, _ := os.ReadFile(filepath.Join("testdata", n))
		testutil.Must(t, os.WriteFile(filepath.Join(dir, n), b[bytes.IndexByte(b, '{'):], 0o644))
	}
	cmd := exec.Command(od, "--from-catalog", filepath.Join(dir, "old.json"), "--to-catalog", filepath.Join(dir, "new.json"), "--output-format", "json")
	cmd.Dir = dir
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 { // 2: there are differences
		t.Fatalf("octocatalog-diff: %v", err)
	}
	var res struct {
		Diff []struct {
			Type      string   `json:"diff_type"`
			Resource  string   `json:"type"`
			Title     string   `json:"title"`
			Structure []string `json:"structure"`
		} `json:"diff"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("octocatalog-diff's JSON: %v\n%s", err, out)
	}
	var theirs []string
	tagParam := false
	for _, e := range res.Diff {
		s := e.Type + " " + e.Resource + "[" + e.Title + "]"
		if len(e.Structure) > 1 {
			s += " " + e.Structure[1]
		}
		if s == "! Exec[tagonly] tag" { // "!": a changed array
			tagParam = true
			continue
		}
		theirs = append(theirs, s)
	}
	if !tagParam {
		t.Errorf("octocatalog-diff no longer shows the tag metaparameter's change: %s", out)
	}
	d := Compare(read(t, "old.json"), read(t, "new.json"))
	var ours []string
	for _, r := range d.Added {
		ours = append(ours, "+ "+r)
	}
	for _, r := range d.Removed {
		ours = append(ours, "- "+r)
	}
	for _, c := range d.Changed {
		for _, p := range c.Parameters {
			ours = append(ours, "~ "+c.Resource+" "+p.Name)
		}
	}
	sort.Strings(theirs)
	sort.Strings(ours)
	if !reflect.DeepEqual(ours, theirs) {
		t.Errorf("imagebake's diff:\n  %s\noctocatalog-diff's:\n  %s", strings.Join(ours, "\n  "), strings.Join(theirs, "\n  "))
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"old.json", "new.json"} {
		b, _ := os.ReadFile(filepath.Join("testdata", n))
		f.Add(b)
	}
	f.Add([]byte(`{"name":"x","resources":[{"type":"A","title":1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := FromPuppet(b)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("a catalog written does not read back: %v\n%s", err, out)
		}
		out2, _ := again.Marshal()
		if !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
		_ = Compare(c, again).Lines()
	})
}

// A value with terminal control characters is shown escaped.
func TestRenderEscapes(t *testing.T) {
	t.Parallel()
	if got := render("a\x1b[2Jb\n'c"); got != `'a\u001b[2Jb\n\'c'` {
		t.Errorf("render = %s", got)
	}
}
