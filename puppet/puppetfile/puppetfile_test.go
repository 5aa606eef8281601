package puppetfile

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

func TestParseConstructs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []Module // Pos and Name fields compared separately
	}{
		{"forge slash with version", `mod 'puppetlabs/stdlib', '9.6.0'`,
			[]Module{{Author: "puppetlabs", Short: "stdlib", Kind: Forge, Version: "9.6.0"}}},
		{"forge dash, no version", `mod "puppetlabs-apt"`,
			[]Module{{Author: "puppetlabs", Short: "apt", Kind: Forge}}},
		{"forge :latest", `mod 'puppetlabs-concat', :latest`,
			[]Module{{Author: "puppetlabs", Short: "concat", Kind: Forge}}},
		{"git tag rocket", "mod 'apache',\n  :git => 'https://example.org/apache.git',\n  :tag => 'v1.0.0'",
			[]Module{{Short: "apache", Kind: Git, Source: "https://example.org/apache.git", RefType: Tag, Ref: "v1.0.0"}}},
		{"git branch label syntax", "mod 'site', git: 'file:///x.git', branch: 'feature#1'",
			[]Module{{Short: "site", Kind: Git, Source: "file:///x.git", RefType: Branch, Ref: "feature#1"}}},
		{"git commit", "mod 'a', :git => 'u', :commit => '0123456789abcdef0123456789abcdef01234567'",
			[]Module{{Short: "a", Kind: Git, Source: "u", RefType: Commit, Ref: "0123456789abcdef0123456789abcdef01234567"}}},
		{"git ref with default_branch, install_path, exclude_spec",
			"mod 'b', :git => 'u', :ref => 'main', :default_branch => 'main', :install_path => 'site', :exclude_spec => true",
			[]Module{{Short: "b", Kind: Git, Source: "u", RefType: Ref, Ref: "main", DefaultBranch: "main", InstallPath: "site", ExcludeSpec: true, ExcludeSpecSet: true}}},
		{"control_branch symbol", "mod 'c', :git => 'u', :branch => :control_branch, :default_branch => 'production'",
			[]Module{{Short: "c", Kind: Git, Source: "u", RefType: Branch, Ref: ControlBranch, DefaultBranch: "production"}}},
		{"local", "mod 'mine', :local => true",
			[]Module{{Short: "mine", Kind: Local}}},
		{"type git source version", "mod 'd', type: 'git', source: 'u', version: 'v2'",
			[]Module{{Short: "d", Kind: Git, Source: "u", RefType: Ref, Ref: "v2"}}},
		{"type forge version", "mod 'x/e', type: 'forge', version: '1.2.3'",
			[]Module{{Author: "x", Short: "e", Kind: Forge, Version: "1.2.3"}}},
		{"parentheses, trailing comma, multi-line", "mod('f',\n  :git => 'u',\n  :tag => 't',\n)\n",
			[]Module{{Short: "f", Kind: Git, Source: "u", RefType: Tag, Ref: "t"}}},
		{"hash in string is not a comment, comments after", "mod 'g', :git => 'http://h/#frag', :tag => \"v#1\" # trailing comment\n# mod 'ignored'",
			[]Module{{Short: "g", Kind: Git, Source: "http://h/#frag", RefType: Tag, Ref: "v#1"}}},
		{"escapes", `mod 'h', :git => "it's \"a\\b\"", :tag => 'it\'s'`,
			[]Module{{Short: "h", Kind: Git, Source: `it's "a\b"`, RefType: Tag, Ref: "it's"}}},
		{"block comment and continuation", "=begin\nmod 'no'\n=end\nmod 'i', \\\n :git => 'u', :tag => 't'",
			[]Module{{Short: "i", Kind: Git, Source: "u", RefType: Tag, Ref: "t"}}},
		{"semicolons", "mod 'x/j', '1.0.0'; mod 'x/k', '2.0.0'",
			[]Module{{Author: "x", Short: "j", Kind: Forge, Version: "1.0.0"}, {Author: "x", Short: "k", Kind: Forge, Version: "2.0.0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pf, err := Parse("Puppetfile", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.src, err)
			}
			var got []Module
			for _, m := range pf.Modules {
				m.Pos, m.Name = Pos{}, ""
				got = append(got, m)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.src, got, tt.want)
			}
		})
	}
}

func TestParseForgeAndModuledir(t *testing.T) {
	t.Parallel()
	src := "forge 'https://forge.example.org'\nmoduledir 'thirdparty'\n\nmod 'a/b', '1.0.0'\n"
	pf, err := Parse("P", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if pf.Forge != "https://forge.example.org" || pf.Moduledir != "thirdparty" {
		t.Errorf("Parse = forge %q moduledir %q, want https://forge.example.org thirdparty", pf.Forge, pf.Moduledir)
	}
	if got := pf.Modules[0].Pos; got != (Pos{File: "P", Line: 4, Col: 5}) {
		t.Errorf("module position = %v, want P:4:5", got)
	}
	if got := pf.Modules[0].Dir(pf.Moduledir); got != "thirdparty/b" {
		t.Errorf("Dir = %q, want thirdparty/b", got)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		src       string
		line, col int
		module    string
		contains  string
	}{
		{"unknown key", "mod 'a',\n  :git => 'u',\n  :tga => 'v1'", 3, 3, "a", `unknown option "tga"`},
		{"unknown label key", "mod 'a', git: 'u', tag: 't', branchh: 'x'", 1, 30, "a", `unknown option "branchh"`},
		{"conflicting refs", "mod 'a', :git => 'u',\n :tag => 'v1',\n :branch => 'main'", 3, 2, "a", "conflicting refs: :tag (2:2) and :branch (3:2)"},
		{"type version conflicts with tag", "mod 'a', type: 'git', source: 'u', version: 'v1', tag: 'v2'", 1, 51, "a", "conflicting refs"},
		{"duplicate by short name", "mod 'puppetlabs/stdlib', '1.0.0'\nmod 'stdlib', :git => 'u', :tag => 't'", 2, 5, "stdlib", "declared twice: Puppetfile:1:5"},
		{"git missing", "mod 'a', :tag => 'v1'", 1, 10, "a", ":git is missing"},
		{"git without ref", "mod 'a', :git => 'u'", 1, 10, "a", "no ref"},
		{"install path escapes", "mod 'a', :git => 'u', :tag => 't', :install_path => '../../etc'", 1, 53, "a", "escapes the environment"},
		{"install path absolute", "mod 'a', :git => 'u', :tag => 't', :install_path => '/etc'", 1, 53, "a", "is absolute"},
		{"moduledir escapes", "moduledir '../x'", 1, 11, "", "escapes the environment"},
		{"variable", "base = 'https://x'\nmod 'a', :git => base, :tag => 't'", 1, 1, "", `"base" is not a Puppetfile method`},
		{"variable as value", "mod 'a', :git => base, :tag => 't'", 1, 18, "", "variables and method calls"},
		{"loop", "['a','b'].each do |m|\n  mod m\nend", 1, 1, "", "loops"},
		{"interpolation", "mod 'a', :git => \"https://#{host}/a\", :tag => 't'", 1, 27, "", "interpolation"},
		{"if", "if true\nmod 'a/b'\nend", 1, 1, "", "conditionals"},
		{"unterminated string", "mod 'a', :git => 'u", 1, 18, "", "never closed"},
		{"forge needs author", "mod 'stdlib', '1.0.0'", 1, 5, "stdlib", "needs its author"},
		{"forge range version", "mod 'a/b', '>= 1.0'", 1, 12, "a/b", "not an exact version"},
		{"bad name", "mod '../evil', :git => 'u', :tag => 't'", 1, 5, "../evil", "not a module name"},
		{"commit not sha", "mod 'a', :git => 'u', :commit => 'main'", 1, 34, "a", "not a commit SHA"},
		{"tag wants string", "mod 'a', :git => 'u', :tag => true", 1, 31, "a", "wants a string"},
		{"trailing comma into next mod", "mod 'a', :git => 'u', :tag => 't',\n\nmod 'b', :git => 'u', :tag => 't'", 3, 1, "", "trailing comma"},
		{"unclosed paren", "mod('a', :git => 'u', :tag => 't'\n", 1, 1, "", "never closed"},
		{"option twice", "mod 'a', :git => 'u', :tag => 't', :tag => 'u'", 1, 36, "a", "given twice"},
		{"local with git", "mod 'a', :local => true, :git => 'u'", 1, 26, "a", "makes no sense"},
		{"git with positional version", "mod 'a', '1.0.0', :git => 'u', :tag => 't'", 1, 10, "a", "not a second argument"},
		{"unknown type", "mod 'a', type: 'svn', source: 'u'", 1, 16, "a", `unknown module type "svn"`},
		{"unsupported escape", `mod 'a', :git => "\u0041", :tag => 't'`, 1, 19, "", "escape"},
		{"NUL byte", "mod 'a/b'\x00", 1, 1, "", "not valid UTF-8"},
		{"module inside a module", "mod 'sym', :git => 'u', :tag => 't'\nmod 'inner', :git => 'u', :tag => 't', :install_path => 'modules/sym/outdir'", 2, 5, "inner", "inside the directory of module sym (line 1)"},
		{"module around the module dir", "moduledir 'site/mods'\nmod 'site', :git => 'u', :tag => 't', :install_path => '.'", 2, 5, "site", "holds the module dir"},
		{"string keys", "mod 'a', 'git' => 'u', 'tag' => 'v1'", 1, 10, "a", "string key \"git\": r10k does not read string keys as options; write :git"},
		{"version without type", "mod 'a/b', version: '1.0.0'", 1, 12, "a/b", "version: needs type: 'forge'"},
		{"git remote as an option", "mod 'x',\n  :git => '--upload-pack=sh -c \"id > /tmp/PWNED\" #', :branch => 'main'", 2, 11, "x", `starts with "-": git would read it as an option`},
		{"source remote as an option", "mod 'x', type: 'git', source: '-oProxyCommand=x', version: 'v1'", 1, 31, "x", `starts with "-"`},
		{"git remote with a newline", "mod 'x', :git => \"git://h/x\n--upload-pack=x\", :tag => 'v1'", 1, 18, "x", "control character U+000A"},
		{"git remote with a tab", "mod 'x', :git => 'git://h/x\t-u', :tag => 'v1'", 1, 18, "x", "control character U+0009"},
		{"tag as an option", "mod 'x', :git => 'u', :tag => '--upload-pack=x'", 1, 31, "x", `starts with "-"`},
		{"branch as a refspec", "mod 'x', :git => 'u', :branch => 'main:refs/heads/evil'", 1, 34, "x", `holds ':'`},
		{"ref with a control character", "mod 'x', :git => 'u', :ref => 'ma\x7fin'", 1, 31, "x", "control character U+007F"},
		{"default branch as an option", "mod 'x', :git => 'u', :branch => :control_branch, :default_branch => '-f'", 1, 70, "x", `starts with "-"`},
		{"forge URL as an option", "forge '--config=x'", 1, 7, "", `forge URL "--config=x" starts with "-"`},
		{"forge version then options", "mod 'a/b', '1.0.0', :exclude_spec => true", 1, 21, "a/b", "type: 'forge', version: \"1.0.0\""},
		{"forge version then install_path", "mod 'a/b', '1.0.0', :install_path => 'site'", 1, 21, "a/b", "takes no options"},
		{"missing comma", "mod 'alpha'\n  :git => 'https://x/alpha.git', :tag => 'v1'", 2, 3, "", "missing comma after string \"alpha\" at the end of line 1"},
		{"missing comma before a label", "mod 'alpha', :git => 'u'\n  tag: 'v1'", 2, 3, "", "missing comma after string \"u\" at the end of line 1"},
		{"svn", "mod 'a', :svn => 'https://svn/a'", 1, 10, "a", "Subversion modules (:svn) are not supported"},
		{"byte order mark inside", "mod 'a', :git => 'u', :tag => 't'\n\uFEFFmod 'b/c'", 2, 1, "", "unexpected U+FEFF"},
		{"control character", "mod 'a/b'\x01", 1, 10, "", "unexpected U+0001"},
		{"unclosed hash", "mod 'a', {:git => 'u', :tag => 't'", 1, 10, "", "{ is never closed"},
		{"hash without values", "mod 'a', {:git}", 1, 11, "", "in a hash has no value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("Puppetfile", []byte(tt.src))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error = %v, want *Error", tt.src, err)
			}
			if pe.Pos.Line != tt.line || pe.Pos.Col != tt.col || pe.Module != tt.module {
				t.Errorf("Parse(%q) error at %d:%d module %q, want %d:%d module %q (%v)", tt.src, pe.Pos.Line, pe.Pos.Col, pe.Module, tt.line, tt.col, tt.module, err)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.src, err, tt.contains)
			}
			if !strings.HasPrefix(err.Error(), "Puppetfile:") {
				t.Errorf("error %q does not start with the file name", err)
			}
			if !errors.Is(err, failure.ErrUsage) {
				t.Errorf("error %v is not a usage error", err)
			}
		})
	}
}

// What r10k accepts and imagebake used to refuse.
var update = flag.Bool("update", false, "rewrite the golden files")

func TestParseAcceptsWhatR10kAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		check     func(pf *Puppetfile) bool
	}{
		{"hash literal options", "mod 'x', {:git => 'https://x/x.git', :tag => 'v1'}", func(pf *Puppetfile) bool {
			return pf.Modules[0].Source == "https://x/x.git" && pf.Modules[0].Ref == "v1"
		}},
		{"hash literal over lines", "mod 'x', {\n  :git => 'u',\n  tag: 'v1',\n}\nmod 'y/z', '1.0.0'", func(pf *Puppetfile) bool {
			return len(pf.Modules) == 2 && pf.Modules[0].Ref == "v1"
		}},
		{"ref control_branch", "mod 'x', :git => 'u', :ref => :control_branch, :default_branch => 'main'", func(pf *Puppetfile) bool {
			m := pf.Modules[0]
			return m.Ref == ControlBranch && m.RefType == Branch && m.DefaultBranch == "main"
		}},
		{"__END__", "mod 'x', :git => 'u', :tag => 'v1'\n__END__\nanything { at all\n", func(pf *Puppetfile) bool { return len(pf.Modules) == 1 }},
		{"byte order mark", "\uFEFFmod 'x', :git => 'u', :tag => 'v1'", func(pf *Puppetfile) bool {
			return len(pf.Modules) == 1 && pf.Modules[0].Pos.Col == 5
		}},
		{"install_path ''", "mod 'x', :git => 'u', :tag => 'v1', :install_path => ''", func(pf *Puppetfile) bool {
			return pf.Modules[0].Dir("modules") == "x"
		}},
		{"exclusion", "exclusion 'apache'\nmod 'x', :git => 'u', :tag => 'v1'", func(pf *Puppetfile) bool {
			return len(pf.Modules) == 1 && len(pf.Notes) == 1 && strings.Contains(pf.Notes[0], "Puppetfile:1:1: exclusion \"apache\" does nothing")
		}},
	}
	for _, tt := range tests {
		pf, err := Parse("Puppetfile", []byte(tt.src))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !tt.check(pf) {
			t.Errorf("%s: parsed as %+v", tt.name, pf)
		}
	}
}

// Every error of a file in one run, in file order, each at its place: the
// golden file holds what ten independent mistakes give.
func TestEveryErrorInOneRun(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("testdata", "ten-errors.Puppetfile"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("ten-errors.Puppetfile", src)
	var list *ErrorList
	if !errors.As(err, &list) || list.Len() != 10 {
		t.Fatalf("Parse = %v, want ten errors", err)
	}
	golden := filepath.Join("testdata", "ten-errors.golden")
	if *update {
		testutil.Must(t, os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644))
	}
	want, _ := os.ReadFile(golden)
	if err.Error()+"\n" != string(want) {
		t.Errorf("errors differ from %s (go test -update if on purpose):\n%s", golden, err)
	}
	if !errors.Is(err, failure.ErrUsage) {
		t.Error("not a usage error")
	}

	// 60 errors: 50 shown, the rest counted
	_, err = Parse("Puppetfile", []byte(strings.Repeat("mod 'bad name'\n", 60)))
	if !errors.As(err, &list) || len(list.Errors) != MaxErrors || list.More != 10 || !strings.HasSuffix(err.Error(), "... and 10 more errors") {
		t.Errorf("60 errors = %d shown, %d more", len(list.Errors), list.More)
	}
}

func TestParseBenchPuppetfile(t *testing.T) {
	t.Parallel()
	// The shape the shared benchmark generator writes, with every module kind it uses.
	src, err := os.ReadFile(filepath.Join("testdata", "seed", "bench.Puppetfile"))
	if err != nil {
		t.Fatal(err)
	}
	pf, err := Parse("bench", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.Modules) != 4 {
		t.Fatalf("got %d modules, want 4", len(pf.Modules))
	}
	for i, want := range []RefType{Tag, Commit, Branch, Branch} {
		if pf.Modules[i].RefType != want {
			t.Errorf("module %d ref type = %s, want %s", i, pf.Modules[i].RefType, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "seed", "*"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("mod 'a', :git => 'u', :tag => 't'"))
	f.Add([]byte("mod('a/b', '1.0.0',)\n=begin\n=end\n"))
	f.Add([]byte("mod 'x', :git => '--upload-pack=touch /tmp/x #', :branch => '-main'"))
	f.Add([]byte("forge '-x'\nmod 'x', type: 'git', source: 'u\x01', version: 'a:b'"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pf, err := Parse("fuzz", b)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a positioned *Error", err)
			}
			var list *ErrorList
			if errors.As(err, &list) {
				if len(list.Errors) > MaxErrors || len(list.Errors) == 0 {
					t.Fatalf("%d errors reported", len(list.Errors))
				}
				for _, e := range list.Errors {
					if e.Pos.Line < 1 || e.Pos.Col < 1 {
						t.Fatalf("error position %v is not 1-based", e.Pos)
					}
				}
			}
			if pe.Pos.Line < 1 || pe.Pos.Col < 1 {
				t.Fatalf("error position %v is not 1-based", pe.Pos)
			}
			return
		}
		seen := map[string]bool{}
		for _, m := range pf.Modules {
			if seen[m.Short] {
				t.Fatalf("duplicate module %q accepted", m.Short)
			}
			seen[m.Short] = true
			if m.Kind == Git && (m.Source == "" || m.Ref == "") {
				t.Fatalf("git module %q without source or ref accepted", m.Name)
			}
			if m.Kind == Git && (strings.HasPrefix(m.Source, "-") || strings.HasPrefix(m.Ref, "-") || strings.HasPrefix(m.DefaultBranch, "-")) {
				t.Fatalf("git module %q with an option-like remote or ref accepted: %q %q", m.Name, m.Source, m.Ref)
			}
			if m.Kind == Git && strings.ContainsFunc(m.Source+m.Ref+m.DefaultBranch, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				t.Fatalf("git module %q with a control character accepted", m.Name)
			}
			if strings.Contains(m.Dir(pf.Moduledir), "..") {
				t.Fatalf("module %q installs outside the environment: %s", m.Name, m.Dir(pf.Moduledir))
			}
		}
	})
}

// TestHugeValuesBounded: a huge value is refused early, and no error
// echoes more than a few dozen characters of it.
func TestHugeValuesBounded(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 5<<20)
	tests := []struct{ name, src, want string }{
		{"huge string", "mod 'a', :git => '" + big + "', :tag => 't'", "longer than 4096 bytes"},
		{"huge identifier", "mod 'a', :" + big + " => 'u'", "longer than 256 characters"},
		{"long commit", "mod 'a', :git => 'u', :commit => '" + strings.Repeat("z", 4000) + "'", "(4000 bytes)"},
		{"huge file", "# " + strings.Repeat("c", MaxSize), "larger than 8 MiB"},
	}
	for _, tt := range tests {
		_, err := Parse("Puppetfile", []byte(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Parse = %.200v, want an error containing %q", tt.name, err, tt.want)
			continue
		}
		if len(err.Error()) > 400 {
			t.Errorf("%s: the error is %d bytes long: %.200s...", tt.name, len(err.Error()), err)
		}
	}
}

// The exclude_spec setting reaches only the modules that do not set
// :exclude_spec themselves.
func TestDefaultExcludeSpec(t *testing.T) {
	t.Parallel()
	pf, err := Parse("Puppetfile", []byte("mod 'a', :git => 'https://h/a.git', :tag => 'v1'\nmod 'b', :git => 'https://h/b.git', :tag => 'v1', :exclude_spec => false\nmod 'c', :git => 'https://h/c.git', :tag => 'v1', :exclude_spec => true\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, def := range []bool{true, false} {
		pf.DefaultExcludeSpec(def)
		got := fmt.Sprint(pf.Modules[0].ExcludeSpec, pf.Modules[1].ExcludeSpec, pf.Modules[2].ExcludeSpec)
		if want := fmt.Sprint(def, false, true); got != want {
			t.Errorf("default %v: exclude_spec of a, b, c = %s, want %s", def, got, want)
		}
	}
}
