package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/versionq"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/release"
)

// Scope is how far an upgrade may go.
type Scope int

// The scopes.
const (
	Patch Scope = iota // same major.minor
	Minor              // same major (the default)
	Major              // any
)

// Step is the upgrade of one selection.
type Step struct {
	Key      string   `json:"key,omitempty"`
	Family   string   `json:"image"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	NewValue string   `json:"new_value"` // what version: becomes ("" when unchanged)
	Security []string `json:"security_releases_crossed,omitempty"`
	// Advisories are what the security releases crossed fix.
	Advisories []string `json:"advisories_fixed,omitempty"`
	// Withdrawn says why the release selected now must not stay: it is
	// revoked or obsolete (its reason and replacement), and, when the
	// upgrade does not leave it, the scope the move needs.
	Withdrawn string `json:"withdrawn,omitempty"`
	MajorMove bool   `json:"major"`
	Note      string `json:"note,omitempty"`
	// Changes are what changes across a major move, each "LEVEL what:
	// reason", from the two releases' manifests (Compared says whether
	// they could be read; CompareError says why not).
	Changes      []string `json:"changes,omitempty"`
	Compared     bool     `json:"compared,omitempty"`
	CompareError string   `json:"compare_error,omitempty"`
	Pos          Pos      `json:"pos"`
	selection    int
}

// Upgrade plans each selection's move to the newest release within scope
// that lacks no security fix the selection's own line has: a revoked or
// obsolete selection moves to its replacement, and a newer release that
// lacks a fix of the current line is passed over, named in the step's
// note ("1.1.0 lacks DSA-6001-1 ...: staying on 1.0.2"). read reads
// published manifests (nil: fixes are not compared). Ranges and exact
// versions keep their shape: "1.4" becomes "1.5", an exact version stays
// exact.
func Upgrade(ctx context.Context, c *catalog.Catalog, source string, f *File, scope Scope, read release.ManifestFunc) ([]Step, error) {
	var steps []Step
	var errs []error
	for i, s := range f.Selections {
		r, err := Resolve(c, source, s)
		if err != nil {
			errs = append(errs, err) // and the other selections are still planned
			continue
		}
		st, err := upgradeOne(ctx, r, s, scope, read)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st.selection = i
		steps = append(steps, st)
	}
	return steps, failure.Worst(errs...)
}

// upgradeOne plans the move of one resolved selection.
func upgradeOne(ctx context.Context, r *Resolved, s Selection, scope Scope, read release.ManifestFunc) (Step, error) {
	cur := r.rel.SemVer()
	st := Step{Key: s.Key, Family: s.Family, From: r.Release, To: r.Release, Pos: s.VersionPos}
	withdrawn := r.rel.State == catalog.Revoked || r.rel.State == catalog.Obsolete
	var best *catalog.Release
	if withdrawn && r.rel.Replacement != "" {
		// the replacement, unless it lacks a fix the line has (a later
		// security release of the line fixed more): then the safest
		x := r.fam.Release(r.rel.Replacement)
		if x != nil && x.State == catalog.Active && inScope(x.SemVer(), cur, scope) {
			lacks, err := lacking(ctx, r.fam, x.Version, release.LineOf(r.Release), read)
			if err != nil {
				return st, err
			}
			if len(lacks) == 0 {
				best = x
			}
		}
	}
	if best == nil {
		var err error
		if best, st.Note, err = safestInScope(ctx, r.fam, r.rel, scope, read); err != nil {
			return st, err
		}
	}
	if withdrawn {
		st.Withdrawn = fmt.Sprintf("%s %s is %s since %s: %s%s", r.Family, r.Release, r.rel.State, day(r.rel.StateDate), r.rel.Reason, replacement(r.rel))
		if best == nil {
			st.Withdrawn += "; no release in this scope replaces it: " + widerScope(scope)
		}
	}
	if best == nil {
		return st, nil
	}
	st.To = best.Version
	st.MajorMove = best.SemVer().Major() != cur.Major()
	lacks, err := lacking(ctx, r.fam, best.Version, "", read)
	if err != nil {
		return st, err
	}
	st.Security, st.Advisories = crossed(r.fam, cur, best.SemVer(), lacks)
	nv, note := rewriteValue(s.Version, best.SemVer())
	if note != "" {
		st.Note = strings.TrimPrefix(st.Note+"; "+note, "; ")
	}
	if nv != s.Version {
		st.NewValue = nv
	}
	return st, nil
}

// inScope says whether xv is a move from cur that scope allows.
func inScope(xv, cur *semver.Version, scope Scope) bool {
	return !(scope == Patch && (xv.Major() != cur.Major() || xv.Minor() != cur.Minor()) || scope == Minor && xv.Major() != cur.Major())
}

// safestInScope is the newest active release of f above r in scope that
// lacks no fix r's line has (nil: none), and a note naming the newer ones
// passed over and what they lack.
func safestInScope(ctx context.Context, f *catalog.Family, r *catalog.Release, scope Scope, read release.ManifestFunc) (*catalog.Release, string, error) {
	cur := r.SemVer()
	var cands []*catalog.Release
	for j := range f.Releases {
		x := &f.Releases[j]
		xv := x.SemVer()
		if x.State == catalog.Active && xv.Prerelease() == "" && xv.GreaterThan(cur) && inScope(xv, cur, scope) {
			cands = append(cands, x)
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[j].SemVer().LessThan(cands[i].SemVer()) })
	line := release.LineOf(r.Version)
	var passed []string
	for _, x := range cands {
		lacks, err := lacking(ctx, f, x.Version, line, read)
		if err != nil {
			return nil, "", err
		}
		if len(lacks) == 0 {
			return x, heldNote(passed, "moving to "+x.Version), nil
		}
		passed = append(passed, fmt.Sprintf("%s lacks %s, which %s has", x.Version, strings.Join(lacks, ", "), line))
	}
	return nil, heldNote(passed, "staying on "+r.Version), nil
}

// lacking is release.FixesLacking, or nothing when no manifests can be
// read (read nil).
func lacking(ctx context.Context, f *catalog.Family, version, line string, read release.ManifestFunc) ([]string, error) {
	if read == nil {
		return nil, nil
	}
	return release.FixesLacking(ctx, f, version, line, read)
}

// heldNote says which newer releases an upgrade passed over, and why.
func heldNote(passed []string, move string) string {
	if len(passed) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s; a newer release that carries the fix is still to be cut", strings.Join(passed, "; "), move)
}

// crossed lists the security releases (not revoked) above cur up to to,
// and the advisories they fix, leaving out those whose fixes the target
// lacks (a security release of another line than the target's).
func crossed(f *catalog.Family, cur, to *semver.Version, lacking []string) (versions, advisories []string) {
	for _, x := range f.Releases {
		if !x.Security || x.State == catalog.Revoked || !x.SemVer().GreaterThan(cur) || x.SemVer().GreaterThan(to) {
			continue
		}
		carried := false
		for _, a := range x.Advisories {
			if !slices.Contains(lacking, a) {
				carried = true
				if !slices.Contains(advisories, a) {
					advisories = append(advisories, a)
				}
			}
		}
		if carried || len(x.Advisories) == 0 {
			versions = append(versions, x.Version)
		}
	}
	return versions, advisories
}

// widerScope says which flag widens scope.
func widerScope(scope Scope) string {
	switch scope {
	case Patch:
		return "pass --minor (or --major)"
	case Minor:
		return "pass --major"
	}
	return "ask the release engineers for a replacement"
}

// rewriteValue gives the selection text that means "to" in the same shape.
func rewriteValue(v string, to *semver.Version) (string, string) {
	q, err := versionq.Parse(v, true)
	if err != nil {
		return v, fmt.Sprintf("%v; edit it by hand", err)
	}
	return q.Rewrite(to)
}

// Write returns the deploy file with the steps' new values, every other
// byte (comments, order, formatting) kept.
func Write(f *File, steps []Step) []byte {
	vals := map[int]string{}
	for _, s := range steps {
		if s.NewValue != "" {
			vals[s.selection] = s.NewValue
		}
	}
	return f.Rewrite(vals)
}

// ErrChanged marks a deploy file another writer changed between the read
// an upgrade planned from and its write.
var ErrChanged = fmt.Errorf("changed while upgrading; nothing written: %w", failure.ErrVerify)

// WriteFile writes the steps' new values into the deploy file f was read
// from and returns the path written. A symlink is written through: the
// file it resolves to is replaced, the link stays. The write holds an
// exclusive lock on the file's directory (two imagebake upgrades take
// turns) and compares the file's bytes with the ones planned from just
// before the rename: a change made meanwhile (a selection appended by an
// editor or a script) is never lost; ErrChanged is returned and nothing
// is written.
func WriteFile(ctx context.Context, f *File, steps []Step) (string, error) {
	target, err := filepath.EvalSymlinks(f.Path)
	if err != nil {
		return "", fmt.Errorf("deploy file %s: %w", f.Path, err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		return "", fmt.Errorf("deploy file %s: %w", f.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("deploy file %s (%s) is not a regular file: %w", f.Path, target, failure.ErrUsage)
	}
	lf, err := flock.LockDir(ctx, filepath.Dir(target))
	if err != nil {
		return "", fmt.Errorf("locking the directory of %s: %w", target, err)
	}
	defer lf.Close()
	now, err := readCapped(target)
	if err != nil {
		return "", fmt.Errorf("deploy file %s: %w", target, err)
	}
	if !bytes.Equal(now, f.src) {
		return "", fmt.Errorf("%s %w (it was %d bytes when read, %d now); run upgrade again", target, ErrChanged, len(f.src), len(now))
	}
	if err := atomicfile.WriteFile(target, Write(f, steps), fi.Mode().Perm()); err != nil {
		return "", fmt.Errorf("writing deploy file %s: %w", target, err)
	}
	return target, nil
}

// Breaks describes, for a major move, what changes and how to proceed.
func Breaks(st Step) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s -> %s crosses a major version: it may break what runs on it.\n", st.Family, st.From, st.To)
	switch {
	case len(st.Changes) > 0:
		b.WriteString("  what changes (from the manifests of both releases):\n")
		for _, c := range st.Changes {
			b.WriteString("    " + c + "\n")
		}
	case st.Compared:
		b.WriteString("  what changes: the manifests of both releases record the same base, modules and agents\n")
	default:
		b.WriteString("  what changes: see the release notes of " + st.To + " (the manifests could not be compared: " + st.CompareError + ")\n")
	}
	fmt.Fprintf(&b, "  to proceed: 1) read the changes above; 2) deploy %s-%s to a staging environment and run your checks;\n", st.Family, st.To)
	b.WriteString("              3) imagebake upgrade --major --write, commit, and roll out; 4) keep the old release at hand to roll back.\n")
	return b.String()
}
