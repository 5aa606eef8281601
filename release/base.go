package release

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/imagebake/imagebake/manifests/manifest"
)

// DefaultMajorPackages are the packages whose upstream MAJOR.MINOR is a
// MAJOR change when [release] major_packages is not set: the C library,
// OpenSSL, language runtimes and the Puppet agent. A glob matches a
// package's name or its source package's name.
var DefaultMajorPackages = []string{
	"libc6", "glibc", "musl",
	"openssl", "openssl3", "libssl*",
	"python", "python3", "python3.*", "python3?", "python3??",
	"ruby", "ruby?.?", "ruby[0-9]*",
	"perl", "perl-base",
	"nodejs", "openjdk-*", "java-*-openjdk*", "golang-go", "golang-1.*", "php", "php[0-9]*",
	"puppet-agent", "puppet", "openvox-agent",
}

// CheckGlobs refuses a major_packages entry that is not a valid glob.
func CheckGlobs(globs []string) error {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			return fmt.Errorf("major_packages entry %q is not a name or glob (*, ?, [a-z])", g)
		}
	}
	return nil
}

// major reports whether p is a major package under globs.
func major(globs []string, p manifest.Package) bool {
	for _, g := range globs {
		for _, n := range []string{p.Name, p.Source} {
			if ok, _ := path.Match(g, n); ok && n != "" {
				return true
			}
		}
	}
	return false
}

// splitVersion splits a package version into its upstream part (with any
// epoch) and its packaging revision: dpkg's "[EPOCH:]UPSTREAM-REVISION",
// apk's "UPSTREAM-rN", rpm's "[EPOCH:]VERSION-RELEASE". A version without
// a hyphen (a native package) has no revision.
func splitVersion(v string) (upstream, revision string) {
	if i := strings.LastIndex(v, "-"); i > 0 {
		return v[:i], v[i+1:]
	}
	return v, ""
}

var lineRE = regexp.MustCompile(`^(?:(\d+):)?(\d+)(?:\.(\d+))?`)

// line is an upstream version's MAJOR.MINOR (with the epoch, if any): the
// line a major package's users depend on. Versions that do not start with
// a number are their own line.
func line(upstream string) string {
	m := lineRE.FindStringSubmatch(upstream)
	if m == nil {
		return upstream
	}
	s := m[2] + "." + m[3]
	if m[1] != "" && m[1] != "0" {
		s = m[1] + ":" + s
	}
	return s
}

// osRelease is what names a base's OS release: ID and VERSION_ID, where a
// third dotted number of VERSION_ID (Alpine's 3.19.1) is a point release.
func osRelease(o *manifest.OS) (release, point string) {
	v := o.VersionID
	if v == "" {
		v = o.Codename
	}
	if parts := strings.SplitN(v, ".", 3); len(parts) == 3 {
		return o.ID + " " + parts[0] + "." + parts[1], parts[2]
	}
	return o.ID + " " + v, ""
}

// compareBase lists the changes of one arch's base, by what is inside it.
func compareBase(p, c manifest.Base, globs []string) []Change {
	if manifest.BaseIdentity(p.Ref) == manifest.BaseIdentity(c.Ref) {
		return nil
	}
	var out []Change
	add := func(l Level, what, reason string) { out = append(out, Change{Level: l, What: what, Reason: reason}) }
	switch {
	case p.OS == nil || c.OS == nil:
		add(Major, "base", fmt.Sprintf("changed from %s to %s, and the OS of %s is not known (no os-release, or a manifest older than base reading)", p.Ref, c.Ref, unknown(p.OS == nil, p.Ref, c.Ref)))
		return out
	case p.OS.ID != c.OS.ID:
		add(Major, "base OS", fmt.Sprintf("%s -> %s: another distribution", p.OS, c.OS))
	default:
		pr, pp := osRelease(p.OS)
		cr, cp := osRelease(c.OS)
		switch {
		case pr != cr:
			add(Major, "base OS", fmt.Sprintf("%s -> %s: another OS release", p.OS, c.OS))
		case pp != cp:
			add(Minor, "base OS", fmt.Sprintf("%s -> %s: point release", p.OS, c.OS))
		}
	}
	if p.Packages == nil || c.Packages == nil {
		if p.Packages != nil || c.Packages != nil {
			add(Major, "base packages", fmt.Sprintf("changed from %s to %s, and the packages of %s are not known (no package database imagebake reads, or a manifest older than base reading)", p.Ref, c.Ref, unknown(p.Packages == nil, p.Ref, c.Ref)))
		} else {
			add(Major, "base", fmt.Sprintf("changed from %s to %s; neither has a package database imagebake reads, so what changed is not known", p.Ref, c.Ref))
		}
		return out
	}
	if p.Packages.Format != c.Packages.Format {
		add(Major, "base packages", fmt.Sprintf("package format %s -> %s", p.Packages.Format, c.Packages.Format))
		return out
	}
	out = append(out, comparePackages(c.Packages.Format, p.Packages.List, c.Packages.List, globs)...)
	if len(out) == 0 {
		add(Minor, "base", fmt.Sprintf("%s -> %s: same OS and packages, other files differ", short(manifest.BaseIdentity(p.Ref)), short(manifest.BaseIdentity(c.Ref))))
	}
	return out
}

func unknown(prev bool, p, c string) string {
	if prev {
		return "the previous base " + p
	}
	return "the new base " + c
}

// comparePackages lists the package changes from ps to cs.
func comparePackages(format string, ps, cs []manifest.Package, globs []string) []Change {
	key := func(p manifest.Package) string { return p.Name + ":" + p.Arch }
	pm, cm := map[string]manifest.Package{}, map[string]manifest.Package{}
	for _, p := range ps {
		pm[key(p)] = p
	}
	for _, p := range cs {
		cm[key(p)] = p
	}
	// a package is named by its name; by name:arch only where a base
	// holds it for several arches (dpkg multiarch)
	arches := map[string]map[string]bool{}
	for _, p := range append(append([]manifest.Package{}, ps...), cs...) {
		if arches[p.Name] == nil {
			arches[p.Name] = map[string]bool{}
		}
		arches[p.Name][p.Arch] = true
	}
	var out []Change
	for _, k := range sortedKeys(pm, cm) {
		p, inP := pm[k]
		c, inC := cm[k]
		n := p.Name
		if !inP {
			n = c.Name
		}
		what := "package " + name(p, c, len(arches[n]) > 1)
		switch {
		case !inC:
			out = append(out, Change{Level: Major, What: what, Reason: fmt.Sprintf("%s removed: whatever relies on it breaks", p.Version)})
		case !inP:
			out = append(out, Change{Level: Minor, What: what, Reason: fmt.Sprintf("%s added", c.Version)})
		case p.Version != c.Version:
			l, why := packageLevel(p, c, globs)
			out = append(out, Change{Level: l, What: what, Reason: fmt.Sprintf("%s -> %s: %s", p.Version, c.Version, why),
				Package: &manifest.PackageFix{Name: c.Name, Source: c.Source, Format: format, Old: p.Version, New: c.Version}})
		}
	}
	return out
}

func name(p, c manifest.Package, withArch bool) string {
	n := p
	if n.Name == "" {
		n = c
	}
	if n.Arch == "" || !withArch {
		return n.Name
	}
	return n.Name + ":" + n.Arch
}

// packageLevel is the level of a package's version change.
func packageLevel(p, c manifest.Package, globs []string) (Level, string) {
	pu, _ := splitVersion(p.Version)
	cu, _ := splitVersion(c.Version)
	switch {
	case pu == cu:
		return Security, "same upstream version, patched"
	case major(globs, c) && line(pu) != line(cu):
		return Major, fmt.Sprintf("major package, %s -> %s", line(pu), line(cu))
	}
	return Minor, "new upstream version"
}

// grouped joins the same change on several arches into one, naming the
// arches unless it is on every one of all.
func grouped(per map[string][]Change, all []string) []Change {
	type key struct {
		l      Level
		w, why string
	}
	arches := map[key][]string{}
	first := map[key]Change{}
	var order []key
	for _, a := range all {
		for _, c := range per[a] {
			k := key{c.Level, c.What, c.Reason}
			if _, ok := arches[k]; !ok {
				order = append(order, k)
				first[k] = c
			}
			arches[k] = append(arches[k], a)
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].w < order[j].w })
	var out []Change
	for _, k := range order {
		what := k.w
		if len(arches[k]) != len(all) {
			what += " on " + strings.Join(arches[k], ", ")
		}
		out = append(out, Change{Level: k.l, What: what, Reason: k.why, Package: first[k].Package, Module: first[k].Module})
	}
	return out
}
