package release

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/internal/pkgversion"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// moduleFix is a module's change as a fix: its versions when both sides
// have one (metadata.json, a version tag, a Forge release), else its
// commits.
func moduleFix(name string, p, c lockfile.Module) *manifest.ModuleFix {
	pv, cv := pinVersion(p), pinVersion(c)
	if pv == "" || cv == "" {
		if p.Commit == "" || c.Commit == "" {
			return nil
		}
		return &manifest.ModuleFix{Name: name, Old: p.Commit, New: c.Commit, NewCommit: c.Commit}
	}
	return &manifest.ModuleFix{Name: name, Old: pv, New: cv, NewCommit: c.Commit}
}

// pinVersion is a module pin's version: a Forge release's, else what
// moduleVersion finds.
func pinVersion(m lockfile.Module) string {
	if m.Kind == "forge" {
		return m.Version
	}
	v, _ := moduleVersion(m)
	return v
}

// FixesOf is what a security release cand fixed since prev, the release
// before it in its line, per advisory r declares: the package and module
// changes the advisory claims (its OSV record or --advisory ID=NAME,...
// names them), and for advisories that name nothing, the changes no
// other advisory claims. Never every change with every advisory: a fix is
// credited to the advisory that names it. Advisories whose release
// changed no package or module (a control repo fix) get no entry: no
// version says whether another release carries them.
func FixesOf(prev, cand *manifest.Manifest, r Rules) []manifest.Fix {
	if len(r.Advisories) == 0 {
		return nil
	}
	type fix struct {
		pkgs []manifest.PackageFix
		mods []manifest.ModuleFix
		seen map[string]bool
	}
	per := map[string]*fix{}
	for _, a := range r.Advisories {
		per[a] = &fix{seen: map[string]bool{}}
	}
	var unnamed []string // advisories that say nothing of what they fix
	for _, a := range r.Advisories {
		if len(r.AdvisoryFixes[a]) == 0 {
			unnamed = append(unnamed, a)
		}
	}
	for _, c := range Compare(prev, cand, r) {
		if c.Package == nil && c.Module == nil {
			continue
		}
		to := r.claimants(&c)
		if len(to) == 0 {
			to = unnamed
		}
		for _, a := range to {
			f := per[a]
			switch {
			case c.Package != nil && !f.seen["p "+c.Package.Name]:
				f.seen["p "+c.Package.Name] = true
				f.pkgs = append(f.pkgs, *c.Package)
			case c.Module != nil && !f.seen["m "+c.Module.Name]:
				f.seen["m "+c.Module.Name] = true
				f.mods = append(f.mods, *c.Module)
			}
		}
	}
	var out []manifest.Fix
	for _, a := range r.Advisories {
		f := per[a]
		if len(f.pkgs)+len(f.mods) == 0 {
			continue
		}
		sort.Slice(f.pkgs, func(i, j int) bool { return f.pkgs[i].Name < f.pkgs[j].Name })
		sort.Slice(f.mods, func(i, j int) bool { return f.mods[i].Name < f.mods[j].Name })
		out = append(out, manifest.Fix{Advisory: a, Packages: f.pkgs, Modules: f.mods})
	}
	return out
}

// Lack is one way a release lacks an advisory's fix: its package or
// module is older than the fixed version.
type Lack struct {
	Advisory string `json:"advisory"`
	Kind     string `json:"kind"` // package or module
	Name     string `json:"name"`
	Have     string `json:"have"`
	Fixed    string `json:"fixed"`
	Arches   string `json:"arches,omitempty"` // where not every arch lacks it
}

// String is "openssl 3.0.11-1~deb12u1 < 3.0.11-1~deb12u3".
func (l Lack) String() string {
	s := fmt.Sprintf("%s %s < %s", l.Name, l.Have, l.Fixed)
	if l.Kind == "module" {
		s = "module " + s
	}
	if l.Arches != "" {
		s += " on " + l.Arches
	}
	return s
}

// Lacks lists what m lacks of fix: each fixed package its bases hold (by
// name, or by source package) at an older version in the package
// format's own order, and each fixed module it pins at an older version.
// A release without the package or module is not affected. Versions that
// cannot be compared (another package format, a module fixed by commit
// only) are not counted as lacking: nothing says they are.
func Lacks(m *manifest.Manifest, fix manifest.Fix) []Lack {
	var out []Lack
	// one line per package and version found, however many fixed
	// packages (libssl3, openssl: one source) it matches
	type found struct {
		fixed  string
		arches []string
	}
	byHave := map[string]*found{} // "NAME VERSION"
	var order []string
	for _, pf := range fix.Packages {
		for _, im := range m.Images {
			ps := im.Base.Packages
			if ps == nil || ps.Format != pf.Format {
				continue
			}
			for _, p := range ps.List {
				if !samePackage(p, pf) {
					continue
				}
				if less, err := pkgversion.Less(pf.Format, p.Version, pf.New); err != nil || !less {
					continue
				}
				k := p.Name + " " + p.Version
				f := byHave[k]
				if f == nil {
					f = &found{fixed: pf.New}
					byHave[k] = f
					order = append(order, k)
				}
				if !slices.Contains(f.arches, im.Arch) {
					f.arches = append(f.arches, im.Arch)
				}
			}
		}
	}
	for _, k := range order {
		name, have, _ := strings.Cut(k, " ")
		l := Lack{Advisory: fix.Advisory, Kind: "package", Name: name, Have: have, Fixed: byHave[k].fixed}
		if len(byHave[k].arches) != len(m.Images) {
			l.Arches = strings.Join(byHave[k].arches, ", ")
		}
		out = append(out, l)
	}
	mods := map[string]lockfile.Module{}
	for _, x := range m.Puppetfile.Modules {
		mods[x.Name] = x
	}
	for _, mf := range fix.Modules {
		x, ok := mods[mf.Name]
		if !ok {
			continue
		}
		want, err := semver.NewVersion(strings.TrimPrefix(mf.New, "v"))
		if err != nil {
			continue // fixed by commit only: ancestry is not checked here
		}
		have := pinVersion(x)
		hv, err := semver.NewVersion(strings.TrimPrefix(have, "v"))
		if err != nil || !hv.LessThan(want) {
			continue
		}
		out = append(out, Lack{Advisory: fix.Advisory, Kind: "module", Name: mf.Name, Have: have, Fixed: mf.New})
	}
	return out
}

// samePackage says whether p is the fixed package: the same name, or
// built from the same source package (dpkg and rpm name a source, apk an
// origin): a fix of libssl3 is a fix of openssl, and of every package
// built from it.
func samePackage(p manifest.Package, f manifest.PackageFix) bool {
	if p.Name == f.Name {
		return true
	}
	src := f.Source
	if src == "" {
		src = f.Name
	}
	ps := p.Source
	if ps == "" {
		ps = p.Name
	}
	return ps == src
}

// LineOf is a version's MAJOR.MINOR: the line its security releases
// extend.
func LineOf(version string) string {
	v, err := semver.StrictNewVersion(version)
	if err != nil {
		return version
	}
	return fmt.Sprintf("%d.%d", v.Major(), v.Minor())
}
