package deploy

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/osv"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/release"
)

// NewestNote names the newest supported release of r's family above r
// that lacks no security fix r's line has: where the selection can
// safely move (a newer release lacking such a fix is not offered).
func NewestNote(ctx context.Context, c *catalog.Catalog, r *Resolved, read release.ManifestFunc) string {
	f := c.Family(r.Family, false)
	if f == nil {
		return ""
	}
	cur := f.Release(r.Release)
	if cur == nil {
		return ""
	}
	var cands []*catalog.Release
	for i := range f.Releases {
		x := &f.Releases[i]
		if (x.State == catalog.Active || x.State == catalog.Deprecated) && x.SemVer().Prerelease() == "" && cur.SemVer().LessThan(x.SemVer()) {
			cands = append(cands, x)
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[j].SemVer().LessThan(cands[i].SemVer()) })
	for _, x := range cands {
		if read != nil {
			if lacks, err := release.FixesLacking(ctx, f, x.Version, release.LineOf(cur.Version), read); err != nil || len(lacks) > 0 {
				continue
			}
		}
		how := "imagebake upgrade"
		if x.SemVer().Major() != cur.SemVer().Major() {
			how += " --major"
		}
		return fmt.Sprintf(" (the newest of %s is %s: %s)", r.Family, x.Version, how)
	}
	if len(cands) == 0 {
		return " (the newest of " + r.Family + ")"
	}
	return " (the newer releases of " + r.Family + " lack fixes its line has: stay on it)"
}

// FixFindings are the security fixes the release r resolved to lacks
// (release.Advise), as findings at r's position: a warning while the
// release to move to is inside the family's grace days (or none carries
// the fix yet), an error after.
func FixFindings(ctx context.Context, c *catalog.Catalog, r *Resolved, read release.ManifestFunc, db *osv.DB, now time.Time) ([]Finding, error) {
	f := c.Family(r.Family, false)
	if f == nil {
		return nil, nil
	}
	advice, err := release.Advise(ctx, f, r.Release, read, db)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, a := range release.FoldAdvice(advice) { // one line per advisory
		msg := a.Message(r.Family, r.Release)
		sev := "warning"
		if a.MoveTo != nil {
			deadline := a.MoveTo.Date.AddDate(0, 0, f.GraceDays)
			if now.Before(deadline) {
				msg += fmt.Sprintf(" (mandatory; grace period ends %s)", deadline.UTC().Format("2006-01-02"))
			} else {
				sev = "error"
				msg += fmt.Sprintf(" (mandatory; grace period ended %s); select %s or newer", deadline.UTC().Format("2006-01-02"), a.MoveTo.Version)
			}
		}
		out = append(out, Finding{Pos: r.Pos, Severity: sev, Msg: msg})
	}
	return out, nil
}

// CompareMajor fills in what changes across a major move, as release
// plan lists it, from the two releases' signed manifests in the catalog's
// store.
func CompareMajor(ctx context.Context, o *catalog.Opened, s *Step) {
	var ms [2]*manifest.Manifest
	for i, v := range []string{s.From, s.To} {
		m, err := o.Manifest(ctx, s.Family, v)
		if err == nil && m == nil {
			err = fmt.Errorf("%s %s is not in the catalog %s", s.Family, v, o.Where)
		}
		if err != nil {
			s.CompareError = err.Error()
			return
		}
		ms[i] = m
	}
	s.Compared = true
	for _, c := range release.Compare(ms[0], ms[1], release.Rules{}) {
		s.Changes = append(s.Changes, fmt.Sprintf("%-8s %s: %s", c.Level, c.What, c.Reason))
	}
}

// Report is what checking every selection of a deploy file found.
type Report struct {
	Findings []Finding   // in the file's order
	Passed   []string    // one line per selection without a finding
	Warned   int         // selections with warnings only
	Failed   int         // selections with an error (one may have several)
	Missing  []error     // selections that match no release
	Resolved []*Resolved // the selections that matched, in the file's order
}

// CheckAll checks every selection of df against the catalog c (read from
// src): its lifecycle (Check) and the security fixes it lacks
// (FixFindings, with the OSV records of db when not nil). A selection
// that matches nothing does not stop the others being checked.
func CheckAll(ctx context.Context, df *File, c *catalog.Catalog, src string, read release.ManifestFunc, db *osv.DB, now time.Time) (*Report, error) {
	rep := &Report{}
	for _, s := range df.Selections {
		r, err := Resolve(c, src, s)
		if err != nil {
			rep.Missing = append(rep.Missing, err)
			continue
		}
		rep.Resolved = append(rep.Resolved, r)
		fixes, err := FixFindings(ctx, c, r, read, db, now)
		if err != nil {
			return nil, err
		}
		failed := false
		for _, fd := range append(Check(r, now), fixes...) {
			rep.Findings = append(rep.Findings, fd)
			failed = failed || fd.Severity == "error"
		}
		switch n := len(rep.Findings); {
		case failed:
			rep.Failed++
		case n > 0 && rep.Findings[n-1].Pos == r.Pos:
			rep.Warned++
		default:
			rep.Passed = append(rep.Passed, fmt.Sprintf("%s: %s: %s %s passes%s", r.Pos, r.Key, r.Family, r.Release, NewestNote(ctx, c, r, read)))
		}
	}
	return rep, nil
}

// policyError says how many selections fail the policy, in words: it is
// ErrPolicy (exit 4) without "verification failed" in the message.
type policyError struct{ msg string }

func (e *policyError) Error() string { return e.msg }
func (e *policyError) Unwrap() error { return ErrPolicy }

// Err is the check's outcome for the file name: the worst of a selection
// matching nothing (exit 3) and the policy failing (exit 4); nil when
// every selection passed or only warned.
func (r *Report) Err(name string) error {
	var policy error
	if r.Failed > 0 {
		policy = &policyError{fmt.Sprintf("%d of the selections in %s %s the lifecycle policy (the errors above say why and what to select)", r.Failed, name, map[bool]string{true: "fails", false: "fail"}[r.Failed == 1])}
	}
	return failure.Worst(append(r.Missing, policy)...)
}
