package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

const oneSelection = "images:\n  web:\n    image: refspec\n    version: \"1.4\"\n"

// A selection appended while an upgrade resolved is not lost: the write
// is refused (exit 4) and the file keeps it.
func TestWriteFileRefusesAChangeMadeMeanwhile(t *testing.T) {
	t.Parallel()
	c := fixture(t)
	p := filepath.Join(t.TempDir(), "deploy.yaml")
	if err := os.WriteFile(p, []byte(oneSelection), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := Upgrade(context.Background(), c, "catalog.toml", f, Minor, nil)
	if err != nil {
		t.Fatal(err)
	}
	appended := oneSelection + "  db:\n    image: refspec\n    version: \"1.3\"\n"
	if err := os.WriteFile(p, []byte(appended), 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = WriteFile(context.Background(), f, steps)
	if !errors.Is(err, ErrChanged) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "changed while upgrading; nothing written") {
		t.Fatalf("WriteFile after a change = %v, want exit 4, changed while upgrading", err)
	}
	if b, _ := os.ReadFile(p); string(b) != appended {
		t.Errorf("the file is now\n%s\nwant the appended selection kept:\n%s", b, appended)
	}
	// unchanged, the same write goes through and keeps the file's mode
	if err := os.WriteFile(p, []byte(oneSelection), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFile(context.Background(), f, steps); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if fi, _ := os.Stat(p); string(b) == oneSelection || !strings.Contains(string(b), "version: \"1.5\"") || fi.Mode().Perm() != 0o640 {
		t.Errorf("after the write: mode %v\n%s", fi.Mode().Perm(), b)
	}
}

// A deploy file that is a symlink is written through: the link stays, the
// file it names gets the new versions.
func TestWriteFileThroughSymlink(t *testing.T) {
	t.Parallel()
	c := fixture(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "real", "deploy.yaml")
	testutil.Must(t, os.MkdirAll(filepath.Dir(target), 0o755))
	if err := os.WriteFile(target, []byte(oneSelection), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "deploy.yaml")
	if err := os.Symlink(filepath.Join("real", "deploy.yaml"), link); err != nil {
		t.Fatal(err)
	}
	f, err := Load(link)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := Upgrade(context.Background(), c, "catalog.toml", f, Minor, nil)
	if err != nil {
		t.Fatal(err)
	}
	written, err := WriteFile(context.Background(), f, steps)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer a symlink", link)
	}
	if b, _ := os.ReadFile(target); !strings.Contains(string(b), "\"1.5\"") {
		t.Errorf("the link's target was not upgraded:\n%s", b)
	}
	if real, _ := filepath.EvalSymlinks(target); written != real {
		t.Errorf("written %s, want %s", written, real)
	}
}

// Lines are counted as the YAML parser counts them: a comment holding a
// lone CR, NEL, LS or PS does not move the rewrite into a comment below.
func TestRewriteCountsLinesAsTheParser(t *testing.T) {
	t.Parallel()
	for _, brk := range []string{"\r", "\r\n", "\u0085", "\u2028", "\u2029"} {
		src := "# a" + brk + "# b\nimages:\n  web:\n    image: refspec\n    version: \"1.4\"\n#   version: \"1.4\"\n"
		f, err := Parse("d.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", brk, err)
		}
		got := string(f.Rewrite(map[int]string{0: "1.5"}))
		want := strings.Replace(src, "    version: \"1.4\"\n#", "    version: \"1.5\"\n#", 1)
		if got != want {
			t.Errorf("break %q: rewrite =\n%q\nwant\n%q", brk, got, want)
		}
	}
	// a byte order mark is no character of the first line
	f, err := Parse("d.yaml", []byte("\ufeffversion: \"1.4\"\nimage: refspec\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Rewrite(map[int]string{0: "1.5"})); got != "\ufeffversion: \"1.5\"\nimage: refspec\n" {
		t.Errorf("rewrite after a BOM = %q", got)
	}
}

// A deploy file in UTF-16 is named as such; one over the size cap is
// refused before the YAML parser reads it.
func TestNotUTF8AndTooLarge(t *testing.T) {
	t.Parallel()
	var u16 []byte
	u16 = append(u16, 0xff, 0xfe)
	for _, r := range utf16.Encode([]rune(oneSelection)) {
		u16 = append(u16, byte(r), byte(r>>8))
	}
	if _, err := Parse("d.yaml", u16); err == nil || !strings.Contains(err.Error(), "is UTF-16, not UTF-8") {
		t.Errorf("Parse(UTF-16) = %v", err)
	}
	if _, err := Parse("d.yaml", []byte("version: \"1.4\"\nimage: ref\xffspec\n")); err == nil || !strings.Contains(err.Error(), "d.yaml:2:1: is not UTF-8 (byte 26)") {
		t.Errorf("Parse(latin-1) = %v", err)
	}
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, []byte(oneSelection+"# "+strings.Repeat("x", MaxSize)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Errorf("Load(2 MiB) = %v", err)
	}
}
