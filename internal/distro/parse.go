package distro

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// ParseOSRelease reads an os-release file (os-release(5): KEY=VALUE lines,
// values quoted in shell style). Lines it cannot read are reported with
// their number; what it could read is returned with them.
func ParseOSRelease(name string, b []byte) (*OS, []string) {
	vals := map[string]string{}
	var notes []string
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\"'") {
			notes = append(notes, fmt.Sprintf("%s:%d: not KEY=VALUE: %s", name, n+1, shown(line)))
			continue
		}
		uv, err := unquote(v)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s:%d: %s: %v", name, n+1, k, err))
			continue
		}
		vals[k] = uv
	}
	o := &OS{ID: vals["ID"], VersionID: vals["VERSION_ID"], Codename: vals["VERSION_CODENAME"], PrettyName: vals["PRETTY_NAME"]}
	if o.ID == "" {
		o.ID = "linux" // os-release(5): the default
		notes = append(notes, name+": no ID (taken as linux, the default)")
	}
	return o, notes
}

// unquote reads a shell-quoted os-release value.
func unquote(v string) (string, error) {
	if v == "" || (v[0] != '"' && v[0] != '\'') {
		if strings.ContainsAny(v, "\"'`$\\ ") {
			return "", fmt.Errorf("unquoted value with shell characters: %s", shown(v))
		}
		return v, nil
	}
	q := v[0]
	if len(v) < 2 || v[len(v)-1] != q {
		return "", fmt.Errorf("unterminated quote: %s", shown(v))
	}
	inner := v[1 : len(v)-1]
	if q == '\'' {
		return inner, nil
	}
	var sb strings.Builder
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		if c == '\\' && i+1 < len(inner) {
			i++
			sb.WriteByte(inner[i])
			continue
		}
		if c == '"' {
			return "", fmt.Errorf("unescaped quote inside: %s", shown(v))
		}
		sb.WriteByte(c)
	}
	return sb.String(), nil
}

// shown quotes at most 60 bytes of untrusted text, escaping what does not
// print.
func shown(s string) string {
	if len(s) > 60 {
		return strconv.QuoteToASCII(s[:60]) + "..."
	}
	return strconv.QuoteToASCII(s)
}

// stanza is one paragraph of a Debian control file: fields by name, and
// the line it starts on.
type stanza struct {
	line   int
	fields map[string]string
}

// paragraphs splits a deb822 file (dpkg status) into stanzas; continuation
// lines are joined to their field. A line that is neither a field nor a
// continuation is reported.
func paragraphs(name string, b []byte) ([]stanza, []string) {
	var out []stanza
	var notes []string
	var cur *stanza
	var last string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			cur = nil
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur == nil || last == "" {
				notes = append(notes, fmt.Sprintf("%s:%d: a continuation line outside a field", name, n))
				continue
			}
			cur.fields[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		if line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			notes = append(notes, fmt.Sprintf("%s:%d: not a field (Name: value): %s", name, n, shown(line)))
			continue
		}
		if cur == nil {
			out = append(out, stanza{line: n, fields: map[string]string{}})
			cur = &out[len(out)-1]
		}
		k = strings.ToLower(k)
		if _, dup := cur.fields[k]; dup {
			notes = append(notes, fmt.Sprintf("%s:%d: field %s given twice in one package", name, n, k))
		}
		cur.fields[k], last = strings.TrimSpace(v), k
	}
	if err := sc.Err(); err != nil {
		notes = append(notes, fmt.Sprintf("%s:%d: %v", name, n+1, err))
	}
	return out, notes
}

// ParseDpkgStatus reads a dpkg status file (or one file of the distroless
// status.d): the packages whose Status is "install ok installed" (status.d
// files carry no Status: every package in them is installed). A package
// without a name or version, or listed twice, is reported with its line.
func ParseDpkgStatus(name string, b []byte) ([]Package, []string) {
	st, notes := paragraphs(name, b)
	var out []Package
	for _, s := range st {
		f := s.fields
		if status, ok := f["status"]; ok && !strings.HasSuffix(strings.Join(strings.Fields(status), " "), " installed") {
			continue // config-files, half-installed, deinstall...
		}
		if f["package"] == "" || f["version"] == "" {
			notes = append(notes, fmt.Sprintf("%s:%d: a package without Package or Version", name, s.line))
			continue
		}
		p := Package{Name: f["package"], Version: f["version"], Arch: f["architecture"]}
		if src := f["source"]; src != "" {
			// "openssl (3.0.11-1)": the binary's version differs
			var ver string
			p.Source, ver, _ = strings.Cut(src, " ")
			if v := strings.TrimSpace(ver); strings.HasPrefix(v, "(") && strings.HasSuffix(v, ")") {
				p.SourceVersion = strings.TrimSpace(v[1 : len(v)-1])
			}
		}
		out = append(out, p)
	}
	return out, notes
}

// ParseApkInstalled reads the apk database (/lib/apk/db/installed): one
// stanza per package, single-letter fields (P name, V version, A arch,
// o origin, L license).
func ParseApkInstalled(name string, b []byte) ([]Package, []string) {
	var out []Package
	var notes []string
	var cur Package
	start := 0
	flush := func(n int) {
		switch {
		case cur == Package{}:
		case cur.Name == "" || cur.Version == "":
			notes = append(notes, fmt.Sprintf("%s:%d: a package without P: or V:", name, start))
		default:
			out = append(out, cur)
		}
		cur = Package{}
	}
	for n, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			flush(n + 1)
			continue
		}
		if cur == (Package{}) {
			start = n + 1
		}
		if len(line) < 2 || line[1] != ':' {
			notes = append(notes, fmt.Sprintf("%s:%d: not a field (X:value): %s", name, n+1, shown(line)))
			continue
		}
		v := line[2:]
		switch line[0] {
		case 'P':
			cur.Name = v
		case 'V':
			cur.Version = v
		case 'A':
			cur.Arch = v
		case 'o':
			cur.Source = v
		case 'L':
			cur.License = v
		}
	}
	flush(0)
	return out, notes
}

// duplicates reports packages listed twice (same name and arch) and
// keeps the first.
func duplicates(where string, ps []Package) ([]Package, []string) {
	seen := map[string]bool{}
	var out []Package
	var notes []string
	for _, p := range ps {
		k := p.Name + ":" + p.Arch
		if seen[k] {
			notes = append(notes, fmt.Sprintf("%s lists %s (%s) twice; the first is kept", where, p.Name, p.Arch))
			continue
		}
		seen[k] = true
		out = append(out, p)
	}
	return out, notes
}
