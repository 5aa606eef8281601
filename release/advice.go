package release

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/imagebake/imagebake/internal/osv"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// Advice is what a user of one release should know of a security fix it
// lacks: the advisory and package, and the release to move to (nil when
// no release carries the fix yet).
type Advice struct {
	Lack
	Aliases []string
	// FixedIn is the release that published the fix (a catalog fix; ""
	// for an OSV advisory).
	FixedIn string
	// MoveTo is the lowest supported release above the selected one that
	// carries the fix: its own line first, then the higher lines.
	MoveTo *catalog.Release
}

// Message is "example 1.1.0 lacks DSA-9999-1 (openssl 3.0.11-1~deb12u1 <
// 3.0.11-1~deb12u3); move to 1.1.1" (or "no release carries the fix yet").
func (a Advice) Message(family, version string) string {
	s := a.Lack.of(family, version, a.Aliases, a.FixedIn)
	if a.MoveTo == nil {
		return s + "; no release of " + family + " above " + version + " carries the fix yet"
	}
	return s + "; move to " + a.MoveTo.Version
}

// Advise lists what release version of f lacks: the fixes releases of f
// published (any line), and with db the OSV advisories affecting its
// bases, each with the release to move to. read reads published
// manifests (memoise it: every candidate is read). Advisories the
// catalog's own security releases of version's line already name are
// left to the lifecycle check that names them.
func Advise(ctx context.Context, f *catalog.Family, version string, read ManifestFunc, db *osv.DB) ([]Advice, error) {
	r := f.Release(version)
	if r == nil {
		return nil, nil
	}
	fixes := publishedFixes(f)
	if len(fixes) == 0 && db == nil {
		return nil, nil // nothing to compare with: no manifest is read
	}
	m, err := read(ctx, f.Name, version)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", f.Name, version, err)
	}
	named := map[string]bool{} // advisories of later security releases of the line
	for i := range f.Releases {
		x := &f.Releases[i]
		if x.Security && LineOf(x.Version) == LineOf(version) && r.SemVer().LessThan(x.SemVer()) {
			for _, a := range x.Advisories {
				named[a] = true
			}
		}
	}
	cands := candidates(f, r)
	var out []Advice
	for _, p := range fixes {
		if named[p.fix.Advisory] || p.in == r {
			continue
		}
		lacks := Lacks(m, p.fix)
		if len(lacks) == 0 {
			continue
		}
		to, err := firstCarrying(ctx, f, cands, read, func(o *manifest.Manifest) bool { return len(Lacks(o, p.fix)) == 0 })
		if err != nil {
			return nil, err
		}
		for _, l := range lacks {
			out = append(out, Advice{Lack: l, FixedIn: p.in.Version, MoveTo: to})
		}
	}
	if db != nil {
		mt, _ := matchOSV(m, db, map[string][]osv.Hit{})
		for _, h := range mt.hits {
			to, err := firstCarrying(ctx, f, cands, read, func(o *manifest.Manifest) bool { return holdsUnaffected(o, db, h.ID, h.Package) })
			if err != nil {
				return nil, err
			}
			fixed := h.Fixed
			if fixed == "" {
				fixed = "none yet"
			}
			out = append(out, Advice{Lack: Lack{Advisory: h.ID, Kind: "package", Name: h.Package, Have: h.Version, Fixed: fixed}, Aliases: h.Aliases, MoveTo: to})
		}
	}
	return out, nil
}

// candidates are the releases a user of r may move to, in the order they
// are offered: supported releases above r of its own line, then of the
// higher lines, lowest first.
func candidates(f *catalog.Family, r *catalog.Release) []*catalog.Release {
	var same, higher []*catalog.Release
	for i := range f.Releases {
		x := &f.Releases[i]
		if !r.SemVer().LessThan(x.SemVer()) || x.SemVer().Prerelease() != "" || (x.State != catalog.Active && x.State != catalog.Deprecated) {
			continue
		}
		if LineOf(x.Version) == LineOf(r.Version) {
			same = append(same, x)
		} else {
			higher = append(higher, x)
		}
	}
	for _, l := range [][]*catalog.Release{same, higher} {
		sort.Slice(l, func(i, j int) bool { return l[i].SemVer().LessThan(l[j].SemVer()) })
	}
	return append(same, higher...)
}

// firstCarrying is the first of cands whose manifest carries (nil: none).
func firstCarrying(ctx context.Context, f *catalog.Family, cands []*catalog.Release, read ManifestFunc, carries func(*manifest.Manifest) bool) (*catalog.Release, error) {
	for _, c := range cands {
		m, err := read(ctx, f.Name, c.Version)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", f.Name, c.Version, err)
		}
		if carries(m) {
			return c, nil
		}
	}
	return nil, nil
}

// holdsUnaffected says whether m's bases hold package pkg at a version
// advisory id does not affect.
func holdsUnaffected(m *manifest.Manifest, db *osv.DB, id, pkg string) bool {
	for _, im := range m.Images {
		eco := osv.EcosystemOf(im.Base.OS)
		if eco == "" || im.Base.Packages == nil {
			continue
		}
		for _, p := range im.Base.Packages.List {
			if p.Name != pkg {
				continue
			}
			affected := false
			for _, h := range db.Affecting(eco, p) {
				affected = affected || h.ID == id
			}
			if !affected {
				return true
			}
		}
	}
	return false
}

// OSVFix is an OSV advisory a candidate fixes: the previous release's
// package it affects, and the candidate's version that it does not.
type OSVFix struct {
	Advisory string   `json:"advisory"`
	Aliases  []string `json:"aliases,omitempty"`
	Package  string   `json:"package"`
	Old      string   `json:"old"`
	New      string   `json:"new"`
	From     string   `json:"from"` // the record's file (or zip:member)
}

// ClaimsFromOSV gives each advisory r declares without saying what it
// fixes the packages its OSV record fixes in the candidate (fixes), so a
// new upstream version the record names is judged a security fix and
// credited to that advisory alone.
func ClaimsFromOSV(r Rules, fixes []OSVFix) Rules {
	for _, a := range r.Advisories {
		if len(r.AdvisoryFixes[a]) > 0 {
			continue
		}
		for _, f := range fixes {
			if f.Advisory != a && !slices.Contains(f.Aliases, a) {
				continue
			}
			if r.AdvisoryFixes == nil {
				r.AdvisoryFixes, r.FixesFrom = map[string][]string{}, map[string]string{}
			} else if r.FixesFrom == nil {
				r.FixesFrom = map[string]string{}
			}
			if !slices.Contains(r.AdvisoryFixes[a], f.Package) {
				r.AdvisoryFixes[a] = append(r.AdvisoryFixes[a], f.Package)
			}
			r.FixesFrom[a] = "OSV record " + f.From
		}
	}
	return r
}

// AdvisoryFlags are the --advisory flags that declare fixes, each with
// the packages its record fixes (--advisory DSA-6001-1=libssl3,openssl).
func AdvisoryFlags(fixes []OSVFix) []string {
	pkgs := map[string][]string{}
	var order []string
	for _, f := range fixes {
		if _, ok := pkgs[f.Advisory]; !ok {
			order = append(order, f.Advisory)
		}
		if !slices.Contains(pkgs[f.Advisory], f.Package) {
			pkgs[f.Advisory] = append(pkgs[f.Advisory], f.Package)
		}
	}
	var out []string
	for _, a := range order {
		sort.Strings(pkgs[a])
		out = append(out, "--advisory "+a+"="+strings.Join(pkgs[a], ","))
	}
	return out
}

func (f OSVFix) String() string {
	return fmt.Sprintf("%s: %s %s -> %s", withAliases(f.Advisory, f.Aliases), f.Package, f.Old, f.New)
}

// of is "example 1.1.0 lacks DSA-9999-1 (CVE-...) (openssl OLD < NEW),
// fixed in 1.1.1": the start of an Advice's and a Finding's line.
func (l Lack) of(family, version string, aliases []string, fixedIn string) string {
	s := fmt.Sprintf("%s %s lacks %s (%s)", family, version, withAliases(l.Advisory, aliases), l)
	if fixedIn != "" {
		s += ", fixed in " + fixedIn
	}
	return s
}

// withAliases is "DSA-9999-1 (CVE-2026-9999, ...)", or the advisory alone.
func withAliases(advisory string, aliases []string) string {
	if len(aliases) == 0 {
		return advisory
	}
	return advisory + " (" + strings.Join(aliases, ", ") + ")"
}

// OSVFixes lists the advisories of db that affect prev's bases and not
// cand's: what a security release of cand fixes, to declare with
// --advisory.
func OSVFixes(prev, cand *manifest.Manifest, db *osv.DB) []OSVFix {
	mt, _ := matchOSV(prev, db, map[string][]osv.Hit{})
	now := map[string]string{} // package -> the candidate's version
	for _, im := range cand.Images {
		if im.Base.Packages != nil {
			for _, p := range im.Base.Packages.List {
				now[p.Name] = p.Version
			}
		}
	}
	var out []OSVFix
	seen := map[string]bool{}
	for _, h := range mt.hits {
		k := h.ID + "\x00" + h.Package
		if seen[k] || !holdsUnaffected(cand, db, h.ID, h.Package) {
			continue
		}
		seen[k] = true
		out = append(out, OSVFix{Advisory: h.ID, Aliases: h.Aliases, Package: h.Package, Old: h.Version, New: now[h.Package], From: h.From})
	}
	return out
}

// ManifestEcosystems lists the OSV ecosystems of ms' bases.
func ManifestEcosystems(ms ...*manifest.Manifest) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		for _, im := range m.Images {
			if e := osv.EcosystemOf(im.Base.OS); e != "" && !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ManifestScope is what OSV records must bear on to matter for the
// releases ms: their bases' ecosystems and packages (binary and source
// names).
func ManifestScope(ms ...*manifest.Manifest) osv.Scope {
	names := map[string]bool{}
	for _, m := range ms {
		for _, im := range m.Images {
			if im.Base.Packages == nil {
				continue
			}
			for _, p := range im.Base.Packages.List {
				names[p.Name] = true
				if p.Source != "" {
					names[p.Source] = true
				}
			}
		}
	}
	return osv.Scope{Ecosystems: ManifestEcosystems(ms...), Packages: names}
}

// FixesLacking lists, sorted, the advisories of the fixes releases of f
// published that the release version lacks (by its manifest, read with
// read); with line set, only the fixes releases of that line published
// ("1.0": what a user of 1.0 already has, or will by staying on it).
func FixesLacking(ctx context.Context, f *catalog.Family, version, line string, read ManifestFunc) ([]string, error) {
	fixes := publishedFixes(f)
	var m *manifest.Manifest
	var out []string
	for _, p := range fixes {
		if line != "" && LineOf(p.in.Version) != line || slices.Contains(out, p.fix.Advisory) {
			continue
		}
		if m == nil {
			var err error
			if m, err = read(ctx, f.Name, version); err != nil {
				return nil, fmt.Errorf("%s %s: %w", f.Name, version, err)
			}
		}
		if len(Lacks(m, p.fix)) > 0 {
			out = append(out, p.fix.Advisory)
		}
	}
	sort.Strings(out)
	return out, nil
}
