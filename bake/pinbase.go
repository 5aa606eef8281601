package bake

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/imagebake/imagebake/internal/failure"
)

var (
	tableRE   = regexp.MustCompile(`^\s*\[\s*([A-Za-z0-9_.\-" ]+?)\s*\]\s*(#.*)?$`)
	baseKeyRE = regexp.MustCompile(`^\s*(scratch|layout|digest|rootfs|sha256|image)\s*=`)
	dottedRE  = regexp.MustCompile(`^\s*(base|bases)\s*[.=]`)
)

// SetBaseImage returns imagebake.toml (b) with the base of table ("base",
// or "bases.ARCH") pinned to image = ref, edited in place: the table's
// base keys (scratch, layout, digest, rootfs, sha256, image) give way to
// one image line where the first of them stood; comments, other keys and
// every other line stay as they are. A missing table is appended. The
// result is parsed before it is returned, and must say what was asked.
func SetBaseImage(b []byte, table, ref string) ([]byte, error) {
	lines := bytes.SplitAfter(b, []byte("\n"))
	var out [][]byte
	in, found, written := false, false, false
	line := []byte("image = " + strconv.Quote(ref) + "\n")
	for i, l := range lines {
		if len(l) == 0 {
			continue
		}
		if m := tableRE.FindSubmatch(bytes.TrimRight(l, "\r\n")); m != nil && !bytes.HasPrefix(bytes.TrimSpace(l), []byte("[[")) {
			if in && !written {
				out = append(out, line)
				written = true
			}
			in = string(bytes.ReplaceAll(m[1], []byte(" "), nil)) == table
			found = found || in
		} else if !in && !found && dottedRE.Match(l) {
			return nil, fmt.Errorf("%w: line %d sets the base as a dotted key or inline table; write it as a [%s] table to let imagebake edit it", ErrConfig, i+1, table)
		}
		if in && baseKeyRE.Match(l) {
			if !written {
				out = append(out, line)
				written = true
			}
			continue
		}
		out = append(out, l)
	}
	switch {
	case in && !written: // the table is the last: the line goes at its end
		out = append(endLine(out), line)
	case !found:
		out = append(endLine(out), []byte("\n["+table+"]\n"), line)
	}
	res := bytes.Join(out, nil)
	if err := checkBaseImage(res, table, ref); err != nil {
		return nil, err
	}
	return res, nil
}

// endLine ends the last line of out with a newline if it has none.
func endLine(out [][]byte) [][]byte {
	if len(out) > 0 && !bytes.HasSuffix(out[len(out)-1], []byte("\n")) {
		out = append(out, []byte("\n"))
	}
	return out
}

// checkBaseImage checks the edited file parses and says [table] image =
// ref.
func checkBaseImage(res []byte, table, ref string) error {
	c, err := ParseConfig(res)
	if err != nil {
		return fmt.Errorf("%w: imagebake.toml with [%s] image = %q does not parse: %v", ErrConfig, table, ref, err)
	}
	got := ""
	if table == "base" && c.Base != nil {
		got = c.Base.Image
	} else if arch, ok := strings.CutPrefix(table, "bases."); ok {
		got = c.Bases[arch].Image
	}
	if got != ref {
		return fmt.Errorf("%w: could not set [%s] image in imagebake.toml (it says %q after the edit)", failure.ErrUsage, table, got)
	}
	return nil
}
