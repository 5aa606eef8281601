package release

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Grouped is one finding a person acts on: one release lacking one
// advisory, with every package (or module) it concerns folded in, the
// advisory's aliases and related ids, where it was found (the catalog,
// OSV records, or both), and the release to cut for its line.
type Grouped struct {
	Family   string   `json:"family"`
	Release  string   `json:"release"`
	Line     string   `json:"line"`
	Advisory string   `json:"advisory"`
	Aliases  []string `json:"aliases,omitempty"`
	// Packages are the packages and modules lacking the fix, those with
	// the same versions folded ("libssl3, openssl 3.0.11-1~deb12u2 <
	// 3.0.13-1~deb12u1").
	Packages []string `json:"packages"`
	FixedIn  string   `json:"fixed_in,omitempty"`
	Cut      string   `json:"cut"`
	From     []string `json:"from"`
}

// Line is one release line's findings and the release to cut for it.
type Line struct {
	Family   string    `json:"family"`
	Line     string    `json:"line"`
	Cut      string    `json:"cut"`
	Findings []Grouped `json:"findings"`
}

// Group folds findings into one per (release, advisory): the catalog's
// finding and an OSV finding of the same advisory (by id or alias) are
// one, and the packages of a source package are folded together; then
// groups them by release line, each line naming its release to cut once.
func Group(found []Finding) []Line {
	type key struct{ family, release, advisory string }
	var order []key
	byKey := map[key]*Grouped{}
	lacks := map[key][]Lack{}
	find := func(f Finding) key {
		for _, k := range order {
			if k.family != f.Family || k.release != f.Release {
				continue
			}
			g := byKey[k]
			ids := append([]string{g.Advisory}, g.Aliases...)
			if slices.Contains(ids, f.Advisory) || slices.ContainsFunc(f.Aliases, func(a string) bool { return slices.Contains(ids, a) }) {
				return k
			}
		}
		k := key{f.Family, f.Release, f.Advisory}
		order = append(order, k)
		byKey[k] = &Grouped{Family: f.Family, Release: f.Release, Line: LineOf(f.Release), Advisory: f.Advisory, Cut: f.Cut}
		return k
	}
	for _, f := range found {
		k := find(f)
		g := byKey[k]
		for _, a := range append([]string{f.Advisory}, f.Aliases...) {
			if a != g.Advisory && !slices.Contains(g.Aliases, a) {
				g.Aliases = append(g.Aliases, a)
			}
		}
		if g.FixedIn == "" {
			g.FixedIn = f.FixedIn
		}
		if !slices.Contains(g.From, f.From) {
			g.From = append(g.From, f.From)
		}
		if !slices.ContainsFunc(lacks[k], func(l Lack) bool { return l.Name == f.Name && l.Kind == f.Kind && l.Arches == f.Arches }) {
			lacks[k] = append(lacks[k], f.Lack)
		}
	}
	lines := map[string]*Line{}
	var lineOrder []string
	for _, k := range order {
		g := byKey[k]
		g.Packages = fold(lacks[k])
		sort.Strings(g.Aliases)
		lk := g.Family + "\x00" + g.Line
		l, ok := lines[lk]
		if !ok {
			l = &Line{Family: g.Family, Line: g.Line, Cut: g.Cut}
			lines[lk] = l
			lineOrder = append(lineOrder, lk)
		}
		l.Findings = append(l.Findings, *g)
	}
	sort.Strings(lineOrder)
	out := make([]Line, 0, len(lineOrder))
	for _, lk := range lineOrder {
		l := lines[lk]
		sort.SliceStable(l.Findings, func(i, j int) bool {
			a, b := l.Findings[i], l.Findings[j]
			if a.Release != b.Release {
				return a.Release < b.Release
			}
			return a.Advisory < b.Advisory
		})
		out = append(out, *l)
	}
	return out
}

// fold joins lacks with the same kind, versions and arches into one
// ("libssl3, openssl 3.0.11-1~deb12u2 < 3.0.13-1~deb12u1").
func fold(ls []Lack) []string {
	type key struct{ kind, have, fixed, arches string }
	names := map[key][]string{}
	var order []key
	for _, l := range ls {
		k := key{l.Kind, l.Have, l.Fixed, l.Arches}
		if _, ok := names[k]; !ok {
			order = append(order, k)
		}
		names[k] = append(names[k], l.Name)
	}
	var out []string
	for _, k := range order {
		sort.Strings(names[k])
		l := Lack{Kind: k.kind, Name: strings.Join(names[k], ", "), Have: k.have, Fixed: k.fixed, Arches: k.arches}
		out = append(out, l.String())
	}
	sort.Strings(out)
	return out
}

// String is "1.1.0 lacks DSA-6001-1 (CVE-2026-1111): libssl3, openssl
// 3.0.11-1~deb12u2 < 3.0.13-1~deb12u1; fixed in 1.0.1 (catalog, OSV
// debian/DSA-6001-1.json)".
func (g Grouped) String() string {
	s := fmt.Sprintf("%s lacks %s: %s", g.Release, withAliases(g.Advisory, g.Aliases), strings.Join(g.Packages, "; "))
	if g.FixedIn != "" {
		s += "; fixed in " + g.FixedIn
	}
	return s + " (" + strings.Join(g.From, ", ") + ")"
}

// FoldAdvice makes one piece of advice per advisory: the catalog's and
// an OSV record's advice about one advisory (by id or alias) are one,
// packages lacking it at the same versions are folded into one lack
// ("libssl3, openssl 3.0.11-1~deb12u1 < 3.0.11-1~deb12u3"), and the
// release to move to is the lowest that carries all of them (none when
// one is carried nowhere yet).
func FoldAdvice(in []Advice) []Advice {
	var out []Advice
	same := func(a, b Advice) bool {
		ids := append([]string{a.Advisory}, a.Aliases...)
		return slices.Contains(ids, b.Advisory) || slices.ContainsFunc(b.Aliases, func(x string) bool { return slices.Contains(ids, x) })
	}
	for _, a := range in {
		i := slices.IndexFunc(out, func(o Advice) bool {
			return same(o, a) && o.Kind == a.Kind && o.Have == a.Have && o.Fixed == a.Fixed && o.Arches == a.Arches
		})
		if i < 0 {
			out = append(out, a)
			continue
		}
		o := &out[i]
		names := strings.Split(o.Name, ", ")
		if !slices.Contains(names, a.Name) {
			names = append(names, a.Name)
			sort.Strings(names)
			o.Name = strings.Join(names, ", ")
		}
		for _, x := range append([]string{a.Advisory}, a.Aliases...) {
			if x != o.Advisory && !slices.Contains(o.Aliases, x) {
				o.Aliases = append(o.Aliases, x)
			}
		}
		if o.FixedIn == "" {
			o.FixedIn = a.FixedIn
		}
		switch {
		case o.MoveTo == nil || a.MoveTo == nil:
			o.MoveTo = nil
		case o.MoveTo.SemVer().LessThan(a.MoveTo.SemVer()):
			o.MoveTo = a.MoveTo
		}
	}
	return out
}
