// Package versionq is the one grammar users write to choose a version,
// shared by agent selection and deploy files.
//
//	latest          the largest release (where the caller allows it)
//	2, 2.x          any 2.*.*
//	2.4, 2.4.x      any 2.4.*
//	~2.4, ~2.4.1    2.4.* (from 2.4.1)
//	^2.4.1          2.4.1 up to 3.0.0
//	2.4.1           exactly that version
//	>=2.1 <3        any Masterminds semver constraint
//
// Versions are left-anchored: "x.2" is refused.
package versionq

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Query is a parsed version query.
type Query struct {
	// Text is the query as written, for messages.
	Text string
	// Major is the major version the query fixes, or -1.
	Major int64
	// Latest is set for "latest".
	Latest bool
	shape  shape
	suffix string // the ".x" a major or major.minor was written with
	exact  *semver.Version
	lo, hi *semver.Version // [lo, hi) for the common shapes
	c      *semver.Constraints
}

type shape int

const (
	shapeConstraint shape = iota
	shapeLatest
	shapeMajor
	shapeMinor
	shapeTilde
	shapeCaret
	shapeExact
)

var (
	majorRE  = regexp.MustCompile(`^(\d+)(\.[xX*])?$`)
	minorRE  = regexp.MustCompile(`^(\d+)\.(\d+)(\.[xX*])?$`)
	tildeRE  = regexp.MustCompile(`^~\s*(\d+)\.(\d+)(?:\.(\d+))?$`)
	caretRE  = regexp.MustCompile(`^\^\s*([1-9]\d*)\.(\d+)\.(\d+)$`)
	anchorRE = regexp.MustCompile(`(^|[\s,|<>=~^]+)[xX*]\.`)
)

// Parse reads a query. latest says whether "latest" is accepted.
func Parse(s string, latest bool) (*Query, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "latest" && latest:
		return &Query{Text: s, Major: -1, Latest: true, shape: shapeLatest}, nil
	case anchorRE.MatchString(s) || s == "x" || s == "*":
		return nil, fmt.Errorf("%q: versions are left-anchored; write the major first (e.g. \"1\", \"1.4\")", s)
	}
	if tooLarge(s) {
		return nil, fmt.Errorf("%q: a version number is too large (at most %d)", s, maxNumber)
	}
	if m := majorRE.FindStringSubmatch(s); m != nil {
		ma := num(m[1])
		q := bounds(s, ma, ma, 0, 0, ma+1, 0)
		q.shape, q.suffix = shapeMajor, m[2]
		return q, nil
	}
	if m := minorRE.FindStringSubmatch(s); m != nil {
		ma, mi := num(m[1]), num(m[2])
		q := bounds(s, ma, ma, mi, 0, ma, mi+1)
		q.shape, q.suffix = shapeMinor, m[3]
		return q, nil
	}
	if m := tildeRE.FindStringSubmatch(s); m != nil {
		ma, mi := num(m[1]), num(m[2])
		q := bounds(s, ma, ma, mi, num(m[3]), ma, mi+1)
		q.shape = shapeTilde
		return q, nil
	}
	if m := caretRE.FindStringSubmatch(s); m != nil {
		ma := num(m[1])
		q := bounds(s, ma, ma, num(m[2]), num(m[3]), ma+1, 0)
		q.shape = shapeCaret
		return q, nil
	}
	if v, err := semver.StrictNewVersion(s); err == nil {
		return &Query{Text: s, Major: int64(v.Major()), exact: v, shape: shapeExact}, nil
	}
	c, err := semver.NewConstraint(s)
	if err != nil {
		want := "a version, a major, a major.minor or a constraint"
		if latest {
			want = "a version, a major, a major.minor, latest or a constraint"
		}
		return nil, fmt.Errorf("%q is not %s: %v", s, want, err)
	}
	return &Query{Text: s, Major: -1, c: c}, nil
}

// maxNumber bounds each number of a version, so that ranges such as
// [N, N+1) never overflow.
const maxNumber = 1<<31 - 1

var digitsRE = regexp.MustCompile(`\d+`)

func tooLarge(s string) bool {
	for _, d := range digitsRE.FindAllString(s, -1) {
		if n, err := strconv.ParseInt(d, 10, 64); err != nil || n > maxNumber {
			return true
		}
	}
	return false
}

func num(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// bounds is [lo, hi), where "-0" lets pre-releases of lo in when asked for
// and keeps those of hi out.
func bounds(s string, major, loMa, loMi, loPa, hiMa, hiMi int64) *Query {
	lo := semver.MustParse(fmt.Sprintf("%d.%d.%d-0", loMa, loMi, loPa))
	hi := semver.MustParse(fmt.Sprintf("%d.%d.0-0", hiMa, hiMi))
	return &Query{Text: s, Major: major, lo: lo, hi: hi}
}

// Exact reports whether the query names one version.
func (q *Query) Exact() bool { return q.exact != nil }

// Match reports whether v satisfies the query. An exact query matches its
// version, pre-release or not; the others match pre-releases only with pre.
func (q *Query) Match(v *semver.Version, pre bool) bool {
	if q.exact != nil {
		return v.Equal(q.exact) && v.Prerelease() == q.exact.Prerelease()
	}
	if v.Prerelease() != "" && !pre {
		return false
	}
	switch {
	case q.Latest:
		return true
	case q.lo != nil:
		return !v.LessThan(q.lo) && v.LessThan(q.hi)
	}
	return q.c.Check(v)
}

// Rewrite gives the query of the same shape that means "to": "1.4" becomes
// "2.0" for 2.0.3, "~1.4" becomes "~2.0". A constraint that admits "to"
// stays; one that does not cannot be rewritten safely, and the second
// result says so.
func (q *Query) Rewrite(to *semver.Version) (string, string) {
	switch q.shape {
	case shapeLatest:
		return q.Text, ""
	case shapeMajor:
		return fmt.Sprintf("%d%s", to.Major(), q.suffix), ""
	case shapeMinor:
		return fmt.Sprintf("%d.%d%s", to.Major(), to.Minor(), q.suffix), ""
	case shapeTilde:
		return fmt.Sprintf("~%d.%d", to.Major(), to.Minor()), ""
	case shapeCaret:
		return "^" + to.Original(), ""
	case shapeExact:
		return to.Original(), ""
	}
	if q.c.Check(to) {
		return q.Text, ""
	}
	return q.Text, fmt.Sprintf("constraint %q does not admit %s and cannot be rewritten safely; edit it by hand", q.Text, to.Original())
}

// String describes the query for messages: a bare major or major.minor is
// shown with its ".x" ("2" as "2.x"), so the reader sees it is a range.
func (q *Query) String() string {
	if (q.shape == shapeMajor || q.shape == shapeMinor) && q.suffix == "" {
		return q.Text + ".x"
	}
	return q.Text
}
