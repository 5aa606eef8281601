// Package release gives release numbers their meaning: MAJOR.MINOR.SECURITY.
//
// Comparing a candidate's pinned inputs, and what is inside its bases, with
// the previous release's manifest yields the smallest bump the difference
// needs:
//   - MAJOR: the base's OS release changed (Debian 12 -> 13), a major
//     package changed its upstream MAJOR.MINOR (Rules.MajorPackages), a
//     package or module was removed, a module or the agent binaries changed
//     major, an arch was dropped, or a base changed whose contents are not
//     known;
//   - MINOR: a package, module or arch was added, a package has a new
//     upstream version, a module or the agent binaries moved to a new minor
//     version;
//   - SECURITY-eligible: a package patched at the same upstream version (a
//     new Debian revision, Alpine -rN), patch versions and new commits of
//     the same module pins, control repo changes.
//
// A security release is declared with advisories (CVE, DSA, ...); without
// one, SECURITY-eligible changes make a MINOR release. Propose proposes
// the next number with every change and its reason; Check refuses a number
// that is smaller than the difference needs, a SECURITY number without an
// advisory or with changes that are not SECURITY-eligible, and a number
// that skips or goes backwards, naming each change that breaks it.
package release

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// Level is the size of a change.
type Level int

// The levels, smallest first.
const (
	None Level = iota
	Security
	Minor
	Major
)

// credit names the advisories that claim c's package or module in its
// reason; a new upstream version an advisory claims is a security fix
// (Debian ships openssl's and firefox-esr's fixes as point releases).
func (r Rules) credit(c *Change) {
	by := r.claimants(c)
	if len(by) == 0 {
		if len(r.Advisories) > 0 && c.Level == Minor && c.Package != nil && strings.HasSuffix(c.Reason, "new upstream version") {
			name := c.Package.Name
			if c.Package.Source != "" {
				name = c.Package.Source
			}
			c.Reason += fmt.Sprintf("; no declared advisory says it fixes %s: if one does, say so (--advisory %s=%s, or its OSV record with release plan --osv) and it is a security fix", name, r.Advisories[0], name)
		}
		return
	}
	from := r.FixesFrom[by[0]]
	if from == "" {
		from = "--advisory " + by[0] + "=..."
	}
	if c.Level == Minor && c.Package != nil && strings.HasSuffix(c.Reason, "new upstream version") {
		c.Level = Security
		c.Reason += fmt.Sprintf(" fixing %s (%s): SECURITY", strings.Join(by, ", "), from)
		return
	}
	c.Reason += fmt.Sprintf(", fixing %s (%s)", strings.Join(by, ", "), from)
}

// claimants are the advisories whose fixes name c's package (or its
// source package) or module, sorted.
func (r Rules) claimants(c *Change) []string {
	var names []string
	switch {
	case c.Package != nil:
		names = []string{c.Package.Name, c.Package.Source}
	case c.Module != nil:
		names = []string{c.Module.Name}
	default:
		return nil
	}
	var by []string
	for _, a := range r.Advisories {
		for _, n := range r.AdvisoryFixes[a] {
			if n != "" && slices.Contains(names, n) {
				by = append(by, a)
				break
			}
		}
	}
	sort.Strings(by)
	return by
}

// ParseAdvisories reads --advisory values: ID, or ID=NAME[,NAME...] naming
// the packages (binary or source) and modules the advisory fixes. A value
// that is a bare name after an ID=... one continues its list (the
// comma-separated IMAGEBAKE_ADVISORIES splits it).
func ParseAdvisories(values []string) (ids []string, fixes map[string][]string, err error) {
	last := ""
	for _, v := range values {
		id, names, mapped := strings.Cut(v, "=")
		if !mapped && last != "" && !advisoryRE.MatchString(v) {
			fixes[last] = append(fixes[last], v)
			continue
		}
		ids = append(ids, id)
		last = ""
		if mapped {
			if fixes == nil {
				fixes = map[string][]string{}
			}
			for _, n := range strings.Split(names, ",") {
				if n = strings.TrimSpace(n); n != "" {
					fixes[id] = append(fixes[id], n)
				}
			}
			if len(fixes[id]) == 0 {
				return nil, nil, fmt.Errorf("%w: --advisory %s: name the packages or modules it fixes after '=' (DSA-6001-1=openssl,libssl3)", failure.ErrUsage, v)
			}
			last = id
		}
	}
	if err := CheckAdvisories(ids); err != nil {
		return nil, nil, err
	}
	return ids, fixes, nil
}

// checkClaims refuses an advisory's fixes that name a package or module
// the candidate does not change, naming both.
func (r Rules) checkClaims(ch []Change) error {
	changed := map[string]bool{}
	var list []string
	for _, c := range ch {
		switch {
		case c.Package != nil:
			changed[c.Package.Name], changed[c.Package.Source] = true, true
			list = append(list, c.Package.Name)
		case c.Module != nil:
			changed[c.Module.Name] = true
			list = append(list, c.Module.Name)
		}
	}
	var bad []string
	for _, a := range r.Advisories {
		for _, n := range r.AdvisoryFixes[a] {
			if !changed[n] {
				bad = append(bad, fmt.Sprintf("%s names %s, which the candidate does not change", a, n))
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	if len(list) == 0 {
		list = []string{"none"}
	}
	return fmt.Errorf("%w: --advisory: %s (the packages and modules it changes: %s)", failure.ErrUsage, strings.Join(bad, "; "), strings.Join(list, ", "))
}

// unclaimed lists the package and module changes no advisory claims, when
// every advisory says what it fixes: a security release carries nothing
// else.
func (r Rules) unclaimed(ch []Change) []string {
	for _, a := range r.Advisories {
		if len(r.AdvisoryFixes[a]) == 0 {
			return nil // an advisory without a list claims the rest
		}
	}
	var out []string
	for i := range ch {
		if (ch[i].Package != nil || ch[i].Module != nil) && len(r.claimants(&ch[i])) == 0 {
			out = append(out, fmt.Sprintf("%s: %s", ch[i].What, ch[i].Reason))
		}
	}
	return out
}

// LevelOf is the level named s (as String gives it; None otherwise).
func LevelOf(s string) Level {
	for _, l := range []Level{Security, Minor, Major} {
		if l.String() == s {
			return l
		}
	}
	return None
}

func (l Level) String() string {
	return [...]string{"none", "SECURITY", "MINOR", "MAJOR"}[l]
}

// ErrNumber marks a release number that breaks the rules.
var ErrNumber = fmt.Errorf("release number breaks the rules: %w", failure.ErrVerify)

// Rules are what a comparison needs beyond the two manifests.
type Rules struct {
	// MajorPackages are the names or globs (of a package or its source
	// package) whose upstream MAJOR.MINOR change is MAJOR; nil means
	// DefaultMajorPackages.
	MajorPackages []string
	// Advisories declare a security release: the CVE, DSA, ... it fixes.
	Advisories []string
	// AdvisoryFixes say which packages (binary or source names) and
	// modules an advisory fixes, from an OSV record or the
	// --advisory ID=NAME,... mapping; an advisory without an entry
	// claims the changes no other advisory does.
	AdvisoryFixes map[string][]string
	// FixesFrom says where each advisory's entry came from, for the
	// plan's reasons ("OSV record debian/DSA-6001-1.json").
	FixesFrom map[string]string
	// RepoFiles are the control repo's files changed between the two
	// releases' commits ("M manifests/site.pp"), when they are known.
	RepoFiles []string
}

var advisoryRE = regexp.MustCompile(`^[A-Z][A-Z0-9]{1,15}-[0-9A-Za-z][0-9A-Za-z:._-]{0,63}$`)

// CheckAdvisories refuses identifiers that are not advisory IDs (CVE-2014-0160,
// DSA-2896-1, GHSA-..., RHSA-2024:1234) and repeats.
func CheckAdvisories(ids []string) error {
	var bad []string
	seen := map[string]bool{}
	for _, id := range ids {
		switch {
		case !advisoryRE.MatchString(id):
			bad = append(bad, fmt.Sprintf("%q is not an advisory ID (like CVE-2014-0160 or DSA-2896-1)", id))
		case seen[id]:
			bad = append(bad, fmt.Sprintf("%s is given twice", id))
		}
		seen[id] = true
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: --advisory: %s", failure.ErrUsage, strings.Join(bad, "; "))
	}
	return nil
}

func (r Rules) globs() []string {
	if r.MajorPackages == nil {
		return DefaultMajorPackages
	}
	return r.MajorPackages
}

// Change is one difference between two releases.
type Change struct {
	Level  Level  `json:"level"`
	What   string `json:"what"`
	Reason string `json:"reason"`
	// Package and Module say, for a package or module whose version
	// changed, from what to what: what a security release records as
	// the fix of its advisories (FixesOf).
	Package *manifest.PackageFix `json:"-"`
	Module  *manifest.ModuleFix  `json:"-"`
}

// Plan is the proposed next release.
type Plan struct {
	Previous   string   `json:"previous"`
	Level      string   `json:"level"`
	Next       string   `json:"next"`
	Advisories []string `json:"advisories,omitempty"`
	Changes    []Change `json:"changes"`
	// Note says how to declare a security release when the changes
	// would fit one but no advisory was given.
	Note string `json:"note,omitempty"`
	// OSVFixes (release plan --osv) are the OSV advisories the candidate's
	// bases fix: what to declare with --advisory.
	OSVFixes []OSVFix `json:"osv_fixes,omitempty"`
}

// Compare lists the changes from prev to cand (a manifest of pinned inputs
// and, for the comparison of bases by content, their OS and packages).
func Compare(prev, cand *manifest.Manifest, r Rules) []Change {
	var out []Change
	add := func(l Level, what, reason string) { out = append(out, Change{Level: l, What: what, Reason: reason}) }
	per := map[string][]Change{}
	var both []string
	pa, ca := map[string]manifest.Image{}, map[string]manifest.Image{}
	for _, im := range prev.Images {
		pa[im.Arch] = im
	}
	for _, im := range cand.Images {
		ca[im.Arch] = im
	}
	for _, arch := range sortedKeys(pa, ca) {
		p, inP := pa[arch]
		c, inC := ca[arch]
		switch {
		case !inC && slices.Contains(cand.PartialOf, arch):
			continue // a per-arch bake: the arch is another runner's, judged at merge
		case !inC:
			add(Major, "arch "+arch, "dropped: users of the "+arch+" image lose it")
			continue
		case !inP:
			add(Minor, "arch "+arch, "added")
			continue
		}
		both = append(both, arch)
		per[arch] = compareBase(p.Base, c.Base, r.globs())
		if l, what, why := agentLevel(p.Agent, c.Agent); l > None {
			per[arch] = append(per[arch], Change{Level: l, What: what, Reason: why})
		}
	}
	out = append(out, grouped(per, both)...)
	pm, cm := modules(prev.Puppetfile.Modules), modules(cand.Puppetfile.Modules)
	for _, name := range sortedKeys(pm, cm) {
		p, inP := pm[name]
		c, inC := cm[name]
		switch {
		case !inC:
			add(Major, "module "+name, "removed: code using it breaks")
		case !inP:
			add(Minor, "module "+name, "added")
		default:
			if l, why := moduleLevel(p, c); l > None {
				out = append(out, Change{Level: l, What: "module " + name, Reason: why, Module: moduleFix(name, p, c)})
			}
		}
	}
	if prev.Repo.Commit != cand.Repo.Commit {
		// a code change: MINOR, or part of a declared security release
		add(Security, "control repo", fmt.Sprintf("commit %s -> %s%s", short(prev.Repo.Commit), short(cand.Repo.Commit), filesText(r.RepoFiles)))
	}
	for i := range out {
		r.credit(&out[i])
	}
	return out
}

// filesText lists changed files for a reason, at most 20.
func filesText(files []string) string {
	if len(files) == 0 {
		return ""
	}
	shown := files
	more := ""
	if len(files) > 20 {
		shown, more = files[:20], fmt.Sprintf(", and %d more", len(files)-20)
	}
	return ": " + strings.Join(shown, ", ") + more
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func modules(ms []lockfile.Module) map[string]lockfile.Module {
	out := map[string]lockfile.Module{}
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

func sortedKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// versionLevel compares two versions: a major change is MAJOR, a minor
// one MINOR, anything else SECURITY.
// agentLevel is the level of a change of an image's agent binaries from p
// to c: a version's level, or MAJOR when an image gains or loses them.
func agentLevel(p, c manifest.Agent) (Level, string, string) {
	switch {
	case p.None() && c.None():
		return None, "", ""
	case p.None():
		return Major, "agent binaries " + c.Name, "added: " + c.Version
	case c.None():
		return Major, "agent binaries " + p.Name, "removed: the images carry none"
	}
	l, why := versionLevel(p.Version, c.Version)
	return l, "agent binaries " + c.Name, why
}

func versionLevel(a, b string) (Level, string) {
	if a == b {
		return None, ""
	}
	va, ea := semver.NewVersion(strings.TrimPrefix(a, "v"))
	vb, eb := semver.NewVersion(strings.TrimPrefix(b, "v"))
	if ea != nil || eb != nil {
		return Security, fmt.Sprintf("%s -> %s", a, b)
	}
	switch {
	case va.Major() != vb.Major():
		return Major, fmt.Sprintf("major version %s -> %s", a, b)
	case va.Minor() != vb.Minor():
		return Minor, fmt.Sprintf("minor version %s -> %s", a, b)
	}
	return Security, fmt.Sprintf("patch version %s -> %s", a, b)
}

func moduleLevel(p, c lockfile.Module) (Level, string) {
	if p.Kind != c.Kind || p.Source != c.Source {
		return Major, fmt.Sprintf("source changed from %s %s to %s %s", p.Kind, p.Source, c.Kind, c.Source)
	}
	switch c.Kind {
	case "forge":
		return versionLevel(p.Version, c.Version)
	case "git":
		if p.Commit == c.Commit {
			return None, ""
		}
		// the metadata's version, whatever the pin: a :ref or :commit that
		// goes back two majors is MAJOR as the same move by tag is
		pv, pfrom := moduleVersion(p)
		cv, cfrom := moduleVersion(c)
		name := c.ModuleName
		if name == "" {
			name = c.Name
		}
		if pv == "" || cv == "" {
			return Major, fmt.Sprintf("%s %s: commit %s -> %s, and the module's version is not known on %s (no metadata.json, no version tag): judged MAJOR",
				c.RefType, c.Ref, short(p.Commit), short(c.Commit), map[bool]string{true: "either side", false: "one side"}[pv == "" && cv == ""])
		}
		if l, why := versionLevel(pv, cv); l > None {
			return l, fmt.Sprintf("%s %s (%s), commit %s -> %s", name, why, joinFrom(pfrom, cfrom), short(p.Commit), short(c.Commit))
		}
		return Security, fmt.Sprintf("%s %s unchanged (%s), %s %s: commit %s -> %s", name, cv, joinFrom(pfrom, cfrom), c.RefType, c.Ref, short(p.Commit), short(c.Commit))
	}
	return None, ""
}

// moduleVersion is a git pin's version: its metadata.json's, else its tag
// (or ref) when that is a version; and where it was read.
func moduleVersion(m lockfile.Module) (string, string) {
	if m.ModuleVersion != "" {
		return m.ModuleVersion, "metadata.json"
	}
	if m.RefType == "tag" || m.RefType == "ref" {
		if v, err := semver.StrictNewVersion(strings.TrimPrefix(m.Ref, "v")); err == nil {
			return v.String(), "tag"
		}
	}
	return "", ""
}

func joinFrom(a, b string) string {
	if a == b {
		return a
	}
	return a + " -> " + b
}

// Needed is the largest level among changes.
func Needed(changes []Change) Level {
	l := None
	for _, c := range changes {
		if c.Level > l {
			l = c.Level
		}
	}
	return l
}

// Next returns the number after prev for a change of level l.
func Next(prev string, l Level) (string, error) {
	v, err := semver.StrictNewVersion(prev)
	if err != nil {
		return "", fmt.Errorf("%w: previous release %q is not X.Y.Z", failure.ErrUsage, prev)
	}
	switch l {
	case Major:
		return fmt.Sprintf("%d.0.0", v.Major()+1), nil
	case Minor:
		return fmt.Sprintf("%d.%d.0", v.Major(), v.Minor()+1), nil
	case Security:
		return fmt.Sprintf("%d.%d.%d", v.Major(), v.Minor(), v.Patch()+1), nil
	}
	return prev, nil
}

// declare is how to declare a security release, for messages.
const declare = "a security release is declared with --advisory ID (the CVE, DSA, ... it fixes; repeatable)"

// Propose compares and proposes the next number: a SECURITY one only when
// advisories declare it.
func Propose(prev, cand *manifest.Manifest, r Rules) (*Plan, error) {
	if err := CheckAdvisories(r.Advisories); err != nil {
		return nil, err
	}
	ch := Compare(prev, cand, r)
	if err := r.checkClaims(ch); err != nil {
		return nil, err
	}
	l := Needed(ch)
	note := ""
	if l == Security && len(r.Advisories) == 0 {
		l = Minor
		note = "every change fits a security release, proposed as MINOR: " + declare
	}
	if l == Security {
		if left := r.unclaimed(ch); len(left) > 0 {
			l = Minor
			note = "no advisory claims these changes, and a security release carries only its advisories' fixes, so MINOR: " + strings.Join(left, "; ")
		}
	}
	next, err := Next(prev.Release, l)
	if err != nil {
		return nil, err
	}
	if ch == nil {
		ch = []Change{}
	}
	return &Plan{Previous: prev.Release, Level: l.String(), Next: next, Advisories: r.Advisories, Changes: ch, Note: note}, nil
}

// RulesOf are the rules a release was baked with (its major packages and
// advisories), read from its manifest.
func RulesOf(m *manifest.Manifest) Rules {
	r := Rules{Advisories: m.Advisories, AdvisoryFixes: m.AdvisoryFixes}
	if m.MajorPackages != nil {
		r.MajorPackages = append([]string{}, *m.MajorPackages...)
	}
	return r
}

// Check refuses number for cand after prev when it breaks the rules: it
// must be the next number at the needed level or a larger one, never a
// skip, a repeat or a step back.
func Check(prev, cand *manifest.Manifest, number string, r Rules) error {
	if err := CheckAdvisories(r.Advisories); err != nil {
		return err
	}
	ch := Compare(prev, cand, r)
	if err := r.checkClaims(ch); err != nil {
		return err
	}
	need := Needed(ch)
	if need == None && number != prev.Release {
		return fmt.Errorf("%w: %s would repeat the content of %s: nothing changed (the same control repo commit, modules, agent binaries and bases); a release number names one content",
			ErrNumber, number, prev.Release)
	}
	var allowed []string
	var levels []Level
	for _, l := range []Level{Security, Minor, Major} {
		n, err := Next(prev.Release, l)
		if err != nil {
			return err
		}
		allowed, levels = append(allowed, n), append(levels, l)
	}
	for i, n := range allowed {
		if n != number {
			continue
		}
		if levels[i] == Security && len(r.Advisories) == 0 {
			if need == Security {
				want, _ := Next(prev.Release, Minor)
				return fmt.Errorf("%w: %s is a SECURITY release after %s, but no advisory declares it: %s; without one these changes make %s (MINOR)",
					ErrNumber, number, prev.Release, declare, want)
			}
			if need == None {
				return nil
			}
		}
		if levels[i] == Security && need == Security {
			if left := r.unclaimed(ch); len(left) > 0 {
				want, _ := Next(prev.Release, Minor)
				return fmt.Errorf("%w: %s is a SECURITY release after %s (%s), and a security release carries only the fixes its advisories name; no advisory claims these changes, which make %s (MINOR):\n  %s",
					ErrNumber, number, prev.Release, strings.Join(r.Advisories, ", "), want, strings.Join(left, "\n  "))
			}
		}
		if levels[i] >= need {
			return nil
		}
		var breaking []string
		for _, c := range ch {
			if c.Level > levels[i] {
				breaking = append(breaking, fmt.Sprintf("%s: %s (%s)", c.What, c.Reason, c.Level))
			}
		}
		want, _ := Next(prev.Release, need)
		if levels[i] == Security && len(r.Advisories) > 0 {
			return fmt.Errorf("%w: %s is a SECURITY release after %s (%s), and a security release carries only security fixes; these changes are not, and need %s (%s):\n  %s",
				ErrNumber, number, prev.Release, strings.Join(r.Advisories, ", "), need, want, strings.Join(breaking, "\n  "))
		}
		return fmt.Errorf("%w: %s is a %s release after %s, but the changes need %s (%s):\n  %s",
			ErrNumber, number, levels[i], prev.Release, need, want, strings.Join(breaking, "\n  "))
	}
	return fmt.Errorf("%w: %s does not follow %s: the next release is %s (SECURITY), %s (MINOR) or %s (MAJOR); the changes need at least %s",
		ErrNumber, number, prev.Release, allowed[0], allowed[1], allowed[2], need)
}
