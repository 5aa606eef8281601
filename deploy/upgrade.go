package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/versionq"
	"github.com/imagebake/imagebake/manifests/catalog"
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

// Upgrade plans each selection's move to the newest release within scope.
// Ranges and exact versions keep their shape: "1.4" becomes "1.5", an
// exact version stays exact.
func Upgrade(c *catalog.Catalog, source string, f *File, scope Scope) ([]Step, error) {
	var steps []Step
	var errs []error
	for i, s := range f.Selections {
		r, err := Resolve(c, source, s)
		if err != nil {
			errs = append(errs, err) // and the other selections are still planned
			continue
		}
		cur := r.rel.SemVer()
		best := newestInScope(r.fam, cur, scope)
		st := Step{Key: s.Key, Family: s.Family, From: r.Release, To: r.Release, Pos: s.VersionPos, selection: i}
		if r.rel.State == catalog.Revoked || r.rel.State == catalog.Obsolete {
			st.Withdrawn = fmt.Sprintf("%s %s is %s since %s: %s%s", r.Family, r.Release, r.rel.State, day(r.rel.StateDate), r.rel.Reason, replacement(r.rel))
			if best == nil {
				st.Withdrawn += "; no release in this scope replaces it: " + widerScope(scope)
			}
		}
		if best != nil {
			st.To = best.Version
			st.MajorMove = best.SemVer().Major() != cur.Major()
			st.Security, st.Advisories = crossed(r.fam, cur, best.SemVer())
			nv, note := rewriteValue(s.Version, best.SemVer())
			st.Note = note
			if nv != s.Version {
				st.NewValue = nv
			}
		}
		steps = append(steps, st)
	}
	return steps, failure.Worst(errs...)
}

// newestInScope is the newest active release of f above cur in scope
// (nil: none).
func newestInScope(f *catalog.Family, cur *semver.Version, scope Scope) *catalog.Release {
	var best *catalog.Release
	for j := range f.Releases {
		x := &f.Releases[j]
		xv := x.SemVer()
		if x.State != catalog.Active || xv.Prerelease() != "" || !xv.GreaterThan(cur) {
			continue
		}
		if scope == Patch && (xv.Major() != cur.Major() || xv.Minor() != cur.Minor()) || scope == Minor && xv.Major() != cur.Major() {
			continue
		}
		if best == nil || xv.GreaterThan(best.SemVer()) {
			best = x
		}
	}
	return best
}

// crossed lists the security releases (not revoked) above cur up to to,
// and the advisories they fix.
func crossed(f *catalog.Family, cur, to *semver.Version) (versions, advisories []string) {
	for _, x := range f.Releases {
		if x.Security && x.State != catalog.Revoked && x.SemVer().GreaterThan(cur) && !x.SemVer().GreaterThan(to) {
			versions = append(versions, x.Version)
			for _, a := range x.Advisories {
				if !slices.Contains(advisories, a) {
					advisories = append(advisories, a)
				}
			}
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
