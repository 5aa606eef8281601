// Package nearest picks the candidates closest to what a user asked for,
// so an error can say "did you mean".
package nearest

import (
	"sort"

	"github.com/Masterminds/semver/v3"
)

// Names returns up to n candidates closest to want by edit distance,
// ties in name order.
func Names(want string, cands []string, n int) []string {
	return pick(cands, n, func(c string) uint64 { return uint64(levenshtein(want, c)) }, func(a, b string) bool { return a < b })
}

// Versions returns up to n candidates closest to want as semantic
// versions (major first, then minor, then patch), ties largest first.
// Candidates that are not versions are left out; when want is not a
// version, the largest candidates come first.
func Versions(want string, cands []string, n int) []string {
	vs := map[string]*semver.Version{}
	var ok []string
	for _, c := range cands {
		if v, err := semver.NewVersion(c); err == nil {
			vs[c] = v
			ok = append(ok, c)
		}
	}
	w, err := semver.NewVersion(want)
	dist := func(c string) uint64 {
		if err != nil {
			return 0
		}
		return distance(vs[c], w)
	}
	return pick(ok, n, dist, func(a, b string) bool { return vs[a].GreaterThan(vs[b]) })
}

func pick(cands []string, n int, dist func(string) uint64, before func(a, b string) bool) []string {
	type scored struct {
		s string
		d uint64
	}
	all := make([]scored, 0, len(cands))
	for _, c := range cands {
		all = append(all, scored{c, dist(c)})
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].d != all[j].d {
			return all[i].d < all[j].d
		}
		return before(all[i].s, all[j].s)
	})
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, all[i].s)
	}
	return out
}

func distance(a, b *semver.Version) uint64 {
	d := func(x, y uint64) uint64 {
		if x > y {
			return x - y
		}
		return y - x
	}
	return d(a.Major(), b.Major())*1_000_000 + d(a.Minor(), b.Minor())*1_000 + d(a.Patch(), b.Patch())
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Distance is the edit distance between a and b (insertions, deletions
// and substitutions of single characters).
func Distance(a, b string) int { return levenshtein(a, b) }
