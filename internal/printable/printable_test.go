package printable

import (
	"bytes"
	"testing"
)

func TestString(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"plain line\n\twith a tab", "plain line\n\twith a tab"},
		{"module \x1b[2Jcleared", `module \x1b[2Jcleared`},
		{"carriage\rreturn", `carriage\x0dreturn`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"bad \xff byte", `bad \xff byte`},
		{"ünïcode", "ünïcode"},
	} {
		if got := String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	var b bytes.Buffer
	if n, err := Writer(&b).Write([]byte("a\x07b")); n != 3 || err != nil || b.String() != `a\x07b` {
		t.Errorf("Writer: %d, %v, %q", n, err, b.String())
	}
}

func FuzzString(f *testing.F) {
	f.Add("a\x1b[0m\n")
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		for _, c := range []byte(out) {
			if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
				t.Fatalf("String(%q) = %q holds a control byte", s, out)
			}
		}
	})
}
