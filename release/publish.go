package release

import (
	"context"
	"errors"
	"fmt"
	"github.com/Masterminds/semver/v3"
	"strings"
	"time"

	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// PreviousIn reads, from the catalog o, the manifest of the release of
// family numbered just below version: what the number of version is
// checked against. nil when the catalog holds no release below version,
// or holds version itself (published: nothing to check).
func PreviousIn(ctx context.Context, o *catalog.Opened, family, version string) (*manifest.Manifest, error) {
	f := o.Family(family, false)
	if f == nil || f.Release(version) != nil { // first of its family, or published: nothing to check
		return nil, nil
	}
	prev := f.Previous(version)
	if prev == nil {
		return nil, nil
	}
	return o.Manifest(ctx, family, prev.Version)
}

// Candidate is a release about to be published into a store: what the
// store's catalog (nil for its first release) says of it.
type Candidate struct {
	Opened   *catalog.Opened
	Manifest *manifest.Manifest
	// Fixes are what its catalog entry records: its manifest's, or for a
	// security release baked without its number checked, derived from
	// the release before it.
	Fixes []manifest.Fix
	// Follows is the release its number was checked against ("" if none).
	Follows string
}

// CheckCandidate checks the release cand against the catalog o (nil: the
// store's first release) when check is set: its number against the
// release before it (by the rules it was baked with: its manifest's major
// packages and advisories), and that it lacks no fix a release numbered
// below it published (exit 4 naming the advisory, the package and both
// versions). Every problem is reported at once.
func CheckCandidate(ctx context.Context, o *catalog.Opened, cand *manifest.Manifest, check bool) (*Candidate, error) {
	out := &Candidate{Opened: o, Manifest: cand, Fixes: cand.Fixes}
	if o == nil {
		return out, nil
	}
	prev, err := PreviousIn(ctx, o, cand.Family, cand.Release)
	if err != nil {
		return nil, err
	}
	if prev != nil && len(cand.Advisories) > 0 && len(cand.Fixes) == 0 {
		out.Fixes = FixesOf(prev, cand, RulesOf(cand))
	}
	if f := o.Family(cand.Family, false); !check || (f != nil && f.Release(cand.Release) != nil) {
		return out, nil // published already: the publish is a no-op, or refused as other content
	}
	var problems []error
	if prev != nil {
		if err := Check(prev, cand, cand.Release, RulesOf(cand)); err != nil {
			problems = append(problems, err)
		} else {
			out.Follows = prev.Release
		}
	}
	if lacks := MissingFixes(o.Family(cand.Family, false), cand); len(lacks) > 0 {
		var lines []string
		for _, l := range lacks {
			lines = append(lines, fmt.Sprintf("%s (%s), fixed in %s", l.Advisory, l.Lack, l.FixedIn))
		}
		problems = append(problems, fmt.Errorf("%w: %s %s would bring back what releases below it fixed:\n  %s\nbake it on a base (and modules) with these fixes",
			ErrLacksFix, cand.Family, cand.Release, strings.Join(lines, "\n  ")))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("%w\n(--no-release-check publishes anyway)", err)
	}
	return out, nil
}

// StillFollows is the check Publish runs under the store's lock (or
// inside the S3 compare-and-swap): the release just below the candidate
// in the catalog it goes into must be the one its number was checked
// against. Another publisher may have published one in between since;
// then the publish is refused, to be run again and checked against it.
func (c *Candidate) StillFollows() func(*catalog.Catalog) error {
	want, fam, ver := c.Follows, c.Manifest.Family, c.Manifest.Release
	return func(cat *catalog.Catalog) error {
		now := ""
		if f := cat.Family(fam, false); f != nil {
			if p := f.Previous(ver); p != nil {
				now = p.Version
			}
		}
		if now == want {
			return nil
		}
		was := want
		if was == "" {
			was = "nothing (the first release of " + fam + ")"
		}
		return fmt.Errorf("%w: %s %s was checked against %s, but the catalog now has %s just below it (published meanwhile by another publisher): run publish again, to check it against %s",
			ErrNumber, fam, ver, was, now, now)
	}
}

// ForwardPorts lists, once the security release rel of c was published,
// each supported release of a higher line that lacks its fixes, with the
// release to cut. They are findings, not failures: the publish succeeded.
func (c *Candidate) ForwardPorts(ctx context.Context, rel *catalog.Release) ([]Finding, error) {
	if c.Opened == nil || len(rel.Fixes) == 0 {
		return nil, nil
	}
	return ForwardPorts(ctx, c.Opened.Family(c.Manifest.Family, false), rel.Version, rel.Fixes, c.Opened.Manifest, time.Now())
}

// NextFree is the number a change of level l after prev takes when f
// (the published releases of its family; nil: none) already holds
// Next(prev, l): the next patch of prev's own line, the next minor of its
// major, or the next major, above every published one; "" when Next's
// number is free. A maintenance branch of 1.0 gets 1.0.3 even when 1.1.0
// exists.
func NextFree(f *catalog.Family, prev string, l Level) (string, error) {
	next, err := Next(prev, l)
	if err != nil || f == nil || f.Release(next) == nil {
		return "", err
	}
	pv, _ := semver.StrictNewVersion(prev)
	var top *semver.Version
	for i := range f.Releases {
		xv := f.Releases[i].SemVer()
		same := false
		switch l {
		case Security:
			same = xv.Major() == pv.Major() && xv.Minor() == pv.Minor()
		case Minor:
			same = xv.Major() == pv.Major()
		default:
			same = true
		}
		if same && (top == nil || top.LessThan(xv)) {
			top = xv
		}
	}
	return Next(top.String(), l)
}
