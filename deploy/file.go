// Package deploy reads the YAML files in which users select images, resolves
// each selection against a catalog, enforces the lifecycle policy, and plans
// (and writes) upgrades.
//
// # Format
//
//	catalog: https://images.example.org/catalog.toml   # optional; --catalog overrides
//	images:
//	  web:
//	    image: refspec          # the family
//	    version: "1.4"          # see below
//	    arch: [amd64, arm64]    # optional; default: every arch of the release
//
// A file holding a single top-level image: and version: (and arch:) pair is
// accepted too. Unknown keys and wrong types are errors with file:line:col.
//
// # Versions
//
// "1.4.2" exactly; "1.4" the newest security release of 1.4; "1" or "1.x"
// the newest of major 1; "latest"; Masterminds constraints ("~1.4",
// "^1.4.2", ">=1.4 <2"). Left-anchored only ("x.2" is an error).
// Pre-releases only when named exactly. Ranges never choose obsolete or
// revoked releases.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/nearest"
	"github.com/imagebake/imagebake/internal/versionq"
)

// Pos is a place in a deploy file, 1-based.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is a problem at a position of a deploy file.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Unwrap classifies deploy file errors as usage errors.
func (e *Error) Unwrap() error { return failure.ErrUsage }

// Errors are every problem found in one deploy file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives each problem (each a usage error).
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// problems gathers a file's problems; err is nil without any, the one
// *Error with one, Errors with several.
type problems []*Error

func (ps *problems) add(err error) {
	var es Errors
	var e *Error
	switch {
	case errors.As(err, &es):
		*ps = append(*ps, es...)
	case errors.As(err, &e):
		*ps = append(*ps, e)
	}
}

func (ps problems) err() error {
	switch len(ps) {
	case 0:
		return nil
	case 1:
		return ps[0]
	}
	sort.SliceStable(ps, func(i, j int) bool {
		return ps[i].Pos.Line < ps[j].Pos.Line || ps[i].Pos.Line == ps[j].Pos.Line && ps[i].Pos.Col < ps[j].Pos.Col
	})
	return Errors(ps)
}

// File is a loaded deploy file.
type File struct {
	Path       string
	Catalog    string
	CatalogPos Pos
	Selections []Selection
	src        []byte
	lines      []int // offset of each line's start, made by locate
}

// Selection is one image selection.
type Selection struct {
	Key        string   `json:"key"` // "web"; "" for the single-image form
	Family     string   `json:"image"`
	Version    string   `json:"version"`
	Arches     []string `json:"arch,omitempty"`
	Pos        Pos      `json:"pos"`         // of the selection
	VersionPos Pos      `json:"version_pos"` // of the version value
	// offsets of the version value's text in the file, for rewriting
	start, end int
	quote      byte
}

// Load reads and checks a deploy file.
func Load(name string) (*File, error) {
	b, err := readCapped(name)
	if err != nil {
		return nil, fmt.Errorf("reading deploy file: %w", err)
	}
	return Parse(name, b)
}

// MaxSize is the largest deploy file read: real ones are a few KB, and the
// YAML parser holds several times a file's size in memory.
const MaxSize = 1 << 20

// readCapped reads the file at name, refusing one over MaxSize.
func readCapped(name string) ([]byte, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s is larger than %d MiB, more than a deploy file holds: %w", name, MaxSize>>20, failure.ErrUsage)
	}
	return b, nil
}

// Parse checks deploy file bytes; name is used in positions.
func Parse(name string, src []byte) (*File, error) {
	f := &File{Path: name, src: src}
	if err := checkText(name, src); err != nil {
		return nil, err
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		return nil, &Error{Pos: Pos{name, 1, 1}, Msg: "not YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if dec.Decode(&extra) == nil {
		return nil, &Error{Pos: pos(name, &extra), Msg: "more than one YAML document; a deploy file holds one"}
	}
	if err := plain(name, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, &Error{Pos: pos(name, &doc), Msg: "a deploy file is a mapping with images: (or image: and version:)"}
	}
	root := doc.Content[0]
	var ps problems
	keys, err := mapping(name, root, "catalog", "images", "image", "version", "arch")
	ps.add(err)
	if n := keys["catalog"]; n != nil {
		if f.Catalog, err = scalar(name, n, "catalog"); err != nil {
			ps.add(err)
		}
		f.CatalogPos = pos(name, n)
	}
	if imgs := keys["images"]; imgs != nil {
		ps.add(f.images(keys, imgs))
	} else if len(ps) == 0 || keys["image"] != nil && keys["version"] != nil {
		s, err := f.selection("", pos(name, root), keys, root)
		ps.add(err)
		if err == nil {
			f.Selections = append(f.Selections, s)
		}
	}
	if len(ps) == 0 && len(f.Selections) == 0 {
		ps.add(&Error{Pos: pos(name, root), Msg: "no image selected"})
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// checkText refuses what is not a deploy file's text: too large, UTF-16 or
// UTF-32, not UTF-8 (naming the line of the first bad byte).
func checkText(name string, src []byte) error {
	if len(src) > MaxSize {
		return &Error{Pos: Pos{name, 1, 1}, Msg: fmt.Sprintf("larger than %d MiB, more than a deploy file holds", MaxSize>>20)}
	}
	if enc := wideEncoding(src); enc != "" {
		return &Error{Pos: Pos{name, 1, 1}, Msg: fmt.Sprintf("is %s, not UTF-8: save it as UTF-8", enc)}
	}
	if utf8.Valid(src) {
		return nil
	}
	bad := 0
	for bad < len(src) {
		r, size := utf8.DecodeRune(src[bad:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		bad += size
	}
	line := bytes.Count(src[:bad], []byte("\n")) + 1
	return &Error{Pos: Pos{name, line, 1}, Msg: fmt.Sprintf("is not UTF-8 (byte %d); save it as UTF-8", bad+1)}
}

// images reads the images: form, one selection per name.
func (f *File) images(keys map[string]*yaml.Node, imgs *yaml.Node) error {
	name := f.Path
	for _, k := range []string{"image", "version", "arch"} {
		if keys[k] != nil {
			return &Error{Pos: pos(name, keys[k]), Msg: fmt.Sprintf("top-level %s: with images: ; use one form", k)}
		}
	}
	if imgs.Kind != yaml.MappingNode {
		return &Error{Pos: pos(name, imgs), Msg: "images: wants a mapping of name: {image, version, arch}"}
	}
	var ps problems
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(imgs.Content); i += 2 {
		k, v := imgs.Content[i], imgs.Content[i+1]
		if first := seen[k.Value]; first != nil {
			ps.add(&Error{Pos: pos(name, k), Msg: fmt.Sprintf("selection %q given twice, at lines %d and %d; YAML keys are unique (name one of them otherwise)", k.Value, first.Line, k.Line)})
			continue
		}
		seen[k.Value] = k
		if v.Kind != yaml.MappingNode {
			ps.add(&Error{Pos: pos(name, v), Msg: fmt.Sprintf("images.%s wants a mapping with image: and version:", k.Value)})
			continue
		}
		sk, err := mapping(name, v, "image", "version", "arch")
		ps.add(err)
		if err != nil && (sk["image"] == nil || sk["version"] == nil) {
			continue // a misspelt key is why one is missing: said above
		}
		s, err := f.selection(k.Value, pos(name, k), sk, v)
		ps.add(err)
		if err == nil {
			f.Selections = append(f.Selections, s)
		}
	}
	return ps.err()
}

// wideEncoding names the UTF-16 or UTF-32 encoding src starts with, by its byte
// order mark or its first character's zero bytes; "" for none.
func wideEncoding(src []byte) string {
	switch {
	case bytes.HasPrefix(src, []byte{0, 0, 0xfe, 0xff}), bytes.HasPrefix(src, []byte{0xff, 0xfe, 0, 0}):
		return "UTF-32"
	case bytes.HasPrefix(src, []byte{0xfe, 0xff}), bytes.HasPrefix(src, []byte{0xff, 0xfe}):
		return "UTF-16"
	case len(src) >= 2 && (src[0] == 0) != (src[1] == 0):
		return "UTF-16"
	}
	return ""
}

// plain refuses the YAML a deploy file has no use for and a reader of it
// would misread: anchors and aliases (one version value shared by two
// selections would be rewritten for both; expansion bombs), and explicit
// tags (!!binary, !custom: the value would not be the text written).
func plain(name string, root *yaml.Node) error {
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch {
		case n.Kind == yaml.AliasNode:
			return &Error{Pos: pos(name, n), Msg: fmt.Sprintf("alias *%s: a deploy file has no anchors or aliases; write each value out", n.Value)}
		case n.Anchor != "":
			return &Error{Pos: pos(name, n), Msg: fmt.Sprintf("anchor &%s: a deploy file has no anchors or aliases; write each value out", n.Anchor)}
		case n.Style&yaml.TaggedStyle != 0:
			return &Error{Pos: pos(name, n), Msg: fmt.Sprintf("YAML tag %s: a deploy file holds plain strings; remove the tag", n.Tag)}
		}
		for i := len(n.Content) - 1; i >= 0; i-- { // the first in the file is named
			stack = append(stack, n.Content[i])
		}
	}
	return nil
}

func pos(name string, n *yaml.Node) Pos { return Pos{name, max(n.Line, 1), max(n.Column, 1)} }

// mapping returns a mapping's values by key, and an error naming every
// unknown key (with the known one it is nearest to) and repeated key; the
// known keys' values are returned either way.
func mapping(name string, n *yaml.Node, allowed ...string) (map[string]*yaml.Node, error) {
	out, keys := map[string]*yaml.Node{}, map[string]*yaml.Node{}
	var ps problems
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(allowed, k.Value) {
			msg := fmt.Sprintf("unknown key %q (known here: %s)", k.Value, strings.Join(allowed, ", "))
			if near := nearest.Names(k.Value, allowed, 1); len(near) == 1 && nearEnough(k.Value, near[0]) {
				msg = fmt.Sprintf("unknown key %q: did you mean %q? (known here: %s)", k.Value, near[0], strings.Join(allowed, ", "))
			}
			ps.add(&Error{Pos: pos(name, k), Msg: msg})
			continue
		}
		if first := keys[k.Value]; first != nil {
			ps.add(&Error{Pos: pos(name, k), Msg: fmt.Sprintf("key %q given twice, at lines %d and %d", k.Value, first.Line, k.Line)})
			continue
		}
		out[k.Value], keys[k.Value] = n.Content[i+1], k
	}
	return out, ps.err()
}

// nearEnough says whether a misspelt key is close enough to a known one to
// suggest it: two edits at most, or a third of its letters (verison,
// imgae, arhc).
func nearEnough(got, known string) bool {
	return nearest.Distance(got, known) <= max(2, len(known)/3)
}

func scalar(name string, n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Value == "" {
		return "", &Error{Pos: pos(name, n), Msg: fmt.Sprintf("%s wants a string", what)}
	}
	return n.Value, nil
}

func (f *File) selection(key string, at Pos, keys map[string]*yaml.Node, n *yaml.Node) (Selection, error) {
	s := Selection{Key: key, Pos: at}
	label := "image"
	if key != "" {
		label = "images." + key
	}
	img, ver := keys["image"], keys["version"]
	if img == nil || ver == nil {
		return s, &Error{Pos: at, Msg: label + " needs image: and version:"}
	}
	var err error
	if s.Family, err = scalar(f.Path, img, "image"); err != nil {
		return s, err
	}
	if ver.Kind != yaml.ScalarNode || ver.Value == "" {
		return s, &Error{Pos: pos(f.Path, ver), Msg: "version wants a string like \"1.4\""}
	}
	s.Version = ver.Value
	s.VersionPos = pos(f.Path, ver)
	if _, err := versionq.Parse(ver.Value, true); err != nil {
		return s, &Error{Pos: s.VersionPos, Msg: fmt.Sprintf("version %v (the forms: 1.4, 1.4.2, ~1.4, ^1.4.2, >=1.2 <2, latest; docs/deploy-files.md)", err)}
	}
	if s.start, s.end, s.quote, err = f.locate(ver); err != nil {
		return s, err
	}
	if a := keys["arch"]; a != nil {
		switch a.Kind {
		case yaml.ScalarNode:
			s.Arches = []string{a.Value}
		case yaml.SequenceNode:
			for _, e := range a.Content {
				if e.Kind != yaml.ScalarNode || e.Value == "" {
					return s, &Error{Pos: pos(f.Path, e), Msg: "arch wants names like amd64"}
				}
				s.Arches = append(s.Arches, e.Value)
			}
		default:
			return s, &Error{Pos: pos(f.Path, a), Msg: "arch wants a name or a list of names"}
		}
		sort.Strings(s.Arches)
	}
	return s, nil
}

// locate finds the byte range of a scalar's text in the source, so that
// a rewrite replaces exactly it.
func (f *File) locate(n *yaml.Node) (int, int, byte, error) {
	if f.lines == nil {
		// where each line starts, found once: locating every selection
		// from the top of the file would be quadratic in its length
		f.lines = lineStarts(f.src)
	}
	if n.Line < 1 || n.Line > len(f.lines) {
		return 0, 0, 0, &Error{Pos: pos(f.Path, n), Msg: "cannot locate the version value"}
	}
	off := f.lines[n.Line-1]
	// Column counts characters; the prefix is ASCII in any sane file, but count runes to be safe.
	col := 1
	for col < n.Column && off < len(f.src) {
		_, size := decodeRune(f.src[off:])
		off += size
		col++
	}
	start := off
	var q byte
	switch n.Style {
	case yaml.DoubleQuotedStyle:
		q = '"'
	case yaml.SingleQuotedStyle:
		q = '\''
	case 0, yaml.FlowStyle:
	default:
		return 0, 0, 0, &Error{Pos: pos(f.Path, n), Msg: "version must be a plain or quoted scalar on one line"}
	}
	end := start
	if q != 0 {
		end = bytes.IndexByte(f.src[start+1:], q)
		if end < 0 {
			return 0, 0, 0, &Error{Pos: pos(f.Path, n), Msg: "unterminated version string"}
		}
		end += start + 2
	} else {
		end = start + len(n.Value)
	}
	if end > len(f.src) {
		return 0, 0, 0, &Error{Pos: pos(f.Path, n), Msg: "cannot locate the version value"}
	}
	// the bytes replaced on upgrade must be exactly the value: one line, no escapes
	inner := f.src[start:end]
	if q != 0 {
		inner = inner[1 : len(inner)-1]
	}
	if string(inner) != n.Value || bytes.ContainsAny(inner, "\n\r") {
		return 0, 0, 0, &Error{Pos: pos(f.Path, n), Msg: "version must be written on one line without escapes, like \"1.4\""}
	}
	return start, end, q, nil
}

// lineStarts is the offset of each line's first character, lines
// counted as the YAML parser counts them (YAML 1.2, 5.4): CR LF, CR, LF,
// NEL (U+0085), LS (U+2028) and PS (U+2029) each end a line, in comments
// too. A byte order mark before the first line is not a character of it.
func lineStarts(src []byte) []int {
	first := 0
	if bytes.HasPrefix(src, []byte("\xef\xbb\xbf")) {
		first = 3
	}
	lines := []int{first}
	for i := first; i < len(src); {
		switch {
		case src[i] == '\r' && i+1 < len(src) && src[i+1] == '\n':
			i += 2
		case src[i] == '\r' || src[i] == '\n':
			i++
		case bytes.HasPrefix(src[i:], []byte("\u0085")):
			i += 2
		case bytes.HasPrefix(src[i:], []byte("\u2028")) || bytes.HasPrefix(src[i:], []byte("\u2029")):
			i += 3
		default:
			i++
			continue
		}
		lines = append(lines, i)
	}
	return lines
}

func decodeRune(b []byte) (rune, int) {
	r := []rune(string(b[:min(len(b), 4)]))
	if len(r) == 0 {
		return 0, 1
	}
	return r[0], len(string(r[0]))
}

// Rewrite returns the file with the given selections' versions replaced,
// every other byte kept.
func (f *File) Rewrite(versions map[int]string) []byte {
	idx := make([]int, 0, len(versions))
	for i := range versions {
		idx = append(idx, i)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(idx)))
	out := append([]byte(nil), f.src...)
	for _, i := range idx {
		s := f.Selections[i]
		v := versions[i]
		text := v
		if s.quote != 0 {
			text = string(s.quote) + v + string(s.quote)
		}
		out = append(out[:s.start], append([]byte(text), out[s.end:]...)...)
	}
	return out
}
