package release

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/osv"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// ErrLacksFix marks a release that lacks the fix of an advisory a release
// of a lower line (or an earlier one of its own) already published:
// publishing it would bring the vulnerability back.
var ErrLacksFix = fmt.Errorf("release lacks a published security fix: %w", failure.ErrVerify)

// ManifestFunc reads the manifest of a published release.
type ManifestFunc func(ctx context.Context, family, version string) (*manifest.Manifest, error)

// Finding is a release that lacks an advisory's fix.
type Finding struct {
	Family  string `json:"family"`
	Release string `json:"release"`
	Lack
	Aliases []string `json:"aliases,omitempty"`
	// FixedIn is the release that published the fix ("" for an OSV
	// advisory no release carries yet).
	FixedIn string `json:"fixed_in,omitempty"`
	// Cut is the release to make: the next security number of the line.
	Cut string `json:"cut"`
	// From says where the advisory came from: "catalog", or an OSV file.
	From string `json:"from"`
}

// String is "example 1.1.0 lacks DSA-9999-1 (openssl 3.0.11-1~deb12u1 <
// 3.0.11-1~deb12u3): cut 1.1.1".
func (f Finding) String() string {
	return f.Lack.of(f.Family, f.Release, f.Aliases, f.FixedIn) + ": cut " + f.Cut
}

// Supported says whether users may run r at now: active or deprecated,
// and its major not past its end of life.
func Supported(f *catalog.Family, r *catalog.Release, now time.Time) bool {
	if r.State != catalog.Active && r.State != catalog.Deprecated {
		return false
	}
	if s, ok := f.SupportOf(r.SemVer().Major()); ok && !s.EOL.IsZero() && !now.Before(s.EOL) {
		return false
	}
	return true
}

// NextInLine is the security release to cut on version's line: one past
// the newest release of that line in f.
func NextInLine(f *catalog.Family, version string) string {
	v, err := semver.StrictNewVersion(version)
	if err != nil {
		return version
	}
	newest := v
	for i := range f.Releases {
		r := f.Releases[i].SemVer()
		if r != nil && r.Major() == v.Major() && r.Minor() == v.Minor() && newest.LessThan(r) {
			newest = r
		}
	}
	return newest.IncPatch().String()
}

// published lists every fix recorded in f, with the release that
// published it, oldest release first.
type publishedFix struct {
	in  *catalog.Release
	fix manifest.Fix
}

func publishedFixes(f *catalog.Family) []publishedFix {
	var out []publishedFix
	for i := range f.Releases {
		r := &f.Releases[i]
		for _, fx := range r.Fixes {
			out = append(out, publishedFix{r, fx})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].in.SemVer().LessThan(out[j].in.SemVer()) })
	return out
}

// MissingFixes lists the fixes published in f by releases numbered below
// m (any line) that m lacks: publishing m would ship a vulnerability a
// release users already have is fixed for. Revoked releases count: the
// advisory they fixed is no less real.
func MissingFixes(f *catalog.Family, m *manifest.Manifest) []Finding {
	if f == nil {
		return nil
	}
	v, err := semver.StrictNewVersion(m.Release)
	if err != nil {
		return nil
	}
	var out []Finding
	for _, p := range publishedFixes(f) {
		if !p.in.SemVer().LessThan(v) {
			continue
		}
		for _, l := range Lacks(m, p.fix) {
			out = append(out, Finding{Family: f.Name, Release: m.Release, Lack: l, FixedIn: p.in.Version, Cut: NextInLine(f, p.in.Version), From: "catalog"})
		}
	}
	return out
}

// ForwardPorts lists, for fixes just published by release version, the
// supported releases of higher lines that lack them: on each higher
// line, its newest supported release, unless a release of that line
// already carries the fix.
func ForwardPorts(ctx context.Context, f *catalog.Family, version string, fixes []manifest.Fix, read ManifestFunc, now time.Time) ([]Finding, error) {
	v, err := semver.StrictNewVersion(version)
	if err != nil || f == nil || len(fixes) == 0 {
		return nil, err
	}
	lines := map[string][]*catalog.Release{}
	for i := range f.Releases {
		r := &f.Releases[i]
		if r.SemVer().LessThan(v) || LineOf(r.Version) == LineOf(version) {
			continue
		}
		lines[LineOf(r.Version)] = append(lines[LineOf(r.Version)], r)
	}
	var out []Finding
	for _, line := range sortedLines(lines) {
		rs := lines[line]
		sort.Slice(rs, func(i, j int) bool { return rs[i].SemVer().LessThan(rs[j].SemVer()) })
		found, err := lineLacks(ctx, f, rs, fixes, read, now)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

// lineLacks: the fixes the newest supported release of a line (rs, oldest
// first) lacks, unless some release of the line carries them.
func lineLacks(ctx context.Context, f *catalog.Family, rs []*catalog.Release, fixes []manifest.Fix, read ManifestFunc, now time.Time) ([]Finding, error) {
	var newest *catalog.Release
	for _, r := range rs {
		if Supported(f, r, now) {
			newest = r
		}
	}
	if newest == nil {
		return nil, nil
	}
	get := releaseReader(ctx, f, read)
	var out []Finding
	for _, fx := range fixes {
		m, err := get(newest)
		if err != nil {
			return nil, err
		}
		lacks := Lacks(m, fx)
		if len(lacks) == 0 {
			continue
		}
		carried := false
		for _, r := range rs {
			if r == newest || r.State == catalog.Revoked {
				continue
			}
			o, err := get(r)
			if err != nil {
				return nil, err
			}
			if len(Lacks(o, fx)) == 0 && r.SemVer().GreaterThan(newest.SemVer()) {
				carried = true
			}
		}
		if carried {
			continue
		}
		for _, l := range lacks {
			out = append(out, Finding{Family: f.Name, Release: newest.Version, Lack: l, Cut: NextInLine(f, newest.Version), From: "catalog"})
		}
	}
	return out, nil
}

// Memo reads each published manifest once (its signature checked once),
// however many audits, families and lines ask for it, also when several
// goroutines ask at once (singleflight). The manifests it hands out are
// shared: callers read them and never change them.
func Memo(read ManifestFunc) ManifestFunc {
	var mu sync.Mutex
	var group singleflight.Group
	seen := map[string]*manifest.Manifest{}
	return func(ctx context.Context, family, version string) (*manifest.Manifest, error) {
		k := family + "\x00" + version
		mu.Lock()
		m, ok := seen[k]
		mu.Unlock()
		if ok {
			return m, nil
		}
		v, err, _ := group.Do(k, func() (any, error) {
			m, err := read(ctx, family, version)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			seen[k] = m
			mu.Unlock()
			return m, nil
		})
		if err != nil {
			return nil, err
		}
		return v.(*manifest.Manifest), nil
	}
}

// releaseReader reads the manifests of f's releases, each once, naming
// the release on an error.
func releaseReader(ctx context.Context, f *catalog.Family, read ManifestFunc) func(*catalog.Release) (*manifest.Manifest, error) {
	read = Memo(read)
	return func(r *catalog.Release) (*manifest.Manifest, error) {
		m, err := read(ctx, f.Name, r.Version)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", f.Name, r.Version, err)
		}
		return m, nil
	}
}

func sortedLines(lines map[string][]*catalog.Release) []string {
	var out []string
	for l := range lines {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := semver.NewVersion(out[i] + ".0")
		b, _ := semver.NewVersion(out[j] + ".0")
		if a == nil || b == nil {
			return out[i] < out[j]
		}
		return a.LessThan(b)
	})
	return out
}

// Audit lists, for every supported release of every family in c, the
// published fixes it lacks while no later release of its own line
// carries them (users of that line have nothing to move to: a release
// must be cut). Findings are sorted by family, release and advisory.
func Audit(ctx context.Context, c *catalog.Catalog, read ManifestFunc, now time.Time) ([]Finding, error) {
	var out []Finding
	for fi := range c.Families {
		f := &c.Families[fi]
		fixes := publishedFixes(f)
		if len(fixes) == 0 {
			continue
		}
		get := releaseReader(ctx, f, read)
		for ri := range f.Releases {
			r := &f.Releases[ri]
			if !Supported(f, r, now) {
				continue
			}
			m, err := get(r)
			if err != nil {
				return nil, err
			}
			for _, p := range fixes {
				if p.in == r {
					continue
				}
				lacks := Lacks(m, p.fix)
				if len(lacks) == 0 {
					continue
				}
				later, err := laterCarries(f, r, p.fix, get)
				if err != nil {
					return nil, err
				}
				if later != "" {
					continue // users of the line can move to it; check says so
				}
				for _, l := range lacks {
					out = append(out, Finding{Family: f.Name, Release: r.Version, Lack: l, FixedIn: p.in.Version, Cut: NextInLine(f, r.Version), From: "catalog"})
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Family != b.Family {
			return a.Family < b.Family
		}
		if a.Release != b.Release {
			return semver.MustParse(a.Release).LessThan(semver.MustParse(b.Release))
		}
		return a.Advisory < b.Advisory
	})
	return out, nil
}

// laterCarries names a release of r's line, numbered above r and not
// revoked, that carries fix ("" when none does).
func laterCarries(f *catalog.Family, r *catalog.Release, fix manifest.Fix, get func(*catalog.Release) (*manifest.Manifest, error)) (string, error) {
	for i := range f.Releases {
		o := &f.Releases[i]
		if LineOf(o.Version) != LineOf(r.Version) || !r.SemVer().LessThan(o.SemVer()) || o.State == catalog.Revoked {
			continue
		}
		m, err := get(o)
		if err != nil {
			return "", err
		}
		if len(Lacks(m, fix)) == 0 {
			return o.Version, nil
		}
	}
	return "", nil
}

// AuditOSV lists, for every supported release of every family in c, each
// installed package of its bases that an OSV advisory of db affects while
// no release of its line (not revoked) holds the package at a version the
// advisory does not affect: the line needs a release. Bases whose OS has
// no OSV ecosystem imagebake knows are skipped (their count is returned).
func AuditOSV(ctx context.Context, c *catalog.Catalog, read ManifestFunc, now time.Time, db *osv.DB) ([]Finding, int, error) {
	var out []Finding
	unknownOS := 0
	for fi := range c.Families {
		f := &c.Families[fi]
		// every release users may meet on a line (not revoked) is matched
		// once: per release, per installed package, the advisories
		// affecting it
		matched := map[string]*osvMatch{}
		memo := map[string][]osv.Hit{}
		for ri := range f.Releases {
			r := &f.Releases[ri]
			if r.State == catalog.Revoked {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
			m, err := read(ctx, f.Name, r.Version)
			if err != nil {
				return nil, 0, fmt.Errorf("%s %s: %w", f.Name, r.Version, err)
			}
			mt, unknown := matchOSV(m, db, memo)
			unknownOS += unknown
			matched[r.Version] = mt
		}
		// carried: some release of the line holds the package unaffected
		carried := func(line, id, pkg string) bool {
			for v, mt := range matched {
				if LineOf(v) != line {
					continue
				}
				if ids, ok := mt.byPkg[pkg]; ok && !ids[id] {
					return true
				}
			}
			return false
		}
		for ri := range f.Releases {
			r := &f.Releases[ri]
			if !Supported(f, r, now) {
				continue
			}
			mt := matched[r.Version]
			for _, h := range mt.hits {
				if carried(LineOf(r.Version), h.ID, h.Package) {
					continue
				}
				fixed := h.Fixed
				if fixed == "" {
					fixed = "none yet"
				}
				l := Lack{Advisory: h.ID, Kind: "package", Name: h.Package, Have: h.Version, Fixed: fixed}
				if a := mt.arches[h.ID+"\x00"+h.Package+"\x00"+h.Version]; len(a) != mt.images {
					l.Arches = strings.Join(a, ", ")
				}
				out = append(out, Finding{Family: f.Name, Release: r.Version, Lack: l, Aliases: h.Aliases, Cut: NextInLine(f, r.Version), From: h.From})
			}
		}
	}
	return out, unknownOS, nil
}

// ScopeOf is ManifestScope of the releases of c that are not revoked,
// their manifests read on every CPU (read must allow it: Memo does).
func ScopeOf(ctx context.Context, c *catalog.Catalog, read ManifestFunc) (osv.Scope, error) {
	type want struct{ family, version string }
	var wants []want
	for fi := range c.Families {
		f := &c.Families[fi]
		for ri := range f.Releases {
			if r := &f.Releases[ri]; r.State != catalog.Revoked {
				wants = append(wants, want{f.Name, r.Version})
			}
		}
	}
	ms := make([]*manifest.Manifest, len(wants))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, w := range wants {
		g.Go(func() error {
			defer failure.Crash()
			m, err := read(gctx, w.family, w.version)
			if err != nil {
				return fmt.Errorf("%s %s: %w", w.family, w.version, err)
			}
			ms[i] = m
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return osv.Scope{}, err
	}
	return ManifestScope(ms...), nil
}

// osvMatch is what OSV says of one release's bases.
type osvMatch struct {
	images int
	hits   []osv.Hit                  // one per advisory, package and version, in package order
	arches map[string][]string        // "ID\x00PACKAGE\x00VERSION" -> arches
	byPkg  map[string]map[string]bool // package -> the advisories affecting it
}

// matchOSV matches every installed package of m's bases against db; it
// returns the number of images whose base it could not judge.
func matchOSV(m *manifest.Manifest, db *osv.DB, memo map[string][]osv.Hit) (*osvMatch, int) {
	mt := &osvMatch{images: len(m.Images), arches: map[string][]string{}, byPkg: map[string]map[string]bool{}}
	unknown := 0
	for _, im := range m.Images {
		eco := osv.EcosystemOf(im.Base.OS)
		if eco == "" || im.Base.Packages == nil || im.Base.Packages.Format != osv.FormatOf(eco) {
			unknown++
			continue
		}
		for _, p := range im.Base.Packages.List {
			ids := mt.byPkg[p.Name]
			if ids == nil {
				ids = map[string]bool{}
				mt.byPkg[p.Name] = ids
			}
			// releases share most packages: each one is looked up once
			mk := eco + "\x00" + p.Name + "\x00" + p.Source + "\x00" + p.Version
			hs, ok := memo[mk]
			if !ok {
				hs = db.Affecting(eco, p)
				memo[mk] = hs
			}
			for _, h := range hs {
				ids[h.ID] = true
				k := h.ID + "\x00" + p.Name + "\x00" + p.Version
				if _, ok := mt.arches[k]; !ok {
					mt.hits = append(mt.hits, h)
				}
				if !slices.Contains(mt.arches[k], im.Arch) {
					mt.arches[k] = append(mt.arches[k], im.Arch)
				}
			}
		}
	}
	return mt, unknown
}
