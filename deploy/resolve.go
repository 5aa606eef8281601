package deploy

import (
	"fmt"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/versionq"
	"github.com/imagebake/imagebake/manifests/catalog"
)

// ErrNoMatch marks a selection no release satisfies.
var ErrNoMatch = fmt.Errorf("no release matches: %w", failure.ErrNotFound)

// ErrPolicy marks a selection the lifecycle policy refuses.
var ErrPolicy = fmt.Errorf("lifecycle policy: %w", failure.ErrVerify)

// Resolved is a selection resolved to one release.
type Resolved struct {
	Key     string  `json:"key,omitempty"`
	Family  string  `json:"image"`
	Want    string  `json:"version"`
	Release string  `json:"release"`
	Images  []Image `json:"images"`
	Pos     Pos     `json:"pos"`

	rel *catalog.Release
	fam *catalog.Family
}

// Image is one arch's image of a selected release, with where to pull it
// when the catalog records a registry the release was pushed to.
type Image struct {
	catalog.Image
	// Pull is REGISTRY/REPO@sha256:... in the first repository the
	// catalog records for the release; "" when it records none.
	Pull string `toml:"pull,omitempty" json:"pull,omitempty"`
}

func selected(rel *catalog.Release, im catalog.Image) Image {
	out := Image{Image: im}
	if len(rel.Repositories) > 0 {
		out.Pull = rel.Repositories[0] + "@" + im.Digest
	}
	return out
}

// match reports whether r is a release the query may pick: an exact
// version names one release whatever its state; the other queries skip
// pre-releases and obsolete or revoked releases.
func match(q *versionq.Query, r *catalog.Release) bool {
	if !q.Exact() && (r.State == catalog.Obsolete || r.State == catalog.Revoked) {
		return false
	}
	return q.Match(r.SemVer(), false)
}

// Resolve picks the release a selection means in c (read from source).
func Resolve(c *catalog.Catalog, source string, s Selection) (*Resolved, error) {
	w, err := versionq.Parse(s.Version, true)
	if err != nil {
		return nil, &Error{Pos: s.VersionPos, Msg: err.Error()}
	}
	f := c.Family(s.Family, false)
	if f == nil {
		var names []string
		for _, x := range c.Families {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("%s: image %s is not in the catalog %s (families: %s): %w", s.Pos, s.Family, source, strings.Join(names, ", "), ErrNoMatch)
	}
	var best *catalog.Release
	for i := range f.Releases {
		r := &f.Releases[i]
		if match(w, r) && (best == nil || r.SemVer().GreaterThan(best.SemVer())) {
			best = r
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%s: no release of %s matches %q%s in %s; it has %s: %w", s.VersionPos, s.Family, s.Version, archNote(s.Arches), source, describe(f), ErrNoMatch)
	}
	res := &Resolved{Key: s.Key, Family: s.Family, Want: s.Version, Release: best.Version, Pos: s.VersionPos, rel: best, fam: f}
	byArch := map[string]catalog.Image{}
	for _, im := range best.Images {
		byArch[im.Arch] = im
	}
	if len(s.Arches) == 0 {
		for _, im := range best.Images {
			res.Images = append(res.Images, selected(best, im))
		}
	}
	for _, a := range s.Arches {
		im, ok := byArch[a]
		if !ok {
			var has []string
			for _, im := range best.Images {
				has = append(has, im.Arch)
			}
			return nil, fmt.Errorf("%s: %s %s (for %q) has no %s image (it has %s) in %s: %w", s.Pos, s.Family, best.Version, s.Version, a, strings.Join(has, ", "), source, ErrNoMatch)
		}
		res.Images = append(res.Images, selected(best, im))
	}
	return res, nil
}

func archNote(arches []string) string {
	if len(arches) == 0 {
		return ""
	}
	return " (arch " + strings.Join(arches, ", ") + ")"
}

func describe(f *catalog.Family) string {
	var out []string
	for _, r := range f.Releases {
		d := r.Version
		if r.State != catalog.Active {
			d += " (" + r.State + ")"
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return "no releases"
	}
	return strings.Join(out, ", ")
}

// Finding is one policy result.
type Finding struct {
	Pos      Pos    `json:"pos"`
	Severity string `json:"severity"` // "warning" or "error"
	Msg      string `json:"message"`
}

func (f Finding) String() string { return fmt.Sprintf("%s: %s: %s", f.Pos, f.Severity, f.Msg) }

// Check applies the lifecycle policy at now to a resolved selection.
func Check(r *Resolved, now time.Time) []Finding {
	var out []Finding
	for _, part := range []func(*Resolved, time.Time) []finding{stateFindings, eolFindings, securityFindings} {
		for _, f := range part(r, now) {
			out = append(out, Finding{Pos: r.Pos, Severity: f.sev, Msg: f.msg})
		}
	}
	return out
}

// finding is a Finding before it gets its position.
type finding struct{ sev, msg string }

func stateFindings(r *Resolved, _ time.Time) []finding {
	if sev, msg := stateFinding(r); sev != "" {
		return []finding{{sev, msg}}
	}
	return nil
}

// eolFindings: the major's end of life, warned inside its notice window.
func eolFindings(r *Resolved, now time.Time) []finding {
	f := r.fam
	s, ok := f.SupportOf(r.rel.SemVer().Major())
	if !ok || s.EOL.IsZero() {
		return nil
	}
	switch notice := s.EOL.AddDate(0, 0, -s.NoticeDays); {
	case !now.Before(s.EOL):
		return []finding{{"error", fmt.Sprintf("major %d of %s reached end of life on %s; %s", s.Major, r.Family, day(s.EOL), moveOn(f, s.Major, now))}}
	case !now.Before(notice):
		return []finding{{"warning", fmt.Sprintf("major %d of %s reaches end of life on %s (in %d days); plan the %s", s.Major, r.Family, day(s.EOL), daysUntil(now, s.EOL), moveOn(f, s.Major, now))}}
	}
	return nil
}

// sameLineAbove says whether x is a release of v's minor line above v.
func sameLineAbove(x *catalog.Release, v *semver.Version) bool {
	xv := x.SemVer()
	return xv.Major() == v.Major() && xv.Minor() == v.Minor() && xv.GreaterThan(v)
}

// securityFindings: the newest security release of the line the selected
// release lacks (a warning in the grace days, an error after), and the
// revoked security releases above it with nothing after them (their
// advisories are open again: a tracking selection moved back).
func securityFindings(r *Resolved, now time.Time) []finding {
	f, v := r.fam, r.rel.SemVer()
	name := r.Family + " " + r.rel.Version
	var sec *catalog.Release
	for i := range f.Releases {
		x := &f.Releases[i]
		if x.Security && sameLineAbove(x, v) && x.SemVer().Prerelease() == "" &&
			(x.State == catalog.Active || x.State == catalog.Deprecated) && (sec == nil || x.SemVer().GreaterThan(sec.SemVer())) {
			sec = x
		}
	}
	var out []finding
	for i := range f.Releases {
		x := &f.Releases[i]
		if x.State != catalog.Revoked || !x.Security || !sameLineAbove(x, v) || (sec != nil && sec.SemVer().GreaterThan(x.SemVer())) {
			continue // a later security release carries its fixes: said below
		}
		open := ""
		if len(x.Advisories) > 0 {
			open = ": " + strings.Join(x.Advisories, ", ") + " open again for " + name
		}
		out = append(out, finding{"warning", fmt.Sprintf("security release %s %s was revoked on %s (%s)%s; no release of the line carries its fixes yet%s", r.Family, x.Version, day(x.StateDate), x.Reason, open, replacement(x))})
	}
	if sec == nil {
		return out
	}
	deadline := sec.Date.AddDate(0, 0, f.GraceDays)
	fixes := fixed(f, v, sec.SemVer())
	if now.Before(deadline) {
		return append(out, finding{"warning", fmt.Sprintf("%s lacks security release %s of %s%s (mandatory; grace period ends %s)", name, sec.Version, day(sec.Date), fixes, day(deadline))})
	}
	return append(out, finding{"error", fmt.Sprintf("%s lacks security release %s of %s%s (mandatory; grace period ended %s); select %s or newer", name, sec.Version, day(sec.Date), fixes, day(deadline), sec.Version)})
}

// moveOn says where users of an ending major go: the newest supported
// major above it with an active release (imagebake upgrade --major), or
// that none exists yet.
func moveOn(f *catalog.Family, major uint64, now time.Time) string {
	var to *catalog.Release
	for i := range f.Releases {
		x := &f.Releases[i]
		xv := x.SemVer()
		if xv.Major() <= major || x.State != catalog.Active || xv.Prerelease() != "" {
			continue
		}
		if s, ok := f.SupportOf(xv.Major()); ok && !s.EOL.IsZero() && !now.Before(s.EOL) {
			continue
		}
		if to == nil || to.SemVer().LessThan(xv) {
			to = x
		}
	}
	if to == nil {
		return fmt.Sprintf("move with its release engineers: no supported major above %d of %s has a release yet (ask for one, or for a later end of life: catalog eol)", major, f.Name)
	}
	return fmt.Sprintf("move to %s %s (imagebake upgrade --major)", f.Name, to.Version)
}

// fixed names the advisories of the security releases after v up to
// upTo in v's minor line: what a user of v still lacks. A revoked one
// counts: security releases of a line are cumulative, and its fixes are
// in the releases after it.
func fixed(f *catalog.Family, v, upTo *semver.Version) string {
	var ids []string
	seen := map[string]bool{}
	for i := range f.Releases {
		x := &f.Releases[i]
		xv := x.SemVer()
		if !x.Security || xv.Major() != v.Major() || xv.Minor() != v.Minor() || !xv.GreaterThan(v) || xv.GreaterThan(upTo) {
			continue
		}
		for _, id := range x.Advisories {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return ""
	}
	return ", fixing " + strings.Join(ids, ", ")
}

// daysUntil counts calendar days (UTC) from now to t: from 2026-12-15 at
// any hour to 2027-01-31 is 47.
func daysUntil(now, t time.Time) int {
	a := now.UTC().Truncate(24 * time.Hour)
	b := t.UTC().Truncate(24 * time.Hour)
	return int(b.Sub(a).Hours() / 24)
}

func day(t time.Time) string {
	if t.IsZero() {
		return "an unrecorded date"
	}
	return t.UTC().Format("2006-01-02")
}

func replacement(r *catalog.Release) string {
	if r.Replacement == "" {
		return ""
	}
	return "; replacement: " + r.Replacement
}

// stateFinding is what a release's lifecycle state means for a selection
// of it: an "error" for an obsolete or revoked release, a "warning" for a
// deprecated one, nothing for an active one.
func stateFinding(r *Resolved) (severity, msg string) {
	rel := r.rel
	name := r.Family + " " + rel.Version
	switch rel.State {
	case catalog.Obsolete, catalog.Revoked:
		return "error", fmt.Sprintf("%s is %s since %s: %s%s", name, rel.State, day(rel.StateDate), rel.Reason, replacement(rel))
	case catalog.Deprecated:
		return "warning", fmt.Sprintf("%s is deprecated since %s: %s%s", name, day(rel.StateDate), rel.Reason, replacement(rel))
	}
	return "", ""
}

// Usable says whether a resolved release may be handed out, as check
// would: an obsolete or revoked release is refused (ErrPolicy, naming the
// reason and replacement); a deprecated one comes with a warning.
func Usable(r *Resolved) (warning string, err error) {
	switch sev, msg := stateFinding(r); sev {
	case "error":
		return "", fmt.Errorf("%s: %w: %s", r.Pos, ErrPolicy, msg)
	case "warning":
		return fmt.Sprintf("%s: warning: %s", r.Pos, msg), nil
	}
	return "", nil
}
