package puppet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/imagebake/imagebake/internal/gitcache"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/puppet/puppetfile"
)

// Verify checks lk against pf and against upstream: a stale lock, a tag or
// branch that moved or is gone, a Forge release whose checksum changed, a
// locked commit that no longer exists. It returns one line per problem and
// an error wrapping ErrLockStale or ErrDrift when there is any.
func Verify(ctx context.Context, pf *puppetfile.Puppetfile, lk *lockfile.Lock, opts ...Option) ([]string, error) {
	c := newConfig(opts)
	if diffs := Stale(pf, lk, opts...); len(diffs) > 0 {
		return diffs, fmt.Errorf("%w against %s:\n  %s", ErrLockStale, pf.Path, strings.Join(diffs, "\n  "))
	}
	r, err := newResolver(c, pf)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var problems []string
	add := func(s string) {
		mu.Lock()
		problems = append(problems, s)
		mu.Unlock()
	}
	err = parallel(ctx, c.jobs, len(pf.Modules), func(ctx context.Context, i int) error {
		m := pf.Modules[i]
		pin, _ := lk.Find(m.Name)
		switch m.Kind {
		case puppetfile.Forge:
			rel, err := r.forge.Release(ctx, m.ForgeSlug(), pin.Version)
			if err != nil {
				add(fmt.Sprintf("module %q: version %s: %v", m.Name, pin.Version, err))
			} else if rel.SHA256 != pin.SHA256 {
				add(fmt.Sprintf("module %q: version %s on %s now has sha256 %s, locked %s", m.Name, pin.Version, r.forgeURL, rel.SHA256, pin.SHA256))
			}
		case puppetfile.Git:
			return r.verifyGit(ctx, m, pin, add)
		}
		return nil
	})
	if err != nil {
		return problems, err
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return problems, fmt.Errorf("%w:\n  %s", ErrDrift, strings.Join(problems, "\n  "))
	}
	return nil, nil
}

func (r *resolver) verifyGit(ctx context.Context, m puppetfile.Module, pin lockfile.Module, add func(string)) error {
	mir, err := r.cache.Mirror(ctx, m.Source)
	if err != nil {
		return fmt.Errorf("module %q: %w", m.Name, err)
	}
	defer mir.Close()
	// the remote still has the commit when it sends it (a server sends
	// only commits its branches and tags reach)
	if err := mir.Ensure(ctx, pin.Commit, ""); errors.Is(err, gitcache.ErrRefNotFound) {
		add(fmt.Sprintf("module %q: locked commit %s is not in %s", m.Name, pin.Commit, mir.URL))
	} else if err != nil {
		return fmt.Errorf("module %q: %w", m.Name, err)
	}
	if m.RefType == puppetfile.Commit {
		return nil
	}
	ref, err := r.refOf(m)
	if err != nil {
		return err
	}
	refs, err := mir.RemoteRefs(ctx)
	if err != nil {
		return fmt.Errorf("module %q: %w", m.Name, err)
	}
	var names []string
	switch m.RefType {
	case puppetfile.Tag:
		names = []string{"refs/tags/" + ref}
	case puppetfile.Branch:
		names = []string{"refs/heads/" + ref}
	default:
		names = []string{"refs/tags/" + ref, "refs/heads/" + ref}
	}
	for _, n := range names {
		if now, ok := refs[n]; ok {
			if now != pin.Commit {
				add(Drift{Module: m.Name, Ref: fmt.Sprintf("%s %s", m.RefType, ref), Locked: pin.Commit, Now: now, Source: mir.URL}.String())
			}
			return nil
		}
	}
	if m.RefType == puppetfile.Ref && len(ref) >= 7 && strings.HasPrefix(pin.Commit, ref) {
		return nil // a :ref that is a commit SHA
	}
	add(Drift{Module: m.Name, Ref: fmt.Sprintf("%s %s", m.RefType, ref), Locked: pin.Commit, Source: mir.URL}.String())
	return nil
}
