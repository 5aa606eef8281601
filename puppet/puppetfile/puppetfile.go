package puppetfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/gitarg"
)

// Kind is where a module comes from.
type Kind string

// The module kinds.
const (
	Forge Kind = "forge" // a release on a Puppet Forge
	Git   Kind = "git"   // a commit of a git repository
	Local Kind = "local" // already in the module dir, not managed
)

// RefType says how a git module's ref was written.
type RefType string

// The git ref types, as the Puppetfile keys that name them.
const (
	Tag    RefType = "tag"
	Commit RefType = "commit"
	Branch RefType = "branch"
	Ref    RefType = "ref" // a tag, branch or commit, resolved in that order
)

// ControlBranch is the value of `:branch => :control_branch`: the branch of
// the control repo being deployed, or :default_branch when there is none.
const ControlBranch = ":control_branch"

// Pos is a place in a Puppetfile, 1-based.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is a Puppetfile error at a position, for one module when Module is set.
type Error struct {
	Pos    Pos
	Module string
	Msg    string
}

// clip quotes a value from the Puppetfile for a message, at most a few
// dozen characters of it: an error never echoes a huge value whole.
func clip(s string) string {
	const max = 48
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max - 8
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}

// MaxSize is the largest Puppetfile read (real ones are a few KB), and
// MaxString the longest string value (URLs, refs, paths).
const (
	MaxSize   = 8 << 20
	MaxString = 4096
)

func (e *Error) Error() string {
	if e.Module != "" {
		return fmt.Sprintf("%s: module %s: %s", e.Pos, clip(e.Module), e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
}

// Unwrap classifies every Puppetfile error as a usage error.
func (e *Error) Unwrap() error { return failure.ErrUsage }

// MaxErrors is how many errors of one Puppetfile are reported; the rest
// are counted.
const MaxErrors = 50

// ErrorList is every error of a Puppetfile, in the order of the file: the
// parser goes on at the next statement after an error.
type ErrorList struct {
	Errors []*Error // at most MaxErrors
	More   int      // errors past MaxErrors, counted
}

func (l *ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	if l.More > 0 {
		fmt.Fprintf(&b, "\n... and %d more errors", l.More)
	}
	return b.String()
}

// Unwrap gives each error (each a usage error) to errors.Is and errors.As.
func (l *ErrorList) Unwrap() []error {
	out := make([]error, len(l.Errors))
	for i, e := range l.Errors {
		out[i] = e
	}
	return out
}

func (l *ErrorList) add(e *Error) {
	if len(l.Errors) < MaxErrors {
		l.Errors = append(l.Errors, e)
	} else {
		l.More++
	}
}

// Len is the number of errors, reported or counted.
func (l *ErrorList) Len() int { return len(l.Errors) + l.More }

// Puppetfile is a parsed Puppetfile.
type Puppetfile struct {
	Path      string   `json:"path"`
	Forge     string   `json:"forge,omitempty"`     // the `forge` line, "" when absent
	Moduledir string   `json:"moduledir,omitempty"` // the `moduledir` line, "" when absent
	Modules   []Module `json:"modules"`
	SHA256    string   `json:"sha256"` // of the file's bytes
	// Notes are what was accepted but does nothing (r10k's exclusion).
	Notes []string `json:"notes,omitempty"`
}

// Module is one `mod` declaration.
type Module struct {
	Name   string `json:"name"`             // as written: "puppetlabs/stdlib"
	Author string `json:"author,omitempty"` // "puppetlabs"; Forge modules always have one
	Short  string `json:"short"`            // "stdlib": the directory it installs to
	Kind   Kind   `json:"kind"`

	Version string `json:"version,omitempty"` // Forge: exact version, "" for the newest at lock time

	Source        string  `json:"source,omitempty"` // git URL
	RefType       RefType `json:"ref_type,omitempty"`
	Ref           string  `json:"ref,omitempty"` // as written
	DefaultBranch string  `json:"default_branch,omitempty"`

	InstallPath string `json:"install_path,omitempty"` // relative to the environment, "" for the module dir
	ExcludeSpec bool   `json:"exclude_spec,omitempty"`
	// ExcludeSpecSet says the module sets :exclude_spec itself; others
	// take the default (DefaultExcludeSpec).
	ExcludeSpecSet bool `json:"-"`

	Pos Pos `json:"pos"`
}

// DefaultExcludeSpec gives every module that does not set :exclude_spec
// the value v: false is r10k 3.x's default (spec/ is kept), true r10k
// 5.x's (spec/ is dropped).
func (pf *Puppetfile) DefaultExcludeSpec(v bool) {
	for i := range pf.Modules {
		if !pf.Modules[i].ExcludeSpecSet {
			pf.Modules[i].ExcludeSpec = v
		}
	}
}

// UsesControlBranch says whether a module names :control_branch.
func (pf *Puppetfile) UsesControlBranch() bool {
	for _, m := range pf.Modules {
		if m.Ref == ControlBranch {
			return true
		}
	}
	return false
}

// ForgeSlug is the Forge's name for a module: "author-name".
func (m Module) ForgeSlug() string { return m.Author + "-" + m.Short }

// Dir is where the module is installed, relative to the environment root,
// given the effective module dir.
func (m Module) Dir(moduledir string) string {
	if m.InstallPath != "" {
		return path.Join(m.InstallPath, m.Short)
	}
	return path.Join(moduledir, m.Short)
}

// ReadFile parses the Puppetfile at name.
func ReadFile(name string) (*Puppetfile, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no Puppetfile at %s (--puppetfile names another)", failure.ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading Puppetfile: %w", err)
	}
	defer f.Close()
	// one byte past the limit is enough for Parse to refuse it
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading Puppetfile %s: %w", name, err)
	}
	return Parse(name, b)
}

// Parse parses a Puppetfile. name is used in error positions.
//
// It accepts the Ruby subset that r10k's Puppetfile DSL is written in:
// forge, moduledir and mod calls with or without parentheses, string and
// symbol values, `:key => value` and `key: value` hashes, comments and
// line continuations. Anything else (variables, loops, interpolation) is
// an error: imagebake does not evaluate Ruby, and guessing would pin the
// wrong code. Unknown option keys, conflicting refs and duplicate modules
// are errors too, where r10k only warns.
func Parse(name string, src []byte) (*Puppetfile, error) {
	sum := sha256.Sum256(src)
	pf := &Puppetfile{Path: name, SHA256: hex.EncodeToString(sum[:])}
	if len(src) > MaxSize {
		return nil, &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: fmt.Sprintf("Puppetfile is larger than %d MiB, more than the most a Puppetfile may have", MaxSize>>20)}
	}
	if !isValidUTF8(src) {
		return nil, &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: "Puppetfile is not valid UTF-8 text"}
	}
	text := strings.TrimPrefix(string(src), "\uFEFF") // a byte order mark, as editors on Windows write
	p := &parser{lex: newLexer(name, text), pf: pf, seen: map[string]Pos{}}
	p.parse()
	checkNesting(pf, &p.errs)
	if p.errs.Len() > 0 {
		return nil, &p.errs
	}
	return pf, nil
}

// checkNesting refuses a module installed inside another module's
// directory (or around the module dir): one module's tree would replace
// or redirect the other's, so which one ends up in the image would depend
// on the order they are written in.
func checkNesting(pf *Puppetfile, errs *ErrorList) {
	moddir := pf.Moduledir
	if moddir == "" {
		moddir = "modules"
	}
	dirs := map[string]Module{}
	for _, m := range pf.Modules {
		if m.Kind != Local {
			dirs[m.Dir(moddir)] = m
		}
	}
	for _, m := range pf.Modules {
		if m.Kind == Local {
			continue
		}
		d := m.Dir(moddir)
		if d == moddir || strings.HasPrefix(moddir, d+"/") {
			errs.add(&Error{Pos: m.Pos, Module: m.Name, Msg: fmt.Sprintf("installs into %q, which holds the module dir %q: a module may not contain other modules", d, moddir)})
			continue
		}
		// each parent of d: linear in the modules, not quadratic
		for p := path.Dir(d); p != "." && p != "/"; p = path.Dir(p) {
			if o, ok := dirs[p]; ok {
				errs.add(&Error{Pos: m.Pos, Module: m.Name, Msg: fmt.Sprintf("installs into %q, inside the directory of module %s (line %d): a module may not be installed inside another", d, o.Name, o.Pos.Line)})
				break
			}
		}
	}
}

func isValidUTF8(b []byte) bool {
	return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) && !strings.ContainsRune(string(b), 0)
}

// value is an argument of a call.
type value struct {
	kind tokKind // tString, tSymbol, or tIdent for true/false/nil
	text string
	pos  Pos
}

func (v value) describe() string {
	switch v.kind {
	case tString:
		return "string " + clip(v.text)
	case tSymbol:
		return ":" + v.text
	default:
		return v.text
	}
}

type option struct {
	key       string
	keyPos    Pos
	val       value
	stringKey bool // 'key' => value: not an option to r10k
}

type call struct {
	name string
	pos  Pos
	args []value
	opts []option
}

type parser struct {
	lex  *lexer
	tok  token
	pf   *Puppetfile
	seen map[string]Pos // short name -> declaration
	errs ErrorList
	// lexErr says the lexer failed on the current line; tokAtStart that
	// tok is the first token of its line.
	lexErr, tokAtStart bool
}

func (p *parser) advance() error {
	start := p.tok.kind == tNewline || p.tok.pos.Line == 0
	t, err := p.lex.next()
	if err != nil {
		p.lexErr = true
		return err
	}
	p.tok, p.tokAtStart = t, start
	return nil
}

func (p *parser) errorf(pos Pos, format string, args ...any) error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// statements are the calls a statement may start with.
var statements = map[string]bool{"mod": true, "forge": true, "moduledir": true, "exclusion": true}

// parse reads every statement, recording each error and going on at the
// next statement.
func (p *parser) parse() {
	if err := p.advance(); err != nil {
		p.fail(err)
	}
	for p.tok.kind != tEOF {
		if p.tok.kind == tNewline {
			if err := p.advance(); err != nil {
				p.fail(err)
			}
			continue
		}
		var err error
		if p.tok.kind == tIdent && statements[p.tok.val] {
			var c *call
			if c, err = p.call(); err == nil {
				err = p.apply(c)
			}
		} else {
			err = p.unsupported()
		}
		if err != nil {
			p.fail(err)
		}
	}
}

// fail records err and skips to the start of the next statement: the next
// line that does not go on with the failed one, or the end of the file. A
// line the lexer cannot read is skipped whole.
func (p *parser) fail(err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Pos: p.tok.pos, Msg: err.Error()}
	}
	p.errs.add(e)
	start := false
	switch {
	case p.lexErr:
		p.lexErr = false
		p.lex.skipLine()
		start = true
	case p.tok.kind == tEOF:
		return
	case p.tokAtStart && p.tok.kind == tIdent && statements[p.tok.val]:
		return // the error is about the statement that starts here: read it
	default:
		start = p.tok.kind == tNewline
	}
	for {
		t, err := p.lex.next()
		if err != nil { // an unreadable line in what is skipped
			p.lex.skipLine()
			start = true
			continue
		}
		p.tok, p.tokAtStart = t, start
		if t.kind == tEOF || start && !continues(t) {
			return
		}
		start = t.kind == tNewline
	}
}

// continues says whether a line starting with t goes on with the
// statement before (its options, its closing parenthesis or brace).
func continues(t token) bool {
	switch t.kind {
	case tSymbol, tLabel, tString, tRocket, tComma, tRParen:
		return true
	case tOther:
		return t.val == "}"
	}
	return false
}

// unsupported reports a statement that is not one of the DSL's calls.
func (p *parser) unsupported() error {
	t := p.tok
	what := shown(t.val)
	if t.kind == tString {
		what = clip(t.val)
	} else if t.kind != tIdent && t.kind != tOther {
		what = t.kind.String()
	}
	hint := "only forge, moduledir and mod calls are supported"
	switch t.val {
	case "if", "unless", "case", "while", "until", "for", "each", "begin", "def", "do", "[", "{":
		hint = "conditionals, loops and blocks are Ruby that imagebake does not evaluate; write each mod out"
	case "=":
		hint = "variables are Ruby that imagebake does not evaluate; write the value out"
	default:
		if t.kind == tIdent {
			// `name = value` and `name.method` are the usual shapes.
			hint = fmt.Sprintf("%s is not a Puppetfile method: only forge, moduledir and mod are supported (variables, loops and other Ruby are not evaluated)", clip(t.val))
		}
	}
	return p.errorf(t.pos, "unexpected %s: %s", what, hint)
}

// call parses `name args` or `name(args)` up to the end of the statement.
func (p *parser) call() (*call, error) {
	c := &call{name: p.tok.val, pos: p.tok.pos}
	if err := p.advance(); err != nil {
		return nil, err
	}
	paren := p.tok.kind == tLParen
	if paren {
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	needArg := false // after a comma, an argument must follow
	for {
		done, err := p.beforeArgument(c, paren, needArg)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		if err := p.argument(c); err != nil {
			return nil, err
		}
		if needArg, err = p.afterArgument(c, paren); err != nil {
			return nil, err
		}
	}
	if paren && p.tok.kind != tNewline && p.tok.kind != tEOF {
		return nil, p.errorf(p.tok.pos, "unexpected %s after %s(...): expected the end of the line", describeTok(p.tok), c.name)
	}
	if !paren && c.name == "mod" && p.tok.kind == tNewline && len(c.args) > 0 {
		if t, ok := p.optionsFollow(); ok {
			last := c.args[len(c.args)-1]
			if len(c.opts) > 0 {
				last = c.opts[len(c.opts)-1].val
			}
			return nil, p.errorf(t.pos, "missing comma after %s at the end of line %d: the options from line %d on are not part of this mod", last.describe(), last.pos.Line, t.pos.Line)
		}
	}
	return c, nil
}

// optionsFollow says whether the next line starts with an option (:key =>,
// 'key' => or key:), which means the statement before lacks a comma. It
// reads ahead and puts the lexer back.
func (p *parser) optionsFollow() (token, bool) {
	save := *p.lex
	defer func() { *p.lex = save }()
	t, err := p.lex.next()
	for err == nil && t.kind == tNewline {
		t, err = p.lex.next()
	}
	switch {
	case err != nil:
		return t, false
	case t.kind == tLabel:
		return t, true
	case t.kind == tSymbol || t.kind == tString:
		r, err := p.lex.next()
		return t, err == nil && r.kind == tRocket
	}
	return t, false
}

// skipNewlines steps over line ends inside a statement.
func (p *parser) skipNewlines() error {
	for p.tok.kind == tNewline {
		if err := p.advance(); err != nil {
			return err
		}
	}
	return nil
}

// beforeArgument says whether the call's arguments have ended, consuming a
// closing parenthesis.
func (p *parser) beforeArgument(c *call, paren, needArg bool) (bool, error) {
	if !paren {
		return !needArg && (p.tok.kind == tNewline || p.tok.kind == tEOF), nil
	}
	if err := p.skipNewlines(); err != nil {
		return false, err
	}
	switch p.tok.kind {
	case tRParen: // a trailing comma before ')' is fine
		return true, p.advance()
	case tEOF:
		return false, p.errorf(c.pos, "%s( is never closed by ')'", c.name)
	}
	return false, nil
}

// afterArgument reads what follows an argument: a comma or the end. It
// says whether another argument must follow.
func (p *parser) afterArgument(c *call, paren bool) (bool, error) {
	switch p.tok.kind {
	case tComma:
		if err := p.advance(); err != nil {
			return false, err
		}
		// newlines after a comma continue the statement
		if err := p.skipNewlines(); err != nil {
			return false, err
		}
		if !paren && p.tok.kind == tIdent && (p.tok.val == "mod" || p.tok.val == "forge" || p.tok.val == "moduledir") {
			return false, p.errorf(p.tok.pos, "trailing comma: Ruby would pass this %s call as an argument of the %s on line %d; remove the comma", p.tok.val, c.name, c.pos.Line)
		}
		if !paren && p.tok.kind == tEOF {
			return false, p.errorf(p.tok.pos, "trailing comma at end of file: the %s call on line %d is incomplete", c.name, c.pos.Line)
		}
		return true, nil
	case tRParen:
		if !paren {
			return false, p.errorf(p.tok.pos, "unexpected ')' with no matching '('")
		}
		return false, nil
	case tNewline, tEOF:
		if paren && p.tok.kind == tEOF {
			return false, p.errorf(c.pos, "%s( is never closed by ')'", c.name)
		}
		return false, nil
	}
	return false, p.errorf(p.tok.pos, "unexpected %s after an argument of %s: expected ',' or the end of the line", describeTok(p.tok), c.name)
}

// shown is s for a message, each character that does not print (a byte
// order mark, a control character) written as U+XXXX.
func shown(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) && r != utf8.RuneError {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "U+%04X", r)
		}
	}
	return b.String()
}

func describeTok(t token) string {
	switch t.kind {
	case tString:
		return "string " + clip(t.val)
	case tIdent:
		return clip(t.val)
	case tOther:
		return shown(t.val)
	case tSymbol:
		return ":" + t.val
	case tLabel:
		return t.val + ":"
	}
	return t.kind.String()
}

// argument parses one positional value or one hash pair.
func (p *parser) argument(c *call) error {
	t := p.tok
	switch t.kind {
	case tLabel:
		if err := p.advance(); err != nil {
			return err
		}
		v, err := p.value(c)
		if err != nil {
			return err
		}
		c.opts = append(c.opts, option{key: t.val, keyPos: t.pos, val: v})
		return nil
	case tSymbol, tString:
		if err := p.advance(); err != nil {
			return err
		}
		if p.tok.kind == tRocket {
			if err := p.advance(); err != nil {
				return err
			}
			v, err := p.value(c)
			if err != nil {
				return err
			}
			c.opts = append(c.opts, option{key: t.val, keyPos: t.pos, val: v, stringKey: t.kind == tString})
			return nil
		}
		if len(c.opts) > 0 {
			return p.errorf(t.pos, "positional argument %s after options; Ruby does not allow it", describeTok(t))
		}
		c.args = append(c.args, value{kind: t.kind, text: t.val, pos: t.pos})
		return nil
	case tIdent:
		if t.val == "true" || t.val == "false" || t.val == "nil" {
			if err := p.advance(); err != nil {
				return err
			}
			c.args = append(c.args, value{kind: tIdent, text: t.val, pos: t.pos})
			return nil
		}
	case tOther:
		if t.val == "{" {
			return p.hash(c)
		}
	}
	return p.errorf(t.pos, "unexpected %s in the arguments of %s: only strings, symbols, true and false are supported", describeTok(t), c.name)
}

// hash reads a hash literal in braces as the options: {:git => '...', :tag => 'v1'}.
func (p *parser) hash(c *call) error {
	open := p.tok.pos
	if len(c.opts) > 0 {
		return p.errorf(open, "a hash in braces after options: give the options once")
	}
	if err := p.advance(); err != nil {
		return err
	}
	for {
		if err := p.skipNewlines(); err != nil {
			return err
		}
		switch {
		case p.tok.kind == tOther && p.tok.val == "}":
			return p.advance()
		case p.tok.kind == tEOF:
			return p.errorf(open, "{ is never closed by '}'")
		case p.tok.kind != tLabel && p.tok.kind != tSymbol && p.tok.kind != tString:
			return p.errorf(p.tok.pos, "unexpected %s in a hash: expected :key => value or key: value", describeTok(p.tok))
		}
		t, n := p.tok, len(c.opts)
		if err := p.argument(c); err != nil {
			return err
		}
		if len(c.opts) == n {
			return p.errorf(t.pos, "%s in a hash has no value: expected :key => value or key: value", describeTok(t))
		}
		if err := p.skipNewlines(); err != nil {
			return err
		}
		switch {
		case p.tok.kind == tComma:
			if err := p.advance(); err != nil {
				return err
			}
		case p.tok.kind == tOther && p.tok.val == "}":
		case p.tok.kind == tEOF:
			return p.errorf(open, "{ is never closed by '}'")
		default:
			return p.errorf(p.tok.pos, "unexpected %s in a hash: expected ',' or '}'", describeTok(p.tok))
		}
	}
}

func (p *parser) value(c *call) (value, error) {
	t := p.tok
	switch t.kind {
	case tString, tSymbol:
	case tIdent:
		if t.val != "true" && t.val != "false" && t.val != "nil" {
			return value{}, p.errorf(t.pos, "unexpected %s as an option value of %s: variables and method calls are Ruby that imagebake does not evaluate", describeTok(t), c.name)
		}
	default:
		return value{}, p.errorf(t.pos, "unexpected %s: expected an option value (a string, a symbol, true or false)", describeTok(t))
	}
	if err := p.advance(); err != nil {
		return value{}, err
	}
	return value{kind: t.kind, text: t.val, pos: t.pos}, nil
}

func (p *parser) apply(c *call) error {
	switch c.name {
	case "exclusion":
		if len(c.args) != 1 || c.args[0].kind != tString || len(c.opts) > 0 {
			return p.errorf(c.pos, "exclusion takes one module name string")
		}
		p.pf.Notes = append(p.pf.Notes, fmt.Sprintf("%s: exclusion %s does nothing: r10k defines it as a no-op", c.pos, clip(c.args[0].text)))
		return nil
	case "forge", "moduledir":
		if len(c.opts) > 0 {
			return p.errorf(c.opts[0].keyPos, "%s takes one string, not options", c.name)
		}
		if len(c.args) != 1 || c.args[0].kind != tString {
			return p.errorf(c.pos, "%s takes exactly one string argument", c.name)
		}
		v := c.args[0].text
		if c.name == "forge" {
			if p.pf.Forge != "" {
				return p.errorf(c.pos, "forge is set twice")
			}
			if v == "" {
				return p.errorf(c.args[0].pos, "forge URL is empty")
			}
			if err := gitarg.Remote(v); err != nil {
				return p.errorf(c.args[0].pos, "forge URL %s %v", clip(v), err)
			}
			p.pf.Forge = v
			return nil
		}
		if p.pf.Moduledir != "" {
			return p.errorf(c.pos, "moduledir is set twice")
		}
		if err := checkLocalPath(v); err != nil {
			return p.errorf(c.args[0].pos, "moduledir %s %v", clip(v), err)
		}
		p.pf.Moduledir = path.Clean(v)
		return nil
	}
	m, err := module(c)
	if err != nil {
		return err
	}
	if first, ok := p.seen[m.Short]; ok {
		return &Error{Pos: m.Pos, Module: m.Name, Msg: fmt.Sprintf("declared twice: %s (line %d) installs to the same directory %q; r10k compares modules by short name", first, first.Line, m.Short)}
	}
	p.seen[m.Short] = m.Pos
	p.pf.Modules = append(p.pf.Modules, m)
	return nil
}

var nameRE = regexp.MustCompile(`^(?:([A-Za-z0-9_]+)[/-])?([a-z][a-z0-9_]*)$`)

var commitRE = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

var knownKeys = map[string]bool{
	"git": true, "tag": true, "commit": true, "branch": true, "ref": true,
	"default_branch": true, "install_path": true, "exclude_spec": true,
	"local": true, "type": true, "source": true, "version": true,
}

// modOpts holds the options of one mod call while they are checked.
type modOpts struct {
	name  string
	opts  map[string]option
	typed string // the type: given, "" for none
}

func (o *modOpts) bad(pos Pos, format string, args ...any) error {
	return &Error{Pos: pos, Module: o.name, Msg: fmt.Sprintf(format, args...)}
}

// str returns a string option; ok says whether it was given.
func (o *modOpts) str(key string) (string, bool, error) {
	op, ok := o.opts[key]
	if !ok {
		return "", false, nil
	}
	if op.val.kind != tString {
		return "", true, o.bad(op.val.pos, "option %q wants a string, got %s", key, op.val.describe())
	}
	if op.val.text == "" {
		return "", true, o.bad(op.val.pos, "option %q is empty", key)
	}
	return op.val.text, true, nil
}

func (o *modOpts) boolean(key string) (bool, error) {
	op, ok := o.opts[key]
	if !ok {
		return false, nil
	}
	if op.val.kind != tIdent || op.val.text == "nil" {
		return false, o.bad(op.val.pos, "option %q wants true or false, got %s", key, op.val.describe())
	}
	return op.val.text == "true", nil
}

// refuse reports the first of keys that is given, with the message made by msg.
func (o *modOpts) refuse(keys []string, msg func(key string) string) error {
	for _, k := range keys {
		if op, ok := o.opts[k]; ok {
			return o.bad(op.keyPos, "%s", msg(k))
		}
	}
	return nil
}

var gitKeys = []string{"git", "tag", "commit", "branch", "ref", "default_branch"}

// module turns a mod call into a Module, checking every rule.
func module(c *call) (Module, error) {
	if len(c.args) == 0 || c.args[0].kind != tString {
		return Module{}, &Error{Pos: c.pos, Msg: "mod needs a module name string first"}
	}
	m := Module{Name: c.args[0].text, Pos: c.args[0].pos}
	o := &modOpts{name: m.Name, opts: map[string]option{}}
	sub := nameRE.FindStringSubmatch(m.Name)
	if sub == nil {
		return m, o.bad(m.Pos, "not a module name: want author/name, author-name or name, lower-case name of letters, digits and _")
	}
	m.Author, m.Short = sub[1], sub[2]
	if err := o.collect(c.opts); err != nil {
		return m, err
	}
	if err := o.common(&m); err != nil {
		return m, err
	}
	if err := o.untype(); err != nil {
		return m, err
	}
	if local, err := o.boolean("local"); err != nil {
		return m, err
	} else if local {
		return localModule(m, c, o)
	}
	refKeys := []string{}
	for _, k := range []string{"tag", "commit", "branch", "ref"} {
		if _, ok := o.opts[k]; ok {
			refKeys = append(refKeys, k)
		}
	}
	if _, isGit := o.opts["git"]; isGit || len(refKeys) > 0 {
		return gitModule(m, c, o, refKeys)
	}
	if op, ok := o.opts["default_branch"]; ok {
		return m, o.bad(op.keyPos, ":default_branch is an option of git modules, and :git is missing")
	}
	return forgeModule(m, c, o)
}

// collect checks that every option is known and given once.
func (o *modOpts) collect(opts []option) error {
	for _, op := range opts {
		if op.stringKey {
			return o.bad(op.keyPos, "string key %s: r10k does not read string keys as options; write :%s =>", clip(op.key), op.key)
		}
		if op.key == "svn" {
			return o.bad(op.keyPos, "Subversion modules (:svn) are not supported: imagebake pins git and Forge modules")
		}
		if !knownKeys[op.key] {
			return o.bad(op.keyPos, "unknown option %s (known: default_branch, branch, commit, exclude_spec, git, install_path, local, ref, source, tag, type, version)", clip(op.key))
		}
		if prev, ok := o.opts[op.key]; ok {
			return o.bad(op.keyPos, "option %s given twice (first at %d:%d)", clip(op.key), prev.keyPos.Line, prev.keyPos.Col)
		}
		o.opts[op.key] = op
	}
	return nil
}

// common reads the options every kind of module takes.
func (o *modOpts) common(m *Module) error {
	var err error
	if m.ExcludeSpec, err = o.boolean("exclude_spec"); err != nil {
		return err
	}
	_, m.ExcludeSpecSet = o.opts["exclude_spec"]
	if op, ok := o.opts["install_path"]; ok && op.val.kind == tString && op.val.text == "" {
		m.InstallPath = "." // the environment root, as r10k takes ''
		return nil
	}
	ip, ok, err := o.str("install_path")
	if err != nil || !ok {
		return err
	}
	if err := checkLocalPath(ip); err != nil {
		return o.bad(o.opts["install_path"].val.pos, "install_path %s %v", clip(ip), err)
	}
	m.InstallPath = path.Clean(ip)
	return nil
}

// untype rewrites r10k's "type:/source:/version:" form to the classic one.
func (o *modOpts) untype() error {
	typ, hasType, err := o.str("type")
	if err != nil {
		return err
	}
	o.typed = typ
	if !hasType {
		if op, ok := o.opts["source"]; ok {
			return o.bad(op.keyPos, "source: needs type: 'git'")
		}
		return nil
	}
	switch typ {
	case "git":
		err = o.untypeGit()
	case "forge":
		if err = o.refuse(gitKeys, func(k string) string { return fmt.Sprintf("option %q is for git modules, but type: is 'forge'", k) }); err == nil {
			err = o.refuse([]string{"source"}, func(string) string {
				return "source: is not an option of a Forge module; set the Forge URL with the forge line"
			})
		}
	default:
		err = o.bad(o.opts["type"].val.pos, "unknown module type %s (known: git, forge)", clip(typ))
	}
	delete(o.opts, "type")
	return err
}

func (o *modOpts) untypeGit() error {
	if op, ok := o.opts["git"]; ok {
		return o.bad(op.keyPos, "both type: 'git' with source: and :git given; use one form")
	}
	src, ok, err := o.str("source")
	if err != nil {
		return err
	}
	if !ok {
		return o.bad(o.opts["type"].keyPos, "type: 'git' needs source: with the repository URL")
	}
	o.opts["git"] = option{key: "git", keyPos: o.opts["source"].keyPos, val: value{kind: tString, text: src, pos: o.opts["source"].val.pos}}
	delete(o.opts, "source")
	v, ok := o.opts["version"]
	if !ok {
		return nil
	}
	if err := o.refuse([]string{"tag", "commit", "branch", "ref"}, func(k string) string {
		return fmt.Sprintf("conflicting refs: version: (%d:%d) and %s: both name what to check out; keep one", v.keyPos.Line, v.keyPos.Col, k)
	}); err != nil {
		return err
	}
	o.opts["ref"] = v
	delete(o.opts, "version")
	return nil
}

func localModule(m Module, c *call, o *modOpts) (Module, error) {
	m.Kind = Local
	if err := o.refuse([]string{"git", "tag", "commit", "branch", "ref", "version", "default_branch"}, func(k string) string {
		return fmt.Sprintf("option %q makes no sense with :local => true", k)
	}); err != nil {
		return m, err
	}
	if len(c.args) > 1 {
		return m, o.bad(c.args[1].pos, "a version makes no sense with :local => true")
	}
	return m, nil
}

func gitModule(m Module, c *call, o *modOpts, refKeys []string) (Module, error) {
	m.Kind = Git
	src, ok, err := o.str("git")
	if err != nil {
		return m, err
	}
	if !ok {
		return m, o.bad(o.opts[refKeys[0]].keyPos, ":%s given but :git is missing: name the repository URL with :git", refKeys[0])
	}
	if err := gitarg.Remote(src); err != nil {
		return m, o.bad(o.opts["git"].val.pos, "git remote %s %v", clip(src), err)
	}
	m.Source = src
	if len(c.args) > 1 {
		return m, o.bad(c.args[1].pos, "a git module takes its version from :tag, :commit, :branch or :ref, not a second argument")
	}
	if op, ok := o.opts["version"]; ok {
		return m, o.bad(op.keyPos, "version: belongs to type: 'git' with source: or to Forge modules; use :tag, :commit, :branch or :ref with :git")
	}
	switch len(refKeys) {
	case 0:
		return m, o.bad(o.opts["git"].keyPos, "no ref: add exactly one of :tag, :commit, :branch or :ref (a golden image cannot take whatever the default branch holds)")
	case 1:
	default:
		a, b := o.opts[refKeys[0]], o.opts[refKeys[1]]
		return m, o.bad(b.keyPos, "conflicting refs: :%s (%d:%d) and :%s (%d:%d); keep exactly one", refKeys[0], a.keyPos.Line, a.keyPos.Col, refKeys[1], b.keyPos.Line, b.keyPos.Col)
	}
	k := refKeys[0]
	op := o.opts[k]
	m.RefType = RefType(k)
	switch {
	case op.val.kind == tString && op.val.text != "":
		m.Ref = op.val.text
	case (k == "branch" || k == "ref") && op.val.kind == tSymbol && op.val.text == "control_branch":
		m.Ref, m.RefType = ControlBranch, Branch
	default:
		return m, o.bad(op.val.pos, "option %q wants a string, got %s", k, op.val.describe())
	}
	if m.Ref != ControlBranch {
		if err := gitarg.Ref(m.Ref); err != nil {
			return m, o.bad(op.val.pos, ":%s %s %v", k, clip(m.Ref), err)
		}
	}
	if m.RefType == Commit && !commitRE.MatchString(m.Ref) {
		return m, o.bad(op.val.pos, ":commit %s is not a commit SHA (7 to 40 lower-case hex digits); use :tag or :branch for names", clip(m.Ref))
	}
	if db, ok, err := o.str("default_branch"); err != nil {
		return m, err
	} else if ok {
		if err := gitarg.Ref(db); err != nil {
			return m, o.bad(o.opts["default_branch"].val.pos, ":default_branch %s %v", clip(db), err)
		}
		m.DefaultBranch = db
	}
	return m, nil
}

func forgeModule(m Module, c *call, o *modOpts) (Module, error) {
	m.Kind = Forge
	if m.Author == "" {
		return m, o.bad(m.Pos, "a Forge module needs its author: write author/%s or author-%s (or give :git for a git module)", m.Short, m.Short)
	}
	var ver value
	switch len(c.args) {
	case 1:
	case 2:
		ver = c.args[1]
		if len(c.opts) > 0 {
			return m, o.bad(c.opts[0].keyPos, "a Forge module with a version as its second argument takes no options (r10k fails with wrong arguments); write mod %s, type: 'forge', version: %s, %s: ...", clip(m.Name), clip(ver.text), c.opts[0].key)
		}
	default:
		return m, o.bad(c.args[2].pos, "too many arguments: a Forge module takes a name and a version")
	}
	if op, ok := o.opts["version"]; ok && o.typed != "forge" {
		return m, o.bad(op.keyPos, "version: needs type: 'forge' (r10k reads version: only in the typed form); write type: 'forge', version: ... or give the version as the second argument")
	}
	if op, ok := o.opts["version"]; ok {
		if ver.kind != tEOF {
			return m, o.bad(op.keyPos, "version given twice: as the second argument and as version:")
		}
		ver = op.val
	}
	switch {
	case ver.kind == tEOF: // none: newest at lock time
	case ver.kind == tSymbol && ver.text == "latest":
	case ver.kind == tString:
		if !exactVersion(ver.text) {
			return m, o.bad(ver.pos, "Forge version %s is not an exact version X.Y.Z; ranges are not pinned, use :latest to take the newest at lock time", clip(ver.text))
		}
		m.Version = ver.text
	default:
		return m, o.bad(ver.pos, "Forge version wants a string like '9.6.0' or :latest, got %s", ver.describe())
	}
	return m, nil
}

var exactRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

func exactVersion(s string) bool { return exactRE.MatchString(s) }

// checkLocalPath refuses a path that would leave the environment.
func checkLocalPath(p string) error {
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "~") {
		return errors.New("is absolute: it must stay inside the environment")
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") || strings.Contains(p, "\\") {
		return errors.New("escapes the environment")
	}
	return nil
}
