// Package catalogpage writes a store's catalog as one static HTML page for
// people: each family's release lines as a timeline with their lifecycle
// states and end-of-life countdowns, the advisories with the releases
// that carry each fix, what each release changed (its level and the
// reasons), and the revoked releases with their replacements.
//
// The page is self-contained: its style is inline, it has no script, and
// it loads nothing (no font, image or style from anywhere). The same
// catalog, manifests and date give the same bytes.
package catalogpage

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/release"
)

// FileName is the page's name beside catalog.toml.
const FileName = "index.html"

// Page is what the page shows.
type Page struct {
	Where    string // the catalog's location, for people
	Serial   uint64
	Expires  string // "2027-06-01", or "" (never)
	Date     string // the day the page was made: countdowns count from it
	Families []Family
}

// Family is one family's part of the page.
type Family struct {
	Name       string
	Lines      []Line
	Advisories []Advisory
	Releases   []Changes // newest first
	Revoked    []Revoked
}

// Line is one release line (MAJOR.MINOR), its releases oldest first.
type Line struct {
	Name      string // "1.0"
	EOL       string // its major's end of life, "" when none is set
	Countdown string // "ends in 84 days", "ended 12 days ago"
	Ended     bool
	Soon      bool // within its notice period
	Releases  []Point
}

// Point is one release on a line.
type Point struct {
	Version  string
	Date     string
	State    string // active, deprecated, obsolete, revoked
	Since    string // when the state took effect (not active)
	Security bool
}

// Advisory is one advisory a release of the family fixed.
type Advisory struct {
	ID      string
	FixedIn []string // the releases whose fix records name it
	Fix     []string // what the fix raised: "openssl 3.0.11-1~deb12u1 → 3.0.11-1~deb12u3"
	Carried []string // releases that hold the fix
	Lacking []string // releases (revoked ones left out) that lack it
}

// Changes is what one release changed since the release before it.
type Changes struct {
	Version  string
	Date     string
	Previous string // "" for the family's first release
	Level    string // "MAJOR", "MINOR", "SECURITY", or "first release"
	Changes  []Change
}

// Change is one change of a release.
type Change struct {
	Level  string
	What   string
	Reason string
}

// Revoked is a revoked release.
type Revoked struct {
	Version     string
	Date        string
	Reason      string
	Replacement string
}

// Build reads every release's manifest through read (each once) and makes
// the page of c, located at where, on the day of now.
func Build(ctx context.Context, c *catalog.Catalog, where string, read release.ManifestFunc, now time.Time) (*Page, error) {
	p := &Page{Where: where, Serial: c.Serial, Date: now.UTC().Format(time.DateOnly)}
	if !c.Expires.IsZero() {
		p.Expires = c.Expires.UTC().Format(time.DateOnly)
	}
	for i := range c.Families {
		f := &c.Families[i]
		ms, err := manifests(ctx, f, read)
		if err != nil {
			return nil, err
		}
		p.Families = append(p.Families, Family{
			Name:       f.Name,
			Lines:      lines(f, now),
			Advisories: advisories(f, ms),
			Releases:   changes(f, ms),
			Revoked:    revoked(f),
		})
	}
	return p, nil
}

// manifests reads the manifest of each release of f, several at a time
// (each a file or a request, and a signature to check).
func manifests(ctx context.Context, f *catalog.Family, read release.ManifestFunc) ([]*manifest.Manifest, error) {
	ms := make([]*manifest.Manifest, len(f.Releases))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * runtime.GOMAXPROCS(0))
	for j := range f.Releases {
		g.Go(func() error {
			defer failure.Crash()
			m, err := read(gctx, f.Name, f.Releases[j].Version)
			if err != nil {
				return fmt.Errorf("catalog page: the manifest of %s %s: %w", f.Name, f.Releases[j].Version, err)
			}
			ms[j] = m
			return nil
		})
	}
	return ms, g.Wait()
}

// byVersion lists f's releases with their manifests, oldest version first.
func byVersion(f *catalog.Family) []int {
	idx := make([]int, len(f.Releases))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return f.Releases[idx[a]].SemVer().LessThan(f.Releases[idx[b]].SemVer()) })
	return idx
}

func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

// lines groups f's releases by MAJOR.MINOR, with their major's end of life
// counted from now.
func lines(f *catalog.Family, now time.Time) []Line {
	var out []Line
	at := map[string]int{}
	for _, i := range byVersion(f) {
		r := &f.Releases[i]
		name := release.LineOf(r.Version)
		k, ok := at[name]
		if !ok {
			k = len(out)
			at[name] = k
			out = append(out, eolOf(f, name, r.SemVer().Major(), now))
		}
		pt := Point{Version: r.Version, Date: day(r.Date), State: r.State, Security: r.Security}
		if r.State != catalog.Active {
			pt.Since = day(r.StateDate)
		}
		out[k].Releases = append(out[k].Releases, pt)
	}
	return out
}

func eolOf(f *catalog.Family, name string, major uint64, now time.Time) Line {
	l := Line{Name: name}
	s, ok := f.SupportOf(major)
	if !ok || s.EOL.IsZero() {
		return l
	}
	l.EOL = day(s.EOL)
	days := int(s.EOL.Sub(now).Hours() / 24)
	switch {
	case !now.Before(s.EOL):
		l.Ended, l.Countdown = true, "ended "+plural(-days, "day")+" ago"
		if days == 0 {
			l.Countdown = "ended today"
		}
	default:
		l.Countdown = "ends in " + plural(days, "day")
		l.Soon = days <= s.NoticeDays
	}
	return l
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// advisories lists every advisory a release of f fixed, oldest fixing
// release first, with the releases that carry its fix and those that lack
// it: a release that lacks any of the advisory's fix records lacks the
// advisory. Revoked releases are in neither list.
func advisories(f *catalog.Family, ms []*manifest.Manifest) []Advisory {
	var out []Advisory
	var records [][]manifest.Fix
	at := map[string]int{}
	order := byVersion(f)
	for _, i := range order {
		r := &f.Releases[i]
		for _, fx := range r.Fixes {
			k, ok := at[fx.Advisory]
			if !ok {
				k = len(out)
				at[fx.Advisory] = k
				out, records = append(out, Advisory{ID: fx.Advisory}), append(records, nil)
			}
			out[k].FixedIn = uniq(append(out[k].FixedIn, r.Version))
			out[k].Fix = uniq(append(out[k].Fix, fixText(fx)...))
			records[k] = append(records[k], fx)
		}
	}
	for k := range out {
		for _, j := range order {
			switch r := &f.Releases[j]; {
			case r.State == catalog.Revoked:
			case lacksAny(ms[j], records[k]):
				out[k].Lacking = append(out[k].Lacking, r.Version)
			default:
				out[k].Carried = append(out[k].Carried, r.Version)
			}
		}
	}
	return out
}

// lacksAny says whether m lacks any of fixes.
func lacksAny(m *manifest.Manifest, fixes []manifest.Fix) bool {
	return slices.ContainsFunc(fixes, func(fx manifest.Fix) bool { return len(release.Lacks(m, fx)) > 0 })
}

func fixText(fx manifest.Fix) []string {
	var out []string
	for _, p := range fx.Packages {
		out = append(out, fmt.Sprintf("%s %s → %s", p.Name, p.Old, p.New))
	}
	for _, m := range fx.Modules {
		out = append(out, fmt.Sprintf("module %s %s → %s", m.Name, m.Old, m.New))
	}
	return out
}

// changes lists, newest release first, what each release of f changed
// since the release it followed (before).
func changes(f *catalog.Family, ms []*manifest.Manifest) []Changes {
	order := byVersion(f)
	out := make([]Changes, 0, len(order))
	for _, i := range order {
		r := &f.Releases[i]
		c := Changes{Version: r.Version, Date: day(r.Date), Level: "first release"}
		if prev := before(f, order, i); prev >= 0 {
			c.Previous = f.Releases[prev].Version
			ch := release.Compare(ms[prev], ms[i], release.RulesOf(ms[i]))
			c.Level = release.Needed(ch).String()
			for _, x := range ch {
				c.Changes = append(c.Changes, Change{Level: x.Level.String(), What: x.What, Reason: x.Reason})
			}
		}
		out = append(out, c)
	}
	for a, b := 0, len(out)-1; a < b; a, b = a+1, b-1 {
		out[a], out[b] = out[b], out[a]
	}
	return out
}

// before is the release release i of f followed (-1 for none): the
// highest version below it among the releases made no later than it, what
// its number was checked against when it was published (a 1.1.0 made
// before 1.0.1 followed 1.0.0); else the one numbered just below it.
// order is f's releases by version.
func before(f *catalog.Family, order []int, i int) int {
	r := &f.Releases[i]
	below, made := -1, -1
	for _, j := range order {
		o := &f.Releases[j]
		if !o.SemVer().LessThan(r.SemVer()) {
			break
		}
		below = j
		if !o.Date.After(r.Date) {
			made = j
		}
	}
	if made >= 0 {
		return made
	}
	return below
}

// revoked lists f's revoked releases, oldest version first.
func revoked(f *catalog.Family) []Revoked {
	var out []Revoked
	for _, i := range byVersion(f) {
		r := &f.Releases[i]
		if r.State == catalog.Revoked {
			out = append(out, Revoked{Version: r.Version, Date: day(r.StateDate), Reason: r.Reason, Replacement: r.Replacement})
		}
	}
	return out
}

func uniq(s []string) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// joinOr joins s with ", ", or gives none when s is empty.
func joinOr(s []string, none string) string {
	if len(s) == 0 {
		return none
	}
	return strings.Join(s, ", ")
}
