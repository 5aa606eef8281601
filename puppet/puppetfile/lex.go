package puppetfile

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF     tokKind = iota
	tNewline         // also ';'
	tIdent           // mod, forge, true, ...
	tLabel           // key: (Ruby 1.9 hash key)
	tString          // 'x' or "x", Val holds the decoded text
	tSymbol          // :git
	tRocket          // =>
	tComma
	tLParen
	tRParen
	tOther // anything else: reported as Ruby outside the subset
)

func (k tokKind) String() string {
	return [...]string{"end of file", "end of line", "name", "key", "string", "symbol", "'=>'", "','", "'('", "')'", "character"}[k]
}

type token struct {
	kind tokKind
	val  string
	pos  Pos
}

// lexer turns Puppetfile text into tokens. It knows just enough Ruby to
// tell the supported subset from everything else: strings and their
// escapes, comments (including =begin/=end), symbols, labels and line
// continuations.
type lexer struct {
	file      string
	src       string
	off       int
	line, col int // of src[off], 1-based
	bol       bool
}

// maxWord caps identifiers and symbols.
const maxWord = 256

func newLexer(file, src string) *lexer {
	return &lexer{file: file, src: src, line: 1, col: 1, bol: true}
}

func (l *lexer) pos() Pos { return Pos{File: l.file, Line: l.line, Col: l.col} }

func (l *lexer) peekByte(n int) byte {
	if l.off+n < len(l.src) {
		return l.src[l.off+n]
	}
	return 0
}

func (l *lexer) advance() rune {
	r, size := utf8.DecodeRuneInString(l.src[l.off:])
	l.off += size
	if r == '\n' {
		l.line++
		l.col = 1
		l.bol = true
	} else {
		l.col++
		l.bol = false
	}
	return r
}

func (l *lexer) errorf(p Pos, format string, args ...any) error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// next returns the next token.
func (l *lexer) next() (token, error) {
	for {
		if l.off >= len(l.src) {
			return token{kind: tEOF, pos: l.pos()}, nil
		}
		c := l.src[l.off]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			l.advance()
		case c == '\\' && l.peekByte(1) == '\n':
			l.advance()
			l.advance()
		case c == '\\' && l.peekByte(1) == '\r' && l.peekByte(2) == '\n':
			l.advance()
			l.advance()
			l.advance()
		case c == '#':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance()
			}
		case c == '_' && l.bol && strings.HasPrefix(l.src[l.off:], "__END__") && l.isWordEnd(7):
			// Ruby stops reading the file here
			for l.off < len(l.src) {
				l.advance()
			}
		case c == '=' && l.bol && strings.HasPrefix(l.src[l.off:], "=begin") && l.isWordEnd(6):
			p := l.pos()
			if err := l.skipBlockComment(); err != nil {
				return token{}, l.errorf(p, "=begin comment is never closed by =end")
			}
		default:
			return l.token()
		}
	}
}

// skipLine moves past the end of the current line.
func (l *lexer) skipLine() {
	for l.off < len(l.src) {
		if l.advance() == '\n' {
			return
		}
	}
}

func (l *lexer) isWordEnd(n int) bool {
	c := l.peekByte(n)
	return c == 0 || c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

func (l *lexer) skipBlockComment() error {
	for l.off < len(l.src) {
		if l.bol && strings.HasPrefix(l.src[l.off:], "=end") && l.isWordEnd(4) {
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance()
			}
			return nil
		}
		l.advance()
	}
	return fmt.Errorf("unterminated")
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || (c >= '0' && c <= '9')
}

func (l *lexer) token() (token, error) {
	p := l.pos()
	c := l.src[l.off]
	switch {
	case c == '\n' || c == ';':
		l.advance()
		return token{kind: tNewline, pos: p}, nil
	case c == ',':
		l.advance()
		return token{kind: tComma, pos: p}, nil
	case c == '(':
		l.advance()
		return token{kind: tLParen, pos: p}, nil
	case c == ')':
		l.advance()
		return token{kind: tRParen, pos: p}, nil
	case c == '=' && l.peekByte(1) == '>':
		l.advance()
		l.advance()
		return token{kind: tRocket, val: "=>", pos: p}, nil
	case c == '\'' || c == '"':
		s, err := l.str(c)
		if err != nil {
			return token{}, err
		}
		return token{kind: tString, val: s, pos: p}, nil
	case c == ':' && isIdentStart(l.peekByte(1)):
		l.advance()
		w, err := l.word(p, "symbol")
		return token{kind: tSymbol, val: w, pos: p}, err
	case isIdentStart(c):
		start := l.off
		name, err := l.word(p, "word")
		if err != nil {
			return token{}, err
		}
		// Ruby's method names may end in ? or !; they are never part of the subset.
		if l.off < len(l.src) && (l.src[l.off] == '?' || l.src[l.off] == '!') {
			l.advance()
			return token{kind: tOther, val: l.src[start:l.off], pos: p}, nil
		}
		if l.off < len(l.src) && l.src[l.off] == ':' && l.peekByte(1) != ':' {
			l.advance()
			return token{kind: tLabel, val: name, pos: p}, nil
		}
		return token{kind: tIdent, val: name, pos: p}, nil
	default:
		r := l.advance()
		return token{kind: tOther, val: string(r), pos: p}, nil
	}
}

// word reads identifier characters, at most maxWord of them.
func (l *lexer) word(p Pos, what string) (string, error) {
	start := l.off
	for l.off < len(l.src) && isIdentChar(l.src[l.off]) {
		l.advance()
		if l.off-start > maxWord {
			return "", l.errorf(p, "a %s longer than %d characters: not a Puppetfile name", what, maxWord)
		}
	}
	return l.src[start:l.off], nil
}

// str reads a Ruby string literal. Interpolation is refused: its value
// would depend on Ruby evaluation that imagebake does not do.
func (l *lexer) str(quote byte) (string, error) {
	start := l.pos()
	l.advance()
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			return "", l.errorf(start, "string starting here is never closed")
		}
		c := l.src[l.off]
		if c == quote {
			l.advance()
			return b.String(), nil
		}
		if b.Len() > MaxString {
			return "", l.errorf(start, "string starting here is longer than %d bytes: no Puppetfile value is", MaxString)
		}
		if c == '\\' {
			escPos := l.pos()
			l.advance()
			if l.off >= len(l.src) {
				return "", l.errorf(start, "string starting here is never closed")
			}
			e := l.advance()
			if quote == '\'' {
				if e != '\\' && e != '\'' {
					b.WriteByte('\\')
				}
				b.WriteRune(e)
				continue
			}
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 's':
				b.WriteByte(' ')
			case '0':
				b.WriteByte(0)
			case '\\', '"', '#', '\'':
				b.WriteRune(e)
			case '\n':
				// a backslash-newline inside "..." joins the lines
			default:
				return "", l.errorf(escPos, "escape \\%c in a double-quoted string is not supported; use a single-quoted string", e)
			}
			continue
		}
		if quote == '"' && c == '#' {
			n := l.peekByte(1)
			if n == '{' || n == '@' || n == '$' {
				return "", l.errorf(l.pos(), "string interpolation (#%c) is Ruby that imagebake does not evaluate; write the value out", n)
			}
		}
		b.WriteRune(l.advance())
	}
}
