package gitcache

import (
	"fmt"
	"strings"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/gitarg"
)

// Remap points a moved remote at its new home, as git's insteadOf does: a
// URL that starts with Old is fetched from New and the rest of it.
type Remap struct{ Old, New string }

// ParseRemaps reads OLD=NEW rules (--remap); every bad one is named.
func ParseRemaps(rules []string) ([]Remap, error) {
	var out []Remap
	var bad []string
	for _, r := range rules {
		old, nw, ok := strings.Cut(r, "=")
		switch {
		case !ok || old == "" || nw == "":
			bad = append(bad, fmt.Sprintf("%q is not OLD=NEW", r))
		case gitarg.Remote(nw) != nil:
			bad = append(bad, fmt.Sprintf("%q: %s is not a git remote", r, Redact(nw)))
		default:
			out = append(out, Remap{Old: old, New: nw})
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: --remap: %s", failure.ErrUsage, strings.Join(bad, "; "))
	}
	return out, nil
}

// SetRemaps makes the cache fetch remotes the rules move from their new
// home. A mirror keeps the name of the remote as pinned (its objects from
// before the move serve still); what it fetches from the new home is
// checked against the pins as anything fetched is.
func (c *Cache) SetRemaps(rules []Remap) { c.remaps = rules }

// remapped is where url is fetched from ("" when no rule moves it): the
// longest Old that prefixes it wins.
func (c *Cache) remapped(url string) string {
	best := -1
	for i, r := range c.remaps {
		if strings.HasPrefix(url, r.Old) && (best < 0 || len(r.Old) > len(c.remaps[best].Old)) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return c.remaps[best].New + strings.TrimPrefix(url, c.remaps[best].Old)
}
