package agents

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/versionq"
)

// ErrNoMatch marks a selection that nothing in the chain satisfies.
var ErrNoMatch = fmt.Errorf("no matching agent binaries: %w", failure.ErrNotFound)

// ErrConflict marks one version held with different content by two stores.
var ErrConflict = fmt.Errorf("conflicting agent binaries: %w", failure.ErrVerify)

// Query is what to select.
type Query struct {
	Name string
	// Want is a major ("2", "2.x"), a major.minor ("2.4": the newest
	// patch of 2.4), an exact version ("2.4.1"), or a Masterminds
	// constraint ("~2.4", ">=2.1 <3").
	Want       string
	OS, Arch   string
	Prerelease bool   // allow pre-releases in ranges
	SHA256     string // with an exact version: the content a lock or manifest pinned
}

func parseWant(w string) (*versionq.Query, error) {
	q, err := versionq.Parse(w, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", failure.ErrUsage, err)
	}
	return q, nil
}

// Chain is an ordered list of stores whose indexes are read once.
type Chain struct {
	Stores []Store
	once   sync.Once
	ixs    []*Index
	errs   []error
}

// NewChain returns the chain of stores, searched in order.
func NewChain(stores ...Store) *Chain { return &Chain{Stores: stores} }

// load reads every store's index, concurrently, once.
func (c *Chain) load(ctx context.Context) {
	c.once.Do(func() {
		c.ixs = make([]*Index, len(c.Stores))
		c.errs = make([]error, len(c.Stores))
		var wg sync.WaitGroup
		for i, s := range c.Stores {
			wg.Add(1)
			go func() {
				defer failure.Crash()
				defer wg.Done()
				c.ixs[i], c.errs[i] = s.Index(ctx)
			}()
		}
		wg.Wait()
	})
}

// Indexes returns each store's index (nil where it had none) and error.
func (c *Chain) Indexes(ctx context.Context) ([]*Index, []error) {
	c.load(ctx)
	return c.ixs, c.errs
}

// Selection is the chosen agent binaries for one platform.
type Selection struct {
	Entry
	Store Store `json:"-"`
	// Source is the store's location, and URL the file's.
	Source string `json:"store"`
	URL    string `json:"url"`
}

// Select returns the largest version matching q over the whole chain.
// A store without an index is skipped but named if nothing matches; a
// store that fails otherwise fails the selection.
func (c *Chain) Select(ctx context.Context, q Query) (Selection, error) {
	m, err := parseWant(q.Want)
	if err != nil {
		return Selection{}, err
	}
	c.load(ctx)
	for i, e := range c.errs {
		if e != nil && !errors.Is(e, ErrNoIndex) {
			return Selection{}, fmt.Errorf("agent binaries %s %s for %s/%s: reading %s: %w", q.Name, m.String(), q.OS, q.Arch, c.Stores[i].Location(), e)
		}
	}
	var best *Selection
	for i, ix := range c.ixs {
		if ix == nil {
			continue
		}
		for _, e := range ix.Agents {
			if e.Name != q.Name || e.OS != q.OS || e.Arch != q.Arch || !m.Match(e.v, q.Prerelease) {
				continue
			}
			if e.Withdrawn != nil && (q.SHA256 == "" || q.SHA256 != e.SHA256) {
				continue // a withdrawn upload serves only a release that pinned it
			}
			if best == nil || e.v.GreaterThan(best.v) {
				best = &Selection{Entry: e, Store: c.Stores[i]}
			} else if e.v.Equal(best.v) && e.SHA256 != best.SHA256 {
				return Selection{}, fmt.Errorf("%w: %s %s for %s: %s has sha256 %s, %s has sha256 %s; one of them is wrong",
					ErrConflict, q.Name, e.Version, e.Platform(), best.Store.Location(), best.SHA256, c.Stores[i].Location(), e.SHA256)
			}
		}
	}
	if best == nil {
		return Selection{}, c.miss(q, m)
	}
	if q.SHA256 != "" && best.SHA256 != q.SHA256 {
		return Selection{}, fmt.Errorf("%w: %s %s for %s at %s has sha256 %s, pinned %s", ErrConflict, q.Name, best.Version, best.Platform(), best.Store.Location(), best.SHA256, q.SHA256)
	}
	best.Source = best.Store.Location()
	best.URL = best.Source + "/" + best.Path
	return *best, nil
}

// SelectArches selects for each arch; every miss is reported, not just the first.
func (c *Chain) SelectArches(ctx context.Context, q Query, arches []string) ([]Selection, error) {
	var out []Selection
	var errs []error
	for _, a := range arches {
		qa := q
		qa.Arch = a
		s, err := c.Select(ctx, qa)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// miss builds the error for a selection that found nothing: every store
// searched, what it holds, and the nearest candidates.
func (c *Chain) miss(q Query, m *versionq.Query) error {
	var b strings.Builder
	fmt.Fprintf(&b, "no agent binaries for %s %s on %s/%s", q.Name, m.String(), q.OS, q.Arch)
	if len(c.Stores) == 0 {
		b.WriteString("\n  searched: no stores configured (use --store)")
		return &MissError{Msg: b.String()}
	}
	var cands []cand
	for i, s := range c.Stores {
		label := "searched: "
		if i > 0 {
			label = "          "
		}
		b.WriteString("\n  " + label + s.Location() + " (")
		if c.ixs[i] == nil {
			b.WriteString("no " + IndexName + ")")
			continue
		}
		byPlat := map[string][]string{}
		n := 0
		for _, e := range c.ixs[i].Agents {
			if e.Name != q.Name {
				continue
			}
			n++
			byPlat[e.Platform()] = append(byPlat[e.Platform()], e.Version)
			switch {
			case e.Withdrawn != nil && e.OS == q.OS && e.Arch == q.Arch:
				cands = append(cands, cand{e, "withdrawn: " + e.Withdrawn.Reason, 0})
			case e.OS != q.OS:
				cands = append(cands, cand{e, "other OS", 3})
			case e.Arch != q.Arch:
				cands = append(cands, cand{e, "other arch", 1})
			case m.Major >= 0 && int64(e.v.Major()) != m.Major:
				cands = append(cands, cand{e, "other major", 2})
			case e.v.Prerelease() != "" && !q.Prerelease:
				cands = append(cands, cand{e, "pre-release; use --prerelease", 0})
			default:
				cands = append(cands, cand{e, "outside " + m.String(), 2})
			}
		}
		if n == 0 {
			fmt.Fprintf(&b, "%d entries, none for %s)", len(c.ixs[i].Agents), q.Name)
			continue
		}
		plats := make([]string, 0, len(byPlat))
		for p := range byPlat {
			plats = append(plats, p)
		}
		sort.Strings(plats)
		var parts []string
		for _, p := range plats {
			parts = append(parts, strings.Join(byPlat[p], ", ")+" for "+p)
		}
		fmt.Fprintf(&b, "index has %s)", strings.Join(parts, "; "))
	}
	if len(cands) > 0 {
		b.WriteString("\n  nearest:  " + strings.Join(nearestCands(cands), ", "))
	}
	return &MissError{Msg: b.String()}
}

// cand is an entry near a missed selection, with why it did not match.
type cand struct {
	e    Entry
	why  string
	rank int
}

// nearestCands names, per reason, the largest version, reasons ordered by
// rank; three at most.
func nearestCands(cands []cand) []string {
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].rank != cands[j].rank {
			return cands[i].rank < cands[j].rank
		}
		return cands[i].e.v.GreaterThan(cands[j].e.v)
	})
	seen := map[string]bool{}
	var near []string
	for _, cd := range cands {
		if seen[cd.why] || len(near) == 3 {
			continue
		}
		seen[cd.why] = true
		near = append(near, fmt.Sprintf("%s (%s)", strings.TrimSuffix(FileName(cd.e.Name, cd.e.Version, cd.e.OS, cd.e.Arch), ".tar.gz"), cd.why))
	}
	return near
}

// MissError is a selection that found nothing; its message names every
// store searched and the nearest candidates.
type MissError struct{ Msg string }

func (e *MissError) Error() string { return e.Msg }

// Unwrap makes a miss ErrNoMatch (and so not found).
func (e *MissError) Unwrap() error { return ErrNoMatch }

// SelectCommon selects one version for every arch: the largest version
// matching q that every arch has. When the newest differs per arch, note
// says which each had and which was taken; when no version is common, the
// error names what each arch has.
func (c *Chain) SelectCommon(ctx context.Context, q Query, arches []string) (sels []Selection, note string, err error) {
	newest, err := c.SelectArches(ctx, q, arches)
	if err != nil {
		return nil, "", err
	}
	same := true
	for _, s := range newest[1:] {
		same = same && s.Version == newest[0].Version
	}
	if same {
		return newest, "", nil
	}
	m, err := parseWant(q.Want)
	if err != nil {
		return nil, "", err
	}
	var count map[string]int
	var has []string
	for _, a := range arches {
		vs := c.versions(q, m, a)
		has = append(has, fmt.Sprintf("%s has %s", a, strings.Join(vs, ", ")))
		if count == nil {
			count = map[string]int{}
		}
		for _, v := range vs {
			count[v]++
		}
	}
	var common *semver.Version
	for v, n := range count {
		sv := semver.MustParse(v)
		if n == len(arches) && (common == nil || sv.GreaterThan(common)) {
			common = sv
		}
	}
	var each []string
	for i, a := range arches {
		each = append(each, a+" "+newest[i].Version)
	}
	if common == nil {
		return nil, "", fmt.Errorf("%w: no version of %s matching %s is published for every arch (%s); publish the missing arches, or pass --agents-per-arch to take each arch's newest",
			ErrNoMatch, q.Name, m, strings.Join(has, "; "))
	}
	qe := q
	qe.Want = common.Original()
	if sels, err = c.SelectArches(ctx, qe, arches); err != nil {
		return nil, "", err
	}
	note = fmt.Sprintf("agent binaries %s: the newest differ per arch (%s); using %s, the newest every arch has (--agents-per-arch takes each arch's newest)",
		q.Name, strings.Join(each, ", "), common.Original())
	return sels, note, nil
}

// versions lists the versions matching m for one arch over the chain,
// largest first.
func (c *Chain) versions(q Query, m *versionq.Query, arch string) []string {
	seen := map[string]*semver.Version{}
	for _, ix := range c.ixs {
		if ix == nil {
			continue
		}
		for _, e := range ix.Agents {
			if e.Name == q.Name && e.OS == q.OS && e.Arch == arch && e.Withdrawn == nil && m.Match(e.v, q.Prerelease) {
				seen[e.Version] = e.v
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return seen[out[i]].GreaterThan(seen[out[j]]) })
	return out
}
